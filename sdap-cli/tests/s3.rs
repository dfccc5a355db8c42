//! The `sdap` tool against a real S3 server: moto (`moto[s3]` in
//! $MEMSHADOW_VENV, `scripts/setup.sh`), which checks every request's SigV4
//! signature against an IAM user's secret. A seeded database is exported
//! into the bucket (`--to s3://…`), listed, verified and restored from it
//! (`--from s3://…`) into a fresh database that then equals the source, the
//! listing spanning two ListObjectsV2 pages; no object holds plaintext; a
//! wrong secret, missing settings, a prefix and a missing bucket are
//! refused with messages that never contain the secret.
//!
//! Needs the Postgres of `scripts/pg.sh` as well (see `common`).

mod common;
#[path = "../../wasm-host/tests/common/moto.rs"]
mod moto;

use edge_api::s3::config::{ACCESS_KEY_ID, ENDPOINT, SECRET_ACCESS_KEY};

use common::*;
use moto::Moto;

const BUCKET: &str = "memshadow-backups";
const EARLIER: &str = "20261129T030000Z";
/// 1000 objects of a backup without a manifest (an interrupted run), keyed
/// ahead of the complete ones: they fill the listing's first page.
const INCOMPLETE: &str = "20261128T030000Z";

fn identity(keys: &Keys) -> String {
    keys.dir.join("identity.txt").to_str().unwrap().to_string()
}

