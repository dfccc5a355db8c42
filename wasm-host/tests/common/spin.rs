//! Shared set-up of the tests that serve the Spin component with
//! `wasm-host serve` (spin_serve.rs, spin_s3_backup.rs): the component,
//! the database, the server's options and calls into it.

use std::path::PathBuf;

use bytes::Bytes;
use http_body_util::Full;
use serde_json::Value;
use wasm_host::spin::ServeOptions;
use wasm_host::spin::server::Server;

/// A public key only (the P-256 generator point): lets the configuration
/// parse; nothing here needs a token.
pub const TEST_JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","alg":"ES256","use":"sig","x":"axfR8uEsQkf4vOblY6RA8ncDfYEt6zOg9KE5RdiYwpY","y":"T-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU"}]}"#;
pub const SECRET: &str = "test-scheduled-secret";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Where the workspace's builds go (scripts/env.sh's CARGO_TARGET_DIR).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/memshadow/target")
        })
}

pub fn component() -> PathBuf {
    if let Some(p) = std::env::var_os("MEMSHADOW_SPIN_COMPONENT") {
        return PathBuf::from(p);
    }
    let path = target_dir().join("wasm32-wasip2/release/edge_api.wasm");
    assert!(
        path.exists(),
        "{} is missing: run scripts/build-spin.sh",
        path.display()
    );
    path
}

pub fn database_url() -> String {
    std::env::var("DATABASE_URL").expect(
        "DATABASE_URL names the migrated Postgres as memshadow_app (source scripts/env.sh; scripts/pg.sh start)",
    )
}

/// `scheme://host:port` of a postgres URL, for allowed_outbound_hosts.
pub fn origin(url: &str) -> String {
    let after_at = url.rsplit_once('@').map_or(url, |(_, rest)| rest);
    let host_port = after_at.split('/').next().unwrap_or(after_at);
    format!("postgres://{host_port}")
}

pub fn options(database_url: &str, jwks: bool, data: &tempdir::Dir) -> ServeOptions {
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
pub mod tempdir {
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

pub fn request(
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

pub async fn call(server: &Server, method: &str, path: &str, bearer: Option<&str>) -> (u16, Value) {
    let req = request(method, path, bearer, Bytes::new());
    let res = server.call(req).await.expect("the component answers");
    let status = res.status().as_u16();
    let body = serde_json::from_slice(res.body()).unwrap_or(Value::Null);
    (status, body)
}

/// `url` with its database name replaced by `db`.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, _) = url.rsplit_once('/').expect("a postgres URL has a path");
    format!("{base}/{db}")
}

/// A backup test's own database `db`, so its runs and retention never touch
/// the backup bookkeeping of the shared `memshadow` database (a stack's
/// Worker may be backing it up to R2 at the same time) or of another
/// backup test running beside it. Created and migrated when missing;
/// returns its URL as the application role.
pub async fn backup_database(db: &str) -> String {
    let admin = std::env::var("MEMSHADOW_ADMIN_DATABASE_URL")
        .expect("MEMSHADOW_ADMIN_DATABASE_URL names the superuser URL (source scripts/env.sh)");
    let server = edge_api::platform::native::connect_client(&with_database(&admin, "postgres"))
        .await
        .expect("connect as the superuser (scripts/pg.sh start)");
    let exists = server
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&db])
        .await
        .expect("look up the database")
        .is_some();
    if !exists
        && let Err(e) = server.batch_execute(&format!("CREATE DATABASE {db}")).await
        && e.code() != Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE)
    {
        panic!("create {db}: {e}");
    }
    let mut client = edge_api::platform::native::connect_client(&with_database(&admin, db))
        .await
        .expect("connect to the backup test's database");
    edge_api::platform::migrate::migrate(&mut client, "memshadow_app")
        .await
        .expect("migrate the backup test's database");
    with_database(&database_url(), db)
}
