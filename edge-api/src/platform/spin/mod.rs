//! Spin adapter (feature `spin`, target `wasm32-wasip2`, spin-sdk 7 on WASI
//! 0.3): the `#[http_service]` entry point and the ports over Spin's
//! interfaces. Nothing outside this module names a spin-sdk type.
//!
//! What the component uses (declared in `spin.toml` at the repository root):
//! - Postgres: `spin:postgres/postgres@4.2.0` ([`sql::SpinSql`]), the URL
//!   from the variable `memshadow_database_url` (a secret); its host must be
//!   in `allowed_outbound_hosts` as `postgres://host:port`.
//! - Key-value: `spin:key-value/key-value@3.0.0`, store `default`
//!   ([`kv::SpinKv`], the embedding cache; TTL kept by the adapter).
//! - Variables: `spin:variables@3.0.0`, one per setting of the core under its
//!   lower-cased name ([`variables`]).
//! - Backups (the SDAP objects): an S3-compatible store over outbound HTTP
//!   with SigV4 ([`s3_blob::S3Blob`]) when `memshadow_backup_s3_endpoint`
//!   is set; otherwise the key-value store `backups` ([`blob::SpinBlob`]).
//! - Outbound HTTP: `wasi:http@0.3` to the embedding pool, the backup
//!   webhook ([`http_client::SpinHttp`]) and the S3 endpoint.
//!
//! Queue: Spin has none; [`queue::NoQueue`] refuses every send, so the rows
//! ingest stores stay pending and the scheduled reconcile embeds them (the
//! core's path for any failed enqueue). There is no queue consumer or
//! dead-letter entry point here: the reconcile also revives failed rows.
//!
//! Scheduled jobs: Spin has no cron event for HTTP components, so the
//! core's [`app::run_scheduled`] is reached through `POST
//! /__memshadow/scheduled` with `authorization: Bearer <secret>`, where the
//! secret is the variable `memshadow_scheduled_secret`. A cron trigger (a
//! Kubernetes CronJob on SpinKube, any scheduler elsewhere) or the local
//! runtime's timer (`wasm-host serve`) calls it. Without the variable the
//! route does not exist (404 like any unknown path); a wrong secret gets the
//! same 404, and the log says why. `?cron=0+3+*+*+*` starts the daily
//! backup, as the Worker's second Cron Trigger does; every other call runs
//! the embedding/purge job and resumes a backup cut short.
//!
//! Build: `cargo build -p edge-api --no-default-features --features spin
//! --target wasm32-wasip2 --release` (what `spin build` runs).

mod blob;
mod clock;
mod http_client;
mod kv;
mod queue;
mod request;
mod s3_blob;
mod sql;
mod variables;

use std::future::Future;
use std::time::Duration;

use futures_util::future::{Either, select};

use crate::app::{self, Platform};
use crate::limits::Limits;
use crate::ports::{Blob, Clock};
use crate::s3::S3Config;

use blob::SpinBlob;
use clock::SystemClock;
use http_client::SpinHttp;
use kv::SpinKv;
use queue::NoQueue;
use s3_blob::S3Blob;
use sql::SpinSql;

/// Variable holding the Postgres URL for `spin:postgres` (a secret: it
/// carries the password). Not part of the core's configuration: only this
/// adapter connects by URL.
pub const DATABASE_URL_VAR: &str = "MEMSHADOW_DATABASE_URL";

/// Variable holding the bearer secret of the scheduled route.
pub const SCHEDULED_SECRET_VAR: &str = "MEMSHADOW_SCHEDULED_SECRET";

/// The route a scheduler calls to run the scheduled jobs.
pub const SCHEDULED_PATH: &str = "/__memshadow/scheduled";

/// The cron string passed to the core when the caller names none; the same
/// schedule as the Worker's trigger.
const DEFAULT_CRON: &str = "*/5 * * * *";

