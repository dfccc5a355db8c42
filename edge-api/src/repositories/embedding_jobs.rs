//! The SQL of the embedding pipeline (scheduled reconcile and queue
//! consumer): claiming pending rows under a lease, storing vectors, charging
//! or not charging attempts, reviving failed rows, re-queuing rows of an old
//! model, and purging expired memories. Every statement here runs in the
//! system scope (it spans users).
//!
//! Attempts are charged only when the pool *refused* a row or answered
//! wrongly; an outage (unreachable, timeout, 5xx) releases the claim at no
//! cost, so a long outage never turns good rows `failed`.

use serde_json::{Value, json};

use crate::ports::{PortError, Sql, SqlParam, SqlRow, SqlScope};

/// Claims up to `$2` due pending rows: pushes `next_embed_at` out by a lease
/// (`$3` seconds), so a job that dies mid-way leaves them to the next run.
/// The claim itself charges no attempt.
const CLAIM_DUE: &str = "UPDATE memories AS m SET \
       next_embed_at = $1::timestamptz + make_interval(secs => $3::float8) \
     FROM (SELECT id FROM memories WHERE embedding_status = 'pending' AND next_embed_at <= $1::timestamptz \
           ORDER BY next_embed_at, id LIMIT $2::int FOR UPDATE SKIP LOCKED) AS c \
     WHERE m.id = c.id \
     RETURNING m.id::text, m.content, m.content_hash, m.embed_attempts::text";

/// Claims the given rows (`$2`: JSON array of ids) when they are pending and
/// due; rows leased by another worker or backing off are left to their owner.
const CLAIM_IDS: &str = "UPDATE memories AS m SET \
       next_embed_at = $1::timestamptz + make_interval(secs => $3::float8) \
     FROM (SELECT id FROM memories WHERE id IN (SELECT jsonb_array_elements_text($2::jsonb)::uuid) \
           AND embedding_status = 'pending' AND next_embed_at <= $1::timestamptz \
           ORDER BY id FOR UPDATE SKIP LOCKED) AS c \
     WHERE m.id = c.id \
     RETURNING m.id::text, m.content, m.content_hash, m.embed_attempts::text";

/// Stores vectors for claimed rows ($1: JSON [{id, content_hash, embedding}]),
/// unless the content changed meanwhile (then its own embedding wins).
const STORE_EMBEDDINGS: &str = "WITH x AS MATERIALIZED (SELECT * FROM jsonb_to_recordset($1::jsonb) \
       AS x(id uuid, content_hash text, embedding text)), \
     l AS MATERIALIZED (SELECT m.id FROM memories m WHERE m.id IN (SELECT id FROM x) ORDER BY m.id FOR UPDATE) \
     UPDATE memories AS m SET embedding = x.embedding::vector, embedding_model = $2, embedding_status = 'ready', \
       next_embed_at = NULL \
     FROM x, l WHERE m.id = x.id AND m.id = l.id AND m.content_hash = x.content_hash \
       AND m.embedding_status = 'pending' \
     RETURNING m.id::text";

/// Charges one attempt to rows the pool refused: retry with exponential
/// backoff (`$4` · 2^(attempts-1) seconds, at most `$5`), or `failed` once
/// `$3` attempts are spent. A failed row is revived after `$6` seconds.
const RECORD_FAILURES: &str = "UPDATE memories AS m SET embed_attempts = m.embed_attempts + 1, \
       embedding_status = CASE WHEN m.embed_attempts + 1 >= $3::int THEN 'failed' ELSE 'pending' END, \
       next_embed_at = CASE WHEN m.embed_attempts + 1 >= $3::int \
         THEN $2::timestamptz + make_interval(secs => $6::float8) \
         ELSE $2::timestamptz + make_interval(secs => least($4::float8 * power(2, m.embed_attempts), $5::float8)) END \
     FROM (SELECT id FROM memories WHERE id IN (SELECT jsonb_array_elements_text($1::jsonb)::uuid) \
           AND embedding_status = 'pending' ORDER BY id FOR UPDATE) AS l \
     WHERE m.id = l.id \
     RETURNING m.embedding_status";

