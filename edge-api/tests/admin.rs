//! `GET /api/v1/admin/backups` against the real Postgres: 401 without a
//! token, 403 `admin_required` for a user not in `MEMSHADOW_ADMIN_USER_IDS`,
//! and for an operator the recent backup runs (from real runs of the backup
//! job, one done and one failed) with the last success and failure, every
//! answer checked against `schema/openapi.json`. Run with `--features native`.
#![cfg(feature = "native")]

mod common;

use common::schema::Documented;
use common::{Harness, code, random_uuid};
use edge_api::app::run_scheduled;
use edge_api::config::BackupConfig;
use edge_api::platform::native::MemoryBlob;
use edge_api::ports::{Blob, PortError, Sql, SqlScope};
use rand_core::OsRng;
use serde_json::Value;

const PATH: &str = "/api/v1/admin/backups";

/// Writes through but reads back other bytes: the backup fails.
struct Corrupting<'a>(&'a MemoryBlob);

#[async_trait::async_trait(?Send)]
impl Blob for Corrupting<'_> {
    async fn put(&self, key: &str, bytes: &[u8]) -> Result<(), PortError> {
        self.0.put(key, bytes).await
    }
    async fn get(&self, _: &str) -> Result<Option<Vec<u8>>, PortError> {
        Ok(Some(b"not what was written".to_vec()))
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, PortError> {
        self.0.list(prefix).await
    }
    async fn delete(&self, key: &str) -> Result<(), PortError> {
        self.0.delete(key).await
    }
}

/// GETs `path` as `user`, checks the answer against the document, and
/// returns the status and body.
async fn get(h: &Harness, path: &str, user: Option<uuid::Uuid>) -> (u16, Value) {
    let res = h.send("GET", path, user, None).await;
    Documented::new().assert("GET", PATH, &res);
    (
        res.status,
        serde_json::from_slice(&res.body).expect("JSON body"),
    )
}

#[tokio::test]
async fn admin_backups_answers_operators_only_with_recent_runs() {
    let mut h = Harness::new().await;
    h.sql
        .query(&SqlScope::System, "DELETE FROM backup_runs", &[])
        .await
        .unwrap();
    let admin = random_uuid();
    let user = random_uuid();
    h.cfg.admin_user_ids = vec![admin];

    let (s, v) = get(&h, PATH, None).await;
    assert_eq!((s, code(&v)), (401, "missing_token"));
    let (s, v) = get(&h, PATH, Some(user)).await;
    assert_eq!((s, code(&v)), (403, "admin_required"));

    // Backups off: nothing to show, and said so.
    let (s, v) = get(&h, PATH, Some(admin)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["enabled"], false);
    assert_eq!(v["retention"], Value::Null);
    assert_eq!(v["runs"], serde_json::json!([]));
    assert_eq!(v["last_success"], Value::Null);

    let identity = sdap::age::Identity::generate(&mut OsRng).unwrap();
    let signer = sdap::manifest::ManifestSigner::generate(&mut OsRng).unwrap();
    h.cfg.backup = Some(BackupConfig {
        recipients: vec![identity.recipient().to_bech32()],
        signing_key: signer.to_base64().to_string(),
        rows_per_chunk: 2_000,
        max_chunks_per_run: 10_000,
        keep_daily: 7,
        keep_weekly: 4,
        webhook_url: None,
    });
    let done = run_scheduled(&h.platform(), &h.cfg, "0 3 * * *")
        .await
        .backup
        .unwrap();
    assert_eq!(done.status, "done", "{done:?}");
    h.advance(24 * 60 * 60 * 1000);
    let corrupting = Corrupting(&h.blob);
    let mut p = h.platform();
    p.blob = &corrupting;
    let failed = run_scheduled(&p, &h.cfg, "0 3 * * *").await.backup.unwrap();
    assert_eq!(failed.status, "failed", "{failed:?}");

    let (s, v) = get(&h, PATH, Some(admin)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["enabled"], true);
    assert_eq!(
        v["retention"],
        serde_json::json!({"keep_daily": 7, "keep_weekly": 4})
    );
    assert_eq!(v["webhook"], false);
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    // Newest first: the failure, then the success.
    assert_eq!(runs[0]["backup_id"], failed.backup_id.clone().unwrap());
    assert_eq!(runs[0]["status"], "failed");
    assert_eq!(
        runs[0]["error"],
        "the backup store returned different bytes than were written"
    );
    assert_eq!(runs[1]["backup_id"], done.backup_id.clone().unwrap());
    assert_eq!(runs[1]["status"], "done");
    assert_eq!(runs[1]["chunks"], done.chunks_written as u64);
    assert_eq!(runs[1]["rows"], done.rows_written);
    assert!(runs[1]["duration_ms"].is_i64());
    assert_eq!(runs[1]["error"], Value::Null);
    assert_eq!(runs[1]["deleted_at"], Value::Null);
    assert_eq!(
        v["last_success"]["backup_id"],
        done.backup_id.clone().unwrap()
    );
    assert_eq!(
        v["last_failure"]["backup_id"],
        failed.backup_id.clone().unwrap()
    );

    let (s, v) = get(&h, &format!("{PATH}?limit=1"), Some(admin)).await;
    assert_eq!(s, 200);
    assert_eq!(v["runs"].as_array().unwrap().len(), 1);
    for bad in ["limit=0", "limit=101", "limit=x", "status=done"] {
        let (s, v) = get(&h, &format!("{PATH}?{bad}"), Some(admin)).await;
        assert_eq!((s, code(&v)), (400, "invalid_parameter"), "{bad}");
    }
}
