//! Integration tests of the scheduled job and the queue consumer against the
//! real Postgres (with an in-process fake pool): pending → ready, a per-call
//! budget that fits the batch, outages that charge no attempt, refused
//! batches split, refusals backing off → failed → revived, draining far more
//! than one batch per run, purge of expired rows, re-embedding only while a
//! model change is in progress, and the queue's producer and consumers.
//! Run with `--features native`.
//!
//! The job works across all users, so tests assert on their own rows only,
//! and run one at a time (a shared lock) because they move the clock.
#![cfg(feature = "native")]

mod common;

use common::{EmbedMode, Harness, random_uuid};
use edge_api::app::{run_embed_dead_letters, run_embed_queue, run_scheduled};
use edge_api::ports::{Sql, SqlScope};
use edge_api::repositories::embedding_jobs::EmbeddingJobs;
use edge_api::services::embed_pipeline::call_budget_ms;
use serde_json::{Value, json};
use tokio::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::const_new(());

async fn status(h: &Harness, u: uuid::Uuid, id: &str) -> (String, i64) {
    let rows = h
        .sql
        .query(
            &SqlScope::User(u.to_string()),
            "SELECT embedding_status, embed_attempts::text FROM memories WHERE id = $1::uuid",
            &[Some(id.to_string())],
        )
        .await
        .expect("query");
    let r = &rows[0];
    (
        r[0].clone().expect("status"),
        r[1].as_deref().expect("attempts").parse().expect("int"),
    )
}

/// Stores `contents` as `u`'s memories (batches of 100) while the pool is
/// down, so every row is pending and due; the pool is up again after.
async fn store_pending(h: &Harness, u: uuid::Uuid, contents: impl Iterator<Item = String>) {
    h.embedder.mode.set(EmbedMode::Down);
    let items: Vec<Value> = contents.map(|c| json!({"content": c})).collect();
    for chunk in items.chunks(100) {
        let (s, r) = h
            .call(
                "POST",
                "/api/v1/memory/batch",
                Some(u),
                Some(json!({"items": chunk})),
            )
            .await;
        assert_eq!(s, 200, "{r}");
    }
    h.embedder.mode.set(EmbedMode::Up);
}

#[tokio::test]
async fn pending_rows_become_ready() {
    let _g = SERIAL.lock().await;
    let h = Harness::new().await;
    let u = random_uuid();
    h.embedder.mode.set(EmbedMode::Down);
    let (s, m) = h
        .ingest(
            u,
            json!({"content": "written during an outage of the pool"}),
        )
        .await;
    assert_eq!((s, m["embedding_status"].as_str()), (200, Some("pending")));
    let id = m["id"].as_str().expect("id").to_string();

    h.embedder.mode.set(EmbedMode::Up);
    let report = run_scheduled(&h.platform(), &h.cfg, "*/1 * * * *").await;
    assert!(report.errors.is_empty(), "{report:?}");
    assert!(report.embedded >= 1, "{report:?}");
    let (_, got) = h
        .call("GET", &format!("/api/v1/memory/{id}"), Some(u), None)
        .await;
    assert_eq!(got["embedding_status"], "ready");
    assert_eq!(got["embedding_model"], common::MODEL);
    // Now the vector branch finds it too.
    let r = h
        .retrieve(u, "", json!({"query": "outage of the pool"}))
        .await;
    assert_eq!(r.body[0]["id"], json!(id));
    assert_eq!(r.body[0]["vector_rank"], 1);
    assert_eq!(r.pending, Some(0));
    let json_report: Value = serde_json::to_value(&report).expect("serialize");
    assert_eq!(json_report["cron"], "*/1 * * * *");
    h.cleanup(u).await;
}