/// The ports for one request. Spin gives every request a fresh instance,
/// so nothing here outlives it.
struct Ports {
    sql: SpinSql,
    kv: SpinKv,
    http: SpinHttp,
    clock: SystemClock,
    queue: NoQueue,
    backups: BackupStore,
}

/// Where backups go: the configured S3-compatible store, else the
/// key-value store `backups`.
enum BackupStore {
    KeyValue(SpinBlob),
    S3(S3Blob),
}

impl BackupStore {
    fn blob(&self) -> &dyn Blob {
        match self {
            Self::KeyValue(kv) => kv,
            Self::S3(s3) => s3,
        }
    }
}

impl Ports {
    async fn new(s3: Option<S3Config>) -> Self {
        Self {
            sql: SpinSql::new(variables::get(DATABASE_URL_VAR).await),
            kv: SpinKv,
            http: SpinHttp,
            clock: SystemClock,
            queue: NoQueue,
            backups: s3.map_or(BackupStore::KeyValue(SpinBlob), |cfg| {
                BackupStore::S3(S3Blob::new(cfg))
            }),
        }
    }

    fn platform(&self) -> Platform<'_> {
        Platform {
            sql: &self.sql,
            kv: &self.kv,
            http: &self.http,
            clock: &self.clock,
            queue: &self.queue,
            blob: self.backups.blob(),
        }
    }
}

/// Runs `fut` unless `limit` passes first (then `None`; `fut` is dropped,
/// which cancels a pending host call).
pub(crate) async fn with_timeout<F: Future>(limit: Duration, fut: F) -> Option<F::Output> {
    let fut = std::pin::pin!(fut);
    let timer = std::pin::pin!(spin_sdk::time::sleep(limit));
    match select(fut, timer).await {
        Either::Left((out, _)) => Some(out),
        Either::Right(((), _)) => None,
    }
}

#[spin_sdk::http_service]
async fn serve(
    req: spin_sdk::http::Request,
) -> ::http::Response<http_body_util::Full<bytes::Bytes>> {
    // The backup store's settings are the adapter's own; an invalid one
    // makes the whole configuration invalid, as a bad core setting does.
    let cfg = match variables::load_config().await {
        Ok(cfg) => variables::load_s3_config().await.map(|s3| (cfg, s3)),
        Err(e) => Err(e),
    };
    let max_body_bytes = match &cfg {
        Ok((cfg, _)) => cfg.limits.max_body_bytes,
        Err(_) => Limits::default().max_body_bytes,
    };
    let Some(req) = request::to_core(req, max_body_bytes).await else {
        return request::from_core(crate::http::Response {
            status: 400,
            ..Default::default()
        });
    };
    let resp = match cfg {
        Ok((cfg, s3)) => {
            let ports = Ports::new(s3).await;
            if let Some(cron) = scheduled_call(&req).await {
                let report = app::run_scheduled(&ports.platform(), &cfg, &cron).await;
                crate::json::response(200, &report)
            } else {
                app::handle(&ports.platform(), &cfg, req).await
            }
        }
        Err(e) => app::handle_misconfigured(&e, &req, SystemClock.now_millis()),
    };
    request::from_core(resp)
}

/// The cron string when `req` is an authorised call of the scheduled route
/// (`?cron=` names the schedule, as `wrangler dev`'s `/__scheduled` does).
async fn scheduled_call(req: &crate::http::Request) -> Option<String> {
    if req.path != SCHEDULED_PATH || req.method != "POST" {
        return None;
    }
    let secret = variables::get(SCHEDULED_SECRET_VAR).await?;
    let given = req
        .header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !constant_time_eq(given.as_bytes(), secret.as_bytes()) {
        app::log(&format!("{SCHEDULED_PATH}: wrong or missing bearer secret"));
        return None;
    }
    let cron = crate::router::parse_query(&req.query)
        .unwrap_or_default()
        .into_iter()
        .find(|(name, value)| name == "cron" && !value.is_empty())
        .map_or_else(|| DEFAULT_CRON.to_string(), |(_, value)| value);
    Some(cron)
}

/// Compares secrets without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
