//! Backup retention and the outcome webhook (services::backup_retention,
//! services::backup_webhook) against the real Postgres, with the in-memory
//! object store: over four daily runs (one failing), retention keeps the
//! newest days, deletes older and failed backups only after a newer one
//! verified, and records each deletion; every finished run is POSTed to the
//! webhook, and a webhook that is down or answers 500 never fails a backup.
//! Run with `--features native`.
//!
//! `backup_runs` is global, so the tests of this binary run one at a time.
#![cfg(feature = "native")]

mod common;

use std::collections::BTreeMap;

use common::{Harness, WEBHOOK_BASE};
use edge_api::app::run_scheduled;
use edge_api::config::BackupConfig;
use edge_api::platform::native::MemoryBlob;
use edge_api::ports::{Blob, PortError, Sql, SqlScope};
use edge_api::services::backup::BackupReport;
use rand_core::OsRng;
use sdap::age::Identity;
use sdap::backup::{self, ObjectSource};
use sdap::manifest::ManifestSigner;
use serde_json::Value;
use tokio::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::const_new(());

const DAILY: &str = "0 3 * * *";
const DAY_MS: i64 = 24 * 60 * 60 * 1000;

struct Objects(BTreeMap<String, Vec<u8>>);

impl ObjectSource for Objects {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, sdap::Error> {
        Ok(self.0.get(key).cloned())
    }
}

/// Writes through to `MemoryBlob` but reads back other bytes: the backup
/// fails after leaving its first chunk behind.
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

fn configure(h: &mut Harness, keep_daily: usize, keep_weekly: usize) -> (Identity, ManifestSigner) {
    let identity = Identity::generate(&mut OsRng).unwrap();
    let signer = ManifestSigner::generate(&mut OsRng).unwrap();
    h.cfg.backup = Some(BackupConfig {
        recipients: vec![identity.recipient().to_bech32()],
        signing_key: signer.to_base64().to_string(),
        rows_per_chunk: 2_000,
        max_chunks_per_run: 10_000,
        keep_daily,
        keep_weekly,
        webhook_url: Some(format!("{WEBHOOK_BASE}backups?token=s3cret")),
    });
    (identity, signer)
}

async fn system(h: &Harness, sql: &str, params: &[Option<String>]) -> Vec<Vec<Option<String>>> {
    h.sql.query(&SqlScope::System, sql, params).await.unwrap()
}

async fn daily(h: &Harness) -> BackupReport {
    run_scheduled(&h.platform(), &h.cfg, DAILY)
        .await
        .backup
        .unwrap()
}

/// The keys stored under backup `id`.
fn keys(h: &Harness, id: &str) -> Vec<String> {
    let prefix = backup::object_key(id, "");
    h.blob
        .snapshot()
        .into_keys()
        .filter(|k| k.starts_with(&prefix))
        .collect()
}

fn verifies(h: &Harness, id: &str, identity: &Identity, signer: &ManifestSigner) -> bool {
    backup::verify(
        &Objects(h.blob.snapshot()),
        id,
        &[signer.public_key()],
        std::slice::from_ref(identity),
        &mut |_| {},
    )
    .is_ok()
}

fn webhook(h: &Harness, i: usize) -> Value {
    h.embedder.webhooks.borrow()[i].1.clone()
}

