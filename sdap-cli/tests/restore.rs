//! The `sdap` tool against the real Postgres: export a seeded database,
//! verify, restore into a fresh one and compare every row; and every
//! tampering case refused through the command line, with the target left
//! untouched.
//!
//! Needs the Postgres of `scripts/pg.sh` (superuser URL in
//! MEMSHADOW_ADMIN_DATABASE_URL, as scripts/env.sh sets it). Each test makes
//! its own databases and drops them.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;

fn export(db: &Db, keys: &Keys, store: &Path) {
    ok(&export_to(db, keys, store.to_str().unwrap(), BACKUP, &[]));
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
