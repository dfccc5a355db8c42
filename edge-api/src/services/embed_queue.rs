//! The embedding work queue's consumers. Messages carry memory ids; the
//! rows themselves (pending, due) are the record of work, so a message is
//! only a prompt to embed them now rather than at the next reconcile.
//!
//! - [`consume`]: claims the rows that are still pending and due (rows
//!   already embedded, deleted, leased by the reconcile or backing off are
//!   acknowledged: their owner handles them), embeds them in pool-sized
//!   batches, and asks for a retry of the rows an outage left pending.
//! - [`redrive`]: for the dead-letter queue: the rows become due again
//!   (failed ones with fresh attempts) and the reconcile embeds them.

use uuid::Uuid;

use crate::app::Ctx;
use crate::services::embed_pipeline::{Pipeline, Tally};

/// Which messages (by id) to acknowledge and which to retry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueOutcome {
    pub ack: Vec<String>,
    pub retry: Vec<String>,
    pub tally: Tally,
}

/// Ids that are not UUIDs cannot name a row: acknowledged (and logged), so
/// they never bounce to the dead-letter queue.
fn split_valid(ctx: &Ctx<'_>, ids: Vec<String>) -> (Vec<String>, Vec<String>) {
    let mut valid: Vec<String> = Vec::with_capacity(ids.len());
    let mut invalid = Vec::new();
    for id in ids {
        if Uuid::parse_str(&id).is_err() {
            invalid.push(id);
        } else if !valid.contains(&id) {
            valid.push(id);
        }
    }
    if !invalid.is_empty() {
        ctx.log(&format!(
            "embed queue: dropping {} message(s) that are not memory ids",
            invalid.len()
        ));
    }
    (valid, invalid)
}

pub async fn consume(ctx: &Ctx<'_>, ids: Vec<String>) -> QueueOutcome {
    let (valid, mut ack) = split_valid(ctx, ids);
    // One batch at a time per message batch; the queue's own concurrency
    // setting bounds how many consumers run at once.
    let p = Pipeline::new(ctx, 1);
    let mut out = QueueOutcome::default();
    let mut halted = false;
    for chunk in valid.chunks(ctx.cfg.embed_batch_size) {
        if halted {
            out.retry.extend(chunk.iter().cloned());
            continue;
        }
        let claimed = match p
            .jobs()
            .claim_ids(&p.now(), chunk, p.lease_seconds(chunk.len()))
            .await
        {
            Ok(c) => c,
            Err(e) => {
                ctx.log(&format!("embed queue: claim failed: {e}"));
                out.retry.extend(chunk.iter().cloned());
                halted = true;
                continue;
            }
        };
        if let Err(h) = p.embed_claimed(&claimed, &mut out.tally).await {
            out.retry.extend(h.unfinished);
            halted = true;
        }
        ack.extend(chunk.iter().filter(|id| !out.retry.contains(*id)).cloned());
    }
    out.ack = ack;
    out
}

pub async fn redrive(ctx: &Ctx<'_>, ids: Vec<String>) -> QueueOutcome {
    let (valid, ack) = split_valid(ctx, ids);
    let p = Pipeline::new(ctx, 1);
    match p.jobs().mark_due(&p.now(), &valid).await {
        Ok(_) => QueueOutcome {
            ack: ack.into_iter().chain(valid).collect(),
            ..Default::default()
        },
        Err(e) => {
            ctx.log(&format!("embed dead letters: marking rows due failed: {e}"));
            QueueOutcome {
                ack,
                retry: valid,
                ..Default::default()
            }
        }
    }
}