#[tokio::test]
async fn refusals_back_off_then_fail_then_revive() {
    let _g = SERIAL.lock().await;
    let mut h = Harness::new().await;
    h.cfg.embed_max_attempts = 3;
    let u = random_uuid();
    h.embedder.mode.set(EmbedMode::Down);
    let (_, m) = h.ingest(u, json!({"content": "refused by the pool"})).await;
    let id = m["id"].as_str().expect("id").to_string();
    // The pool refuses this text (4xx): each refusal charges an attempt.
    h.embedder.mode.set(EmbedMode::RefuseLonger(5));

    let r = run_scheduled(&h.platform(), &h.cfg, "t").await;
    assert!(r.retry_scheduled >= 1, "{r:?}");
    assert_eq!(status(&h, u, &id).await, ("pending".into(), 1));
    // Backing off: a run right away does not touch it again.
    run_scheduled(&h.platform(), &h.cfg, "t").await;
    assert_eq!(status(&h, u, &id).await, ("pending".into(), 1));
    // After the first backoff (30 s) it is retried...
    h.advance(31_000);
    run_scheduled(&h.platform(), &h.cfg, "t").await;
    assert_eq!(status(&h, u, &id).await, ("pending".into(), 2));
    // ...the second waits longer (60 s): 31 s is not enough.
    h.advance(31_000);
    run_scheduled(&h.platform(), &h.cfg, "t").await;
    assert_eq!(status(&h, u, &id).await, ("pending".into(), 2));
    h.advance(31_000);
    let r = run_scheduled(&h.platform(), &h.cfg, "t").await;
    assert!(r.failed >= 1, "{r:?}");
    assert_eq!(status(&h, u, &id).await, ("failed".into(), 3));
    // Failed rows wait (an hour later they are still failed)...
    h.embedder.mode.set(EmbedMode::Up);
    h.advance(3_600_000);
    run_scheduled(&h.platform(), &h.cfg, "t").await;
    assert_eq!(status(&h, u, &id).await.0, "failed");
    // ...and are revived on a schedule (a day), then embedded.
    h.advance(24 * 3_600_000);
    let r = run_scheduled(&h.platform(), &h.cfg, "t").await;
    assert!(r.revived >= 1, "{r:?}");
    assert_eq!(status(&h, u, &id).await.0, "ready");
    h.cleanup(u).await;
}

#[tokio::test]
async fn a_content_edit_queues_a_failed_row_again() {
    let _g = SERIAL.lock().await;
    let mut h = Harness::new().await;
    h.cfg.embed_max_attempts = 1;
    let u = random_uuid();
    h.embedder.mode.set(EmbedMode::Down);
    let (_, m) = h.ingest(u, json!({"content": "never embeddable"})).await;
    let id = m["id"].as_str().expect("id").to_string();
    h.embedder.mode.set(EmbedMode::Status(400));
    run_scheduled(&h.platform(), &h.cfg, "t").await;
    assert_eq!(status(&h, u, &id).await, ("failed".into(), 1));
    h.embedder.mode.set(EmbedMode::Up);
    let (s, p) = h
        .call(
            "PATCH",
            &format!("/api/v1/memory/{id}"),
            Some(u),
            Some(json!({"content": "embeddable now"})),
        )
        .await;
    assert_eq!((s, p["embedding_status"].as_str()), (200, Some("ready")));
    h.cleanup(u).await;
}

/// A pool outage (unreachable, 5xx, 429) is not the rows' fault: however
/// long it lasts, no attempt is charged and no row turns `failed`.
#[tokio::test]
async fn an_outage_charges_no_attempt() {
    let _g = SERIAL.lock().await;
    let mut h = Harness::new().await;
    h.cfg.embed_max_attempts = 2;
    let u = random_uuid();
    h.embedder.mode.set(EmbedMode::Down);
    let mut ids = Vec::new();
    for i in 0..3 {
        let (_, m) = h
            .ingest(
                u,
                json!({"content": format!("written while the pool was away {i}")}),
            )
            .await;
        ids.push(m["id"].as_str().expect("id").to_string());
    }
    for (round, mode) in [
        EmbedMode::Down,
        EmbedMode::Status(503),
        EmbedMode::Status(500),
        EmbedMode::Status(429),
        EmbedMode::Down,
        EmbedMode::Status(502),
    ]
    .into_iter()
    .enumerate()
    {
        h.embedder.mode.set(mode);
        let r = run_scheduled(&h.platform(), &h.cfg, "t").await;
        assert!(r.released >= 1, "round {round} {mode:?}: {r:?}");
        assert_eq!(
            (r.retry_scheduled, r.failed, r.embedded),
            (0, 0, 0),
            "{r:?}"
        );
        assert!(r.errors.iter().any(|e| e.contains("unavailable")), "{r:?}");
        for id in &ids {
            assert_eq!(status(&h, u, id).await, ("pending".into(), 0), "{mode:?}");
        }
        h.advance(3_600_000);
    }
    h.embedder.mode.set(EmbedMode::Up);
    run_scheduled(&h.platform(), &h.cfg, "t").await;
    for id in &ids {
        assert_eq!(status(&h, u, id).await.0, "ready");
    }
    h.cleanup(u).await;
}