fn restore_args(from: &str, backup: &str, keys: &Keys, db: &Db) -> Vec<String> {
    [
        "restore",
        "--from",
        from,
        "--backup",
        backup,
        "--identity",
        &identity(keys),
        "--trusted-key",
        &keys.trusted,
        "--database",
        &db.url,
    ]
    .map(str::to_string)
    .to_vec()
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

#[tokio::test]
async fn export_list_verify_restore_through_a_bucket() {
    let work = temp_dir("s3");
    let moto = Moto::start(&work);
    let creds = moto.client("setup", &[BUCKET]);
    let key_id = creds["access_key_id"].as_str().unwrap().to_string();
    let secret = creds["secret_access_key"].as_str().unwrap().to_string();
    let env = [
        (ENDPOINT, moto.endpoint.as_str()),
        (ACCESS_KEY_ID, key_id.as_str()),
        (SECRET_ACCESS_KEY, secret.as_str()),
    ];
    let bucket = format!("s3://{BUCKET}");
    let filler = format!("backups/{INCOMPLETE}/chunk-");
    moto.client("fill", &[BUCKET, &key_id, &secret, &filler, "1000"]);

    let source = Db::fresh("s3src").await;
    seed(&source).await;
    let keys = keygen();
    ok(&export_to(&source, &keys, &bucket, EARLIER, &env));
    ok(&export_to(&source, &keys, &bucket, BACKUP, &env));

    // Both complete backups, oldest first, signed and sized; not the
    // incomplete one (on the first page, the others on the second).
    let listed = ok(&sdap_env(
        &["list", "--from", &bucket, "--trusted-key", &keys.trusted],
        &env,
    ));
    let lines: Vec<&str> = listed.lines().skip(1).collect();
    assert_eq!(lines.len(), 2, "{listed}");
    assert!(
        lines[0].starts_with(EARLIER) && lines[1].starts_with(BACKUP),
        "{listed}"
    );
    assert!(lines.iter().all(|l| l.ends_with("signed")), "{listed}");
    assert!(lines.iter().all(|l| !l.contains(" 0.0 B")), "{listed}");

    let id = identity(&keys);
    let verify = [
        "verify",
        "--from",
        bucket.as_str(),
        "--identity",
        id.as_str(),
        "--trusted-key",
        keys.trusted.as_str(),
    ];
    let verified = ok(&sdap_env(&verify, &env));
    assert!(
        verified.contains(&format!("backup {BACKUP} verified")),
        "latest is the newest complete backup: {verified}"
    );
    assert!(verified.contains("9 chunks"), "{verified}");
    assert!(verified.contains("237 rows"), "{verified}");

    let target = Db::fresh("s3dst").await;
    let args = restore_args(&bucket, "latest", &keys, &target);
    let out = ok(&sdap_env(&strs(&args), &env));
    assert!(out.contains(&format!("backup {BACKUP} restored")), "{out}");
    assert!(out.contains("row counts and content hashes match"), "{out}");
    let (a, b) = (snapshot(&source.url).await, snapshot(&target.url).await);
    assert_eq!(a, b);
    assert_eq!(b.iter().map(|(_, r)| r.len()).sum::<usize>(), 237);

    // The objects as another client sees them: no plaintext in any, and
    // the downloaded copy verifies as a folder too.
    let copy = work.join("copy");
    for backup in [EARLIER, BACKUP] {
        let prefix = format!("backups/{backup}/");
        let keys_listed = moto.client(
            "fetch",
            &[BUCKET, &key_id, &secret, &prefix, copy.to_str().unwrap()],
        );
        assert_eq!(keys_listed.as_array().unwrap().len(), 11, "{keys_listed}");
    }
    for backup in [EARLIER, BACKUP] {
        for e in std::fs::read_dir(copy.join("backups").join(backup)).unwrap() {
            let bytes = std::fs::read(e.unwrap().path()).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains("ada@example.test"));
            assert!(!text.contains("green"));
            assert!(!text.contains("memory 1"));
        }
    }
    let mut folder = verify.to_vec();
    folder[2] = copy.to_str().unwrap();
    assert!(ok(&sdap(&folder)).contains(&format!("backup {BACKUP} verified")));

    // A wrong secret: refused by the store, every command exits non-zero,
    // and no message holds either secret. The target stays as it was.
    let wrong_secret = "wrong-Secret-0123456789abcdefghijklmnop";
    let wrong = [
        (ENDPOINT, moto.endpoint.as_str()),
        (ACCESS_KEY_ID, key_id.as_str()),
        (SECRET_ACCESS_KEY, wrong_secret),
    ];
    let empty = Db::fresh("s3wrong").await;
    let explicit = restore_args(&bucket, BACKUP, &keys, &empty);
    for (what, out) in [
        (
            "list",
            sdap_env(
                &["list", "--from", &bucket, "--trusted-key", &keys.trusted],
                &wrong,
            ),
        ),
        ("verify", sdap_env(&verify, &wrong)),
        ("restore", sdap_env(&strs(&explicit), &wrong)),
        (
            "export",
            export_to(&source, &keys, &bucket, "20261201T000000Z", &wrong),
        ),
    ] {
        let err = refused(&out);
        let all = format!("{err}{}", String::from_utf8_lossy(&out.stdout));
        assert!(err.contains("HTTP 403"), "{what}: {err}");
        assert!(!all.contains(wrong_secret), "{what} printed the secret");
        assert!(!all.contains(&secret), "{what} printed the secret");
    }
    let rows = snapshot(&empty.url).await;
    assert!(rows.iter().all(|(_, r)| r.is_empty()), "{rows:?}");
    let relisted = ok(&sdap_env(
        &["list", "--from", &bucket, "--trusted-key", &keys.trusted],
        &env,
    ));
    assert!(!relisted.contains("20261201T000000Z"), "{relisted}");

    // Missing settings name the variable; a prefix and a missing bucket are
    // refused.
    let list_of = |from: &str, env: &[(&str, &str)]| {
        refused(&sdap_env(
            &["list", "--from", from, "--trusted-key", &keys.trusted],
            env,
        ))
    };
    let err = list_of(&bucket, &[]);
    let all = format!("not set: {ENDPOINT}, {ACCESS_KEY_ID}, {SECRET_ACCESS_KEY}");
    assert!(err.contains(&all), "{err}");
    let err = list_of(&bucket, &env[..2]);
    assert!(
        err.ends_with(&format!("not set: {SECRET_ACCESS_KEY}\n")),
        "{err}"
    );
    let mut bad = env;
    bad[0].1 = "ftp://127.0.0.1";
    let err = list_of(&bucket, &bad);
    assert!(
        err.contains(&format!("{ENDPOINT}: must be http(s)://")),
        "{err}"
    );
    let err = list_of(&format!("{bucket}/some/prefix"), &env);
    assert!(err.contains("expected s3://BUCKET"), "{err}");
    let err = list_of("s3://bad!name", &env);
    assert!(err.contains("the bucket name must be"), "{err}");
    let err = list_of("s3://no-such-bucket", &env);
    assert!(err.contains("NoSuchBucket"), "{err}");
}