/// Gives claimed rows back after an outage, due again in `$3` seconds, with
/// no attempt charged.
const RELEASE: &str = "WITH r AS (UPDATE memories AS m SET \
       next_embed_at = $2::timestamptz + make_interval(secs => $3::float8) \
     FROM (SELECT id FROM memories WHERE id IN (SELECT jsonb_array_elements_text($1::jsonb)::uuid) \
           AND embedding_status = 'pending' ORDER BY id FOR UPDATE) AS l \
     WHERE m.id = l.id RETURNING 1) SELECT count(*)::text FROM r";

/// Makes rows due now (`$2`): failed ones become pending with fresh
/// attempts. Used when a queue gives up on messages (the dead-letter queue):
/// the reconcile then re-drives them.
const MARK_DUE: &str = "WITH r AS (UPDATE memories AS m SET embedding_status = 'pending', \
       embed_attempts = CASE WHEN m.embedding_status = 'failed' THEN 0 ELSE m.embed_attempts END, \
       next_embed_at = $2::timestamptz \
     FROM (SELECT id FROM memories WHERE id IN (SELECT jsonb_array_elements_text($1::jsonb)::uuid) \
           AND embedding_status IN ('pending', 'failed') ORDER BY id FOR UPDATE SKIP LOCKED) AS l \
     WHERE m.id = l.id RETURNING 1) SELECT count(*)::text FROM r";

/// Failed rows whose revival time has come get another round of attempts.
const REVIVE_FAILED: &str = "WITH r AS (UPDATE memories AS m SET embedding_status = 'pending', \
       embed_attempts = 0, next_embed_at = $1::timestamptz \
     FROM (SELECT id FROM memories WHERE embedding_status = 'failed' AND next_embed_at <= $1::timestamptz \
           ORDER BY next_embed_at, id LIMIT $2::int FOR UPDATE SKIP LOCKED) AS c \
     WHERE m.id = c.id RETURNING 1) SELECT count(*)::text FROM r";

/// After a model change, queues `ready` rows embedded by another model.
const MARK_STALE_MODEL: &str = "WITH s AS (UPDATE memories AS m SET embedding_status = 'pending', embed_attempts = 0, \
       next_embed_at = $1::timestamptz \
     FROM (SELECT id FROM memories WHERE embedding_status = 'ready' AND embedding_model IS DISTINCT FROM $2 \
           ORDER BY id LIMIT $3::int FOR UPDATE SKIP LOCKED) AS c \
     WHERE m.id = c.id RETURNING 1) SELECT count(*)::text FROM s";

/// The model every `ready` row is known to carry (NULL: not known yet).
const GET_SETTLED_MODEL: &str = "SELECT value FROM embedding_job_state WHERE key = 'settled_model'";

const SET_SETTLED_MODEL: &str = "INSERT INTO embedding_job_state (key, value, updated_at) \
     VALUES ('settled_model', $1, $2::timestamptz) \
     ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at";

/// Takes the drain lease for holder `$1` at `$2` (now), unless another
/// holder took it less than `$3` seconds ago and has not given it back.
/// Returns a row only when taken. Two takers at once: the second waits on
/// the first's row lock, then finds a fresh lease and returns nothing.
const TAKE_DRAIN_LEASE: &str = "INSERT INTO embedding_job_state (key, value, updated_at) \
     VALUES ('drain_lease', $1, $2::timestamptz) \
     ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at \
       WHERE embedding_job_state.value = EXCLUDED.value \
          OR embedding_job_state.updated_at + make_interval(secs => $3::float8) <= $2::timestamptz \
     RETURNING key";

/// Gives the drain lease back (only its holder `$1` can): dated so long ago
/// that the next taker finds it expired. (The application role may not
/// delete job state, and needs not.)
const RETURN_DRAIN_LEASE: &str = "UPDATE embedding_job_state SET updated_at = '-infinity' \
     WHERE key = 'drain_lease' AND value = $1";

/// Deletes the longest-expired rows first (the partial index on
/// `expires_at` serves the order).
const PURGE_EXPIRED: &str = "WITH d AS (DELETE FROM memories WHERE id IN (SELECT id FROM memories \
       WHERE expires_at <= $1::timestamptz ORDER BY expires_at LIMIT $2::int FOR UPDATE SKIP LOCKED) RETURNING 1) \
     SELECT count(*)::text FROM d";

