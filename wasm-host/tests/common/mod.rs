//! Shared set-up for wasm-host's integration tests: real artifacts (the
//! embed-wasm module and the model), in-process servers on ephemeral ports.
//!
//! Missing artifacts fail the test with instructions instead of skipping it:
//! a silently skipped parity test is worse than none.

#![allow(dead_code, reason = "each test binary uses a different subset")]

pub mod moto;
pub mod spin;

use std::net::SocketAddr;
use std::path::PathBuf;

use serde_json::Value;
use wasm_host::config::{Options, Settings, default_model_dir, default_wasm_path};
use wasm_host::embeddings::Service;

pub fn wasm_path() -> PathBuf {
    std::env::var_os("MEMSHADOW_POOL_WASM")
        .map(PathBuf::from)
        .unwrap_or_else(default_wasm_path)
}

pub fn model_dir() -> PathBuf {
    std::env::var_os("MEMSHADOW_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(default_model_dir)
}

/// Panics with what to run when an artifact is missing.
pub fn require_artifacts() {
    let wasm = wasm_path();
    assert!(
        wasm.is_file(),
        "embed-wasm module not found at {}.\nBuild it with\n  \
         cargo build -p embed-wasm --release --target wasm32-wasip1\n\
         (same CARGO_TARGET_DIR as this test) or set MEMSHADOW_POOL_WASM.",
        wasm.display()
    );
    let model = model_dir();
    for f in ["model-fp32.onnx", "tokenizer.json"] {
        assert!(
            model.join(f).is_file(),
            "model file {} not found.\nFetch the model with scripts/model/prepare.sh \
             or set MEMSHADOW_MODEL_DIR.",
            model.join(f).display()
        );
    }
}

/// Options for a test pool: small and quick, everything else default.
pub fn options() -> Options {
    Options {
        wasm: Some(wasm_path()),
        model_dir: Some(model_dir()),
        listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        pool_size: Some(2),
        ..Options::default()
    }
}

pub struct Server {
    pub addr: SocketAddr,
    pub url: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Starts a real pool in-process and serves it on an ephemeral port.
pub async fn start(opts: Options, trap_text: Option<&str>) -> Server {
    require_artifacts();
    let settings = Settings::resolve(opts).expect("valid test settings");
    let service = Service::start_with_trap_text(&settings, trap_text.map(str::to_owned))
        .await
        .expect("pool starts");
    serve(service).await
}

pub async fn serve(service: Service) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = service
            .serve_on(listener, async {
                let _ = rx.await;
            })
            .await;
    });
    Server {
        addr,
        url: format!("http://{addr}"),
        shutdown: Some(tx),
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(300))
        .build()
        .expect("client")
}

pub async fn post_raw(server: &Server, body: Vec<u8>) -> (u16, reqwest::header::HeaderMap, Value) {
    let resp = client()
        .post(format!("{}/v1/embeddings", server.url))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body");
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("response is not JSON ({e}): {text}"));
    (status, headers, value)
}

pub async fn post(server: &Server, body: Value) -> (u16, Value) {
    let (s, _, v) = post_raw(server, serde_json::to_vec(&body).expect("json")).await;
    (s, v)
}

pub async fn embed(server: &Server, texts: &[&str]) -> Vec<Vec<f32>> {
    let (status, v) = post(server, serde_json::json!({ "input": texts })).await;
    assert_eq!(status, 200, "embedding failed: {v}");
    vectors(&v)
}

pub fn vectors(v: &Value) -> Vec<Vec<f32>> {
    v["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|d| {
            d["embedding"]
                .as_array()
                .expect("embedding")
                .iter()
                .map(|x| x.as_f64().expect("number") as f32)
                .collect()
        })
        .collect()
}

/// `GET path` (with any query) on the test server.
pub async fn get(server: &Server, path: &str) -> reqwest::Response {
    client()
        .get(format!("{}{path}", server.url))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

pub async fn health(server: &Server) -> Value {
    get(server, "/health")
        .await
        .json()
        .await
        .expect("health json")
}

pub async fn metrics(server: &Server) -> String {
    get(server, "/metrics")
        .await
        .text()
        .await
        .expect("metrics body")
}

/// Sum of all samples of `name` whose label set contains every `labels` pair.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            let (metric_name, label_part) = match key.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (key, ""),
            };
            if metric_name != name {
                return None;
            }
            let all = labels
                .iter()
                .all(|(k, v)| label_part.contains(&format!("{k}=\"{v}\"")));
            all.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// Realistic texts from the SciFact corpus (title + abstract).
pub fn scifact_texts(n: usize) -> Vec<String> {
    let path = "/work/shared/data/scifact/corpus.jsonl";
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {path}: {e} (shared evaluation data)"));
    text.lines()
        .take(n)
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("jsonl");
            format!(
                "{} {}",
                v["title"].as_str().unwrap_or(""),
                v["text"].as_str().unwrap_or("")
            )
        })
        .collect()
}
