//! The Spin component's daily SDAP backup to an S3-compatible store: the
//! real component under `wasm-host serve`, the real Postgres, and a real
//! S3 server (moto, from PyPI) that authenticates every request by
//! recomputing its SigV4 signature with the access key's secret.
//!
//! Two backups are written through the component's S3 `Blob` (PUT, read
//! back with GET and compared by the core, retention listing with
//! ListObjectsV2 and DELETE); boto3, an independent client, then downloads
//! the bucket and `sdap::backup::verify` (what `sdap verify` runs) checks
//! the newest: signature, every chunk's sha256, decryption, row counts; the
//! `sdap` binary lists and verifies it straight from the bucket. A
//! component holding the wrong secret is refused by the server, and its
//! backup fails instead of counting as done.
//!
//! Needs the component (`scripts/build-spin.sh`), the release `sdap`
//! (`scripts/stack.sh build`), a migrated Postgres
//! (`scripts/pg.sh start`) and moto in $MEMSHADOW_VENV (`scripts/setup.sh`);
//! fails, never skips, without them.

mod common;

use std::path::PathBuf;

use base64::Engine;
use common::moto::Moto;
use common::spin::{SECRET, backup_database, call, options, tempdir, with_database};
use serde_json::Value;
use wasm_host::spin::server::Server;

const BUCKET: &str = "memshadow-backups";

