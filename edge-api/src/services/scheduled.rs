//! The scheduled job: embeds `pending` rows (claimed in batches with
//! `FOR UPDATE SKIP LOCKED`, retried with exponential backoff, `failed`
//! after the configured attempts), re-queues rows embedded by an older
//! model, and purges expired memories.
//!
//! Nothing acknowledged is lost: a claim is a lease on `next_embed_at`, so a
//! job that dies mid-way leaves its rows to the next run.

use serde::Serialize;

use crate::app::Ctx;
use crate::repositories::memories::{Claimed, Memories};
use crate::services::embedding::{Embedder, to_pgvector};
use crate::services::memories::rfc3339;

/// Embedding rounds per run; bounds one run's work and wall time.
const MAX_ROUNDS: usize = 20;
/// Expired rows deleted per statement, and statements per run.
const PURGE_BATCH: usize = 1000;
const MAX_PURGE_ROUNDS: usize = 20;
/// Rows re-queued after a model change per run.
const STALE_BATCH: usize = 500;
/// Retry backoff: 30 s, 60 s, 120 s, … capped at one hour.
const BACKOFF_BASE_SECONDS: u64 = 30;
const BACKOFF_CAP_SECONDS: u64 = 3600;

/// What one run did. Errors are public-safe summaries; details are logged.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct JobReport {
    pub cron: String,
    pub started_at: String,
    /// Rows claimed for embedding.
    pub claimed: usize,
    /// Rows that received a vector.
    pub embedded: usize,
    /// Rows whose attempt failed and that will be retried later.
    pub retry_scheduled: usize,
    /// Rows that ran out of attempts and are now `failed`.
    pub failed: usize,
    /// `ready` rows re-queued because they were embedded by another model.
    pub requeued_stale: u64,
    pub purged: u64,
    pub errors: Vec<String>,
    /// The SDAP backup's part (services::backup), when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<crate::services::backup::BackupReport>,
}

pub async fn run(ctx: &Ctx<'_>, cron: &str) -> JobReport {
    let cfg = ctx.cfg;
    let now = rfc3339(ctx.now_ms);
    let repo = Memories { sql: ctx.p.sql };
    let embedder = Embedder {
        http: ctx.p.http,
        kv: ctx.p.kv,
        cfg,
    };
    let mut report = JobReport {
        cron: cron.to_string(),
        started_at: now.clone(),
        ..Default::default()
    };

    match repo
        .mark_stale_model(&now, &cfg.embedding_model, STALE_BATCH)
        .await
    {
        Ok(n) => report.requeued_stale = n,
        Err(e) => {
            ctx.log(&format!("scheduled: re-queue stale failed: {e}"));
            report
                .errors
                .push("re-queue of stale embeddings failed".into());
        }
    }

    // The lease must outlast the embedding call plus the write-back.
    let lease = cfg.embed_timeout_ms / 1000 + 60;
    for _ in 0..MAX_ROUNDS {
        let claimed = match repo.claim_pending(&now, cfg.embed_batch_size, lease).await {
            Ok(c) => c,
            Err(e) => {
                ctx.log(&format!("scheduled: claim failed: {e}"));
                report.errors.push("claiming pending rows failed".into());
                break;
            }
        };
        if claimed.is_empty() {
            break;
        }
        report.claimed += claimed.len();
        let texts: Vec<&str> = claimed.iter().map(|c| c.content.as_str()).collect();
        match embedder.embed(&texts).await {
            Ok(vectors) => {
                let items: Vec<(&Claimed, String)> = claimed
                    .iter()
                    .zip(vectors.iter())
                    .map(|(c, v)| (c, to_pgvector(v)))
                    .collect();
                match repo.store_embeddings(&cfg.embedding_model, &items).await {
                    Ok(n) => report.embedded += n,
                    Err(e) => {
                        // The rows stay pending under their lease: retried later.
                        ctx.log(&format!("scheduled: storing embeddings failed: {e}"));
                        report.errors.push("storing embeddings failed".into());
                        break;
                    }
                }
            }
            Err(e) => {
                ctx.log(&format!("scheduled: {e}"));
                report
                    .errors
                    .push("embedding pool unavailable or answered badly".into());
                let ids: Vec<&str> = claimed.iter().map(|c| c.id.as_str()).collect();
                match repo
                    .record_failures(
                        &now,
                        &ids,
                        cfg.embed_max_attempts,
                        BACKOFF_BASE_SECONDS,
                        BACKOFF_CAP_SECONDS,
                    )
                    .await
                {
                    Ok((retry, failed)) => {
                        report.retry_scheduled += retry;
                        report.failed += failed;
                    }
                    Err(e) => {
                        ctx.log(&format!("scheduled: recording failures failed: {e}"));
                        report
                            .errors
                            .push("recording embedding failures failed".into());
                    }
                }
                // The pool is down: more rounds would only burn attempts.
                break;
            }
        }
    }

    for _ in 0..MAX_PURGE_ROUNDS {
        match repo.purge_expired(&now, PURGE_BATCH).await {
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
    report
}
