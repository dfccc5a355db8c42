//! The core's entry points, the only API adapters call: [`handle`] for HTTP
//! requests and [`run_scheduled`] for cron triggers.
//!
//! This is the middleware layer: request ids, the body-size guard, turning
//! errors into responses, and one log line per request.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

pub use crate::config::{Config, ConfigError};
use crate::errors::{ApiError, ErrorCode};
use crate::http::{Request, Response};
use crate::ports::{Blob, Clock, HttpClient, Kv, Queue, Sql};
use crate::services::backup;
pub use crate::services::embed_queue::QueueOutcome;
pub use crate::services::scheduled::JobReport;

/// The ports one request or job may use, borrowed from the adapter.
pub struct Platform<'a> {
    pub sql: &'a dyn Sql,
    pub kv: &'a dyn Kv,
    pub http: &'a dyn HttpClient,
    pub clock: &'a dyn Clock,
    /// Where ingest hands pending rows for embedding.
    pub queue: &'a dyn Queue,
    /// Backup objects (the SDAP export).
    pub blob: &'a dyn Blob,
}

/// Per-request context handed to handlers and services.
pub struct Ctx<'a> {
    pub p: &'a Platform<'a>,
    pub cfg: &'a Config,
    /// "Now" for the whole request, from the Clock port, so one request
    /// sees one consistent time (expiry, token checks, timestamps).
    pub now_ms: i64,
    pub request_id: String,
}

impl Ctx<'_> {
    pub fn log(&self, msg: &str) {
        log(&format!("request_id={} {msg}", self.request_id));
    }
}

static LOGGER: OnceLock<fn(&str)> = OnceLock::new();

/// Lets an adapter route log lines to its runtime (e.g. `console_log!` on
/// Workers, where stderr goes nowhere). Without it lines go to stderr.
pub fn set_logger(f: fn(&str)) {
    let _ = LOGGER.set(f);
}

pub fn log(line: &str) {
    match LOGGER.get() {
        Some(f) => f(line),
        None => eprintln!("{line}"),
    }
}

/// Handles one request. Never panics outward (a panic in a handler becomes
/// a 500 where the target supports unwinding), and every response carries
/// `x-request-id`.
pub async fn handle(p: &Platform<'_>, cfg: &Config, req: Request) -> Response {
    let now_ms = p.clock.now_millis();
    let ctx = Ctx {
        p,
        cfg,
        now_ms,
        request_id: request_id(&req, now_ms),
    };
    let result = if req.body.len() > cfg.limits.max_body_bytes {
        Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "the request body exceeds {} bytes",
                cfg.limits.max_body_bytes
            ),
        ))
    } else {
        match (CatchUnwind(Box::pin(crate::router::route(&ctx, &req)))).await {
            Ok(r) => r,
            Err(()) => Err(ApiError::internal("handler panicked")),
        }
    };
    finish(&ctx.request_id, &req, result, p.clock.now_millis() - now_ms)
}

/// Answers a request when the configuration did not parse: 503
/// `misconfigured` everywhere (including `/health`, so monitoring notices),
/// without saying which variable is wrong; the log says that.
pub fn handle_misconfigured(err: &ConfigError, req: &Request, now_ms: i64) -> Response {
    let id = request_id(req, now_ms);
    log(&format!("request_id={id} configuration invalid: {err}"));
    let e = ApiError::new(
        ErrorCode::Misconfigured,
        "the service is misconfigured; an operator has been told",
    );
    finish(&id, req, Err(e), 0)
}

fn finish(
    request_id: &str,
    req: &Request,
    result: Result<Response, ApiError>,
    elapsed_ms: i64,
) -> Response {
    let mut res = match result {
        Ok(r) => r,
        Err(mut e) => {
            if let Some(detail) = &e.detail {
                log(&format!(
                    "request_id={request_id} error={} detail={detail}",
                    e.code.name()
                ));
            }
            let mut extra = match e.extra.take() {
                Some(Value::Object(m)) => m,
                _ => Map::new(),
            };
            extra.insert("request_id".into(), Value::String(request_id.to_string()));
            e.extra = Some(Value::Object(extra));
            e.into_response()
        }
    };
    res.headers
        .push(("x-request-id".into(), request_id.to_string()));
    log(&format!(
        "request_id={request_id} method={} path={} status={} ms={elapsed_ms}",
        req.method, req.path, res.status
    ));
    res
}

