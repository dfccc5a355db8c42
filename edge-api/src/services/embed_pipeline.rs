//! Embedding claimed rows in the background, shared by the scheduled
//! reconcile and the queue consumer: one call to the pool per batch with a
//! budget that fits the batch, then the vectors stored.
//!
//! What an answer means decides what happens to the rows:
//! - vectors: stored (unless the content changed meanwhile);
//! - an outage (unreachable, timeout, 5xx, 429): the rows are given back at
//!   no attempt and the caller stops, since more calls would fail too;
//! - a refusal (4xx) of several rows: the batch is split in halves and each
//!   half sent again, so one unacceptable row never blocks the others;
//! - a refusal of one row, or a wrong answer: one attempt is charged
//!   (backoff, `failed` after the configured attempts, revived later).

use crate::app::Ctx;
use crate::config::Config;
use crate::ports::Queue;
use crate::repositories::embedding_jobs::{Claimed, EmbeddingJobs, RetryPolicy};
use crate::services::embedding::{EmbedError, Embedder, to_pgvector};
use crate::services::memories::rfc3339;

/// A background call's budget: nobody waits on it, so it is generous and
/// grows with the batch (by the model's `call_ms_per_text`, config.rs). A
/// slow answer is not an outage; only a pool that has not answered in this
/// long is treated as one.
const CALL_BASE_MS: u64 = 15_000;
/// Retry backoff after a refusal: 30 s, 60 s, 120 s, … capped at one hour;
/// a row out of attempts is `failed` and revived after a day.
const BACKOFF_BASE_SECONDS: u64 = 30;
const BACKOFF_CAP_SECONDS: u64 = 3600;
const REVIVE_AFTER_SECONDS: u64 = 24 * 3600;

/// The budget of one background call to the pool while `texts_in_flight`
/// texts are being embedded at once (this call's and those of the other
/// lanes): the pool spreads concurrent requests over the same instances,
/// so a call finishes only when the pool has worked through all of them.
/// Budgeting for this call's texts alone timed out batches of long texts
/// that the pool was still computing, which were then sent again.
pub fn call_budget_ms(texts_in_flight: usize, ms_per_text: u64) -> u64 {
    CALL_BASE_MS + ms_per_text * texts_in_flight as u64
}

/// How long a claim holds rows: past the call's budget plus the write-back,
/// so a live worker never loses its rows to another.
pub fn lease_seconds(texts_in_flight: usize, ms_per_text: u64) -> u64 {
    call_budget_ms(texts_in_flight, ms_per_text) / 1000 + 60
}

pub fn retry_policy(cfg: &Config) -> RetryPolicy {
    RetryPolicy {
        max_attempts: cfg.embed_max_attempts,
        base_seconds: BACKOFF_BASE_SECONDS,
        cap_seconds: BACKOFF_CAP_SECONDS,
        revive_seconds: REVIVE_AFTER_SECONDS,
    }
}

/// What embedding some claimed rows did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    /// Rows that received a vector.
    pub embedded: usize,
    /// Rows charged an attempt that will be retried later.
    pub retry_scheduled: usize,
    /// Rows that ran out of attempts and are now `failed`.
    pub failed: usize,
    /// Rows given back at no cost because the pool was down.
    pub released: usize,
    /// Batches split because the pool refused them.
    pub splits: usize,
}

/// Why embedding stopped before every claimed row was handled. `unfinished`
/// are the ids still pending (given back or left under their lease).
#[derive(Debug, Clone, PartialEq)]
pub struct Halt {
    pub reason: &'static str,
    pub unfinished: Vec<String>,
}

pub struct Pipeline<'a> {
    pub ctx: &'a Ctx<'a>,
    /// Batches this pipeline keeps in flight at once (the job's lanes).
    pub lanes: usize,
}

impl<'a> Pipeline<'a> {
    pub fn new(ctx: &'a Ctx<'a>, lanes: usize) -> Self {
        Self {
            ctx,
            lanes: lanes.max(1),
        }
    }

    /// Texts in flight while each lane sends `texts`.
    pub fn in_flight(&self, texts: usize) -> usize {
        texts * self.lanes
    }

    /// How long a claim of `texts` per lane holds its rows.
    pub fn lease_seconds(&self, texts: usize) -> u64 {
        lease_seconds(self.in_flight(texts), self.ctx.cfg.embed_call_ms_per_text)
    }

