//! The scheduled SDAP backup (services::backup) against the real Postgres,
//! with an in-memory object store: the daily trigger writes a backup that
//! verifies with the restore identity and holds our rows; nothing stored is
//! plaintext; a run capped at a few chunks resumes on later triggers into
//! one complete backup; outcomes are recorded. Run with `--features native`.
//!
//! Backups span all users and `backup_runs` is global, so the tests run one
//! at a time and assert on their own rows.
#![cfg(feature = "native")]

mod common;

use std::collections::BTreeMap;

use common::{Harness, random_uuid};
use edge_api::app::run_scheduled;
use edge_api::config::BackupConfig;
use edge_api::ports::{Sql, SqlScope};
use rand_core::OsRng;
use sdap::age::Identity;
use sdap::backup::{self, ObjectSource};
use sdap::manifest::ManifestSigner;
use serde_json::json;
use tokio::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::const_new(());

struct Objects(BTreeMap<String, Vec<u8>>);

impl ObjectSource for Objects {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, sdap::Error> {
        Ok(self.0.get(key).cloned())
    }
}

fn configure(
    h: &mut Harness,
    rows_per_chunk: usize,
    max_chunks: usize,
) -> (Identity, ManifestSigner) {
    let identity = Identity::generate(&mut OsRng).unwrap();
    let signer = ManifestSigner::generate(&mut OsRng).unwrap();
    h.cfg.backup = Some(BackupConfig {
        recipients: vec![identity.recipient().to_bech32()],
        signing_key: signer.to_base64().to_string(),
        rows_per_chunk,
        max_chunks_per_run: max_chunks,
        keep_daily: 7,
        keep_weekly: 4,
        webhook_url: None,
    });
    (identity, signer)
}

async fn system(h: &Harness, sql: &str, params: &[Option<String>]) -> Vec<Vec<Option<String>>> {
    h.sql.query(&SqlScope::System, sql, params).await.unwrap()
}

/// A user created an hour before the harness clock's "now", with `email`.
async fn seed_user(h: &Harness, email: &str) -> String {
    let id = random_uuid().to_string();
    system(
        h,
        "INSERT INTO users (id, email, username, password_hash, created_at) \
         VALUES ($1::uuid, $2, $3, '$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA', $4::timestamptz - interval '1 hour')",
        &[
            Some(id.clone()),
            Some(email.to_string()),
            Some(format!("u{}", &id[..8])),
            Some(h.now_rfc3339(0)),
        ],
    )
    .await;
    id
}

fn rows_of(
    objects: &Objects,
    m: &sdap::manifest::Manifest,
    id: &Identity,
    table: &str,
) -> Vec<Vec<Option<String>>> {
    m.chunks
        .iter()
        .filter(|c| c.table == table)
        .flat_map(|c| backup::read_chunk(objects, m, c, std::slice::from_ref(id)).unwrap())
        .collect()
}

