//! Cloudflare Workers adapter (feature `cloudflare`, target
//! `wasm32-unknown-unknown`): the `fetch` and `scheduled` entry points, and
//! the ports implemented over Workers bindings. Nothing outside this module
//! names a workers-rs type.
//!
//! Bindings (declared in `wrangler.toml` at the repository root):
//! - `HYPERDRIVE` (Hyperdrive): Postgres for [`sql::HyperdriveSql`], one
//!   connection per request, opened by the first query.
//! - `MEMSHADOW_KV` (KV namespace): [`kv::WorkersKv`], the embedding cache.
//! - `MEMSHADOW_EMBED_QUEUE` (Queues producer): [`queue::WorkersQueue`],
//!   ids of rows ingest stored as pending. The same Worker consumes that
//!   queue ([`queue`] entry point, [`app::run_embed_queue`]) and its
//!   dead-letter queue ([`app::run_embed_dead_letters`]).
//! - `MEMSHADOW_BACKUPS` (R2 bucket): [`blob::R2Blob`], the SDAP backups.
//! - vars and secrets named like the core's configuration
//!   (`MEMSHADOW_JWT_PUBLIC_KEYS` as a secret, the rest as `[vars]`), read
//!   through [`Config::from_lookup`].
//! - `MEMSHADOW_DEV_DATABASE_URL` (optional, local runs only): Postgres over
//!   a plain socket instead of Hyperdrive; see [`sql::DIRECT_URL_VAR`].
//!
//! Outbound HTTP uses the global `fetch` ([`http_client::WorkersFetch`]) and
//! time comes from `Date.now()` ([`clock::JsClock`]). Core log lines go to
//! `console.log`.
//!
//! Build: `scripts/build-worker.sh` (worker-build with `--features
//! cloudflare`, profile `release-worker`, then `wasm-opt -Oz`; output in
//! `edge-api/build/`, about 1.2 MiB, 0.5 MiB gzip). Run locally:
//! `wrangler dev --local --test-scheduled --env-file <dotenv with
//! MEMSHADOW_JWT_PUBLIC_KEYS>` from the repository root; trigger the cron
//! with `GET /__scheduled?cron=*/5+*+*+*+*`. Deploy: `wrangler deploy` after
//! `wrangler hyperdrive create`, `wrangler kv namespace create` and `wrangler
//! secret put MEMSHADOW_JWT_PUBLIC_KEYS`. `edge-api/CLOUDFLARE.md` has the
//! exact commands.

mod blob;
mod clock;
mod http_client;
mod kv;
mod queue;
mod request;
mod sql;

use worker::{Context, Env, MessageBatch, MessageExt, ScheduleContext, ScheduledEvent, event};

use crate::app::{self, Platform};
use crate::config::{Config, ConfigError};
use crate::limits::Limits;
use crate::ports::Clock;

use blob::R2Blob;
use clock::JsClock;
use http_client::WorkersFetch;
use kv::WorkersKv;
use queue::WorkersQueue;
use sql::HyperdriveSql;

/// The ports for one invocation. Each request gets its own, so nothing
/// (least of all a Postgres connection) outlives the request that opened it.
struct Ports {
    sql: HyperdriveSql,
    kv: WorkersKv,
    http: WorkersFetch,
    clock: JsClock,
    queue: WorkersQueue,
    blob: R2Blob,
}

impl Ports {
    fn new(env: &Env) -> Self {
        Self {
            sql: HyperdriveSql::new(env.clone()),
            kv: WorkersKv::new(env.clone()),
            http: WorkersFetch,
            clock: JsClock,
            queue: WorkersQueue::new(env.clone()),
            blob: R2Blob::new(env.clone()),
        }
    }

    fn platform(&self) -> Platform<'_> {
        Platform {
            sql: &self.sql,
            kv: &self.kv,
            http: &self.http,
            clock: &self.clock,
            queue: &self.queue,
            blob: &self.blob,
        }
    }
}

/// Reads configuration from vars and secrets (both arrive as strings on
/// `env`); an absent or non-string binding reads as unset.
fn load_config(env: &Env) -> Result<Config, ConfigError> {
    Config::from_lookup(|name| env.var(name).ok().map(|value| value.to_string()))
}

/// Runs once per isolate: core log lines go to the Workers console
/// (`wrangler dev` output, `wrangler tail`, Workers Logs).
#[event(start)]
fn start() {
    app::set_logger(|line| worker::console_log!("{line}"));
}

#[event(fetch)]
async fn fetch(req: worker::Request, env: Env, _ctx: Context) -> worker::Result<worker::Response> {
    let cfg = load_config(&env);
    let max_body_bytes = match &cfg {
        Ok(cfg) => cfg.limits.max_body_bytes,
        Err(_) => Limits::default().max_body_bytes,
    };
    let req = request::to_core(req, max_body_bytes).await?;
    let resp = match cfg {
        Ok(cfg) => {
            let ports = Ports::new(&env);
            app::handle(&ports.platform(), &cfg, req).await
        }
        Err(e) => app::handle_misconfigured(&e, &req, JsClock.now_millis()),
    };
    Ok(request::from_core(resp))
}

/// The single entry point for Cron Triggers: the core decides what each cron
/// expression runs and logs the job report.
#[event(scheduled)]
async fn scheduled(event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    let cron = event.cron();
    match load_config(&env) {
        Ok(cfg) => {
            let ports = Ports::new(&env);
            app::run_scheduled(&ports.platform(), &cfg, &cron).await;
        }
        Err(e) => app::log(&format!("scheduled {cron}: configuration invalid: {e}")),
    }
}

/// Name of the dead-letter queue in `wrangler.toml`: its batches re-drive
/// rows instead of embedding them.
const DEAD_LETTER_QUEUE: &str = "memshadow-embed-dlq";

/// The consumer of the embedding queue and of its dead-letter queue. Each
/// message body is one memory id; the core says which to acknowledge and
/// which to retry (a retried message reaches the dead-letter queue after
/// `max_retries`).
#[event(queue)]
async fn queue(batch: MessageBatch<String>, env: Env, _ctx: Context) -> worker::Result<()> {
    let cfg = match load_config(&env) {
        Ok(cfg) => cfg,
        Err(e) => {
            app::log(&format!("queue: configuration invalid: {e}"));
            batch.retry_all();
            return Ok(());
        }
    };
    let mut messages = Vec::new();
    for raw in batch.raw_iter() {
        match raw.body().as_string() {
            Some(id) => messages.push((id, raw)),
            // Not ours to understand: acknowledged, so it is not redelivered.
            None => raw.ack(),
        }
    }
    let ids: Vec<String> = messages.iter().map(|(id, _)| id.clone()).collect();
    let ports = Ports::new(&env);
    let outcome = if batch.queue() == DEAD_LETTER_QUEUE {
        app::run_embed_dead_letters(&ports.platform(), &cfg, ids).await
    } else {
        app::run_embed_queue(&ports.platform(), &cfg, ids).await
    };
    let delay = worker::QueueRetryOptionsBuilder::new()
        .with_delay_seconds(cfg.embed_queue_retry_delay_seconds)
        .build();
    for (id, raw) in &messages {
        if outcome.retry.contains(id) {
            raw.retry_with_options(&delay);
        } else {
            raw.ack();
        }
    }
    Ok(())
}
