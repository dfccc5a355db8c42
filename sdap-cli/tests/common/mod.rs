//! Shared set-up for sdap-cli's tests: fresh migrated databases, the
//! seeded rows, a row-for-row snapshot, keys, and the `sdap` binary.
//!
//! Needs the Postgres of `scripts/pg.sh` (superuser URL in
//! MEMSHADOW_ADMIN_DATABASE_URL, as scripts/env.sh sets it). Each test makes
//! its own databases and drops them.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use sdap::tables;
use tokio_postgres::{Client, NoTls};

pub static COUNTER: AtomicU32 = AtomicU32::new(0);

pub fn admin_url() -> String {
    std::env::var("MEMSHADOW_ADMIN_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:54329/memshadow".into())
}

pub fn url_for(db: &str) -> String {
    let base = admin_url();
    let cut = base.rfind('/').unwrap_or(base.len());
    format!("{}/{db}", &base[..cut])
}

pub async fn connect(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot reach Postgres at {url} (scripts/pg.sh start): {e}"));
    tokio::spawn(conn);
    client
}

/// A new, migrated, empty database; dropped when the guard goes.
pub struct Db {
    pub name: String,
    pub url: String,
}

impl Db {
    pub async fn fresh(tag: &str) -> Db {
        let name = format!(
            "sdap_{tag}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let admin = connect(&admin_url()).await;
        // Each on its own: CREATE DATABASE refuses a transaction block.
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
            .await
            .unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let url = url_for(&name);
        let mut c = edge_api::platform::native::connect_client(&url)
            .await
            .unwrap();
        edge_api::platform::migrate::migrate(&mut c, "memshadow_app")
            .await
            .unwrap();
        Db { name, url }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        // Best effort, on a thread of its own: the test's runtime may be gone.
        let name = self.name.clone();
        let admin = admin_url();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let (c, conn) = tokio_postgres::connect(&admin, NoTls).await.ok()?;
                tokio::spawn(conn);
                c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .ok()
            })
        })
        .join();
    }
}

pub const SEED: &str = r#"
INSERT INTO users (id, email, username, password_hash, created_at) VALUES
 ('00000000-0000-4000-8000-000000000001', 'ada@example.test', 'ada', '$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g', '2026-11-01 10:00:00.123456+00'),
 ('00000000-0000-4000-8000-000000000002', 'bob@example.test', 'bob', '$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2h', '2026-11-02 11:00:00+00'),
 ('00000000-0000-4000-8000-000000000003', 'cy@example.test', 'cy_3', '$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2i', '2026-11-03 12:00:00+00');
INSERT INTO webauthn_credentials (user_id, credential_id, public_key, alg, sign_count, aaguid,
  backup_eligible, backup_state, transports, name, created_at, last_used_at) VALUES
 ('00000000-0000-4000-8000-000000000001', '\x00ff10', '\xa501020326200121582000', -7, 4294967295,
  '00000000-0000-0000-0000-000000000000', true, false, '{internal,hybrid}', 'laptop "work"', '2026-11-05 00:00:00+00', NULL),
 ('00000000-0000-4000-8000-000000000002', '\x0102', '\xa4', -8, 0,
  '11111111-2222-3333-4444-555555555555', false, false, '{}', 'clé', '2026-11-06 00:00:00+00', '2026-11-07 01:02:03.000004+00');
INSERT INTO refresh_tokens (token_hash, family_id, user_id, amr, mfa_pending, hwk_at, issued_at, expires_at, used_at, revoked_at) VALUES
 (repeat('a', 64), '22222222-0000-4000-8000-000000000000', '00000000-0000-4000-8000-000000000001', '{pwd,hwk}', false, '2026-11-08 00:00:00+00', '2026-11-08 00:00:00+00', '2026-12-08 00:00:00+00', NULL, NULL),
 (repeat('b', 64), '22222222-0000-4000-8000-000000000000', '00000000-0000-4000-8000-000000000001', '{pwd}', true, NULL, '2026-11-07 00:00:00+00', '2026-12-07 00:00:00+00', '2026-11-08 00:00:00+00', NULL);
INSERT INTO memories (user_id, content, content_hash, metadata, tags, embedding, embedding_model,
  embedding_status, embed_attempts, next_embed_at, created_at, updated_at, accessed_at, access_count, expires_at)