#[tokio::test]
async fn the_daily_trigger_writes_a_signed_encrypted_backup_of_our_rows() {
    let _g = SERIAL.lock().await;
    let mut h = Harness::new().await;
    system(&h, "DELETE FROM backup_runs", &[]).await;

    // Off until configured.
    let r = run_scheduled(&h.platform(), &h.cfg, "0 3 * * *").await;
    assert_eq!(r.backup.unwrap().status, "disabled");

    let (identity, signer) = configure(&mut h, 500, 10_000);
    let email = format!("backup-{}@example.test", random_uuid());
    let user = seed_user(&h, &email).await;
    let u = uuid::Uuid::parse_str(&user).unwrap();
    let secret = format!("the vault code is {}", random_uuid());
    for text in [secret.as_str(), "Ada prefers green tea", "a third memory"] {
        let (s, _) = h
            .ingest(
                u,
                json!({"content": text, "tags": ["t"], "metadata": {"k": 1}}),
            )
            .await;
        assert_eq!(s, 200, "ingest answers 200 (the contract)");
    }

    let report = run_scheduled(&h.platform(), &h.cfg, "0 3 * * *").await;
    let b = report.backup.clone().unwrap();
    assert_eq!(b.status, "done", "{report:?}");
    let backup_id = b.backup_id.clone().unwrap();
    assert!(b.rows_written >= 4, "{b:?}");
    // The daily trigger runs the backup alone.
    assert_eq!(report.claimed, 0);

    let objects = Objects(h.blob.snapshot());
    let m = backup::verify(
        &objects,
        &backup_id,
        &[signer.public_key()],
        std::slice::from_ref(&identity),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(m.chunks.len(), b.chunks_written);
    let memories = rows_of(&objects, &m, &identity, "memories");
    let ours: Vec<&Vec<Option<String>>> = memories
        .iter()
        .filter(|r| r[1].as_deref() == Some(user.as_str()))
        .collect();
    assert_eq!(ours.len(), 3);
    assert!(
        ours.iter()
            .any(|r| r[2].as_deref() == Some(secret.as_str()))
    );
    let users = rows_of(&objects, &m, &identity, "users");
    assert!(
        users
            .iter()
            .any(|r| r[1].as_deref() == Some(email.as_str()))
    );

    // Nothing stored is plaintext.
    for (key, bytes) in &objects.0 {
        let text = String::from_utf8_lossy(bytes);
        assert!(!text.contains(&secret), "{key} holds a memory in plaintext");
        assert!(!text.contains(&email), "{key} holds an email in plaintext");
    }

    // The outcome is recorded.
    let rows = system(
        &h,
        "SELECT status, duration_ms::text, error FROM backup_runs WHERE backup_id = $1",
        &[Some(backup_id.clone())],
    )
    .await;
    assert_eq!(rows[0][0].as_deref(), Some("done"));
    assert!(rows[0][1].is_some());
    assert_eq!(rows[0][2], None);

    // Later triggers find nothing to resume.
    h.advance(5 * 60 * 1000);
    let r = run_scheduled(&h.platform(), &h.cfg, "*/5 * * * *").await;
    assert_eq!(r.backup.unwrap().status, "idle");
}

#[tokio::test]
async fn a_capped_run_resumes_into_one_complete_backup() {
    let _g = SERIAL.lock().await;
    let mut h = Harness::new().await;
    system(&h, "DELETE FROM backup_runs", &[]).await;
    h.advance(60 * 60 * 1000);
    let u = random_uuid();
    for i in 0..6 {
        h.ingest(u, json!({"content": format!("resume test memory {i} {u}")}))
            .await;
    }
    let largest = "SELECT GREATEST((SELECT count(*) FROM memories), (SELECT count(*) FROM users), \
                   (SELECT count(*) FROM refresh_tokens), (SELECT count(*) FROM webauthn_credentials))::text";
    let total: usize = system(&h, largest, &[]).await[0][0]
        .as_deref()
        .unwrap()
        .parse()
        .unwrap();
    // The largest table takes about four chunks; two chunks per invocation.
    let (identity, signer) = configure(&mut h, total / 4 + 1, 2);

    let first = run_scheduled(&h.platform(), &h.cfg, "0 3 * * *")
        .await
        .backup
        .unwrap();
    assert_eq!(first.status, "running", "{first:?}");
    let id = first.backup_id.clone().unwrap();
    // Not listed until whole.
    assert!(
        !h.blob
            .snapshot()
            .contains_key(&backup::object_key(&id, backup::MANIFEST))
    );

    let mut invocations = 1;
    let mut last = first;
    while last.status == "running" {
        assert!(invocations < 50, "the backup never completes: {last:?}");
        h.advance(5 * 60 * 1000);
        last = run_scheduled(&h.platform(), &h.cfg, "*/5 * * * *")
            .await
            .backup
            .unwrap();
        assert_eq!(last.backup_id.as_deref(), Some(id.as_str()));
        invocations += 1;
    }
    assert_eq!(last.status, "done", "{last:?}");
    assert!(invocations >= 2, "{invocations}");

    let objects = Objects(h.blob.snapshot());
    let m = backup::verify(
        &objects,
        &id,
        &[signer.public_key()],
        std::slice::from_ref(&identity),
        &mut |_| {},
    )
    .unwrap();
    let mine = rows_of(&objects, &m, &identity, "memories")
        .into_iter()
        .filter(|r| r[1].as_deref() == Some(u.to_string().as_str()))
        .count();
    assert_eq!(mine, 6);
    // Every chunk is listed once, in order, and keys never repeat.
    let mut keys: Vec<String> = rows_of(&objects, &m, &identity, "memories")
        .into_iter()
        .map(|r| r[0].clone().unwrap())
        .collect();
    let n = keys.len();
    keys.dedup();
    assert_eq!(keys.len(), n);
}

#[tokio::test]
async fn a_store_that_loses_writes_fails_the_backup_and_records_it() {
    let _g = SERIAL.lock().await;
    let mut h = Harness::new().await;
    system(&h, "DELETE FROM backup_runs", &[]).await;
    h.advance(2 * 60 * 60 * 1000);
    configure(&mut h, 500, 10_000);

    struct Lossy;
    #[async_trait::async_trait(?Send)]
    impl edge_api::ports::Blob for Lossy {
        async fn put(&self, _: &str, _: &[u8]) -> Result<(), edge_api::ports::PortError> {
            Ok(())
        }
        async fn get(&self, _: &str) -> Result<Option<Vec<u8>>, edge_api::ports::PortError> {
            Ok(Some(b"something else".to_vec()))
        }
        async fn list(&self, _: &str) -> Result<Vec<String>, edge_api::ports::PortError> {
            Ok(Vec::new())
        }
        async fn delete(&self, _: &str) -> Result<(), edge_api::ports::PortError> {
            Ok(())
        }
    }
    let mut p = h.platform();
    p.blob = &Lossy;
    let b = run_scheduled(&p, &h.cfg, "0 3 * * *").await.backup.unwrap();
    assert_eq!(b.status, "failed");
    assert_eq!(
        b.error.as_deref(),
        Some("the backup store returned different bytes than were written")
    );
    let rows = system(
        &h,
        "SELECT status, error FROM backup_runs WHERE backup_id = $1",
        std::slice::from_ref(&b.backup_id),
    )
    .await;
    assert_eq!(rows[0][0].as_deref(), Some("failed"));
    assert!(rows[0][1].is_some());
}
