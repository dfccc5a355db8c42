//! Every SQL statement the API runs against the `memories` table, written
//! once, and the conversion of their text rows into typed values.
//!
//! Conventions (see `ports::Sql`): parameters are text and cast in SQL;
//! results are selected as text. Statements that share filters number their
//! parameters the same way: `$1` user id, `$2` now, `$3` metadata filter,
//! `$4` tags filter, `$5` created_after, `$6` created_before; each statement
//! uses every parameter it is given, so no adapter has to infer a type.
//! Row locks on `memories` are always taken in one global order, by id
//! (`ORDER BY id FOR UPDATE`), or not at all (inserts `DO NOTHING`; reads
//! and access statistics lock nothing), so concurrent ingests, retrieves,
//! deletes and the scheduled job cannot deadlock.

use serde::Serialize;
use serde_json::{Value, json};

use crate::ports::{PortError, Sql, SqlParam, SqlRow, SqlScope};

/// The columns of a memory as text, in [`MemoryRow::from_row`] order.
/// Timestamps are rendered in UTC with microseconds, which round-trips
/// exactly through a cursor. Access statistics are the folded values plus
/// the hits still waiting in `memory_access` (see `access_stats`), so a
/// reader sees every hit at once, before the scheduled job folds it.
macro_rules! memory_columns {
    () => {
        "m.id::text, m.content, m.content_hash, m.metadata::text, array_to_json(m.tags)::text, \
         m.embedding_status, m.embedding_model, \
         to_char(m.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), \
         to_char(m.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), \
         to_char(greatest(m.accessed_at, (SELECT max(a.accessed_at) FROM memory_access a WHERE a.memory_id = m.id)) \
           AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), \
         (m.access_count + (SELECT count(*) FROM memory_access a WHERE a.memory_id = m.id))::text, \
         to_char(m.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
    };
}
pub(super) const MEMORY_COLUMN_COUNT: usize = 12;

/// Caller filters on `m` ($3..$6), shared by retrieve, list and delete.
macro_rules! filters {
    () => {
        " AND ($3::jsonb IS NULL OR m.metadata @> $3::jsonb) \
          AND ($4::jsonb IS NULL OR m.tags @> ARRAY(SELECT jsonb_array_elements_text($4::jsonb))) \
          AND ($5::timestamptz IS NULL OR m.created_at >= $5::timestamptz) \
          AND ($6::timestamptz IS NULL OR m.created_at < $6::timestamptz) "
    };
}

/// Live rows only: expired rows are invisible until the job purges them.
macro_rules! not_expired {
    () => {
        " AND (m.expires_at IS NULL OR m.expires_at > $2::timestamptz) "
    };
}

/// Inserts a batch of new memories (`$3`: JSON array of [`NewMemory`]).
/// A conflicting row is left alone and not returned (a duplicate, or an
/// expired row that [`DELETE_EXPIRED_BY_HASHES`] clears first).
///
/// Deadlock freedom: `DO NOTHING` takes no lock on an existing row, so the
/// statement holds only its own new rows; the only waits left are unique
/// checks against rows another transaction is inserting or deleting, and
/// those happen in content-hash order (`ORDER BY x.content_hash`), the same
/// order for every batch whatever order its client sent. Two batches with
/// overlapping contents in different orders therefore queue, never cycle.
const INSERT_MANY: &str = concat!(
    "INSERT INTO memories AS m (user_id, content, content_hash, metadata, tags, embedding, embedding_model, \
       embedding_status, next_embed_at, created_at, updated_at, expires_at) \
     SELECT $1::uuid, x.content, x.content_hash, x.metadata, x.tags, x.embedding::vector, x.embedding_model, \
       CASE WHEN x.embedding IS NULL THEN 'pending' ELSE 'ready' END, \
       CASE WHEN x.embedding IS NULL THEN $2::timestamptz END, \
       $2::timestamptz, $2::timestamptz, x.expires_at \
     FROM jsonb_to_recordset($3::jsonb) AS x(ord int, content text, content_hash text, metadata jsonb, tags text[], \
       embedding text, embedding_model text, expires_at timestamptz) \
     ORDER BY x.content_hash \
     ON CONFLICT (user_id, content_hash) DO NOTHING \
     RETURNING ",
    memory_columns!()
);

