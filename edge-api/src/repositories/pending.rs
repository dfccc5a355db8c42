//! How many of a user's memories still wait for an embedding: the
//! `x-pending-embeddings` retrieval header, asked on every retrieve.
//!
//! Kept apart from `memories.rs` (already past its size budget) as an
//! `impl` block on the same repository.

use crate::ports::{PortError, SqlScope};
use crate::repositories::memories::Memories;

/// Served by the partial index `memories_pending_user` (migration 0005),
/// so its cost follows the user's pending rows, not their whole table.
/// Expired rows still pending are counted until the job purges them: the
/// count is a hint that results may be incomplete, not an exact tally.
const COUNT_PENDING: &str = "SELECT count(*)::text FROM memories m \
     WHERE m.user_id = $1::uuid AND m.embedding_status = 'pending'";

impl Memories<'_> {
    pub async fn count_pending_embeddings(&self, user: &str) -> Result<u64, PortError> {
        let rows = self
            .sql
            .query(
                &SqlScope::User(user.to_string()),
                COUNT_PENDING,
                &[Some(user.to_string())],
            )
            .await?;
        rows.first()
            .and_then(|r| r.first())
            .and_then(|c| c.as_deref())
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| PortError::failed("pending count: unexpected row"))
    }
}