    pub fn jobs(&self) -> EmbeddingJobs<'a> {
        EmbeddingJobs {
            sql: self.ctx.p.sql,
        }
    }

    fn embedder(&self) -> Embedder<'a> {
        Embedder {
            http: self.ctx.p.http,
            kv: self.ctx.p.kv,
            cfg: self.ctx.cfg,
        }
    }

    /// "Now" at this moment: a long run must not lease or back off from a
    /// time that has long passed.
    pub fn now(&self) -> String {
        rfc3339(self.ctx.p.clock.now_millis())
    }

    /// Embeds and stores `claimed` (one pool call per batch, split on
    /// refusal). Stops at the first outage or storage failure.
    pub async fn embed_claimed(&self, claimed: &[Claimed], t: &mut Tally) -> Result<(), Halt> {
        let cfg = self.ctx.cfg;
        let jobs = self.jobs();
        let embedder = self.embedder();
        let mut work: Vec<&[Claimed]> = vec![claimed];
        while let Some(batch) = work.pop() {
            let texts: Vec<&str> = batch.iter().map(|c| c.content.as_str()).collect();
            let answer = embedder
                .embed_uncached(
                    &texts,
                    call_budget_ms(self.in_flight(texts.len()), cfg.embed_call_ms_per_text),
                )
                .await;
            match answer {
                Ok(vectors) => {
                    let items: Vec<(&Claimed, String)> = batch
                        .iter()
                        .zip(vectors.iter())
                        .map(|(c, v)| (c, to_pgvector(v)))
                        .collect();
                    match jobs.store_embeddings(&cfg.embedding_model, &items).await {
                        Ok(n) => t.embedded += n,
                        Err(e) => {
                            // The rows stay pending under their lease.
                            self.ctx
                                .log(&format!("embedding: storing vectors failed: {e}"));
                            work.push(batch);
                            return Err(halt("storing embeddings failed", &work));
                        }
                    }
                }
                Err(EmbedError::Unavailable(detail)) => {
                    self.ctx
                        .log(&format!("embedding: pool unavailable: {detail}"));
                    work.push(batch);
                    let ids: Vec<&str> = work.iter().flat_map(|b| ids_of(b)).collect();
                    match jobs.release(&self.now(), &ids, 0).await {
                        Ok(n) => t.released += n as usize,
                        // Unreleased rows come back when their lease ends.
                        Err(e) => self.ctx.log(&format!("embedding: release failed: {e}")),
                    }
                    return Err(halt("embedding pool unavailable", &work));
                }
                Err(EmbedError::Refused(_)) if batch.len() > 1 => {
                    let (a, b) = batch.split_at(batch.len() / 2);
                    work.push(b);
                    work.push(a);
                    t.splits += 1;
                }
                Err(e) => {
                    self.ctx.log(&format!(
                        "embedding: {e}; charging an attempt to {} row(s)",
                        batch.len()
                    ));
                    let ids: Vec<&str> = ids_of(batch).collect();
                    match jobs
                        .record_failures(&self.now(), &ids, retry_policy(cfg))
                        .await
                    {
                        Ok((retry, failed)) => {
                            t.retry_scheduled += retry;
                            t.failed += failed;
                        }
                        Err(e) => {
                            self.ctx
                                .log(&format!("embedding: recording failures failed: {e}"));
                            work.push(batch);
                            return Err(halt("recording embedding failures failed", &work));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

fn ids_of(batch: &[Claimed]) -> impl Iterator<Item = &str> {
    batch.iter().map(|c| c.id.as_str())
}

fn halt(reason: &'static str, work: &[&[Claimed]]) -> Halt {
    Halt {
        reason,
        unfinished: work
            .iter()
            .flat_map(|b| ids_of(b))
            .map(str::to_string)
            .collect(),
    }
}

/// Hands freshly stored pending rows to the work queue. Best effort: the row
/// is already stored as pending and due, so if enqueueing fails the
/// scheduled reconcile still finds it, and nothing acknowledged is lost.
pub async fn enqueue(ctx: &Ctx<'_>, queue: &dyn Queue, ids: &[String]) {
    if ids.is_empty() {
        return;
    }
    if let Err(e) = queue.send_ids(ids).await {
        ctx.log(&format!(
            "embedding: enqueueing {} row(s) failed, the reconcile will find them: {e}",
            ids.len()
        ));
    }
}
