//! Texts → vectors through the embedding pool's OpenAI-compatible API, with
//! a KV cache in front keyed by sha256(model ‖ 0x00 ‖ text).
//!
//! Every answer is checked (model id, count, dimension, finite values): a
//! pool serving the wrong model must not silently poison the index.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::concurrent::join_all;
use crate::config::Config;
use crate::ports::{HttpClient, Kv};

/// The most characters of a text sent to the pool. The model reads only its
/// first 256 tokens, which natural text fills within about 1,500
/// characters; 8,192 is the pool's default `max_chars`, so a long memory is
/// embedded by its beginning instead of being refused.
pub const MAX_EMBED_CHARS: usize = 8192;

/// Why embedding failed. Every variant means "not now" to ingest, which
/// keeps the row `pending`; the background job treats them differently.
#[derive(Debug, Clone, PartialEq)]
pub enum EmbedError {
    /// An outage: the pool could not be reached, timed out, or answered 5xx
    /// or 429. Nothing is wrong with the texts; retrying later helps.
    Unavailable(String),
    /// The pool refused the request (4xx other than 429): something in this
    /// batch is unacceptable to it. Splitting the batch finds the culprit.
    Refused(u16),
    /// The pool answered, but not with what we asked for.
    BadAnswer(String),
}

impl std::fmt::Display for EmbedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EmbedError::Unavailable(d) => write!(f, "embedding pool unavailable: {d}"),
            EmbedError::Refused(status) => {
                write!(f, "embedding pool refused the batch: HTTP {status}")
            }
            EmbedError::BadAnswer(d) => write!(f, "embedding pool answered badly: {d}"),
        }
    }
}

#[derive(Serialize)]
struct EmbeddingsRequest<'a> {
    input: &'a [&'a str],
    model: &'a str,
    /// Asks the pool to embed the beginning of an over-long text rather than
    /// refuse it (text-embeddings-inference's `truncate`).
    truncate: bool,
}

/// The first `MAX_EMBED_CHARS` characters of `text` (all of it if shorter).
pub fn embeddable_prefix(text: &str) -> &str {
    match text.char_indices().nth(MAX_EMBED_CHARS) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

#[derive(Deserialize)]
struct EmbeddingsResponse {
    data: Vec<EmbeddingItem>,
    model: String,
}

#[derive(Deserialize)]
struct EmbeddingItem {
    embedding: Vec<f32>,
    #[serde(default)]
    index: Option<usize>,
}

/// The embedder service over two ports.
pub struct Embedder<'a> {
    pub http: &'a dyn HttpClient,
    pub kv: &'a dyn Kv,
    pub cfg: &'a Config,
}

/// KV key of a cached embedding.
pub fn cache_key(model: &str, text: &str) -> String {
    let mut h = Sha256::new();
    h.update(model.as_bytes());
    h.update([0u8]);
    h.update(text.as_bytes());
    format!("emb:{}", hex::encode(h.finalize()))
}

