//! `Queue` on Spin: there is none. Spin has no message queue an HTTP
//! component can produce to (nothing like Cloudflare Queues), so
//! [`NoQueue::send_ids`] fails with `Unavailable` and says why. That is the
//! path the core already takes for a failed enqueue: the rows ingest stored
//! stay `pending`, and the scheduled reconcile (the scheduled route, which
//! `wasm-host serve` calls on its timer and a cron calls elsewhere) embeds
//! them. Embedding on Spin therefore waits for the next scheduled run rather
//! than for a queue consumer; ingest's answer is the same either way.
//!
//! It fails rather than answering `Ok`: a queue that claims to have taken
//! messages it dropped would hide, in every log, why rows wait.

use async_trait::async_trait;

use crate::ports::{PortError, Queue};

pub struct NoQueue;

#[async_trait(?Send)]
impl Queue for NoQueue {
    async fn send_ids(&self, ids: &[String]) -> Result<(), PortError> {
        Err(PortError::unavailable(format!(
            "the Spin build has no queue: {} row(s) stay pending for the scheduled reconcile",
            ids.len()
        )))
    }
}
