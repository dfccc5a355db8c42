//! The scheduled job, the embedding pipeline's safety net: embeds every due
//! `pending` row at the pool's speed (several batches in flight, until no
//! row is due or the run's wall-clock budget is spent), revives `failed`
//! rows whose time has come, re-queues rows of an old model while a model
//! change is in progress, purges expired memories, and folds retrieval
//! hits into the memories' access statistics.
//!
//! Nothing acknowledged is lost: a claim is a lease on `next_embed_at`, so a
//! job that dies mid-way leaves its rows to the next run; an outage gives
//! the rows back without charging an attempt.
//!
//! One run drains at a time (a lease in `embedding_job_state`): runs that
//! overlap (a cron firing while a long drain is still going, the local
//! timer beside a manual trigger) would otherwise share the pool's few
//! instances, so every call would take longer than its budget allows, time
//! out, and send its rows again while the pool still computed them.

use std::cell::Cell;

use serde::Serialize;

use crate::app::Ctx;
use crate::concurrent::join_all;
use crate::repositories::access_stats::AccessStats;
use crate::repositories::embedding_jobs::EmbeddingJobs;
use crate::services::embed_pipeline::{Pipeline, Tally};
use crate::services::memories::rfc3339;
use crate::services::tokens::random_uuid;

/// Expired rows deleted per statement, and statements per run.
const PURGE_BATCH: usize = 1000;
const MAX_PURGE_ROUNDS: usize = 20;
/// Access hits folded per statement, and statements per run.
const FOLD_BATCH: usize = 5000;
const MAX_FOLD_ROUNDS: usize = 20;
/// Rows re-queued after a model change per run.
const STALE_BATCH: usize = 500;
/// Failed rows revived per run.
const REVIVE_BATCH: usize = 500;

/// What one run did. Errors are public-safe summaries; details are logged.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct JobReport {
    pub cron: String,
    pub started_at: String,
    /// Rows claimed for embedding.
    pub claimed: usize,
    /// Rows that received a vector.
    pub embedded: usize,
    /// Rows charged an attempt (the pool refused them) that will be retried.
    pub retry_scheduled: usize,
    /// Rows that ran out of attempts and are now `failed`.
    pub failed: usize,
    /// Rows given back without an attempt charged because the pool was down.
    pub released: usize,
    /// Batches split because the pool refused them.
    pub split_batches: usize,
    /// `failed` rows given another round of attempts.
    pub revived: u64,
    /// `ready` rows re-queued because they were embedded by another model.
    pub requeued_stale: u64,
    /// Whether the stale-model scan ran (only while a model change is in
    /// progress).
    pub stale_scan: bool,
    pub purged: u64,
    /// Retrieval hits folded into the memories' access statistics.
    pub access_hits_folded: u64,
    /// Whether this run left the embedding to another run that held the
    /// drain lease.
    pub drain_skipped: bool,
    /// Milliseconds the run took.
    pub elapsed_ms: i64,
    pub errors: Vec<String>,
    /// The SDAP backup's part (services::backup), when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<crate::services::backup::BackupReport>,
}

pub async fn run(ctx: &Ctx<'_>, cron: &str) -> JobReport {
    let pipeline = Pipeline::new(ctx, ctx.cfg.embed_job_concurrency);
    let jobs = pipeline.jobs();
    let started = ctx.p.clock.now_millis();
    let mut report = JobReport {
        cron: cron.to_string(),
        started_at: rfc3339(started),
        ..Default::default()
    };

    requeue_stale(ctx, &jobs, &pipeline.now(), &mut report).await;
    match jobs.revive_failed(&pipeline.now(), REVIVE_BATCH).await {
        Ok(n) => report.revived = n,
        Err(e) => {
            ctx.log(&format!("scheduled: reviving failed rows failed: {e}"));
            report.errors.push("reviving failed rows failed".into());
        }
    }

    drain_single_flight(&pipeline, started, &mut report).await;

    for _ in 0..MAX_PURGE_ROUNDS {
        match jobs.purge_expired(&pipeline.now(), PURGE_BATCH).await {
            Ok(n) => {
                report.purged += n;
                if n < PURGE_BATCH as u64 {
                    break;
                }
            }
            Err(e) => {
                ctx.log(&format!("scheduled: purge failed: {e}"));
                report.errors.push("purging expired memories failed".into());
                break;
            }
        }
    }
    let stats = AccessStats { sql: ctx.p.sql };
    for _ in 0..MAX_FOLD_ROUNDS {
        match stats.fold(FOLD_BATCH).await {
            Ok((hits, _)) => {
                report.access_hits_folded += hits;
                if hits < FOLD_BATCH as u64 {
                    break;
                }
            }
            Err(e) => {
                ctx.log(&format!("scheduled: folding access statistics failed: {e}"));
                report
                    .errors
                    .push("folding access statistics failed".into());
                break;
            }
        }
    }
    report.elapsed_ms = ctx.p.clock.now_millis() - started;
    report
}

