//! `wasm-host serve` running the real Spin component against the real
//! Postgres: health, the secret-guarded scheduled route (which goes through
//! spin:postgres and the adapter's transaction), an unreachable database
//! answering 503 through /ready, and a configuration without its JWKS
//! answering 503 `misconfigured`, and a request that outgrows the memory
//! limit failing alone (the next request gets a fresh instance), and the
//! daily SDAP backup written to the key-value store `backups` (the Spin
//! adapter's Blob), read back, and deleted again by retention.
//!
//! Needs the component (`scripts/build-spin.sh`) and a migrated Postgres at
//! `DATABASE_URL` (`scripts/pg.sh start`; `scripts/env.sh` sets the URL);
//! fails, never skips, without them. Each server compiles the component
//! (seconds in release, about a minute in a debug build).

use std::path::PathBuf;

use bytes::Bytes;
use http_body_util::Full;
use serde_json::Value;
use wasm_host::spin::ServeOptions;
use wasm_host::spin::server::Server;

/// A public key only (the P-256 generator point): lets the configuration
/// parse; nothing here needs a token.
const TEST_JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","alg":"ES256","use":"sig","x":"axfR8uEsQkf4vOblY6RA8ncDfYEt6zOg9KE5RdiYwpY","y":"T-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU"}]}"#;
const SECRET: &str = "test-scheduled-secret";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn component() -> PathBuf {
    if let Some(p) = std::env::var_os("MEMSHADOW_SPIN_COMPONENT") {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/memshadow/target")
        });
    let path = target.join("wasm32-wasip2/release/edge_api.wasm");
    assert!(
        path.exists(),
        "{} is missing: run scripts/build-spin.sh",
        path.display()
    );
    path
}

fn database_url() -> String {
    std::env::var("DATABASE_URL").expect(
        "DATABASE_URL names the migrated Postgres as memshadow_app (source scripts/env.sh; scripts/pg.sh start)",
    )
}

/// `scheme://host:port` of a postgres URL, for allowed_outbound_hosts.
fn origin(url: &str) -> String {
    let after_at = url.rsplit_once('@').map_or(url, |(_, rest)| rest);
    let host_port = after_at.split('/').next().unwrap_or(after_at);
    format!("postgres://{host_port}")
}

fn options(database_url: &str, jwks: bool, data: &tempdir::Dir) -> ServeOptions {
    let mut variables = vec![
        format!("memshadow_database_url={database_url}"),
        format!("memshadow_outbound_postgres={}", origin(database_url)),
        format!("memshadow_scheduled_secret={SECRET}"),
    ];
    if jwks {
        variables.push(format!("memshadow_jwt_public_keys={TEST_JWKS}"));
    } else {
        // Required by the manifest, so present, but empty: the core reads
        // it as unset.
        variables.push("memshadow_jwt_public_keys=".to_string());
    }
    ServeOptions {
        manifest: repo().join("spin.toml"),
        component: Some(component()),
        listen: "127.0.0.1:0".parse().expect("addr"),
        variables,
        variables_file: None,
        data_dir: data.path.clone(),
        max_memory_mib: 256,
        timeout_ms: 30_000,
        max_body_bytes: 1 << 20,
        cache_dir: None,
        scheduled_every_s: 0,
    }
}

/// A unique scratch directory, removed on drop.
mod tempdir {
    use std::path::PathBuf;

    pub struct Dir {
        pub path: PathBuf,
    }