/// The one entry point for scheduled work: embeds pending rows (with
/// retries and backoff) and purges expired memories; `0 3 * * *` runs the
/// SDAP backup instead (services::backup), which other triggers resume.
/// `cron` is the trigger's schedule string, echoed in the report.
pub async fn run_scheduled(p: &Platform<'_>, cfg: &Config, cron: &str) -> JobReport {
    let now_ms = p.clock.now_millis();
    let ctx = Ctx {
        p,
        cfg,
        now_ms,
        request_id: format!("cron-{now_ms}"),
    };
    // The daily trigger runs the backup alone; every other trigger runs the
    // embedding/purge job and resumes a backup cut short by its limits.
    let report = if cron.trim() == backup::BACKUP_CRON {
        JobReport {
            cron: cron.to_string(),
            started_at: crate::services::memories::rfc3339(now_ms),
            backup: Some(backup::run(&ctx, true).await),
            ..Default::default()
        }
    } else {
        let mut r = crate::services::scheduled::run(&ctx, cron).await;
        r.backup = Some(backup::run(&ctx, false).await);
        r
    };
    log(&format!(
        "request_id={} scheduled {}",
        ctx.request_id,
        serde_json::to_string(&report).unwrap_or_default()
    ));
    report
}

/// The work queue's consumer: embeds the rows whose ids arrived (in
/// batches sized to the pool) and says which messages to acknowledge and
/// which to retry (the pool was down; the queue backs off and, after its
/// retries, moves them to the dead-letter queue).
pub async fn run_embed_queue(p: &Platform<'_>, cfg: &Config, ids: Vec<String>) -> QueueOutcome {
    let now_ms = p.clock.now_millis();
    let ctx = Ctx {
        p,
        cfg,
        now_ms,
        request_id: format!("queue-{now_ms}"),
    };
    let outcome = crate::services::embed_queue::consume(&ctx, ids).await;
    log(&format!(
        "request_id={} embed queue: {} acknowledged, {} to retry",
        ctx.request_id,
        outcome.ack.len(),
        outcome.retry.len()
    ));
    outcome
}

/// The dead-letter queue's consumer: rows whose messages ran out of
/// retries are made due again (failed ones get fresh attempts), so the
/// scheduled reconcile re-drives them.
pub async fn run_embed_dead_letters(
    p: &Platform<'_>,
    cfg: &Config,
    ids: Vec<String>,
) -> QueueOutcome {
    let now_ms = p.clock.now_millis();
    let ctx = Ctx {
        p,
        cfg,
        now_ms,
        request_id: format!("dlq-{now_ms}"),
    };
    let outcome = crate::services::embed_queue::redrive(&ctx, ids).await;
    log(&format!(
        "request_id={} embed dead letters: {} re-driven, {} to retry",
        ctx.request_id,
        outcome.ack.len(),
        outcome.retry.len()
    ));
    outcome
}

static REQUEST_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The caller's `x-request-id` when it is short and safe to echo, else the
/// Cloudflare ray id, else a fresh id. Fresh ids need uniqueness, not
/// secrecy, so they hash time, a per-process counter and the address of a
/// heap allocation instead of asking a random-number port.
pub fn request_id(req: &Request, now_ms: i64) -> String {
    let safe = |v: &str| {
        !v.is_empty()
            && v.len() <= 64
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
    };
    if let Some(v) = req.header("x-request-id").filter(|v| safe(v)) {
        return v.to_string();
    }
    if let Some(v) = req.header("cf-ray").filter(|v| safe(v)) {
        return v.to_string();
    }
    let n = REQUEST_COUNTER.fetch_add(1, Ordering::Relaxed);
    let probe = Box::new(n);
    let mut h = Sha256::new();
    h.update(now_ms.to_le_bytes());
    h.update(n.to_le_bytes());
    h.update((&*probe as *const u64 as usize).to_le_bytes());
    h.update(req.path.as_bytes());
    hex::encode(&h.finalize()[..16])
}

/// Polls a future inside `catch_unwind`, so a bug in one handler becomes a
/// 500 for that request rather than a dead isolate (where unwinding exists).
struct CatchUnwind<'a, T>(Pin<Box<dyn Future<Output = T> + 'a>>);

impl<T> Future for CatchUnwind<'_, T> {
    type Output = Result<T, ()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let fut = self.0.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(Err(())),
        }
    }
}
