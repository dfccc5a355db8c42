//! `Queue` over the Cloudflare Queues producer bound as `MEMSHADOW_EMBED_QUEUE`,
//! and the message handling of the consumer entry point in `mod.rs`.

use async_trait::async_trait;
use worker::Env;

use crate::ports::{PortError, Queue};

/// Name of the producer binding in `wrangler.toml`.
pub const QUEUE_BINDING: &str = "MEMSHADOW_EMBED_QUEUE";
/// `sendBatch` takes at most 100 messages.
const MAX_BATCH_MESSAGES: usize = 100;

pub struct WorkersQueue {
    env: Env,
}

impl WorkersQueue {
    pub fn new(env: Env) -> Self {
        Self { env }
    }
}

#[async_trait(?Send)]
impl Queue for WorkersQueue {
    async fn send_ids(&self, ids: &[String]) -> Result<(), PortError> {
        // A deployment without the binding still works: the reconcile embeds.
        let queue = self
            .env
            .queue(QUEUE_BINDING)
            .map_err(|_| PortError::unavailable(format!("binding {QUEUE_BINDING} missing")))?;
        for chunk in ids.chunks(MAX_BATCH_MESSAGES) {
            queue
                .send_batch(chunk.iter().cloned())
                .await
                .map_err(|e| PortError::unavailable(format!("queue send: {e}")))?;
        }
        Ok(())
    }
}