/// A pending row claimed for embedding.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: String,
    pub content: String,
    pub content_hash: String,
    /// Attempts charged so far.
    pub attempts: u32,
}

/// How attempts are charged: after `max_attempts` a row is `failed` until
/// `revive_seconds` later; before that it backs off `base · 2^(n-1)` seconds,
/// at most `cap`.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_seconds: u64,
    pub cap_seconds: u64,
    pub revive_seconds: u64,
}

fn s(v: impl Into<String>) -> SqlParam {
    Some(v.into())
}

fn bad_row(what: &str) -> PortError {
    PortError::failed(format!("unexpected row shape: {what}"))
}

fn text(row: &SqlRow, i: usize) -> Result<&str, PortError> {
    row.get(i)
        .and_then(|c| c.as_deref())
        .ok_or_else(|| bad_row(&format!("column {i} is NULL or missing")))
}

fn count(rows: &[SqlRow]) -> Result<u64, PortError> {
    let r = rows.first().ok_or_else(|| bad_row("count"))?;
    text(r, 0)?.parse().map_err(|_| bad_row("count"))
}

fn claimed(rows: &[SqlRow]) -> Result<Vec<Claimed>, PortError> {
    rows.iter()
        .map(|r| {
            Ok(Claimed {
                id: text(r, 0)?.to_string(),
                content: text(r, 1)?.to_string(),
                content_hash: text(r, 2)?.to_string(),
                attempts: text(r, 3)?.parse().map_err(|_| bad_row("attempts"))?,
            })
        })
        .collect()
}

/// The repository: typed functions over the `Sql` port.
pub struct EmbeddingJobs<'a> {
    pub sql: &'a dyn Sql,
}

