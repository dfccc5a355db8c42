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

mod common;

use bytes::Bytes;
use common::spin::{SECRET, backup_database, call, database_url, options, request, tempdir};
use serde_json::Value;
use std::path::PathBuf;
use wasm_host::spin::server::Server;

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

/// Where `wasm-host serve` keeps `key` of store `label`: under `kv/` in its
/// data directory, one directory per store, files named by the key's hex
/// (src/spin/server.rs, src/spin/kv.rs).
fn kv_file(data: &tempdir::Dir, label: &str, key: &str) -> PathBuf {
    data.path.join("kv").join(label).join(hex::encode(key))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_backup_goes_to_the_backups_store_and_retention_deletes_from_it() {
    let url = backup_database("memshadow_spin_backup").await;
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