/// Deletes the caller's *expired* rows with these content hashes ($3: JSON
/// array), so storing the same text again replaces them (under a new id).
/// Run on its own, only when an insert met such a row: it locks in id order
/// and holds nothing else, like every other locking statement here.
const DELETE_EXPIRED_BY_HASHES: &str = "WITH d AS (DELETE FROM memories WHERE id IN (SELECT m.id FROM memories m \
       WHERE m.user_id = $1::uuid AND m.content_hash IN (SELECT jsonb_array_elements_text($3::jsonb)) \
         AND m.expires_at <= $2::timestamptz ORDER BY m.id FOR UPDATE) RETURNING 1) \
     SELECT count(*)::text FROM d";

/// Ids of the caller's live memories with the given content hashes ($3: JSON array).
const FIND_BY_HASHES: &str = concat!(
    "SELECT m.content_hash, m.id::text FROM memories m \
     WHERE m.user_id = $1::uuid AND m.content_hash IN (SELECT jsonb_array_elements_text($3::jsonb))",
    not_expired!()
);

const GET: &str = concat!(
    "SELECT ",
    memory_columns!(),
    " FROM memories m WHERE m.user_id = $1::uuid AND m.id = $3::uuid",
    not_expired!()
);

/// Replaces a memory's editable fields, guarded by the `updated_at` the
/// caller read ($11) so a concurrent edit is detected instead of lost.
/// When the content hash changes, the new embedding ($9, NULL = pending)
/// replaces the old one; otherwise the embedding is kept.
const UPDATE: &str = concat!(
    "UPDATE memories AS m SET content = $4, content_hash = $5, metadata = $6::jsonb, \
       tags = ARRAY(SELECT jsonb_array_elements_text($7::jsonb)), expires_at = $8::timestamptz, \
       updated_at = $2::timestamptz, \
       embedding = CASE WHEN m.content_hash = $5 THEN m.embedding ELSE $9::text::vector END, \
       embedding_model = CASE WHEN m.content_hash = $5 THEN m.embedding_model ELSE $10 END, \
       embedding_status = CASE WHEN m.content_hash = $5 THEN m.embedding_status \
         WHEN $9::text IS NULL THEN 'pending' ELSE 'ready' END, \
       embed_attempts = CASE WHEN m.content_hash = $5 THEN m.embed_attempts ELSE 0 END, \
       next_embed_at = CASE WHEN m.content_hash = $5 THEN m.next_embed_at \
         WHEN $9::text IS NULL THEN $2::timestamptz END \
     WHERE m.user_id = $1::uuid AND m.id = $3::uuid AND m.updated_at = $11::timestamptz",
    not_expired!(),
    " RETURNING ",
    memory_columns!()
);

const DELETE_ONE: &str =
    "DELETE FROM memories m WHERE m.user_id = $1::uuid AND m.id = $2::uuid RETURNING m.id::text";

/// Deletes up to `$7` of the caller's memories matching the filters
/// (expired ones too: "delete everything" must mean everything), locked in
/// id order. Callers repeat it until fewer than `$7` go, so no statement
/// holds locks on, or writes WAL for, an unbounded number of rows.
/// `$2` is only type-anchored.
const DELETE_MATCHING: &str = concat!(
    "WITH d AS (DELETE FROM memories WHERE id IN (SELECT m.id FROM memories m \
       WHERE m.user_id = $1::uuid AND $2::timestamptz IS NOT NULL",
    filters!(),
    " ORDER BY m.id LIMIT $7::int FOR UPDATE) RETURNING 1) SELECT count(*)::text FROM d"
);

/// One page, newest first, after the keyset cursor ($7 created_at, $8 id).
const LIST: &str = concat!(
    "SELECT ",
    memory_columns!(),
    " FROM memories m WHERE m.user_id = $1::uuid",
    not_expired!(),
    filters!(),
    " AND ($7::timestamptz IS NULL OR (m.created_at, m.id) < ($7::timestamptz, $8::uuid)) \
     ORDER BY m.created_at DESC, m.id DESC LIMIT $9::int"
);

const PING: &str = "SELECT 1::text";

/// A stored memory as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemoryRow {
    pub id: String,
    pub content: String,
    pub content_hash: String,
    pub metadata: Value,
    pub tags: Vec<String>,
    /// `pending`, `ready` or `failed`.
    pub embedding_status: String,
    pub embedding_model: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub accessed_at: Option<String>,
    pub access_count: i64,
    pub expires_at: Option<String>,
}

pub(super) fn bad_row(what: &str) -> PortError {
    PortError::failed(format!("unexpected row shape: {what}"))
}