/// Runs the release `sdap` binary (scripts/stack.sh build makes it) against
/// the moto bucket; returns its stdout, failing the test on a non-zero exit.
fn sdap(moto: &Moto, key_id: &str, secret: &str, args: &[&str]) -> String {
    let bin = common::spin::target_dir().join("release/sdap");
    let out = std::process::Command::new(&bin)
        .args(args)
        .env("MEMSHADOW_BACKUP_S3_ENDPOINT", &moto.endpoint)
        .env("MEMSHADOW_BACKUP_S3_ACCESS_KEY_ID", key_id)
        .env("MEMSHADOW_BACKUP_S3_SECRET_ACCESS_KEY", secret)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (scripts/stack.sh build builds it)", bin.display()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "sdap {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
/// A row the backup must carry, and that no stored object may show.
const EMAIL: &str = "s3-backup-test@example.com";

/// The database of this test (apart from spin_serve.rs's key-value backup
/// test, which may run at the same time), holding at least one user so
/// the backup has a chunk to write.
async fn seeded_database() -> String {
    let url = backup_database("memshadow_spin_s3_backup").await;
    let admin =
        std::env::var("MEMSHADOW_ADMIN_DATABASE_URL").expect("MEMSHADOW_ADMIN_DATABASE_URL");
    let client = edge_api::platform::native::connect_client(&with_database(
        &admin,
        "memshadow_spin_s3_backup",
    ))
    .await
    .expect("connect as the superuser");
    client
        .execute(
            "INSERT INTO users (email, username, password_hash, created_at) \
             VALUES ($1, 's3backup', 'not-a-hash', now()) ON CONFLICT DO NOTHING",
            &[&EMAIL],
        )
        .await
        .expect("seed a user");
    url
}

/// The backup keys and the server's settings for `secret_access_key`.
struct Setup {
    identity: sdap::age::Identity,
    signer: sdap::manifest::ManifestSigner,
}

impl Setup {
    fn new() -> Self {
        let mut rng = rand_core::OsRng;
        Self {
            identity: sdap::age::Identity::generate(&mut rng).expect("age identity"),
            signer: sdap::manifest::ManifestSigner::generate(&mut rng).expect("signing key"),
        }
    }

    fn server(
        &self,
        url: &str,
        moto: &Moto,
        key_id: &str,
        secret: &str,
        data: &tempdir::Dir,
    ) -> Server {
        let mut opts = options(url, true, data);
        opts.variables.extend([
            format!(
                "memshadow_backup_recipients={}",
                self.identity.recipient().to_bech32()
            ),
            format!(
                "memshadow_backup_signing_key={}",
                self.signer.to_base64().as_str()
            ),
            // Keep only today's newest: the second backup retires the first.
            "memshadow_backup_keep_daily=1".to_string(),
            "memshadow_backup_keep_weekly=0".to_string(),
            format!("memshadow_backup_s3_endpoint={}", moto.endpoint),
            format!("memshadow_outbound_backup_s3={}", moto.endpoint),
            format!("memshadow_backup_s3_bucket={BUCKET}"),
            format!("memshadow_backup_s3_access_key_id={key_id}"),
            format!("memshadow_backup_s3_secret_access_key={secret}"),
        ]);
        Server::new(opts).expect("server starts")
    }
}

async fn daily_backup(server: &Server) -> Value {
    let (status, body) = call(
        server,
        "POST",
        "/__memshadow/scheduled?cron=0+3+*+*+*",
        Some(SECRET),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["backup"].clone()
}

/// The downloaded copy of the bucket, as `sdap verify --from` reads it.
struct DirSource(PathBuf);

impl sdap::backup::ObjectSource for DirSource {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, sdap::Error> {
        match std::fs::read(self.0.join(key)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(sdap::Error::Store(e.to_string())),
        }
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("a list")
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_backup_goes_to_s3_signed_and_verifies_after_download() {
    let url = seeded_database().await;
    let data = tempdir::Dir::new("s3");
    let moto = Moto::start(&data.path);
    let creds = moto.client("setup", &[BUCKET]);
    let key_id = creds["access_key_id"].as_str().expect("key id").to_string();
    let secret = creds["secret_access_key"]
        .as_str()
        .expect("secret")
        .to_string();
    // The server checks signatures: without that the test below would
    // prove nothing about ours.
    assert_eq!(
        moto.client("refused", &[BUCKET, &key_id, "not-the-secret"]),
        "SignatureDoesNotMatch",
        "moto refuses a request signed with the wrong secret"
    );

    let keys = Setup::new();
    let server = keys.server(&url, &moto, &key_id, &secret, &data);
    let mut ids = Vec::new();
    for run in 0..2 {
        if run > 0 {
            // Backup ids name the second they started.
            tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
        }
        let backup = daily_backup(&server).await;
        assert_eq!(
            backup["status"],
            "done",
            "{backup}\nmoto:\n{}",
            moto.log_text()
        );
        assert!(backup["chunks_written"].as_u64() >= Some(1), "{backup}");
        ids.push(backup);
    }
    let first = ids[0]["backup_id"].as_str().expect("an id").to_string();
    let second = ids[1]["backup_id"].as_str().expect("an id").to_string();
    assert!(
        strings(&ids[1]["deleted"]).contains(&first),
        "retention (ListObjectsV2, DELETE) retired the first backup: {}",
        ids[1]
    );

    // What the bucket holds, seen by boto3.
    let copy = data.path.join("bucket");
    let listed = strings(&moto.client(
        "fetch",
        &[
            BUCKET,
            &key_id,
            &secret,
            "backups/",
            copy.to_str().expect("utf-8 path"),
        ],
    ));
    let prefix = format!("backups/{second}/");
    for name in ["manifest.json", "manifest.sig"] {
        assert!(
            listed.contains(&format!("{prefix}{name}")),
            "{name} of {second} in {listed:?}"
        );
    }
    assert!(
        !listed
            .iter()
            .any(|k| k.starts_with(&format!("backups/{first}/"))),
        "nothing of the retired backup is left: {listed:?}"
    );
    for key in &listed {
        let bytes = std::fs::read(copy.join(key)).expect("downloaded object");
        assert!(
            !bytes.windows(EMAIL.len()).any(|w| w == EMAIL.as_bytes()),
            "{key} shows a user's email in clear"
        );
    }

    // `sdap verify` on the downloaded copy.
    let manifest = sdap::backup::verify(
        &DirSource(copy),
        &second,
        &[keys.signer.public_key()],
        std::slice::from_ref(&keys.identity),
        &mut |_| {},
    )
    .expect("the downloaded backup verifies");
    assert!(!manifest.chunks.is_empty());
    assert!(
        manifest
            .chunks
            .iter()
            .all(|c| listed.contains(&format!("{prefix}{}", c.object))),
        "every chunk the manifest names was listed"
    );
    assert!(
        manifest.tables.get("users").copied() >= Some(1),
        "{:?}",
        manifest.tables
    );

    // The operator's tool straight from the bucket, no copy: `sdap list`
    // and `sdap verify --from s3://…` with the API's S3 variables.
    let identity = data.path.join("identity.txt");
    std::fs::write(&identity, keys.identity.to_bech32().as_str()).expect("identity file");
    let trusted =
        base64::engine::general_purpose::STANDARD.encode(keys.signer.public_key().as_bytes());
    let location = format!("s3://{BUCKET}");
    let listing = sdap(
        &moto,
        &key_id,
        &secret,
        &["list", "--from", &location, "--trusted-key", &trusted],
    );
    assert!(
        listing.contains(&second) && !listing.contains(&first),
        "{listing}"
    );
    let verified = sdap(
        &moto,
        &key_id,
        &secret,
        &[
            "verify",
            "--from",
            &location,
            "--backup",
            "latest",
            "--identity",
            identity.to_str().expect("utf-8 path"),
            "--trusted-key",
            &trusted,
        ],
    );
    assert!(verified.contains(&second), "{verified}");

    // The same component with the wrong secret: refused, so not done.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let wrong = keys.server(&url, &moto, &key_id, "not-the-secret", &data);
    let backup = daily_backup(&wrong).await;
    assert_eq!(backup["status"], "failed", "{backup}");
    assert!(
        !backup.to_string().contains("not-the-secret"),
        "the report never shows the secret: {backup}"
    );
    assert!(
        moto.log_text().contains(" 403 "),
        "the server refused the request"
    );
}