impl Embedder<'_> {
    /// Embeds `texts` in order. Cached vectors are reused; the rest go to the
    /// pool in one request. KV failures only cost a cache miss.
    pub async fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let model = self.cfg.embedding_model.as_str();
        let keys: Vec<String> = texts.iter().map(|t| cache_key(model, t)).collect();
        let lookups = join_all(keys.iter().map(|k| self.kv.get(k)).collect()).await;
        let mut out: Vec<Option<Vec<f32>>> = lookups
            .into_iter()
            .map(|r| match r {
                Ok(Some(bytes)) => decode_vector(&bytes, self.cfg.embedding_dim),
                _ => None,
            })
            .collect();
        let missing: Vec<usize> = (0..texts.len()).filter(|&i| out[i].is_none()).collect();
        if !missing.is_empty() {
            let inputs: Vec<&str> = missing.iter().map(|&i| texts[i]).collect();
            let vectors = self.call_pool(&inputs, self.cfg.embed_timeout_ms).await?;
            let encoded: Vec<Vec<u8>> = vectors.iter().map(|v| encode_vector(v)).collect();
            let ttl = Some(self.cfg.embed_cache_ttl);
            // Best effort: a failed cache write must not fail the embedding.
            join_all(
                missing
                    .iter()
                    .zip(&encoded)
                    .map(|(&i, bytes)| self.kv.put(&keys[i], bytes, ttl))
                    .collect(),
            )
            .await;
            for (&i, v) in missing.iter().zip(vectors) {
                out[i] = Some(v);
            }
        }
        Ok(out.into_iter().map(Option::unwrap_or_default).collect())
    }

    /// Embeds `texts` straight through the pool, without the KV cache, within
    /// `timeout_ms`. For background work: the rows it embeds missed the
    /// cache at ingest already, and on Workers every cache lookup and write
    /// would be one more subrequest of a long-running invocation.
    pub async fn embed_uncached(
        &self,
        texts: &[&str],
        timeout_ms: u64,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.call_pool(texts, timeout_ms).await
    }

    async fn call_pool(
        &self,
        inputs: &[&str],
        timeout_ms: u64,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        let model = self.cfg.embedding_model.as_str();
        let prefixes: Vec<&str> = inputs.iter().map(|t| embeddable_prefix(t)).collect();
        let body = serde_json::to_vec(&EmbeddingsRequest {
            input: &prefixes,
            model,
            truncate: true,
        })
        .map_err(|e| EmbedError::BadAnswer(e.to_string()))?;
        let url = format!("{}/v1/embeddings", self.cfg.embedding_url);
        let reply = self
            .http
            .post_json(&url, body, timeout_ms)
            .await
            .map_err(|e| EmbedError::Unavailable(e.detail))?;
        match reply.status {
            200 => {}
            429 | 500..=599 => {
                return Err(EmbedError::Unavailable(format!("HTTP {}", reply.status)));
            }
            400..=499 => return Err(EmbedError::Refused(reply.status)),
            other => return Err(EmbedError::BadAnswer(format!("HTTP {other}"))),
        }
        let parsed: EmbeddingsResponse = serde_json::from_slice(&reply.body)
            .map_err(|e| EmbedError::BadAnswer(format!("not an embeddings answer: {e}")))?;
        if parsed.model != model {
            return Err(EmbedError::BadAnswer(format!(
                "model {:?}, expected {model:?}",
                parsed.model
            )));
        }
        if parsed.data.len() != inputs.len() {
            return Err(EmbedError::BadAnswer(format!(
                "{} vectors for {} inputs",
                parsed.data.len(),
                inputs.len()
            )));
        }
        let mut vectors: Vec<Option<Vec<f32>>> = vec![None; inputs.len()];
        for (pos, item) in parsed.data.into_iter().enumerate() {
            let i = item.index.unwrap_or(pos);
            if i >= inputs.len() || vectors[i].is_some() {
                return Err(EmbedError::BadAnswer(format!("bad or repeated index {i}")));
            }
            let dim = self.cfg.embedding_dim;
            if item.embedding.len() != dim || !item.embedding.iter().all(|x| x.is_finite()) {
                return Err(EmbedError::BadAnswer(format!(
                    "vector of dimension {} (expected {dim}) or with non-finite values",
                    item.embedding.len()
                )));
            }
            vectors[i] = Some(item.embedding);
        }
        Ok(vectors.into_iter().map(Option::unwrap_or_default).collect())
    }

    /// Checks the pool answers at all (for `/ready`).
    pub async fn ping(&self) -> Result<(), EmbedError> {
        let url = format!("{}/health", self.cfg.embedding_url);
        match self
            .http
            .get(&url, self.cfg.embed_timeout_ms.min(2000))
            .await
        {
            Ok(r) if r.status == 200 => Ok(()),
            Ok(r) => Err(EmbedError::Unavailable(format!("HTTP {}", r.status))),
            Err(e) => Err(EmbedError::Unavailable(e.detail)),
        }
    }
}

/// pgvector's text form: `[0.1,0.2,...]`. f32 `Display` is the shortest
/// string that round-trips, so no precision is lost on the way.
pub fn to_pgvector(v: &[f32]) -> String {
    let mut s = String::with_capacity(v.len() * 12 + 2);
    s.push('[');
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&x.to_string());
    }
    s.push(']');
    s
}

/// Cache encoding: little-endian f32s. Compact and trivially validated.
fn encode_vector(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// None for bytes that are not `dim` finite floats (a corrupt entry, or one
/// a deployment with another model wrote: keys hold the model, so only by
/// corruption).
fn decode_vector(b: &[u8], dim: usize) -> Option<Vec<f32>> {
    if b.len() != dim * 4 {
        return None;
    }
    let v: Vec<f32> = b
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    v.iter().all(|x| x.is_finite()).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_key_separates_model_and_text() {
        assert_ne!(cache_key("ab", "c"), cache_key("a", "bc"));
        assert_eq!(cache_key("m", "t").len(), 4 + 64);
        // sha256("m\0t") from Python's hashlib.sha256(b"m\x00t").hexdigest().
        assert_eq!(
            cache_key("m", "t"),
            "emb:8481c8582a73b3ba64d6506da480d877324f34bae0fb970c71b5d24bc57c06c7"
        );
    }

    #[test]
    fn long_texts_are_cut_at_a_character_boundary() {
        assert_eq!(embeddable_prefix("short"), "short");
        let long = "é".repeat(MAX_EMBED_CHARS + 5);
        let cut = embeddable_prefix(&long);
        assert_eq!(cut.chars().count(), MAX_EMBED_CHARS);
        assert!(long.starts_with(cut));
        let exact = "a".repeat(MAX_EMBED_CHARS);
        assert_eq!(embeddable_prefix(&exact), exact);
    }

    #[test]
    fn vector_round_trips() {
        let v: Vec<f32> = (0..768).map(|i| (i as f32).sin() / 3.0).collect();
        assert_eq!(decode_vector(&encode_vector(&v), 768), Some(v.clone()));
        assert_eq!(decode_vector(&encode_vector(&v), 384), None);
        assert_eq!(decode_vector(&[0u8; 12], 768), None);
        let text = to_pgvector(&v[..3]);
        let parsed: Vec<f32> = serde_json::from_str(&text).expect("valid JSON array");
        assert_eq!(parsed, v[..3]);
    }
}