fn text(row: &SqlRow, i: usize) -> Result<&str, PortError> {
    row.get(i)
        .and_then(|c| c.as_deref())
        .ok_or_else(|| bad_row(&format!("column {i} is NULL or missing")))
}

pub(super) fn opt_text(row: &SqlRow, i: usize) -> Result<Option<String>, PortError> {
    row.get(i)
        .cloned()
        .ok_or_else(|| bad_row(&format!("column {i} missing")))
}

impl MemoryRow {
    pub fn from_row(row: &SqlRow) -> Result<Self, PortError> {
        if row.len() < MEMORY_COLUMN_COUNT {
            return Err(bad_row("too few columns"));
        }
        Ok(MemoryRow {
            id: text(row, 0)?.to_string(),
            content: text(row, 1)?.to_string(),
            content_hash: text(row, 2)?.to_string(),
            metadata: serde_json::from_str(text(row, 3)?).map_err(|_| bad_row("metadata"))?,
            tags: serde_json::from_str(text(row, 4)?).map_err(|_| bad_row("tags"))?,
            embedding_status: text(row, 5)?.to_string(),
            embedding_model: opt_text(row, 6)?,
            created_at: text(row, 7)?.to_string(),
            updated_at: text(row, 8)?.to_string(),
            accessed_at: opt_text(row, 9)?,
            access_count: text(row, 10)?
                .parse()
                .map_err(|_| bad_row("access_count"))?,
            expires_at: opt_text(row, 11)?,
        })
    }
}

/// Caller filters, already validated and serialised for SQL.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filters {
    /// A JSON object the metadata must contain (`@>`).
    pub metadata: Option<String>,
    /// A JSON array of tags that must all be present.
    pub tags: Option<String>,
    /// RFC 3339, inclusive.
    pub created_after: Option<String>,
    /// RFC 3339, exclusive.
    pub created_before: Option<String>,
}

impl Filters {
    pub fn is_empty(&self) -> bool {
        *self == Filters::default()
    }
}

/// One memory to insert, as the `jsonb_to_recordset` row in [`INSERT_MANY`].
#[derive(Debug, Clone, Serialize)]
pub struct NewMemory {
    pub ord: usize,
    pub content: String,
    pub content_hash: String,
    pub metadata: Value,
    pub tags: Vec<String>,
    /// pgvector text, or None to leave the row pending.
    pub embedding: Option<String>,
    pub embedding_model: Option<String>,
    pub expires_at: Option<String>,
}

/// A full replacement of a memory's editable fields (PATCH, merged in Rust).
#[derive(Debug, Clone)]
pub struct MemoryUpdate {
    pub content: String,
    pub content_hash: String,
    pub metadata: Value,
    pub tags: Vec<String>,
    pub expires_at: Option<String>,
    /// Used only if the content hash changed.
    pub embedding: Option<String>,
    pub embedding_model: Option<String>,
    /// The `updated_at` the merge was based on.
    pub expected_updated_at: String,
}

pub use super::retrieval::Hit;

pub(super) fn s(v: impl Into<String>) -> SqlParam {
    Some(v.into())
}

pub(super) fn filter_params(user: &str, now: &str, f: &Filters) -> Vec<SqlParam> {
    vec![
        s(user),
        s(now),
        f.metadata.clone(),
        f.tags.clone(),
        f.created_after.clone(),
        f.created_before.clone(),
    ]
}

pub(super) fn user_scope(user: &str) -> SqlScope {
    SqlScope::User(user.to_string())
}

/// The repository: typed functions over the `Sql` port.
pub struct Memories<'a> {
    pub sql: &'a dyn Sql,
}

