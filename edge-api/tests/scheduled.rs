//! Integration tests of the scheduled job against the real Postgres:
//! pending → ready, retries with backoff → failed, purge of expired rows,
//! re-embedding after a model change. Run with `--features native`.
//!
//! The job works across all users, so tests assert on their own rows only,
//! and run one at a time (a shared lock) because they move the clock.
#![cfg(feature = "native")]

mod common;

use common::{EmbedMode, Harness, random_uuid};
use edge_api::app::run_scheduled;
use edge_api::ports::{Sql, SqlScope};
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
async fn failures_back_off_then_fail() {
    let _g = SERIAL.lock().await;
    let mut h = Harness::new().await;
    h.cfg.embed_max_attempts = 3;
    let u = random_uuid();
    h.embedder.mode.set(EmbedMode::Down);
    let (_, m) = h.ingest(u, json!({"content": "never embeddable"})).await;
    let id = m["id"].as_str().expect("id").to_string();

    let r = run_scheduled(&h.platform(), &h.cfg, "t").await;
    assert!(!r.errors.is_empty());
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
    run_scheduled(&h.platform(), &h.cfg, "t").await;
    assert_eq!(status(&h, u, &id).await, ("failed".into(), 3));
    // Failed rows are not retried by the job but stay searchable by text,
    // and a content edit queues them again.
    h.advance(3_600_000);
    h.embedder.mode.set(EmbedMode::Up);
    run_scheduled(&h.platform(), &h.cfg, "t").await;
    assert_eq!(status(&h, u, &id).await.0, "failed");
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
    let repo = edge_api::repositories::memories::Memories { sql: &h.sql };
    let now =
        edge_api::services::memories::rfc3339(h.clock.0.load(std::sync::atomic::Ordering::SeqCst));
    let claimed = repo.claim_pending(&now, 10_000, 60).await.expect("claim");
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

#[tokio::test]
async fn a_model_change_re_embeds_in_the_background() {
    let _g = SERIAL.lock().await;
    let h = Harness::new().await;
    let u = random_uuid();
    let (_, m) = h
        .ingest(u, json!({"content": "embedded by the old model"}))
        .await;
    let id = m["id"].as_str().expect("id").to_string();
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
    let r = run_scheduled(&h.platform(), &h.cfg, "t").await;
    assert!(r.requeued_stale >= 1, "{r:?}");
    let (_, got) = h
        .call("GET", &format!("/api/v1/memory/{id}"), Some(u), None)
        .await;
    assert_eq!(got["embedding_model"], common::MODEL);
    assert_eq!(got["embedding_status"], "ready");
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
