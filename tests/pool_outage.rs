//! End-to-end: an embedding-pool outage during ingest loses nothing. A second
//! real Worker, on a database of its own, is wired to the real pool through
//! a forwarder the test switches off; ingest answers 200 with the row pending, retrieval
//! falls back to full text, and once the pool is back the local stack's
//! timer (scripts/scheduler.sh, the same script `scripts/stack.sh up`
//! starts, here pointed at the second Worker) embeds every pending row with
//! no manual trigger. Meanwhile the Worker's queue consumer retries its
//! messages (after 1 s here, 30 s by default) until miniflare moves them to
//! the dead-letter queue, whose consumer makes the rows due again: the rows
//! stay `pending`, never `failed`, and each is embedded once the pool is back.

use std::time::Duration;

use memshadow_e2e::database::FreshDatabase;
use memshadow_e2e::proxy::ToggleProxy;
use memshadow_e2e::wrangler::{Scheduler, Worker};
use memshadow_e2e::{Client, DevSigner, embedding_statuses, eventually, pool_url};
use serde_json::{Value, json};
use uuid::Uuid;

fn run_scheduled(worker: &Worker) {
    let reply = Client::anonymous(&worker.url()).get("/__scheduled?cron=*/5+*+*+*+*");
    assert_eq!(reply.status, 200, "scheduled trigger: {}", reply.text);
}

#[test]
fn ingest_during_an_outage_is_embedded_by_the_scheduled_job_after_recovery() {
    let pool = pool_url();
    let proxy = ToggleProxy::start(pool.trim_start_matches("http://"));
    proxy.set_up(false);
    let api_port: u16 = std::env::var("MEMSHADOW_API_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8787);
    // A database of its own: the stack's own scheduled job embeds every
    // user's due rows through the real pool, which would embed ours while
    // "the pool is down" for this Worker.
    let db = FreshDatabase::create(&format!("pool_outage_{}", std::process::id()));
    let worker = Worker::start(
        api_port + 7,
        &[
            ("MEMSHADOW_DEV_DATABASE_URL", &db.app_url()),
            ("MEMSHADOW_EMBEDDING_URL", &proxy.url()),
            ("MEMSHADOW_EMBED_TIMEOUT_MS", "2000"),
            ("MEMSHADOW_EMBED_QUEUE_RETRY_DELAY_SECONDS", "1"),
        ],
    );
    let user = Uuid::new_v4().to_string();
    let client = Client::anonymous(&worker.url()).with_token(&DevSigner::load().token_for(&user));

    // The pool is down: /ready says which dependency, ingest still stores.
    let ready = Client::anonymous(&worker.url()).get("/ready").expect(503);
    assert_eq!(
        ready.json()["error"]["checks"]["embedding"],
        "down",
        "{}",
        ready.text
    );
    assert!(ready.header("retry-after").is_some());

    let reply = client
        .post(
            "/api/v1/memory/ingest",
            &json!({"content": "The spare key hangs behind the garden shed door."}),
        )
        .expect(200);
    let first: Value = reply.json();
    assert_eq!(first["embedding_status"], "pending");
    let batch = client
        .post(
            "/api/v1/memory/batch",
            &json!({"items": [{"content": "Wi-Fi password is written under the router."}]}),
        )
        .expect(200)
        .json();
    assert_eq!(batch["results"][0]["status"], 200);
    let second = batch["results"][0]["memory"].clone();
    assert_eq!(second["embedding_status"], "pending");
    let ids = [
        first["id"].as_str().expect("id").to_string(),
        second["id"].as_str().expect("id").to_string(),
    ];

    // Retrieval degrades to full text instead of failing.
    // The headers say so, and that two memories wait for an embedding.
    let (text_only, reply) = client.retrieve("", &json!({"query": "garden shed key"}));
    assert_eq!(reply.header("x-retrieval-mode").as_deref(), Some("text"));
    assert_eq!(reply.header("x-pending-embeddings").as_deref(), Some("2"));
    assert_eq!(text_only[0]["id"], first["id"]);

    // A scheduled run while the pool is still down keeps the rows pending.
    run_scheduled(&worker);
    for id in &ids {
        assert_eq!(client.embedding_status(id), "pending");
    }

    // An outage charges no attempt: many runs later the rows are still
    // pending, never `failed`.
    for _ in 0..3 {
        run_scheduled(&worker);
    }
    for id in &ids {
        assert_eq!(client.embedding_status(id), "pending");
    }

    // The queue gave up on both messages (max_retries in wrangler.toml):
    // the dead-letter consumer re-drove the rows, which are still pending.
    let redriven = eventually(Duration::from_secs(90), || {
        let n = dead_letters_redriven(&worker.log());
        (n >= ids.len()).then_some(n)
    });
    assert_eq!(
        redriven,
        Some(ids.len()),
        "the dead-letter queue did not re-drive both rows; Worker log:\n{}",
        worker.log()
    );
    for id in &ids {
        assert_eq!(client.embedding_status(id), "pending");
    }

    // The pool comes back; the stack's timer embeds both, untouched by us.
    let _timer = Scheduler::start(&worker.url(), 2);
    proxy.set_up(true);
    let recovered = eventually(Duration::from_secs(90), || {
        ids.iter()
            .all(|id| client.embedding_status(id) == "ready")
            .then_some(())
    });
    assert!(
        recovered.is_some(),
        "pending rows were not embedded by the timer after the pool came back"
    );

    // Semantic search now finds the row with words it does not contain.
    let (hybrid, reply) = client.retrieve(
        "limit=1",
        &json!({"query": "where can I find a house key outdoors?"}),
    );
    assert_eq!(reply.header("x-retrieval-mode").as_deref(), Some("hybrid"));
    assert_eq!(reply.header("x-pending-embeddings").as_deref(), Some("0"));
    assert_eq!(hybrid[0]["id"], first["id"]);

    // Nothing lost, nothing doubled by the retries: two memories, both ready.
    let statuses = embedding_statuses(&client);
    assert_eq!(statuses, [("ready".to_string(), 2)].into(), "{statuses:?}");
}

/// Rows the dead-letter consumer re-drove, summed over its log lines
/// (`… embed dead letters: N re-driven, M to retry`).
fn dead_letters_redriven(log: &str) -> usize {
    log.lines()
        .filter_map(|line| line.split("embed dead letters: ").nth(1))
        .filter_map(|rest| rest.split(' ').next()?.parse::<usize>().ok())
        .sum()
}