impl Memories<'_> {
    /// Inserts `items`; returns the rows actually inserted (duplicates of
    /// live rows are absent — look them up with [`Self::find_by_hashes`]).
    pub async fn insert_many(
        &self,
        user: &str,
        now: &str,
        items: &[NewMemory],
    ) -> Result<Vec<MemoryRow>, PortError> {
        let payload = serde_json::to_string(items).map_err(|e| PortError::failed(e.to_string()))?;
        let rows = self
            .sql
            .query(
                &user_scope(user),
                INSERT_MANY,
                &[s(user), s(now), s(payload)],
            )
            .await?;
        rows.iter().map(MemoryRow::from_row).collect()
    }

    /// `(content_hash, id)` of the caller's live memories with these hashes.
    pub async fn find_by_hashes(
        &self,
        user: &str,
        now: &str,
        hashes: &[&str],
    ) -> Result<Vec<(String, String)>, PortError> {
        let payload = json!(hashes).to_string();
        let rows = self
            .sql
            .query(
                &user_scope(user),
                FIND_BY_HASHES,
                &[s(user), s(now), s(payload)],
            )
            .await?;
        rows.iter()
            .map(|r| Ok((text(r, 0)?.to_string(), text(r, 1)?.to_string())))
            .collect()
    }

    pub async fn get(
        &self,
        user: &str,
        now: &str,
        id: &str,
    ) -> Result<Option<MemoryRow>, PortError> {
        let rows = self
            .sql
            .query(&user_scope(user), GET, &[s(user), s(now), s(id)])
            .await?;
        rows.first().map(MemoryRow::from_row).transpose()
    }

    /// Applies `u`; `Ok(None)` when the row is gone or changed since it was read.
    pub async fn update(
        &self,
        user: &str,
        now: &str,
        id: &str,
        u: &MemoryUpdate,
    ) -> Result<Option<MemoryRow>, PortError> {
        let params = vec![
            s(user),
            s(now),
            s(id),
            s(u.content.clone()),
            s(u.content_hash.clone()),
            s(u.metadata.to_string()),
            s(json!(u.tags).to_string()),
            u.expires_at.clone(),
            u.embedding.clone(),
            u.embedding_model.clone(),
            s(u.expected_updated_at.clone()),
        ];
        let rows = self.sql.query(&user_scope(user), UPDATE, &params).await?;
        rows.first().map(MemoryRow::from_row).transpose()
    }

    pub async fn delete(&self, user: &str, id: &str) -> Result<bool, PortError> {
        let rows = self
            .sql
            .query(&user_scope(user), DELETE_ONE, &[s(user), s(id)])
            .await?;
        Ok(!rows.is_empty())
    }

    /// Deletes at most `chunk` matching rows (one transaction); returns how many.
    pub async fn delete_matching(
        &self,
        user: &str,
        now: &str,
        f: &Filters,
        chunk: usize,
    ) -> Result<u64, PortError> {
        let mut params = filter_params(user, now, f);
        params.push(s(chunk.to_string()));
        let rows = self
            .sql
            .query(&user_scope(user), DELETE_MATCHING, &params)
            .await?;
        count(&rows)
    }

    /// Clears the caller's expired rows holding these hashes; returns how many.
    pub async fn delete_expired_by_hashes(
        &self,
        user: &str,
        now: &str,
        hashes: &[&str],
    ) -> Result<u64, PortError> {
        let rows = self
            .sql
            .query(
                &user_scope(user),
                DELETE_EXPIRED_BY_HASHES,
                &[s(user), s(now), s(json!(hashes).to_string())],
            )
            .await?;
        count(&rows)
    }

    /// A page of at most `limit` rows after `after` = (created_at, id).
    pub async fn list(
        &self,
        user: &str,
        now: &str,
        f: &Filters,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<MemoryRow>, PortError> {
        let mut params = filter_params(user, now, f);
        params.push(after.map(|a| a.0.to_string()));
        params.push(after.map(|a| a.1.to_string()));
        params.push(s(limit.to_string()));
        let rows = self.sql.query(&user_scope(user), LIST, &params).await?;
        rows.iter().map(MemoryRow::from_row).collect()
    }

    pub async fn ping(&self) -> Result<(), PortError> {
        let rows = self.sql.query(&SqlScope::System, PING, &[]).await?;
        match rows
            .first()
            .and_then(|r| r.first())
            .and_then(|c| c.as_deref())
        {
            Some("1") => Ok(()),
            _ => Err(bad_row("ping")),
        }
    }
}

fn count(rows: &[SqlRow]) -> Result<u64, PortError> {
    let r = rows.first().ok_or_else(|| bad_row("count"))?;
    text(r, 0)?.parse().map_err(|_| bad_row("count"))
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
            ("INSERT_MANY", INSERT_MANY, 3),
            ("FIND_BY_HASHES", FIND_BY_HASHES, 3),
            ("GET", GET, 3),
            ("UPDATE", UPDATE, 11),
            ("DELETE_ONE", DELETE_ONE, 2),
            ("DELETE_MATCHING", DELETE_MATCHING, 7),
            ("LIST", LIST, 9),
            ("DELETE_EXPIRED_BY_HASHES", DELETE_EXPIRED_BY_HASHES, 3),
        ] {
            uses_every_parameter(name, sql, n);
        }
    }
}