SELECT CASE WHEN g % 2 = 0 THEN '00000000-0000-4000-8000-000000000001'::uuid
            ELSE '00000000-0000-4000-8000-000000000002'::uuid END,
       'memory ' || g || E': Ada prefers "green" tea — naïve\nsecond line',
       encode(sha256(('m' || g)::bytea), 'hex'),
       jsonb_build_object('n', g, 'note', E'tab\tquote"', 'nested', jsonb_build_object('x', g * 0.5)),
       ARRAY['t' || (g % 5), 'with space', 'comma,tag'],
       CASE WHEN g % 3 = 0 THEN NULL
            ELSE (SELECT array_agg(sin(g * i * 0.01)::real) FROM generate_series(1, 384) i)::vector END,
       CASE WHEN g % 3 = 0 THEN NULL ELSE 'all-MiniLM-L6-v2' END,
       CASE WHEN g % 3 = 0 THEN 'pending' ELSE 'ready' END,
       g % 4,
       CASE WHEN g % 3 = 0 THEN '2026-11-30 03:00:00+00'::timestamptz END,
       '2026-11-01 00:00:00+00'::timestamptz + g * interval '1 minute 0.000001 second',
       '2026-11-02 00:00:00+00'::timestamptz,
       CASE WHEN g % 7 = 0 THEN '2026-11-20 00:00:00+00'::timestamptz END,
       g % 11,
       CASE WHEN g % 10 = 0 THEN '2027-01-01 00:00:00+00'::timestamptz END
FROM generate_series(1, 230) g;
"#;

pub async fn seed(db: &Db) {
    connect(&db.url).await.batch_execute(SEED).await.unwrap();
}

/// Every row of every backed-up table, in key order, as exported text.
pub async fn snapshot(url: &str) -> Vec<(String, Vec<Vec<Option<String>>>)> {
    let c = connect(url).await;
    let mut out = Vec::new();
    for t in tables::TABLES {
        let rows = c
            .query(&t.page_sql(None), &[&None::<&str>, &"1000000"])
            .await
            .unwrap();
        let rows = rows
            .iter()
            .map(|r| {
                (0..t.columns.len())
                    .map(|i| r.get::<_, Option<String>>(i))
                    .collect()
            })
            .collect();
        out.push((t.name.to_string(), rows));
    }
    out
}

pub struct Keys {
    pub dir: PathBuf,
    pub recipient: String,
    pub trusted: String,
}

pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "sdap-test-{tag}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn sdap(args: &[&str]) -> Output {
    sdap_env(args, &[])
}

/// `sdap args…` with only `env` of the variables it reads (nothing
/// inherited from the caller's environment).
pub fn sdap_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sdap"));
    cmd.args(args).env_remove("SDAP_TRUSTED_KEY");
    for name in edge_api::s3::config::VARIABLES {
        cmd.env_remove(name);
    }
    cmd.envs(env.iter().copied()).output().unwrap()
}

pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "sdap failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn refused(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "sdap accepted what it should refuse: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn keygen() -> Keys {
    let dir = temp_dir("keys");
    let out = ok(&sdap(&["keygen", "--dir", dir.to_str().unwrap()]));
    let recipient = out
        .lines()
        .find_map(|l| l.strip_prefix("MEMSHADOW_BACKUP_RECIPIENTS="))
        .unwrap()
        .to_string();
    let trusted = std::fs::read_to_string(dir.join("signing-key.pub"))
        .unwrap()
        .trim()
        .to_string();
    Keys {
        dir,
        recipient,
        trusted,
    }
}

pub const BACKUP: &str = "20261130T030000Z";

/// `sdap export` of `db` into `store` as backup `id`, chunks of 40 rows.
pub fn export_to(db: &Db, keys: &Keys, store: &str, id: &str, env: &[(&str, &str)]) -> Output {
    let signing_key = keys.dir.join("signing-key.txt");
    sdap_env(
        &[
            "export",
            "--database",
            &db.url,
            "--to",
            store,
            "--recipient",
            &keys.recipient,
            "--signing-key",
            signing_key.to_str().unwrap(),
            "--rows-per-chunk",
            "40",
            "--backup-id",
            id,
        ],
        env,
    )
}
