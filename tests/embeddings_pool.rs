//! End-to-end checks of the embedding pool the stack runs (wasm-host serving
//! embed-wasm with the real model), over its OpenAI-compatible HTTP API.

use memshadow_e2e::{Client, pool_url};
use serde_json::{Value, json};

fn embed(texts: &[&str]) -> Vec<Vec<f64>> {
    let reply = Client::anonymous(&pool_url())
        .post(
            "/v1/embeddings",
            &json!({ "input": texts, "model": "all-MiniLM-L6-v2" }),
        )
        .expect(200);
    let body = reply.json();
    let data = body["data"].as_array().expect("data is a list");
    assert_eq!(data.len(), texts.len());
    data.iter()
        .enumerate()
        .map(|(i, item)| {
            assert_eq!(item["index"], json!(i), "results come back in input order");
            item["embedding"]
                .as_array()
                .expect("embedding is a list")
                .iter()
                .map(|x| x.as_f64().expect("embedding values are numbers"))
                .collect()
        })
        .collect()
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn embeddings_are_normalised_384_dimensional_and_semantic() {
    let vectors = embed(&[
        "A cat is sleeping on the mat.",
        "A kitten naps on a rug.",
        "The quarterly tax return is due in April.",
    ]);
    for v in &vectors {
        assert_eq!(v.len(), 384);
        let norm = cosine(v, v).sqrt();
        assert!((norm - 1.0).abs() < 1e-3, "vector norm {norm} is not 1");
    }
    let related = cosine(&vectors[0], &vectors[1]);
    let unrelated = cosine(&vectors[0], &vectors[2]);
    assert!(
        related > unrelated + 0.3,
        "paraphrases ({related:.3}) should be far closer than unrelated texts ({unrelated:.3})"
    );
}

#[test]
fn the_same_text_embeds_identically_alone_and_in_a_batch() {
    let alone = embed(&["memory is the residue of thought"]);
    let batched = embed(&[
        "short",
        "memory is the residue of thought",
        "a much longer text than the others in this batch, to force padding",
    ]);
    let similarity = cosine(&alone[0], &batched[1]);
    assert!(
        similarity > 0.9999,
        "padding changed the embedding: cosine {similarity}"
    );
}

#[test]
fn bad_requests_get_precise_errors() {
    let pool = Client::anonymous(&pool_url());
    let malformed = pool
        .post_raw("/v1/embeddings", b"{\"input\": [".to_vec())
        .expect(400);
    assert!(!malformed.error_code().is_empty());
    let empty = pool.post("/v1/embeddings", &json!({ "input": [] }));
    assert!(
        matches!(empty.status, 400 | 422),
        "empty input answered {}",
        empty.status
    );
    let wrong_type = pool.post("/v1/embeddings", &json!({ "input": 42 }));
    assert!(
        matches!(wrong_type.status, 400 | 422),
        "numeric input answered {}",
        wrong_type.status
    );
}

#[test]
fn health_and_metrics_describe_the_pool() {
    let pool = Client::anonymous(&pool_url());
    let health: Value = pool.get("/health").expect(200).json();
    assert_eq!(health["dim"], json!(384), "health: {health}");
    let metrics = pool.get("/metrics").expect(200).text;
    assert!(
        metrics.contains("# TYPE"),
        "metrics are Prometheus text:\n{metrics}"
    );
}
