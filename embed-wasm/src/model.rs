//! Inference: a tract plan of the ONNX model, batching, mean pooling and L2 normalisation.
//!
//! The plan is optimised once with symbolic batch and sequence sizes, so a
//! single loaded instance (or its snapshot) serves every request shape.
//! Batches are padded to their longest text; texts are sorted by length and
//! cut into sub-batches first, so a short text never pays for a long one's
//! padding and attention memory stays bounded.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use prost::Message;
use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::*;

use crate::Error;
use crate::tokenizer::{Encoding, Tokenizer};

/// Most texts run through the model at once.
const MAX_BATCH: usize = 32;
/// Most padded tokens per sub-batch: bounds the B×12×S×S attention scores
/// (4096 tokens at S = 256 is ≈ 50 MiB of f32), which matters in a guest.
const MAX_BATCH_TOKENS: usize = 4096;

/// The inputs a model may take, by ONNX name (all-mpnet-base-v2 has no
/// `token_type_ids`).
const INPUT_NAMES: [&str; 3] = ["input_ids", "attention_mask", "token_type_ids"];

/// Vectors for a batch of texts, in input order.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// One L2-normalised vector of [`Embedder::dim`] floats per text.
    pub vectors: Vec<Vec<f32>>,
    /// Tokens used per text after truncation, [CLS] and [SEP] included.
    pub token_counts: Vec<u32>,
}

/// What the model directory holds, as text the caller read.
#[derive(Debug, Clone, Copy)]
pub struct ModelFiles<'a> {
    pub tokenizer_json: &'a [u8],
    /// Truncation length in tokens including the two wrapping tokens: the
    /// model's sentence-transformers `max_seq_length` (the manifest's
    /// `max_tokens`: 256 for all-MiniLM-L6-v2, 384 for all-mpnet-base-v2).
    pub max_tokens: usize,
}

/// A loaded tokenizer and optimised model; cheap to share between threads.
#[derive(Debug, Clone)]
pub struct Embedder {
    tokenizer: Tokenizer,
    plan: Arc<TypedRunnableModel>,
    /// For each model input (in the model's order), which of [`INPUT_NAMES`].
    input_roles: Vec<usize>,
    /// Width of the model's output vectors (its hidden size).
    dim: usize,
}

impl Embedder {
    /// Loads an ONNX model (fp32 or folded int8) and its `tokenizer.json`.
    pub fn load(model_onnx: &[u8], files: ModelFiles<'_>) -> Result<Self, Error> {
        let tokenizer = Tokenizer::from_json(files.tokenizer_json, files.max_tokens)?;
        let proto = decode(model_onnx)?;
        Self::from_proto(&proto, tokenizer)
    }

    /// Like [`Embedder::load`], but frees the file bytes as soon as they are
    /// parsed: in a guest, peak memory stays in the instance for good.
    pub fn load_owned(model_onnx: Vec<u8>, files: ModelFiles<'_>) -> Result<Self, Error> {
        let tokenizer = Tokenizer::from_json(files.tokenizer_json, files.max_tokens)?;
        let proto = decode(&model_onnx)?;
        drop(model_onnx);
        Self::from_proto(&proto, tokenizer)
    }

    fn from_proto(proto: &ModelProto, tokenizer: Tokenizer) -> Result<Self, Error> {
        let load = |e: TractError| Error::ModelLoad(format!("{e:#}"));
        let mut model = tract_onnx::onnx()
            // Keep the file's value_info (symbolic shapes named `batch`,
            // `sequence`): more facts for tract's analysis to check against.
            .with_ignore_value_info(false)
            .model_for_proto_model(proto)
            .map_err(load)?;
        let inputs = model.input_outlets().map_err(load)?.to_vec();
        let mut input_roles = Vec::with_capacity(inputs.len());
        for outlet in &inputs {
            let name = &model.node(outlet.node).name;
            let role = INPUT_NAMES
                .iter()
                .position(|n| n == name)
                .ok_or_else(|| Error::ModelLoad(format!("unexpected model input {name:?}")))?;
            input_roles.push(role);
        }
        // The exporter's names: the file's value_info must unify with these.
        let batch = model.sym("batch");
        let seq = model.sym("sequence");
        for i in 0..inputs.len() {
            let fact =
                InferenceFact::dt_shape(i64::datum_type(), tvec![batch.to_dim(), seq.to_dim()]);
            model.set_input_fact(i, fact).map_err(load)?;
        }
        let optimized = model.into_optimized().map_err(load)?;
        // (batch, sequence, hidden): the hidden size is a constant of the graph.
        let dim = optimized
            .output_fact(0)
            .ok()
            .and_then(|fact| fact.shape.to_tvec().last()?.to_i64().ok())
            .and_then(|dim| usize::try_from(dim).ok())
            .ok_or_else(|| Error::ModelLoad("output has no fixed last dimension".into()))?;
        let plan = optimized.into_runnable().map_err(load)?;
        Ok(Self {
            tokenizer,
            plan,
            input_roles,
            dim,
        })
    }

    /// The tokenizer, for callers that need token counts without inference.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Embedding dimension: 384 for all-MiniLM-L6-v2, 768 for all-mpnet-base-v2.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Truncation length in tokens, [CLS] and [SEP] included.
    pub fn max_tokens(&self) -> usize {
        self.tokenizer.max_tokens()
    }