/// One row the pool refuses (a text over its limit) must not block the
/// others sent with it: the refused batch is split until the culprit is
/// alone, and only it is charged.
#[tokio::test]
async fn a_refused_batch_is_split_and_only_the_bad_row_is_charged() {
    let _g = SERIAL.lock().await;
    let h = Harness::new().await;
    let u = random_uuid();
    h.embedder.mode.set(EmbedMode::Down);
    let mut items: Vec<Value> = (0..9)
        .map(|i| json!({"content": format!("ordinary note {i}")}))
        .collect();
    items.insert(
        4,
        json!({"content": format!("an over-long note {}", "x".repeat(300))}),
    );
    let (s, b) = h
        .call(
            "POST",
            "/api/v1/memory/batch",
            Some(u),
            Some(json!({"items": items})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let ids: Vec<String> = b["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["memory"]["id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(ids.len(), 10);

    h.embedder.mode.set(EmbedMode::RefuseLonger(200));
    let r = run_scheduled(&h.platform(), &h.cfg, "t").await;
    assert!(r.split_batches >= 1, "{r:?}");
    assert!(r.embedded >= 9, "{r:?}");
    for (i, id) in ids.iter().enumerate() {
        let want = if i == 4 {
            ("pending".to_string(), 1)
        } else {
            ("ready".to_string(), 0)
        };
        assert_eq!(status(&h, u, id).await, want, "row {i}");
    }
    h.cleanup(u).await;
}

/// The job's call budget fits the batch it sends (a background job has no
/// user waiting), rather than the 3 s inline budget of a request.
#[tokio::test]
async fn the_call_budget_fits_the_batch() {
    let _g = SERIAL.lock().await;
    let h = Harness::new().await;
    let u = random_uuid();
    store_pending(&h, u, (0..40).map(|i| format!("budget row {i}"))).await;
    h.embedder.budgets.borrow_mut().clear();
    let r = run_scheduled(&h.platform(), &h.cfg, "t").await;
    assert!(r.embedded >= 40, "{r:?}");
    let budgets = h.embedder.budgets.borrow().clone();
    assert!(!budgets.is_empty());
    for (texts, timeout_ms) in budgets {
        assert!(texts <= h.cfg.embed_batch_size);
        // Budgeted for every lane's texts: the lanes share the pool.
        assert_eq!(
            timeout_ms,
            call_budget_ms(
                texts * h.cfg.embed_job_concurrency,
                h.cfg.embed_call_ms_per_text
            )
        );
        assert!(timeout_ms >= 1_000 * texts as u64 + h.cfg.embed_timeout_ms);
    }
    h.cleanup(u).await;
}

/// While one run holds the drain lease, another leaves the embedding to
/// it; a lease whose holder died runs out and the next run drains.
#[tokio::test]
async fn a_run_leaves_the_drain_to_the_lease_holder_until_its_lease_runs_out() {
    let _g = SERIAL.lock().await;
    let h = Harness::new().await;
    let u = random_uuid();
    h.embedder.mode.set(EmbedMode::Down);
    let (_, m) = h.ingest(u, json!({"content": "waits for the lease"})).await;
    let id = m["id"].as_str().expect("id").to_string();
    h.embedder.mode.set(EmbedMode::Up);

    // A run that "died" holding the lease.
    let jobs = EmbeddingJobs { sql: &h.sql };
    let now = h.now_rfc3339(0);
    assert!(
        jobs.take_drain_lease("a-run-that-died", &now, 600)
            .await
            .expect("lease")
    );
    let r = run_scheduled(&h.platform(), &h.cfg, "t").await;
    assert!(r.drain_skipped, "{r:?}");
    assert_eq!(r.claimed, 0, "{r:?}");
    assert_eq!(status(&h, u, &id).await.0, "pending");

    h.advance(601_000);
    let r = run_scheduled(&h.platform(), &h.cfg, "t").await;
    assert!(!r.drain_skipped, "{r:?}");
    assert_eq!(status(&h, u, &id).await.0, "ready");
    // Returned at the end: the next run drains at once.
    let r = run_scheduled(&h.platform(), &h.cfg, "t").await;
    assert!(!r.drain_skipped, "{r:?}");
    h.cleanup(u).await;
}

/// Two runs started together: exactly one drains, and every row is embedded
/// once.
#[tokio::test]
async fn overlapping_runs_drain_once() {
    let _g = SERIAL.lock().await;
    let h = Harness::new().await;
    let u = random_uuid();
    store_pending(&h, u, (0..50).map(|i| format!("overlap row {i}"))).await;
    let p = h.platform();
    let (a, b) = tokio::join!(
        run_scheduled(&p, &h.cfg, "a"),
        run_scheduled(&p, &h.cfg, "b")
    );
    assert!(a.drain_skipped != b.drain_skipped, "{a:?} {b:?}");
    assert!(a.embedded + b.embedded >= 50, "{a:?} {b:?}");
    let pending = h
        .sql
        .query(
            &SqlScope::User(u.to_string()),
            "SELECT count(*)::text FROM memories WHERE embedding_status <> 'ready'",
            &[],
        )
        .await
        .expect("count");
    assert_eq!(pending[0][0].as_deref(), Some("0"));
    h.cleanup(u).await;
}

/// One run drains everything due (the old job stopped at 20 × 32 = 640).
#[tokio::test]
async fn one_run_drains_far_more_than_a_fixed_number_of_batches() {
    let _g = SERIAL.lock().await;
    let h = Harness::new().await;
    let u = random_uuid();
    store_pending(&h, u, (0..800).map(|i| format!("bulk memory {i}"))).await;
    let r = run_scheduled(&h.platform(), &h.cfg, "t").await;
    assert!(r.embedded >= 800, "{r:?}");
    let rows = h
        .sql
        .query(
            &SqlScope::User(u.to_string()),
            "SELECT count(*)::text FROM memories WHERE user_id = $1::uuid AND embedding_status = 'ready'",
            &[Some(u.to_string())],
        )
        .await
        .expect("count");
    assert_eq!(rows[0][0].as_deref(), Some("800"));
    h.cleanup(u).await;
}

/// Ingest hands pending rows to the queue; the consumer embeds them, asks
/// for a retry while the pool is down (charging nothing), and the
/// dead-letter consumer makes rows due again, failed ones included.
#[tokio::test]
async fn the_queue_carries_pending_rows_to_the_consumer() {
    let _g = SERIAL.lock().await;
    let mut h = Harness::new().await;
    h.cfg.embed_max_attempts = 1;
    let u = random_uuid();
    h.embedder.mode.set(EmbedMode::Down);
    let (s, m) = h
        .ingest(u, json!({"content": "queued for embedding"}))
        .await;
    assert_eq!((s, m["embedding_status"].as_str()), (200, Some("pending")));
    let id = m["id"].as_str().expect("id").to_string();
    assert_eq!(h.queue.sent.borrow().clone(), vec![id.clone()]);

    // Pool down: the consumer asks for a retry, at no attempt.
    let out = run_embed_queue(&h.platform(), &h.cfg, vec![id.clone()]).await;
    assert_eq!(out.retry, vec![id.clone()]);
    assert!(out.ack.is_empty());
    assert_eq!(status(&h, u, &id).await, ("pending".into(), 0));

    // Pool up: embedded and acknowledged; a duplicate delivery is a no-op.
    h.embedder.mode.set(EmbedMode::Up);
    let out = run_embed_queue(&h.platform(), &h.cfg, vec![id.clone(), "not-a-uuid".into()]).await;
    assert_eq!(out.retry, Vec::<String>::new());
    assert_eq!(out.ack.len(), 2);
    assert_eq!(out.tally.embedded, 1);
    assert_eq!(status(&h, u, &id).await.0, "ready");
    let again = run_embed_queue(&h.platform(), &h.cfg, vec![id.clone()]).await;
    assert_eq!((again.ack, again.tally.embedded), (vec![id.clone()], 0));

    // A refused row fails (one attempt here); its dead letter revives it.
    h.embedder.mode.set(EmbedMode::Down);
    let (_, m) = h
        .ingest(u, json!({"content": "refused until redriven"}))
        .await;
    let bad = m["id"].as_str().expect("id").to_string();
    h.embedder.mode.set(EmbedMode::Status(422));
    let out = run_embed_queue(&h.platform(), &h.cfg, vec![bad.clone()]).await;
    assert_eq!(out.tally.failed, 1);
    assert_eq!(out.ack, vec![bad.clone()]);
    assert_eq!(status(&h, u, &bad).await, ("failed".into(), 1));
    let out = run_embed_dead_letters(&h.platform(), &h.cfg, vec![bad.clone()]).await;
    assert_eq!(out.ack, vec![bad.clone()]);
    assert_eq!(status(&h, u, &bad).await, ("pending".into(), 0));
    h.embedder.mode.set(EmbedMode::Up);
    run_scheduled(&h.platform(), &h.cfg, "t").await;
    assert_eq!(status(&h, u, &bad).await.0, "ready");
    h.cleanup(u).await;
}

/// Nothing acknowledged is lost when the queue is down: the row is stored
/// pending and the reconcile embeds it.
#[tokio::test]
async fn a_failed_enqueue_loses_nothing() {
    let _g = SERIAL.lock().await;
    let h = Harness::new().await;
    let u = random_uuid();
    h.queue.down.set(true);
    h.embedder.mode.set(EmbedMode::Down);
    let (s, m) = h
        .ingest(u, json!({"content": "the queue was down too"}))
        .await;
    assert_eq!((s, m["embedding_status"].as_str()), (200, Some("pending")));
    let id = m["id"].as_str().expect("id").to_string();
    assert!(h.queue.sent.borrow().is_empty());
    h.embedder.mode.set(EmbedMode::Up);
    run_scheduled(&h.platform(), &h.cfg, "t").await;
    assert_eq!(status(&h, u, &id).await.0, "ready");
    h.cleanup(u).await;
}

#[tokio::test]
async fn a_claim_is_a_lease_not_a_loss() {
    let _g = SERIAL.lock().await;
    let h = Harness::new().await;
    let u = random_uuid();
    h.embedder.mode.set(EmbedMode::Down);
    let (_, m) = h
        .ingest(u, json!({"content": "claimed by a job that died"}))
        .await;
    let id = m["id"].as_str().expect("id").to_string();
    // A job claims the row and dies before writing anything back.
    let jobs = EmbeddingJobs { sql: &h.sql };
    let now =
        edge_api::services::memories::rfc3339(h.clock.0.load(std::sync::atomic::Ordering::SeqCst));
    let claimed = jobs.claim_due(&now, 10_000, 60).await.expect("claim");
    assert!(claimed.iter().any(|c| c.id == id));
    // Within the lease no other run takes it; after the lease one does.
    h.embedder.mode.set(EmbedMode::Up);
    run_scheduled(&h.platform(), &h.cfg, "t").await;
    assert_eq!(status(&h, u, &id).await.0, "pending");
    h.advance(61_000);
    run_scheduled(&h.platform(), &h.cfg, "t").await;
    assert_eq!(status(&h, u, &id).await.0, "ready");
    h.cleanup(u).await;
}

#[tokio::test]
async fn expired_rows_are_purged() {
    let _g = SERIAL.lock().await;
    let h = Harness::new().await;
    let u = random_uuid();
    let (_, m) = h
        .ingest(
            u,
            json!({"content": "short lived", "expires_at": h.now_rfc3339(5_000)}),
        )
        .await;
    let id = m["id"].as_str().expect("id").to_string();
    let (_, keep) = h.ingest(u, json!({"content": "long lived"})).await;
    h.advance(6_000);
    let r = run_scheduled(&h.platform(), &h.cfg, "t").await;
    assert!(r.purged >= 1, "{r:?}");
    let rows = h
        .sql
        .query(
            &SqlScope::System,
            "SELECT count(*)::text FROM memories WHERE id = $1::uuid",
            &[Some(id)],
        )
        .await
        .expect("query");
    assert_eq!(rows[0][0].as_deref(), Some("0"));
    let (s, _) = h
        .call(
            "GET",
            &format!("/api/v1/memory/{}", keep["id"].as_str().expect("id")),
            Some(u),
            None,
        )
        .await;
    assert_eq!(s, 200);
    h.cleanup(u).await;
}

async fn settled_model(h: &Harness) -> Option<String> {
    EmbeddingJobs { sql: &h.sql }
        .settled_model()
        .await
        .expect("settled model")
}

#[tokio::test]
async fn a_model_change_re_embeds_in_the_background() {
    let _g = SERIAL.lock().await;
    let h = Harness::new().await;
    let u = random_uuid();
    let (_, m) = h
        .ingest(u, json!({"content": "embedded by the old model"}))
        .await;
    let id = m["id"].as_str().expect("id").to_string();
    // A run whose scan finds no row of another model records the current
    // model as settled (rows left by earlier runs may take a run first).
    for _ in 0..5 {
        run_scheduled(&h.platform(), &h.cfg, "t").await;
        if settled_model(&h).await.as_deref() == Some(common::MODEL) {
            break;
        }
    }
    assert_eq!(settled_model(&h).await.as_deref(), Some(common::MODEL));
    // Pretend the row came from another model.
    h.sql
        .query(
            &SqlScope::System,
            "UPDATE memories SET embedding_model = 'old-model' WHERE id = $1::uuid",
            &[Some(id.clone())],
        )
        .await
        .expect("update");
    // Its vector is not compared with the current model's query vectors.
    let r = h.retrieve(u, "", json!({"query": "zzz unrelated"})).await;
    assert!(!r.ids().contains(&id));
    // No model change in progress: the job skips the table scan.
    let r = run_scheduled(&h.platform(), &h.cfg, "t").await;
    assert!(!r.stale_scan, "{r:?}");
    assert_eq!(r.requeued_stale, 0, "{r:?}");

    // The deployment moves from old-model to the current one: the scan runs
    // until none are left, then records the new model as settled.
    h.sql
        .query(
            &SqlScope::System,
            "UPDATE embedding_job_state SET value = 'old-model' WHERE key = 'settled_model'",
            &[],
        )
        .await
        .expect("model change");
    let r = run_scheduled(&h.platform(), &h.cfg, "t").await;
    assert!(r.stale_scan, "{r:?}");
    assert!(r.requeued_stale >= 1, "{r:?}");
    let (_, got) = h
        .call("GET", &format!("/api/v1/memory/{id}"), Some(u), None)
        .await;
    assert_eq!(got["embedding_model"], common::MODEL);
    assert_eq!(got["embedding_status"], "ready");
    let r = run_scheduled(&h.platform(), &h.cfg, "t").await;
    assert!(r.stale_scan && r.requeued_stale == 0, "{r:?}");
    assert_eq!(settled_model(&h).await.as_deref(), Some(common::MODEL));
    let r = run_scheduled(&h.platform(), &h.cfg, "t").await;
    assert!(!r.stale_scan, "{r:?}");
    h.cleanup(u).await;
}

/// The design's own stack deadlocked under 10 concurrent retrieves that
/// updated access statistics in different orders; ours locks in id order.
#[tokio::test]
async fn concurrent_retrieves_do_not_deadlock() {
    let _g = SERIAL.lock().await;
    let u = random_uuid();
    {
        let h = Harness::new().await;
        let items: Vec<Value> = (0..40)
            .map(|i| json!({"content": format!("shared memory number {i} about lanterns")}))
            .collect();
        let (s, _) = h
            .call(
                "POST",
                "/api/v1/memory/batch",
                Some(u),
                Some(json!({"items": items})),
            )
            .await;
        assert_eq!(s, 200);
    }
    let mut tasks = Vec::new();
    for t in 0..10 {
        tasks.push(std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("rt");
            rt.block_on(async move {
                let h = Harness::new().await;
                for i in 0..5 {
                    // Different queries rank the same rows in different orders.
                    let q = format!("lanterns number {}", (t * 7 + i) % 40);
                    let r = h.retrieve(u, "limit=40", json!({"query": q})).await;
                    assert_eq!(r.status, 200, "{}", r.body);
                }
            })
        }));
    }
    for t in tasks {
        t.join().expect("no retrieve failed");
    }
    let h = Harness::new().await;
    let (_, r) = h
        .call("GET", "/api/v1/memory?limit=100", Some(u), None)
        .await;
    let total: i64 = r["memories"]
        .as_array()
        .expect("m")
        .iter()
        .map(|m| m["access_count"].as_i64().expect("n"))
        .sum();
    // Every retrieval returned all 40 rows; every bump landed.
    assert_eq!(total, 10 * 5 * 40);
    h.cleanup(u).await;
}