impl EmbeddingJobs<'_> {
    async fn system(&self, sql: &str, params: &[SqlParam]) -> Result<Vec<SqlRow>, PortError> {
        self.sql.query(&SqlScope::System, sql, params).await
    }

    /// Claims up to `max` due pending rows for `lease_seconds`.
    pub async fn claim_due(
        &self,
        now: &str,
        max: usize,
        lease_seconds: u64,
    ) -> Result<Vec<Claimed>, PortError> {
        let rows = self
            .system(
                CLAIM_DUE,
                &[s(now), s(max.to_string()), s(lease_seconds.to_string())],
            )
            .await?;
        claimed(&rows)
    }

    /// Claims those of `ids` that are pending and due.
    pub async fn claim_ids(
        &self,
        now: &str,
        ids: &[String],
        lease_seconds: u64,
    ) -> Result<Vec<Claimed>, PortError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self
            .system(
                CLAIM_IDS,
                &[
                    s(now),
                    s(json!(ids).to_string()),
                    s(lease_seconds.to_string()),
                ],
            )
            .await?;
        claimed(&rows)
    }

    /// Stores `(claimed row, pgvector text)` pairs; returns how many landed.
    pub async fn store_embeddings(
        &self,
        model: &str,
        items: &[(&Claimed, String)],
    ) -> Result<usize, PortError> {
        let payload: Vec<Value> = items
            .iter()
            .map(|(c, v)| json!({"id": c.id, "content_hash": c.content_hash, "embedding": v}))
            .collect();
        let rows = self
            .system(
                STORE_EMBEDDINGS,
                &[s(Value::Array(payload).to_string()), s(model)],
            )
            .await?;
        Ok(rows.len())
    }

    /// Charges an attempt to `ids`; returns (retry scheduled, now failed).
    pub async fn record_failures(
        &self,
        now: &str,
        ids: &[&str],
        policy: RetryPolicy,
    ) -> Result<(usize, usize), PortError> {
        let params = [
            s(json!(ids).to_string()),
            s(now),
            s(policy.max_attempts.to_string()),
            s(policy.base_seconds.to_string()),
            s(policy.cap_seconds.to_string()),
            s(policy.revive_seconds.to_string()),
        ];
        let rows = self.system(RECORD_FAILURES, &params).await?;
        let failed = rows
            .iter()
            .filter(|r| r.first().and_then(|c| c.as_deref()) == Some("failed"))
            .count();
        Ok((rows.len() - failed, failed))
    }

    /// Gives claimed rows back, due in `delay_seconds`, at no attempt.
    pub async fn release(
        &self,
        now: &str,
        ids: &[&str],
        delay_seconds: u64,
    ) -> Result<u64, PortError> {
        let rows = self
            .system(
                RELEASE,
                &[
                    s(json!(ids).to_string()),
                    s(now),
                    s(delay_seconds.to_string()),
                ],
            )
            .await?;
        count(&rows)
    }

    /// Makes `ids` due now (failed ones pending again).
    pub async fn mark_due(&self, now: &str, ids: &[String]) -> Result<u64, PortError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let rows = self
            .system(MARK_DUE, &[s(json!(ids).to_string()), s(now)])
            .await?;
        count(&rows)
    }

    /// Revives up to `max` failed rows whose time has come.
    pub async fn revive_failed(&self, now: &str, max: usize) -> Result<u64, PortError> {
        let rows = self
            .system(REVIVE_FAILED, &[s(now), s(max.to_string())])
            .await?;
        count(&rows)
    }

    pub async fn mark_stale_model(
        &self,
        now: &str,
        model: &str,
        max: usize,
    ) -> Result<u64, PortError> {
        let rows = self
            .system(MARK_STALE_MODEL, &[s(now), s(model), s(max.to_string())])
            .await?;
        count(&rows)
    }

    /// The model all `ready` rows are known to carry, if recorded.
    pub async fn settled_model(&self) -> Result<Option<String>, PortError> {
        let rows = self.system(GET_SETTLED_MODEL, &[]).await?;
        Ok(rows.first().and_then(|r| r.first().cloned().flatten()))
    }

    pub async fn set_settled_model(&self, model: &str, now: &str) -> Result<(), PortError> {
        self.system(SET_SETTLED_MODEL, &[s(model), s(now)]).await?;
        Ok(())
    }

    /// Takes the single-flight drain lease for `holder` for `ttl_seconds`;
    /// false when another run holds it.
    pub async fn take_drain_lease(
        &self,
        holder: &str,
        now: &str,
        ttl_seconds: u64,
    ) -> Result<bool, PortError> {
        let rows = self
            .system(
                TAKE_DRAIN_LEASE,
                &[s(holder), s(now), s(ttl_seconds.to_string())],
            )
            .await?;
        Ok(!rows.is_empty())
    }

    pub async fn return_drain_lease(&self, holder: &str) -> Result<(), PortError> {
        self.system(RETURN_DRAIN_LEASE, &[s(holder)]).await?;
        Ok(())
    }

    pub async fn purge_expired(&self, now: &str, max: usize) -> Result<u64, PortError> {
        let rows = self
            .system(PURGE_EXPIRED, &[s(now), s(max.to_string())])
            .await?;
        count(&rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repositories::rows::uses_every_parameter;

    /// Each statement must use every parameter from $1 to its highest, so
    /// adapters that infer parameter types never meet an unused one.
    #[test]
    fn statements_use_every_parameter() {
        for (name, sql, n) in [
            ("CLAIM_DUE", CLAIM_DUE, 3),
            ("CLAIM_IDS", CLAIM_IDS, 3),
            ("STORE_EMBEDDINGS", STORE_EMBEDDINGS, 2),
            ("RECORD_FAILURES", RECORD_FAILURES, 6),
            ("RELEASE", RELEASE, 3),
            ("MARK_DUE", MARK_DUE, 2),
            ("REVIVE_FAILED", REVIVE_FAILED, 2),
            ("MARK_STALE_MODEL", MARK_STALE_MODEL, 3),
            ("GET_SETTLED_MODEL", GET_SETTLED_MODEL, 0),
            ("SET_SETTLED_MODEL", SET_SETTLED_MODEL, 2),
            ("TAKE_DRAIN_LEASE", TAKE_DRAIN_LEASE, 3),
            ("RETURN_DRAIN_LEASE", RETURN_DRAIN_LEASE, 1),
            ("PURGE_EXPIRED", PURGE_EXPIRED, 2),
        ] {
            uses_every_parameter(name, sql, n);
        }
    }
}