    /// Embeds texts: one normalised vector per text, in input order.
    pub fn embed(&self, texts: &[&str]) -> Result<Embeddings, Error> {
        let encodings: Vec<Encoding> = texts.iter().map(|t| self.tokenizer.encode(t)).collect();
        let mut order: Vec<usize> = (0..encodings.len()).collect();
        order.sort_by_key(|&i| encodings[i].ids.len());

        let mut vectors = vec![Vec::new(); encodings.len()];
        let mut start = 0;
        while start < order.len() {
            // Sorted ascending, so the last member sets the padded length.
            let mut end = start + 1;
            while end < order.len()
                && end - start < MAX_BATCH
                && (end - start + 1) * encodings[order[end]].ids.len() <= MAX_BATCH_TOKENS
            {
                end += 1;
            }
            let chunk: Vec<&Encoding> = order[start..end].iter().map(|&i| &encodings[i]).collect();
            let pooled = self.run_batch(&chunk)?;
            for (&i, v) in order[start..end].iter().zip(pooled) {
                vectors[i] = v;
            }
            start = end;
        }
        let token_counts = encodings.iter().map(|e| e.ids.len() as u32).collect();
        Ok(Embeddings {
            vectors,
            token_counts,
        })
    }

    /// Runs one padded batch and pools it.
    fn run_batch(&self, batch: &[&Encoding]) -> Result<Vec<Vec<f32>>, Error> {
        let infer = |msg: String| Error::Inference(msg);
        let b = batch.len();
        let s = batch.iter().map(|e| e.ids.len()).max().unwrap_or(0);
        let mut ids = vec![0i64; b * s];
        let mut mask = vec![0i64; b * s];
        for (row, enc) in batch.iter().enumerate() {
            for (col, (&id, &m)) in enc.ids.iter().zip(&enc.attention_mask).enumerate() {
                ids[row * s + col] = i64::from(id);
                mask[row * s + col] = i64::from(m);
            }
        }
        let by_role = [
            Tensor::from_shape(&[b, s], &ids),
            Tensor::from_shape(&[b, s], &mask),
            // Single-sentence input: every token is segment 0.
            Tensor::from_shape(&[b, s], &vec![0i64; b * s]),
        ];
        let mut inputs: TVec<TValue> = tvec![];
        for &role in &self.input_roles {
            let t = by_role[role]
                .as_ref()
                .map_err(|e| infer(format!("{e:#}")))?;
            inputs.push(t.clone().into_tvalue());
        }
        // tract reports errors as values; a panic would be a bug there, but
        // it must not take the caller down with it.
        let outputs = catch_unwind(AssertUnwindSafe(|| self.plan.run(inputs)))
            .map_err(|_| infer("tract panicked".into()))?
            .map_err(|e| infer(format!("{e:#}")))?;
        let hidden = outputs
            .first()
            .ok_or_else(|| infer("model produced no output".into()))?;
        let dim = self.dim;
        if hidden.shape() != [b, s, dim] {
            return Err(infer(format!(
                "output shape {:?}, expected [{b}, {s}, {dim}]",
                hidden.shape()
            )));
        }
        let hidden = hidden
            .try_as_plain_ram()
            .and_then(|v| v.as_slice::<f32>())
            .map_err(|e| infer(format!("{e:#}")))?;
        Ok(batch
            .iter()
            .enumerate()
            .map(|(row, enc)| {
                let rows = hidden[row * s * dim..(row + 1) * s * dim].chunks_exact(dim);
                mean_pool_normalize(rows, &enc.attention_mask, dim)
            })
            .collect())
    }
}

fn decode(model_onnx: &[u8]) -> Result<ModelProto, Error> {
    ModelProto::decode(model_onnx).map_err(|e| Error::ModelLoad(format!("ONNX protobuf: {e}")))
}

/// Mean of the token vectors where the mask is 1, then L2-normalised, as
/// sentence-transformers' Pooling(mean) + Normalize modules do (including
/// their clamps: mask count ≥ 1e-9, norm ≥ 1e-12).
fn mean_pool_normalize<'a>(
    tokens: impl Iterator<Item = &'a [f32]>,
    mask: &[u32],
    dim: usize,
) -> Vec<f32> {
    let mut sum = vec![0f32; dim];
    let mut count = 0f32;
    for (token, &m) in tokens.zip(mask) {
        if m != 0 {
            for (acc, x) in sum.iter_mut().zip(token) {
                *acc += x;
            }
            count += 1.0;
        }
    }
    let count = count.max(1e-9);
    sum.iter_mut().for_each(|x| *x /= count);
    let norm = sum.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    sum.iter_mut().for_each(|x| *x /= norm);
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIM: usize = 384;

    #[test]
    fn pooling_ignores_masked_tokens_and_normalises() {
        let a = vec![1.0f32; DIM];
        let b = vec![3.0f32; DIM];
        let junk = vec![1000.0f32; DIM];
        let rows = [a.as_slice(), b.as_slice(), junk.as_slice()];
        let v = mean_pool_normalize(rows.into_iter(), &[1, 1, 0], DIM);
        let expected = 1.0 / (DIM as f32).sqrt();
        assert!(
            v.iter().all(|x| (x - expected).abs() < 1e-6),
            "{:?}",
            &v[..4]
        );
        let zero = vec![0.0f32; DIM];
        let v = mean_pool_normalize([zero.as_slice()].into_iter(), &[1], DIM);
        assert!(v.iter().all(|x| x.is_finite() && *x == 0.0));
    }

    #[test]
    fn rejects_garbage_model_bytes() {
        let err = decode(b"\xff\xff\xff not a protobuf");
        assert!(matches!(err, Err(Error::ModelLoad(_))), "{err:?}");
    }
}
