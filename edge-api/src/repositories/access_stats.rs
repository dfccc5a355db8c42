//! Access statistics off the hot path: a retrieve appends its hits to the
//! narrow `memory_access` table inside its own statement, and the
//! scheduled job folds them into `memories.access_count` / `accessed_at`.
//!
//! Appending takes no row lock and writes no `memories` row version (no
//! HNSW or GIN insert per hit); readers add the pending hits to the folded
//! values (the memory columns in `memories.rs`), so GET, list, export and
//! retrieve show every hit at once and a fold changes nothing they see.

use crate::ports::{PortError, Sql, SqlScope};

/// Wraps a user-scoped statement whose first column is a memory id (`$1`
/// user, `$2` now, as every memories statement numbers them) so that the
/// same statement appends one hit per returned row. The rows come back as
/// the wrapped statement ordered them: a materialized CTE is read back in
/// the order it was written.
pub fn recording_hits(sql: &str) -> String {
    format!(
        "WITH r AS MATERIALIZED ({sql}), \
         hit AS (INSERT INTO memory_access (memory_id, user_id, accessed_at) \
           SELECT r.id::uuid, $1::uuid, $2::timestamptz FROM r) \
         SELECT * FROM r"
    )
}

/// Folds up to `$1` pending hits: takes them (skipping hits another fold
/// holds), deletes them, and adds them to their memories, which it locks in
/// id order like every other statement that locks `memories` rows. Hits of
/// deleted memories are dropped. Returns (hits taken, memories updated).
const FOLD: &str = "WITH batch AS MATERIALIZED ( \
       SELECT a.ctid AS t, a.memory_id, a.accessed_at FROM memory_access a LIMIT $1::int FOR UPDATE SKIP LOCKED), \
     gone AS (DELETE FROM memory_access a USING batch b WHERE a.ctid = b.t), \
     agg AS MATERIALIZED (SELECT memory_id, count(*) AS n, max(accessed_at) AS last FROM batch GROUP BY memory_id), \
     locked AS MATERIALIZED (SELECT m.id FROM memories m WHERE m.id IN (SELECT memory_id FROM agg) \
       ORDER BY m.id FOR UPDATE), \
     folded AS (UPDATE memories AS m SET access_count = m.access_count + agg.n, \
       accessed_at = greatest(m.accessed_at, agg.last) \
       FROM agg, locked WHERE m.id = agg.memory_id AND m.id = locked.id RETURNING 1) \
     SELECT (SELECT count(*) FROM batch)::text, (SELECT count(*) FROM folded)::text";

pub struct AccessStats<'a> {
    pub sql: &'a dyn Sql,
}

impl AccessStats<'_> {
    /// Folds at most `max` hits; returns (hits folded, memories updated).
    pub async fn fold(&self, max: usize) -> Result<(u64, u64), PortError> {
        let rows = self
            .sql
            .query(&SqlScope::System, FOLD, &[Some(max.to_string())])
            .await?;
        let bad = || PortError::failed("unexpected row shape: fold");
        let row = rows.first().ok_or_else(bad)?;
        let num = |i: usize| -> Result<u64, PortError> {
            row.get(i)
                .and_then(|c| c.as_deref())
                .and_then(|t| t.parse().ok())
                .ok_or_else(bad)
        };
        Ok((num(0)?, num(1)?))
    }
}