#[tokio::test]
async fn retention_keeps_the_newest_days_and_deletes_older_backups_after_a_newer_verified() {
    let _g = SERIAL.lock().await;
    let mut h = Harness::new().await;
    system(&h, "DELETE FROM backup_runs", &[]).await;
    let (identity, signer) = configure(&mut h, 2, 0);

    // Day 0: A verifies. The webhook is unreachable; the backup is done anyway.
    h.embedder.webhook_status.set(None);
    let a = daily(&h).await;
    assert_eq!(a.status, "done", "{a:?}");
    assert!(a.deleted.is_empty());
    let a_id = a.backup_id.clone().unwrap();
    let a_objects = keys(&h, &a_id).len();
    assert_eq!(
        a_objects,
        a.chunks_written + 2,
        "chunks, manifest, signature"
    );
    assert_eq!(
        h.embedder.webhooks.borrow().len(),
        1,
        "the webhook was tried"
    );

    // Day 1: F fails at read-back and leaves a chunk behind. A failed run
    // triggers no retention. The webhook answers 500: still just logged.
    h.advance(DAY_MS);
    h.embedder.webhook_status.set(Some(500));
    let corrupting = Corrupting(&h.blob);
    let mut p = h.platform();
    p.blob = &corrupting;
    let f = run_scheduled(&p, &h.cfg, DAILY).await.backup.unwrap();
    assert_eq!(f.status, "failed", "{f:?}");
    assert!(f.deleted.is_empty());
    let f_id = f.backup_id.clone().unwrap();
    assert_eq!(keys(&h, &f_id).len(), 1);
    let hook = webhook(&h, 1);
    assert_eq!(hook["status"], "failed");
    assert_eq!(hook["backup_id"], f_id.as_str());
    assert_eq!(
        hook["error"],
        "the backup store returned different bytes than were written"
    );
    assert!(hook["duration_ms"].is_i64(), "{hook}");

    // Day 2: B verifies. F (failed, older than B) goes; A is within the
    // two newest days and stays.
    h.advance(DAY_MS);
    h.embedder.webhook_status.set(Some(204));
    let b = daily(&h).await;
    assert_eq!(b.status, "done", "{b:?}");
    assert_eq!(b.deleted, vec![f_id.clone()]);
    assert!(keys(&h, &f_id).is_empty());
    assert_eq!(keys(&h, &a_id).len(), a_objects);
    assert!(verifies(&h, &a_id, &identity, &signer));

    // Day 3: C verifies; A is now the third newest day and goes.
    h.advance(DAY_MS);
    let c = daily(&h).await;
    assert_eq!(c.status, "done", "{c:?}");
    let c_id = c.backup_id.clone().unwrap();
    assert_eq!(c.deleted, vec![a_id.clone()]);
    assert!(keys(&h, &a_id).is_empty());
    let b_id = b.backup_id.clone().unwrap();
    assert!(verifies(&h, &b_id, &identity, &signer));
    assert!(verifies(&h, &c_id, &identity, &signer));

    // Deletions are recorded; the runs stay in the history.
    let rows = system(
        &h,
        "SELECT backup_id, status, (deleted_at IS NOT NULL)::text, deleted_objects::text \
         FROM backup_runs ORDER BY started_at",
        &[],
    )
    .await;
    let got: Vec<Vec<Option<String>>> = rows;
    let row = |id: &str, status: &str, deleted: bool, objects: Option<usize>| {
        vec![
            Some(id.to_string()),
            Some(status.to_string()),
            Some(if deleted { "true" } else { "false" }.to_string()),
            objects.map(|n| n.to_string()),
        ]
    };
    assert_eq!(
        got,
        vec![
            row(&a_id, "done", true, Some(a_objects)),
            row(&f_id, "failed", true, Some(1)),
            row(&b_id, "done", false, None),
            row(&c_id, "done", false, None),
        ]
    );

    // Every finished run reached the webhook, at its URL, with its outcome.
    let hooks = h.embedder.webhooks.borrow().clone();
    assert_eq!(hooks.len(), 4);
    assert!(
        hooks
            .iter()
            .all(|(url, _)| url == &format!("{WEBHOOK_BASE}backups?token=s3cret"))
    );
    let last = &hooks[3].1;
    assert_eq!(last["event"], "memshadow.backup.finished");
    assert_eq!(last["backup_id"], c_id.as_str());
    assert_eq!(last["status"], "done");
    assert_eq!(last["error"], Value::Null);
    assert_eq!(last["chunks"], c.chunks_written as u64);
    assert_eq!(last["rows"], c.rows_written);
    assert_eq!(last["deleted"], serde_json::json!([a_id]));
    assert!(last["started_at"].is_string() && last["finished_at"].is_string());
    assert!(last["duration_ms"].as_i64().is_some_and(|d| d >= 0));
}

/// A store that refuses deletions leaves the backup done and the old one
/// unrecorded; the next verified backup finishes the job.
#[tokio::test]
async fn a_failed_deletion_never_fails_the_backup_and_is_retried() {
    let _g = SERIAL.lock().await;
    let mut h = Harness::new().await;
    system(&h, "DELETE FROM backup_runs", &[]).await;
    h.advance(10 * DAY_MS);
    configure(&mut h, 1, 0);

    struct NoDelete<'a>(&'a MemoryBlob);
    #[async_trait::async_trait(?Send)]
    impl Blob for NoDelete<'_> {
        async fn put(&self, key: &str, bytes: &[u8]) -> Result<(), PortError> {
            self.0.put(key, bytes).await
        }
        async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, PortError> {
            self.0.get(key).await
        }
        async fn list(&self, prefix: &str) -> Result<Vec<String>, PortError> {
            self.0.list(prefix).await
        }
        async fn delete(&self, _: &str) -> Result<(), PortError> {
            Err(PortError::unavailable("deletes refused"))
        }
    }

    let old = daily(&h).await;
    assert_eq!(old.status, "done");
    let old_id = old.backup_id.unwrap();
    h.advance(DAY_MS);
    let refusing = NoDelete(&h.blob);
    let mut p = h.platform();
    p.blob = &refusing;
    let second = run_scheduled(&p, &h.cfg, DAILY).await.backup.unwrap();
    assert_eq!(second.status, "done", "{second:?}");
    assert!(second.deleted.is_empty());
    assert!(!keys(&h, &old_id).is_empty());
    let unrecorded = system(
        &h,
        "SELECT deleted_at::text FROM backup_runs WHERE backup_id = $1",
        &[Some(old_id.clone())],
    )
    .await;
    assert_eq!(unrecorded[0][0], None);

    h.advance(DAY_MS);
    let third = daily(&h).await;
    assert_eq!(third.status, "done");
    let second_id = second.backup_id.unwrap();
    assert_eq!(third.deleted, vec![second_id.clone(), old_id.clone()]);
    assert!(keys(&h, &old_id).is_empty());
    assert!(keys(&h, &second_id).is_empty());
}