/// Drains due rows in `embed_job_concurrency` lanes under the drain lease,
/// or leaves them to the run that holds it.
async fn drain_single_flight(pipeline: &Pipeline<'_>, started: i64, report: &mut JobReport) {
    let ctx = pipeline.ctx;
    let jobs = pipeline.jobs();
    let holder = match random_uuid() {
        Ok(id) => id.to_string(),
        Err(_) => ctx.request_id.clone(),
    };
    // Held past the deadline by the last call's budget, so it outlives a
    // live drain; a run that died frees it when this runs out.
    let ttl_seconds =
        ctx.cfg.embed_job_budget_ms / 1000 + pipeline.lease_seconds(ctx.cfg.embed_batch_size);
    match jobs
        .take_drain_lease(&holder, &pipeline.now(), ttl_seconds)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            ctx.log("scheduled: another run is draining; leaving the embedding to it");
            report.drain_skipped = true;
            return;
        }
        Err(e) => {
            ctx.log(&format!("scheduled: taking the drain lease failed: {e}"));
            report.errors.push("taking the drain lease failed".into());
            return;
        }
    }

    // Several batches in flight keep every pool instance busy while one
    // batch's vectors are being written back.
    let deadline = started + ctx.cfg.embed_job_budget_ms as i64;
    let stop = Cell::new(false);
    let lanes: Vec<_> = (0..pipeline.lanes)
        .map(|_| drain(pipeline, deadline, &stop))
        .collect();
    for (claimed, t, errors) in join_all(lanes).await {
        report.claimed += claimed;
        report.embedded += t.embedded;
        report.retry_scheduled += t.retry_scheduled;
        report.failed += t.failed;
        report.released += t.released;
        report.split_batches += t.splits;
        for e in errors {
            if !report.errors.contains(&e) {
                report.errors.push(e);
            }
        }
    }
    // If this fails the lease simply runs out.
    if let Err(e) = jobs.return_drain_lease(&holder).await {
        ctx.log(&format!("scheduled: returning the drain lease failed: {e}"));
    }
}

/// One lane: claim a batch, embed it, repeat until nothing is due, the
/// deadline passes, or any lane hit an outage. Returns (claimed, tally,
/// errors).
async fn drain(p: &Pipeline<'_>, deadline: i64, stop: &Cell<bool>) -> (usize, Tally, Vec<String>) {
    let ctx = p.ctx;
    let batch = ctx.cfg.embed_batch_size;
    let (mut claimed_total, mut tally, mut errors) = (0, Tally::default(), Vec::new());
    while !stop.get() && ctx.p.clock.now_millis() < deadline {
        let claimed = match p
            .jobs()
            .claim_due(&p.now(), batch, p.lease_seconds(batch))
            .await
        {
            Ok(c) => c,
            Err(e) => {
                ctx.log(&format!("scheduled: claim failed: {e}"));
                errors.push("claiming pending rows failed".to_string());
                stop.set(true);
                break;
            }
        };
        if claimed.is_empty() {
            break;
        }
        claimed_total += claimed.len();
        if let Err(h) = p.embed_claimed(&claimed, &mut tally).await {
            errors.push(h.reason.to_string());
            stop.set(true);
        }
    }
    (claimed_total, tally, errors)
}

/// Re-queues rows embedded by another model, but only while a model change
/// is in progress: once a scan finds none left, the current model is
/// recorded as settled and later runs skip the scan (no index serves it).
/// A model change is a configuration change, so a settled model other than
/// the configured one (or none recorded) means a change is in progress.
async fn requeue_stale(ctx: &Ctx<'_>, jobs: &EmbeddingJobs<'_>, now: &str, report: &mut JobReport) {
    let model = ctx.cfg.embedding_model.as_str();
    match jobs.settled_model().await {
        Ok(Some(settled)) if settled == model => return,
        Ok(_) => {}
        Err(e) => {
            ctx.log(&format!("scheduled: reading the settled model failed: {e}"));
            report
                .errors
                .push("re-queue of stale embeddings failed".into());
            return;
        }
    }
    report.stale_scan = true;
    match jobs.mark_stale_model(now, model, STALE_BATCH).await {
        Ok(n) => {
            report.requeued_stale = n;
            if n == 0
                && let Err(e) = jobs.set_settled_model(model, now).await
            {
                ctx.log(&format!(
                    "scheduled: recording the settled model failed: {e}"
                ));
            }
        }
        Err(e) => {
            ctx.log(&format!("scheduled: re-queue stale failed: {e}"));
            report
                .errors
                .push("re-queue of stale embeddings failed".into());
        }
    }
}
