//! Embedding parity with onnxruntime: tests/golden/embeddings.json for
//! all-MiniLM-L6-v2's fp32 and int8 files, embeddings-mpnet.json for
//! all-mpnet-base-v2.
//!
//! Thresholds: fp32 and int8 must each match onnxruntime running the same
//! file to cosine ≥ 0.999 (measured: see README.md). The int8 model against
//! the fp32 reference is a property of the quantisation, not of this code;
//! its floor (0.995) sits just under the 0.9963 minimum measured with
//! onnxruntime itself, so a regression in either shows up.

mod common;

use common::TestModel;
use embed_wasm::{Embedder, Embeddings, ModelFiles};
use serde_json::Value;

const RUNTIME_PARITY_MIN_COS: f32 = 0.999;
const INT8_VS_FP32_MIN_COS: f32 = 0.995;

struct Golden {
    texts: Vec<String>,
    token_counts: Vec<u32>,
    doc: Value,
}

fn golden(model: TestModel) -> Golden {
    let doc = common::golden(model.golden_embeddings);
    let texts: Vec<String> = doc["texts"]
        .as_array()
        .expect("texts")
        .iter()
        .map(|t| t.as_str().expect("text").to_string())
        .collect();
    assert!(texts.len() >= 50, "only {} golden texts", texts.len());
    let token_counts = doc["token_counts"]
        .as_array()
        .expect("token_counts")
        .iter()
        .map(|n| n.as_u64().expect("count") as u32)
        .collect();
    Golden {
        texts,
        token_counts,
        doc,
    }
}

fn reference(golden: &Golden, variant: &str) -> Vec<Vec<f32>> {
    golden.doc["models"][variant]["vectors"]
        .as_array()
        .expect("vectors")
        .iter()
        .map(|v| {
            v.as_array()
                .expect("vector")
                .iter()
                .map(|x| x.as_f64().expect("f") as f32)
                .collect()
        })
        .collect()
}

/// Loads `model-<variant>.onnx`, checking it is the file the golden vectors
/// were made from and the one the manifest pins.
fn load(model: TestModel, golden: &Golden, variant: &str) -> Embedder {
    let file = format!("model-{variant}.onnx");
    let onnx = model.read(&file);
    let sha = common::sha256_hex(&onnx);
    assert_eq!(
        Some(sha.as_str()),
        golden.doc["models"][variant]["sha256"].as_str(),
        "{file} differs from the golden's"
    );
    assert_eq!(
        sha,
        model.manifest_sha256(&file),
        "{file} differs from {}; rerun scripts/model/prepare.sh",
        model.manifest
    );
    assert_eq!(
        golden.doc["truncation"].as_u64(),
        Some(model.max_tokens as u64)
    );
    let tokenizer = model.read("tokenizer.json");
    let files = ModelFiles {
        tokenizer_json: &tokenizer,
        max_tokens: model.max_tokens,
    };
    Embedder::load(&onnx, files).expect("model loads")
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

/// Minimum cosine over texts, asserting shapes and unit norms on the way.
fn min_cosine(got: &Embeddings, want: &[Vec<f32>], texts: &[String]) -> (f32, usize) {
    assert_eq!(got.vectors.len(), want.len());
    let mut worst = (f32::INFINITY, 0);
    for (i, (g, w)) in got.vectors.iter().zip(want).enumerate() {
        assert_eq!(g.len(), w.len(), "text {i}");
        let norm = g.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!(
            (norm - 1.0).abs() < 1e-4,
            "text {i} {:?}: norm {norm}",
            texts[i]
        );
        let c = cosine(g, w);
        if c < worst.0 || c.is_nan() {
            worst = (c, i);
        }
    }
    worst
}

fn check_variant(model: TestModel, variant: &str, floors: &[(&str, f32)]) {
    let golden = golden(model);
    let embedder = load(model, &golden, variant);
    let texts: Vec<&str> = golden.texts.iter().map(String::as_str).collect();
    // All at once: exercises sorting, sub-batching and padding.
    let got = embedder.embed(&texts).expect("embed");
    assert_eq!(
        got.token_counts, golden.token_counts,
        "token counts differ from Python's"
    );
    for (reference_variant, floor) in floors {
        let want = reference(&golden, reference_variant);
        let (min, at) = min_cosine(&got, &want, &golden.texts);
        println!(
            "tract {variant} vs onnxruntime {reference_variant}: min cosine {min:.7} (text {at})"
        );
        assert!(
            min >= *floor,
            "tract {variant} vs onnxruntime {reference_variant}: cosine {min} < {floor} for {:?}",
            golden.texts[at]
        );
    }
}

#[test]
fn fp32_matches_onnxruntime() {
    check_variant(common::MINILM, "fp32", &[("fp32", RUNTIME_PARITY_MIN_COS)]);
}

/// all-mpnet-base-v2's graph (scripts/model/build_mpnet_onnx.py) run by
/// tract against the same file in onnxruntime: 768 dimensions, <s>/</s>,
/// truncation at 384 tokens.
#[test]
fn mpnet_matches_onnxruntime() {
    let golden = golden(common::MPNET);
    assert_eq!(
        golden.doc["models"]["fp32"]["vectors"][0]
            .as_array()
            .map(Vec::len),
        Some(768)
    );
    check_variant(common::MPNET, "fp32", &[("fp32", RUNTIME_PARITY_MIN_COS)]);
}

#[test]
fn int8_matches_onnxruntime_and_stays_near_fp32() {
    check_variant(
        common::MINILM,
        "int8",
        &[
            ("int8", RUNTIME_PARITY_MIN_COS),
            ("fp32", INT8_VS_FP32_MIN_COS),
        ],
    );
}

#[test]
fn batching_does_not_change_vectors() {
    let golden = golden(common::MINILM);
    let embedder = load(common::MINILM, &golden, "fp32");
    let texts = [
        "",
        "hello",
        "The quick brown fox jumps over the lazy dog.",
        golden.texts[36].as_str(),
    ];
    let batch = embedder.embed(&texts).expect("batch");
    for (i, text) in texts.iter().enumerate() {
        let single = embedder.embed(&[text]).expect("single");
        assert_eq!(single.token_counts[0], batch.token_counts[i]);
        let c = cosine(&single.vectors[0], &batch.vectors[i]);
        assert!(c > 0.99999, "{text:?}: batch vs single cosine {c}");
    }
    assert!(embedder.embed(&[]).expect("empty batch").vectors.is_empty());
}

#[test]
fn bad_files_are_errors_not_panics() {
    let tokenizer = common::read_model_file("tokenizer.json");
    let files = |tokenizer_json| ModelFiles {
        tokenizer_json,
        max_tokens: 256,
    };
    assert!(Embedder::load(b"definitely not onnx", files(&tokenizer)).is_err());
    let model = common::read_model_file("model-fp32.onnx");
    assert!(Embedder::load(&model, files(b"{\"model\": {}}")).is_err());
    // A truncated file must fail to parse rather than load a partial graph.
    assert!(Embedder::load(&model[..model.len() / 2], files(&tokenizer)).is_err());
}
