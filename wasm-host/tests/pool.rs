//! Integration tests of the embeddings pool with the real embed-wasm module
//! and model: API contract, bad input, trap isolation, parity with the
//! onnxruntime golden vectors, micro-batching, queue limits, fallback routing
//! and circuit breaking.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use wasm_host::config::{Options, Settings};
use wasm_host::embeddings::Service;

const MODEL: &str = "all-MiniLM-L6-v2";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_contract() {
    let server = start(options(), None).await;
    let (status, v) = post(
        &server,
        json!({"input": "The cat sat on the mat.", "model": MODEL}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["object"], "list");
    assert_eq!(v["model"], MODEL);
    assert_eq!(v["data"][0]["object"], "embedding");
    assert_eq!(v["data"][0]["index"], 0);
    let vec = &vectors(&v)[0];
    assert_eq!(vec.len(), 384);
    let norm: f64 = vec.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    assert!(
        (norm - 1.0).abs() < 1e-3,
        "vectors are L2-normalised, norm {norm}"
    );
    let tokens = v["usage"]["prompt_tokens"].as_u64().expect("prompt_tokens");
    assert!((8..=12).contains(&tokens), "token count {tokens}");
    assert_eq!(v["usage"]["total_tokens"], tokens);

    // Arrays keep their order; similar texts are closer than unrelated ones.
    let (status, v) = post(
        &server,
        json!({"input": ["A cat is sleeping.", "A kitten naps.", "Quarterly tax returns are due."]}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    for (i, d) in v["data"].as_array().expect("data").iter().enumerate() {
        assert_eq!(d["index"], i);
    }
    let vs = vectors(&v);
    assert!(cosine(&vs[0], &vs[1]) > cosine(&vs[0], &vs[2]) + 0.2);

    let health: Value = health(&server).await;
    assert_eq!(health["status"], "ok");
    assert_eq!(health["model"], MODEL);
    assert_eq!(health["dim"], 384);
    assert_eq!(health["instances"], 2);

    let m = metrics(&server).await;
    for name in [
        "memshadow_pool_queue_depth",
        "memshadow_pool_instances",
        "memshadow_pool_batch_size_bucket",
        "memshadow_pool_request_duration_seconds_bucket",
        "memshadow_pool_batch_duration_seconds_bucket",
        "memshadow_pool_fallback_unavailable_total",
    ] {
        assert!(m.contains(name), "metrics lack {name}:\n{m}");
    }
    assert_eq!(metric(&m, "memshadow_pool_instances", &[]), 2.0);
    assert_eq!(metric(&m, "memshadow_pool_texts_total", &[]), 4.0);
    assert_eq!(
        metric(
            &m,
            "memshadow_pool_responses_total",
            &[("status", "200"), ("code", "ok")]
        ),
        2.0
    );

    let resp = client()
        .get(format!("{}/nope", server.url))
        .send()
        .await
        .expect("404");
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.expect("json 404");
    assert_eq!(body["error"]["code"], "not_found");
    let resp = client()
        .get(format!("{}/v1/embeddings", server.url))
        .send()
        .await
        .expect("405");
    assert_eq!(resp.status(), 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_bad_input() {
    let server = start(
        Options {
            max_inputs: Some(4),
            max_chars: Some(50),
            max_body_bytes: Some(4096),
            ..options()
        },
        None,
    )
    .await;
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (b"{\"input\": ".to_vec(), 400, "invalid_json"),
        (b"not json".to_vec(), 400, "invalid_json"),
        (b"{\"input\": \"caf\xe9\"}".to_vec(), 400, "invalid_utf8"),
        (br#"{"input": 42}"#.to_vec(), 422, "invalid_input"),
        (
            br#"{"input": ["ok", {"a": 1}]}"#.to_vec(),
            422,
            "invalid_input",
        ),
        (br#"{"input": [[101, 102]]}"#.to_vec(), 422, "invalid_input"),
        (br#"{"text": "hi"}"#.to_vec(), 422, "invalid_input"),
        (br#"["hi"]"#.to_vec(), 422, "invalid_input"),
        (
            br#"{"input": "hi", "model": 3}"#.to_vec(),
            422,
            "invalid_input",
        ),
        (br#"{"input": []}"#.to_vec(), 422, "empty_input"),
        (br#"{"input": ""}"#.to_vec(), 422, "empty_input"),
        (
            br#"{"input": ["a","b","c","d","e"]}"#.to_vec(),
            413,
            "too_many_inputs",
        ),
        (
            serde_json::to_vec(&json!({"input": "x".repeat(51)})).expect("json"),
            413,
            "text_too_long",
        ),
        (
            serde_json::to_vec(&json!({"input": "word ".repeat(1000)})).expect("json"),
            413,
            "body_too_large",
        ),
        (
            br#"{"input": "hi", "model": "text-embedding-3-small"}"#.to_vec(),
            404,
            "unsupported_model",
        ),
    ];
    for (body, status, code) in cases {
        let shown = String::from_utf8_lossy(&body)
            .chars()
            .take(60)
            .collect::<String>();
        let (s, _, v) = post_raw(&server, body).await;
        assert_eq!(s, status, "{shown}: {v}");
        assert_eq!(v["error"]["code"], code, "{shown}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        assert_eq!(v["error"]["type"], "invalid_request");
    }
    // At the limits exactly, requests pass.
    let (s, v) = post(&server, json!({"input": ["a", "b", "c", "x".repeat(50)]})).await;
    assert_eq!(s, 200, "{v}");
    let m = metrics(&server).await;
    assert_eq!(
        metric(
            &m,
            "memshadow_pool_responses_total",
            &[("code", "invalid_input")]
        ),
        6.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_full_answers_503_with_retry_after() {
    let server = start(
        Options {
            pool_size: Some(1),
            max_batch: Some(1),
            max_wait_ms: Some(0),
            queue_capacity: Some(4),
            max_inputs: Some(4),
            ..options()
        },
        None,
    )
    .await;
    let texts = scifact_texts(8);
    let mut tasks = Vec::new();
    for i in 0..6 {
        let body = json!({"input": texts[i..i + 3].to_vec()});
        let url = server.url.clone();
        tasks.push(tokio::spawn(async move {
            let resp = client()
                .post(format!("{url}/v1/embeddings"))
                .json(&body)
                .send()
                .await
                .expect("request");
            let status = resp.status().as_u16();
            let retry = resp.headers().get("retry-after").cloned();
            let v: Value = resp.json().await.expect("json");
            (status, retry, v)
        }));
    }
    let mut ok = 0;
    let mut full = 0;
    for t in tasks {
        let (status, retry, v) = t.await.expect("task");
        match status {
            200 => ok += 1,
            503 => {
                full += 1;
                assert_eq!(v["error"]["code"], "queue_full");
                assert_eq!(retry.expect("Retry-After").to_str().expect("ascii"), "1");
            }
            other => panic!("unexpected {other}: {v}"),
        }
    }
    assert!(ok >= 1, "the first request is admitted");
    assert!(full >= 1, "3-text requests beyond a 4-text queue get 503");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_fails_only_its_own_call() {
    const TRAP: &str = "__memshadow_test_trap__";
    let server = start(
        Options {
            pool_size: Some(1),
            max_batch: Some(8),
            // Long enough that the concurrent requests share one batch, so
            // the trap really hits a call that carried good texts too.
            max_wait_ms: Some(300),
            ..options()
        },
        Some(TRAP),
    )
    .await;
    let reference = embed(&server, &["first good text"]).await;

    let mut tasks = Vec::new();
    for text in ["first good text", TRAP, "second good text"] {
        let url = server.url.clone();
        tasks.push(tokio::spawn(async move {
            let resp = client()
                .post(format!("{url}/v1/embeddings"))
                .json(&json!({"input": text}))
                .send()
                .await
                .expect("request");
            (
                resp.status().as_u16(),
                resp.json::<Value>().await.expect("json"),
            )
        }));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let results: Vec<(u16, Value)> = futures_join(tasks).await;
    assert_eq!(results[0].0, 200, "{}", results[0].1);
    assert!(cosine(&vectors(&results[0].1)[0], &reference[0]) > 0.9999);
    assert_eq!(results[1].0, 500, "{}", results[1].1);
    assert_eq!(results[1].1["error"]["code"], "inference_failed");
    assert_eq!(results[1].1["error"]["type"], "server_error");
    assert_eq!(results[2].0, 200, "{}", results[2].1);

    let m = metrics(&server).await;
    // The shared batch trapped once, then the trap text alone trapped again.
    assert_eq!(
        metric(&m, "memshadow_pool_traps_total", &[("kind", "deadline")]),
        2.0
    );
    assert!(
        metric(&m, "memshadow_pool_batch_size_bucket", &[("le", "1")])
            < metric(&m, "memshadow_pool_batch_size_count", &[]),
        "the three requests shared a batch:\n{m}"
    );
    // The pool is healthy afterwards.
    let after = embed(&server, &["first good text"]).await;
    assert!(cosine(&after[0], &reference[0]) > 0.9999);
}

async fn futures_join<T: Send + 'static>(tasks: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("task"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parity_with_onnxruntime_golden_vectors() {
    let golden_path =
        wasm_host::config::crate_dir().join("../embed-wasm/tests/golden/embeddings.json");
    let golden: Value =
        serde_json::from_str(&std::fs::read_to_string(&golden_path).unwrap_or_else(|e| {
            panic!(
                "golden file {} missing ({e}); it comes from scripts/model/golden_embeddings.py",
                golden_path.display()
            )
        }))
        .expect("golden json");
    let texts: Vec<String> = golden["texts"]
        .as_array()
        .expect("texts")
        .iter()
        .map(|t| t.as_str().expect("text").to_owned())
        .collect();
    let expected = golden["models"]["fp32"]["vectors"]
        .as_array()
        .expect("fp32 vectors");
    assert_eq!(texts.len(), expected.len());
    assert!(texts.len() >= 50, "golden set too small: {}", texts.len());

    let settings = Settings::resolve(options()).expect("settings");
    require_artifacts();
    let service = Service::start(&settings).await.expect("pool starts");
    // Directly through the pool (covers the empty text, which the API refuses)…
    let pool = service.state.default.pool.clone();
    let all = texts.clone();
    let direct = tokio::task::spawn_blocking(move || pool.call(&all, None))
        .await
        .expect("join")
        .expect("pool call");
    // …and over HTTP in batches, as clients see it.
    let server = serve(service).await;
    let mut over_http = Vec::new();
    let non_empty: Vec<(usize, &String)> = texts
        .iter()
        .enumerate()
        .filter(|(_, t)| !t.is_empty())
        .collect();
    for chunk in non_empty.chunks(8) {
        let input: Vec<&str> = chunk.iter().map(|(_, t)| t.as_str()).collect();
        let vs = embed(&server, &input).await;
        over_http.extend(chunk.iter().map(|(i, _)| *i).zip(vs));
    }
    let want = |i: usize| -> Vec<f32> {
        expected[i]
            .as_array()
            .expect("vector")
            .iter()
            .map(|x| x.as_f64().expect("f") as f32)
            .collect()
    };
    let mut worst = 1.0f64;
    for (i, v) in direct.vectors.iter().enumerate() {
        let c = cosine(v, &want(i));
        worst = worst.min(c);
        assert!(c >= 0.999, "text {i} {:?}: cosine {c}", texts[i]);
    }
    for (i, v) in &over_http {
        let c = cosine(v, &want(*i));
        assert!(c >= 0.999, "text {i} over HTTP: cosine {c}");
    }
    let golden_tokens = golden["token_counts"].as_array().expect("token_counts");
    for (i, t) in direct.token_counts.iter().enumerate() {
        assert_eq!(
            *t as u64,
            golden_tokens[i].as_u64().expect("n"),
            "tokens of text {i}"
        );
    }
    eprintln!("parity: {} texts, worst cosine {worst:.7}", texts.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_micro_batches() {
    let server = start(
        Options {
            pool_size: Some(1),
            max_batch: Some(16),
            max_wait_ms: Some(200),
            ..options()
        },
        None,
    )
    .await;
    let texts = scifact_texts(12);
    let mut tasks = Vec::new();
    for t in &texts {
        let url = server.url.clone();
        let t: String = t.chars().take(200).collect();
        tasks.push(tokio::spawn(async move {
            let resp = client()
                .post(format!("{url}/v1/embeddings"))
                .json(&json!({"input": t}))
                .send()
                .await
                .expect("request");
            resp.status().as_u16()
        }));
    }
    for status in futures_join(tasks).await {
        assert_eq!(status, 200);
    }
    let m = metrics(&server).await;
    let batches = metric(&m, "memshadow_pool_batch_size_count", &[]);
    let texts_batched = metric(&m, "memshadow_pool_batch_size_sum", &[]);
    assert_eq!(texts_batched, 12.0, "{m}");
    assert!(
        batches < 12.0,
        "12 concurrent requests ran in {batches} batches:\n{m}"
    );
    assert!(
        metric(&m, "memshadow_pool_batch_size_bucket", &[("le", "1")]) < batches,
        "some batch held more than one text"
    );
}

/// Options for a pool that overflows to `fallbacks` as soon as it has seen
/// one local batch (any expected wait exceeds a 1 ms budget).
fn overflowing(fallbacks: Vec<String>, breaker_failures: u32) -> Options {
    Options {
        pool_size: Some(1),
        fallbacks: Some(fallbacks),
        fallback_budget_ms: Some(1),
        fallback_timeout_ms: Some(5_000),
        breaker_failures: Some(breaker_failures),
        breaker_cooldown_ms: Some(600_000),
        health_interval_ms: Some(3_600_000),
        ..options()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overflow_goes_to_a_healthy_fallback_node() {
    let node = start(
        Options {
            pool_size: Some(1),
            ..options()
        },
        None,
    )
    .await;
    let server = start(overflowing(vec![node.url.clone()], 3), None).await;
    // The first batch runs locally: no latency estimate yet.
    let local = embed(&server, &["memories of the lake house"]).await;
    let m = metrics(&server).await;
    assert_eq!(
        metric(&m, "memshadow_pool_fallback_batches_total", &[]),
        0.0
    );

    let routed = embed(&server, &["memories of the lake house", "a second text"]).await;
    let m = metrics(&server).await;
    assert_eq!(
        metric(
            &m,
            "memshadow_pool_fallback_batches_total",
            &[("node", &node.url)]
        ),
        1.0,
        "{m}"
    );
    let node_m = metrics(&node).await;
    assert_eq!(
        metric(&node_m, "memshadow_pool_texts_total", &[]),
        2.0,
        "the node embedded them"
    );
    assert!(
        cosine(&routed[0], &local[0]) > 0.9999,
        "same model, same vector"
    );
    assert_eq!(routed.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_opens_when_the_fallback_is_down() {
    // Bind then drop a listener: a port that refuses connections.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", l.local_addr().expect("addr"))
    };
    let server = start(overflowing(vec![dead.clone()], 2), None).await;
    let local = embed(&server, &["warm-up text"]).await;
    for _ in 0..3 {
        let v = embed(&server, &["warm-up text"]).await;
        assert!(cosine(&v[0], &local[0]) > 0.9999, "served locally");
    }
    let m = metrics(&server).await;
    let failures = metric(
        &m,
        "memshadow_pool_fallback_failures_total",
        &[("node", &dead), ("reason", "connect")],
    );
    // Start-up health check + first overflow = 2 failures = open; later
    // batches must not try the node again during the cool-down.
    assert_eq!(failures, 2.0, "{m}");
    assert_eq!(
        metric(
            &m,
            "memshadow_pool_fallback_breaker_state",
            &[("node", &dead)]
        ),
        1.0
    );
    assert!(
        metric(&m, "memshadow_pool_fallback_unavailable_total", &[]) >= 2.0,
        "{m}"
    );
    let health: Value = health(&server).await;
    assert_eq!(health["fallbacks"][0]["breaker"], "open");
}

/// A node that answers with another model's id: must never be trusted.
async fn wrong_model_node(hits: Arc<AtomicUsize>) -> String {
    use axum::routing::{get, post};
    let app = axum::Router::new()
        .route(
            "/health",
            get(|| async { axum::Json(json!({"status": "ok", "model": "other-model", "dim": 384})) }),
        )
        .route(
            "/v1/embeddings",
            post(move |axum::Json(body): axum::Json<Value>| {
                let hits = hits.clone();
                async move {
                    hits.fetch_add(1, Ordering::SeqCst);
                    let n = body["input"].as_array().map_or(1, Vec::len);
                    let data: Vec<Value> = (0..n)
                        .map(|i| json!({"object": "embedding", "index": i, "embedding": vec![0.05f32; 384]}))
                        .collect();
                    axum::Json(json!({"object": "list", "model": "other-model", "data": data,
                        "usage": {"prompt_tokens": 1, "total_tokens": 1}}))
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_the_wrong_model_is_a_failure_and_local_answers() {
    let hits = Arc::new(AtomicUsize::new(0));
    let stub = wrong_model_node(hits.clone()).await;
    let server = start(overflowing(vec![stub.clone()], 5), None).await;
    let local = embed(&server, &["what did I say about the budget?"]).await;
    let (status, v) = post(
        &server,
        json!({"input": ["what did I say about the budget?"]}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["model"], MODEL, "the answer is ours, not the stub's");
    assert!(
        cosine(&vectors(&v)[0], &local[0]) > 0.9999,
        "the stub's vectors were discarded"
    );
    assert!(hits.load(Ordering::SeqCst) >= 1, "the stub was asked");
    let m = metrics(&server).await;
    assert!(
        metric(
            &m,
            "memshadow_pool_fallback_failures_total",
            &[("node", &stub), ("reason", "model_mismatch")]
        ) >= 2.0,
        "health check and answer both count:\n{m}"
    );
    assert_eq!(
        metric(&m, "memshadow_pool_fallback_batches_total", &[]),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_model_stops_start_up() {
    require_artifacts();
    let dir = std::env::temp_dir().join(format!("wasm-host-tampered-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    // The int8 file under the fp32 name: right size class, wrong bytes.
    std::fs::copy(
        model_dir().join("model-int8.onnx"),
        dir.join("model-fp32.onnx"),
    )
    .expect("copy");
    std::fs::copy(
        model_dir().join("tokenizer.json"),
        dir.join("tokenizer.json"),
    )
    .expect("copy");
    let settings = Settings::resolve(Options {
        model_dir: Some(dir.clone()),
        cache_dir: Some(dir.join("cache")),
        ..options()
    })
    .expect("settings");
    let err = match Service::start(&settings).await {
        Ok(_) => panic!("a model that does not match the manifest must not start"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("model_mismatch"), "{err}");
    assert!(
        err.contains("model-fp32.onnx") || err.contains("model.onnx"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_id_configured_twice_is_refused_from_the_manifests() {
    require_artifacts();
    let default = Settings::resolve(options()).expect("settings");
    // The repeated model's folder does not exist: the refusal must come from
    // the manifests alone, before any model is verified or snapshotted.
    let missing = std::env::temp_dir().join(format!("wasm-host-no-model-{}", std::process::id()));
    let settings = Settings::resolve(Options {
        extra_models: Some(vec![format!(
            "{}={}",
            default.manifest.display(),
            missing.display()
        )]),
        ..options()
    })
    .expect("settings");
    let err = match Service::start(&settings).await {
        Ok(_) => panic!("two models with one id must not start"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("is configured twice"), "{err}");
}

#[test]
fn the_binary_rejects_bad_configuration_before_binding() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wasm-host"))
        .args(["--listen", &format!("127.0.0.1:{port}"), "--pool-size", "0"])
        .output()
        .expect("run wasm-host");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("pool_size must be greater than 0"),
        "{stderr}"
    );

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wasm-host"))
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--fallback",
            "gopher://x",
        ])
        .output()
        .expect("run wasm-host");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("http or https"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_large_request_is_spread_over_every_instance() {
    let server = start(
        Options {
            pool_size: Some(2),
            max_batch: Some(32),
            ..options()
        },
        None,
    )
    .await;
    let texts: Vec<String> = (0..32).map(|i| format!("memory number {i}")).collect();
    let input: Vec<&str> = texts.iter().map(String::as_str).collect();
    let vs = embed(&server, &input).await;
    assert_eq!(vs.len(), 32);
    let m = metrics(&server).await;
    // Two batches of 16 (one per instance), not one batch of 32.
    assert_eq!(
        metric(&m, "memshadow_pool_batch_size_count", &[]),
        2.0,
        "{m}"
    );
    assert_eq!(
        metric(&m, "memshadow_pool_batch_size_sum", &[]),
        32.0,
        "{m}"
    );
    assert_eq!(
        metric(&m, "memshadow_pool_batch_size_bucket", &[("le", "16")]),
        2.0,
        "{m}"
    );
    // Spreading keeps the order of the answers.
    let alone = embed(&server, &[texts[20].as_str()]).await;
    assert!(cosine(&alone[0], &vs[20]) > 0.9999);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncate_embeds_the_beginning_of_an_over_long_text() {
    let server = start(
        Options {
            max_chars: Some(8192),
            ..options()
        },
        None,
    )
    .await;
    // 10,000+ characters: refused without `truncate`, embedded with it.
    let long = "The lighthouse keeper logged every passing ship in a blue notebook. ".repeat(150);
    assert!(long.chars().count() > 10_000);
    let (s, v) = post(&server, json!({"input": [long.clone()]})).await;
    assert_eq!(s, 413, "{v}");
    assert_eq!(v["error"]["code"], "text_too_long");
    let (s, v) = post(
        &server,
        json!({"input": [long.clone(), "a short one"], "truncate": true}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let vs = vectors(&v);
    assert_eq!(vs.len(), 2);
    // The model reads its first 256 tokens, all within the kept prefix, so
    // the vector equals that of the first 8,192 characters.
    let prefix: String = long.chars().take(8192).collect();
    let reference = embed(&server, &[prefix.as_str()]).await;
    assert!(cosine(&vs[0], &reference[0]) > 0.9999);
    assert_eq!(
        v["usage"]["prompt_tokens"].as_u64().map(|t| t >= 256),
        Some(true)
    );
}

/// One pool serves MiniLM by default and all-mpnet-base-v2 by id: each
/// answers with its own dimension and matches its own onnxruntime goldens
/// (mpnet's through the HTTP API), /health lists both, /metrics counts
/// each model apart, and an unknown model is refused with its code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_a_second_model_by_id() {
    const MPNET: &str = "all-mpnet-base-v2";
    let manifest = wasm_host::config::crate_dir().join("../embed-wasm/model-manifest-mpnet.json");
    let mpnet_dir = model_dir().join(MPNET);
    assert!(
        mpnet_dir.join("model-fp32.onnx").is_file(),
        "{} is missing: scripts/setup.sh prepares it (scripts/model/prepare_mpnet.sh)",
        mpnet_dir.display()
    );
    let server = start(
        Options {
            extra_models: Some(vec![manifest.display().to_string()]),
            ..options()
        },
        None,
    )
    .await;

    let golden: Value = serde_json::from_str(
        &std::fs::read_to_string(
            wasm_host::config::crate_dir().join("../embed-wasm/tests/golden/embeddings-mpnet.json"),
        )
        .expect("mpnet goldens"),
    )
    .expect("golden json");
    let cases: Vec<(usize, String)> = golden["texts"]
        .as_array()
        .expect("texts")
        .iter()
        .enumerate()
        .filter_map(|(i, t)| Some((i, t.as_str()?.to_owned())))
        .filter(|(_, t)| !t.is_empty())
        .take(12)
        .collect();
    let input: Vec<&str> = cases.iter().map(|(_, t)| t.as_str()).collect();
    let (status, v) = post(&server, json!({"input": input, "model": MPNET})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["model"], MPNET);
    for ((i, text), got) in cases.iter().zip(vectors(&v)) {
        assert_eq!(got.len(), 768, "mpnet vectors have 768 dimensions");
        let want: Vec<f32> = golden["models"]["fp32"]["vectors"][*i]
            .as_array()
            .expect("vector")
            .iter()
            .map(|x| x.as_f64().expect("f") as f32)
            .collect();
        let c = cosine(&got, &want);
        assert!(c >= 0.999, "mpnet text {i} {text:?}: cosine {c}");
    }

    // The default model is unchanged, and refuses the other's dimensions.
    let (status, v) = post(&server, json!({"input": "a cat"})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["model"], MODEL);
    assert_eq!(vectors(&v)[0].len(), 384);
    let (status, v) = post(&server, json!({"input": "a cat", "dimensions": 768})).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (422, Some("invalid_input"))
    );
    let (status, v) = post(&server, json!({"input": "a cat", "model": "bge-small"})).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (404, Some("unsupported_model")),
        "{v}"
    );

    let health: Value = health(&server).await;
    assert_eq!(health["model"], MODEL, "the default stays at the top level");
    let served: Vec<(String, u64)> = health["models"]
        .as_array()
        .expect("models")
        .iter()
        .map(|m| {
            (
                m["model"].as_str().expect("id").to_owned(),
                m["dim"].as_u64().expect("dim"),
            )
        })
        .collect();
    assert_eq!(served, vec![(MODEL.into(), 384), (MPNET.into(), 768)]);
    // mpnet's manifest caps its calls below the pool's max_batch (32).
    assert_eq!(health["models"][0]["max_batch"], 32);
    assert_eq!(health["models"][1]["max_batch"], 4);

    let texts_of = |m: &str| metric(m, "memshadow_pool_texts_total", &[]);
    assert_eq!(
        texts_of(&metrics(&server).await),
        1.0,
        "the default's one text"
    );
    let resp = get(&server, &format!("/metrics?model={MPNET}")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        texts_of(&resp.text().await.expect("text")),
        cases.len() as f64
    );
    let resp = get(&server, "/metrics?model=nope").await;
    assert_eq!(resp.status(), 404);
}