    impl Dir {
        pub fn new(tag: &str) -> Self {
            let path = std::env::temp_dir().join(format!(
                "wasm-host-spin-{tag}-{}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos())
            ));
            std::fs::create_dir_all(&path).expect("temp dir");
            Self { path }
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn request(
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Bytes,
) -> http::Request<Full<Bytes>> {
    let mut req = http::Request::builder()
        .method(method)
        .uri(format!("http://localhost{path}"))
        .header("content-type", "application/json");
    if let Some(b) = bearer {
        req = req.header("authorization", format!("Bearer {b}"));
    }
    req.body(Full::new(body)).expect("request")
}

async fn call(server: &Server, method: &str, path: &str, bearer: Option<&str>) -> (u16, Value) {
    let req = request(method, path, bearer, Bytes::new());
    let res = server.call(req).await.expect("the component answers");
    let status = res.status().as_u16();
    let body = serde_json::from_slice(res.body()).unwrap_or(Value::Null);
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_health_and_the_scheduled_route_over_real_postgres() {
    let data = tempdir::Dir::new("ok");
    let server = Server::new(options(&database_url(), true, &data)).expect("server starts");

    let (status, body) = call(&server, "GET", "/health", None).await;
    assert_eq!(
        (status, &body["status"]),
        (200, &Value::from("ok")),
        "{body}"
    );

    let (status, body) = call(
        &server,
        "POST",
        "/__memshadow/scheduled?cron=*/5+*+*+*+*",
        Some(SECRET),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["cron"], "*/5 * * * *");
    assert_eq!(
        body["errors"],
        Value::Array(vec![]),
        "every scheduled statement ran over spin:postgres: {body}"
    );

    let (status, body) = call(&server, "POST", "/__memshadow/scheduled", Some("wrong")).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (404, &Value::from("not_found"))
    );
    let (status, _) = call(&server, "GET", "/__memshadow/scheduled", Some(SECRET)).await;
    assert_eq!(status, 404, "only POST runs the jobs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_answers_503_and_a_missing_jwks_misconfigured() {
    let data = tempdir::Dir::new("down");
    // Port 9 (discard) on loopback: nothing listens, the connect is refused.
    let server = Server::new(options(
        "postgres://memshadow_app:x@127.0.0.1:9/memshadow",
        true,
        &data,
    ))
    .expect("server starts");
    let (status, body) = call(&server, "GET", "/ready", None).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["checks"]["postgres"], "down", "{body}");
    let (status, body) = call(&server, "GET", "/health", None).await;
    assert_eq!(status, 200, "health needs no database: {body}");

    let server = Server::new(options(&database_url(), false, &data)).expect("server starts");
    let (status, body) = call(&server, "GET", "/health", None).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (503, &Value::from("misconfigured")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_the_memory_limit_fails_alone() {
    let data = tempdir::Dir::new("oom");
    let mut opts = options(&database_url(), true, &data);
    // Enough for the component and small requests; a 900 KB body needs more.
    opts.max_memory_mib = 3;
    let server = Server::new(opts).expect("server starts");
    let (status, _) = call(&server, "GET", "/health", None).await;
    assert_eq!(status, 200);

    let big = Bytes::from(vec![b'a'; 900_000]);
    let outcome = server
        .call(request("POST", "/api/v1/memory/ingest", Some("x"), big))
        .await;
    let err = outcome.expect_err("growing past 3 MiB traps the instance");
    assert!(
        format!("{err:?}").contains("memory"),
        "the trap names the memory limit: {err:?}"
    );

    let (status, body) = call(&server, "GET", "/health", None).await;
    assert_eq!(
        status, 200,
        "the next request runs in a fresh instance: {body}"
    );
}

/// `url` with its database name replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let (base, _) = url.rsplit_once('/').expect("a postgres URL has a path");
    format!("{base}/{db}")
}

/// The backup test's own database, so its runs and retention never touch
/// the backup bookkeeping of the shared `memshadow` database (a stack's
/// Worker may be backing it up to R2 at the same time). Created and
/// migrated when missing; returns its URL as the application role.
async fn backup_database() -> String {
    const DB: &str = "memshadow_spin_backup";
    let admin = std::env::var("MEMSHADOW_ADMIN_DATABASE_URL")
        .expect("MEMSHADOW_ADMIN_DATABASE_URL names the superuser URL (source scripts/env.sh)");
    let server = edge_api::platform::native::connect_client(&with_database(&admin, "postgres"))
        .await
        .expect("connect as the superuser (scripts/pg.sh start)");
    let exists = server
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&DB])
        .await
        .expect("look up the database")
        .is_some();
    if !exists
        && let Err(e) = server.batch_execute(&format!("CREATE DATABASE {DB}")).await
        && e.code() != Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE)
    {
        panic!("create {DB}: {e}");
    }
    let mut client = edge_api::platform::native::connect_client(&with_database(&admin, DB))
        .await
        .expect("connect to the backup test's database");
    edge_api::platform::migrate::migrate(&mut client, "memshadow_app")
        .await
        .expect("migrate the backup test's database");
    with_database(&database_url(), DB)
}

/// Where `wasm-host serve` keeps `key` of store `label`: under `kv/` in its
/// data directory, one directory per store, files named by the key's hex
/// (src/spin/server.rs, src/spin/kv.rs).
fn kv_file(data: &tempdir::Dir, label: &str, key: &str) -> PathBuf {
    data.path.join("kv").join(label).join(hex::encode(key))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_backup_goes_to_the_backups_store_and_retention_deletes_from_it() {
    let url = backup_database().await;
    let data = tempdir::Dir::new("backup");
    let mut rng = rand_core::OsRng;
    let identity = sdap::age::Identity::generate(&mut rng).expect("age identity");
    let signer = sdap::manifest::ManifestSigner::generate(&mut rng).expect("signing key");
    let mut opts = options(&url, true, &data);
    opts.variables.extend([
        format!(
            "memshadow_backup_recipients={}",
            identity.recipient().to_bech32()
        ),
        format!(
            "memshadow_backup_signing_key={}",
            signer.to_base64().as_str()
        ),
        // Keep only today's newest: the second backup retires the first.
        "memshadow_backup_keep_daily=1".to_string(),
        "memshadow_backup_keep_weekly=0".to_string(),
    ]);
    let server = Server::new(opts).expect("server starts");

    let mut ids = Vec::new();
    for run in 0..2 {
        if run > 0 {
            // Backup ids name the second they started.
            tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
        }
        let (status, body) = call(
            &server,
            "POST",
            "/__memshadow/scheduled?cron=0+3+*+*+*",
            Some(SECRET),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let backup = &body["backup"];
        assert_eq!(backup["status"], "done", "{body}");
        let id = backup["backup_id"]
            .as_str()
            .expect("a backup id")
            .to_string();
        // Written (and read back by the core) through spin:key-value.
        for name in ["manifest.json", "manifest.sig"] {
            let key = format!("backups/{id}/{name}");
            assert!(
                kv_file(&data, "backups", &key).is_file(),
                "{key} is in the backups store"
            );
        }
        ids.push((id, body));
    }
    let (first, _) = &ids[0];
    let (_, second) = &ids[1];
    let deleted: Vec<&str> = second["backup"]["deleted"]
        .as_array()
        .expect("deleted is a list")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        deleted.contains(&first.as_str()),
        "retention retired the first backup: {second}"
    );
    let manifest = format!("backups/{first}/manifest.json");
    assert!(
        !kv_file(&data, "backups", &manifest).exists(),
        "its objects are gone from the store (listed and deleted there)"
    );
}
