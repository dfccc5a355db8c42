//! The `sdap` tool against the real Postgres: export a seeded database,
//! verify, restore into a fresh one and compare every row; and every
//! tampering case refused through the command line, with the target left
//! untouched.
//!
//! Needs the Postgres of `scripts/pg.sh` (superuser URL in
//! MEMSHADOW_ADMIN_DATABASE_URL, as scripts/env.sh sets it). Each test makes
//! its own databases and drops them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use sdap::tables;
use tokio_postgres::{Client, NoTls};

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn admin_url() -> String {
    std::env::var("MEMSHADOW_ADMIN_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:54329/memshadow".into())
}

fn url_for(db: &str) -> String {
    let base = admin_url();
    let cut = base.rfind('/').unwrap_or(base.len());
    format!("{}/{db}", &base[..cut])
}

async fn connect(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot reach Postgres at {url} (scripts/pg.sh start): {e}"));
    tokio::spawn(conn);
    client
}

/// A new, migrated, empty database; dropped when the guard goes.
struct Db {
    name: String,
    url: String,
}

impl Db {
    async fn fresh(tag: &str) -> Db {
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

const SEED: &str = r#"
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

async fn seed(db: &Db) {
    connect(&db.url).await.batch_execute(SEED).await.unwrap();
}

/// Every row of every backed-up table, in key order, as exported text.
async fn snapshot(url: &str) -> Vec<(String, Vec<Vec<Option<String>>>)> {
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

struct Keys {
    dir: PathBuf,
    recipient: String,
    trusted: String,
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "sdap-test-{tag}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn sdap(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sdap"))
        .args(args)
        .env_remove("SDAP_TRUSTED_KEY")
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "sdap failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn refused(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "sdap accepted what it should refuse: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn keygen() -> Keys {
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

const BACKUP: &str = "20261130T030000Z";

fn export(db: &Db, keys: &Keys, store: &Path) {
    ok(&sdap(&[
        "export",
        "--database",
        &db.url,
        "--to",
        store.to_str().unwrap(),
        "--recipient",
        &keys.recipient,
        "--signing-key",
        keys.dir.join("signing-key.txt").to_str().unwrap(),
        "--rows-per-chunk",
        "40",
        "--backup-id",
        BACKUP,
    ]));
}

fn verify(keys: &Keys, store: &Path) -> Output {
    sdap(&[
        "verify",
        "--from",
        store.to_str().unwrap(),
        "--backup",
        "latest",
        "--identity",
        keys.dir.join("identity.txt").to_str().unwrap(),
        "--trusted-key",
        &keys.trusted,
    ])
}

fn restore(keys: &Keys, store: &Path, target: &Db, extra: &[&str]) -> Output {
    let identity = keys.dir.join("identity.txt");
    let mut args = vec![
        "restore",
        "--from",
        store.to_str().unwrap(),
        "--backup",
        BACKUP,
        "--identity",
        identity.to_str().unwrap(),
        "--trusted-key",
        &keys.trusted,
        "--database",
        &target.url,
    ];
    args.extend_from_slice(extra);
    sdap(&args)
}

fn copy_store(from: &Path) -> PathBuf {
    let to = temp_dir("tampered");
    let src = from.join("backups").join(BACKUP);
    let dst = to.join("backups").join(BACKUP);
    std::fs::create_dir_all(&dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
    to
}

fn object(store: &Path, name: &str) -> PathBuf {
    store.join("backups").join(BACKUP).join(name)
}

async fn is_empty(db: &Db) -> bool {
    snapshot(&db.url)
        .await
        .iter()
        .all(|(_, rows)| rows.is_empty())
}

#[tokio::test]
async fn export_verify_restore_round_trip_reproduces_every_row() {
    let source = Db::fresh("src").await;
    seed(&source).await;
    let keys = keygen();
    let store = temp_dir("store");
    export(&source, &keys, &store);

    let listed = ok(&sdap(&[
        "list",
        "--from",
        store.to_str().unwrap(),
        "--trusted-key",
        &keys.trusted,
    ]));
    assert!(
        listed.contains(BACKUP) && listed.contains("signed"),
        "{listed}"
    );
    let verified = ok(&verify(&keys, &store));
    // 3 + 2 + 2 + 230 rows; memories in 6 chunks of <= 40.
    assert!(verified.contains("9 chunks"), "{verified}");
    assert!(verified.contains("237 rows"), "{verified}");

    let target = Db::fresh("dst").await;
    let out = ok(&restore(&keys, &store, &target, &[]));
    assert!(out.contains("memories: 230 rows"), "{out}");
    assert!(out.contains("row counts and content hashes match"), "{out}");
    let (a, b) = (snapshot(&source.url).await, snapshot(&target.url).await);
    assert_eq!(a, b);
    assert_eq!(b.iter().map(|(_, r)| r.len()).sum::<usize>(), 237);

    // The restored rows work as rows: full-text search (the generated
    // column) and vector distance.
    let c = connect(&target.url).await;
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM memories WHERE content_tsv @@ plainto_tsquery('english', 'green tea') \
             AND embedding <=> (SELECT embedding FROM memories WHERE embedding IS NOT NULL LIMIT 1) < 2",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(n > 100, "{n}");

    // A non-empty database is refused without --merge, untouched…
    let again = refused(&restore(&keys, &store, &target, &[]));
    assert!(again.contains("not empty"), "{again}");
    // …and --merge adds nothing that is already there.
    let merged = ok(&restore(&keys, &store, &target, &["--merge"]));
    assert!(
        merged.contains("memories: 0 rows inserted, 230 already present"),
        "{merged}"
    );
    assert_eq!(snapshot(&target.url).await, a);

    // No object holds plaintext.
    for e in std::fs::read_dir(store.join("backups").join(BACKUP)).unwrap() {
        let bytes = std::fs::read(e.unwrap().path()).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("ada@example.test"));
        assert!(!text.contains("green"));
    }
}

#[tokio::test]
async fn tampered_backups_are_refused_through_the_cli_and_nothing_is_written() {
    let source = Db::fresh("tsrc").await;
    seed(&source).await;
    let keys = keygen();
    let store = temp_dir("tstore");
    export(&source, &keys, &store);
    let target = Db::fresh("tdst").await;

    // A flipped byte.
    let s = copy_store(&store);
    let p = object(&s, "chunk-000005.age");
    let mut bytes = std::fs::read(&p).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&p, bytes).unwrap();
    let err = refused(&restore(&keys, &s, &target, &[]));
    assert!(
        err.contains("chunk 5 (chunk-000005.age, table memories): sha256 does not match"),
        "{err}"
    );
    assert!(refused(&verify(&keys, &s)).contains("chunk 5 (chunk-000005.age"));

    // A missing chunk.
    let s = copy_store(&store);
    std::fs::remove_file(object(&s, "chunk-000003.age")).unwrap();
    let err = refused(&restore(&keys, &s, &target, &[]));
    assert!(
        err.contains("chunk 3 (chunk-000003.age, table memories) is missing"),
        "{err}"
    );

    // Two chunks swapped.
    let s = copy_store(&store);
    std::fs::rename(object(&s, "chunk-000004.age"), object(&s, "x")).unwrap();
    std::fs::rename(
        object(&s, "chunk-000006.age"),
        object(&s, "chunk-000004.age"),
    )
    .unwrap();
    std::fs::rename(object(&s, "x"), object(&s, "chunk-000006.age")).unwrap();
    let err = refused(&restore(&keys, &s, &target, &[]));
    assert!(err.contains("chunk 4 (chunk-000004.age"), "{err}");
    assert!(err.contains("holds chunk 6's bytes"), "{err}");

    // The manifest edited after signing.
    let s = copy_store(&store);
    let p = object(&s, "manifest.json");
    let text = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, text.replacen("\"users\": 3", "\"users\": 2", 1)).unwrap();
    let err = refused(&restore(&keys, &s, &target, &[]));
    assert!(err.contains("changed after it was signed"), "{err}");

    // Signed by another key: a second key pair re-signs the manifest.
    let s = copy_store(&store);
    let intruder = keygen();
    let manifest: sdap::manifest::Manifest =
        serde_json::from_slice(&std::fs::read(object(&s, "manifest.json")).unwrap()).unwrap();
    let signer = sdap::manifest::ManifestSigner::parse(
        &std::fs::read_to_string(intruder.dir.join("signing-key.txt")).unwrap(),
    )
    .unwrap();
    let (m, sig) = signer.sign(&manifest).unwrap();
    std::fs::write(object(&s, "manifest.json"), m).unwrap();
    std::fs::write(object(&s, "manifest.sig"), sig).unwrap();
    let err = refused(&restore(&keys, &s, &target, &[]));
    assert!(err.contains("not a trusted signing key"), "{err}");

    // The wrong identity.
    let stranger = keygen();
    let out = sdap(&[
        "restore",
        "--from",
        store.to_str().unwrap(),
        "--backup",
        BACKUP,
        "--identity",
        stranger.dir.join("identity.txt").to_str().unwrap(),
        "--trusted-key",
        &keys.trusted,
        "--database",
        &target.url,
    ]);
    let err = refused(&out);
    assert!(err.contains("is not a recipient of this backup"), "{err}");

    // Nothing of any of it reached the database.
    assert!(is_empty(&target).await);
    // And the untouched backup still restores.
    ok(&restore(&keys, &store, &target, &[]));
    assert!(!is_empty(&target).await);
}

#[tokio::test]
async fn a_database_without_the_schema_is_refused() {
    let source = Db::fresh("ssrc").await;
    seed(&source).await;
    let keys = keygen();
    let store = temp_dir("sstore");
    export(&source, &keys, &store);
    let admin = connect(&admin_url()).await;
    let bare = format!("sdap_bare_{}", std::process::id());
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {bare}"))
        .await
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {bare}"))
        .await
        .unwrap();
    let guard = Db {
        url: url_for(&bare),
        name: bare,
    };
    let err = refused(&restore(&keys, &store, &guard, &[]));
    assert!(err.contains("no migration history"), "{err}");
}
