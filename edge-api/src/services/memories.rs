//! Memory use cases: validation, deduplication, inline embedding with a
//! pending fallback, edits, listing and export; retrieval is in [`retrieval`].
//!
//! Handlers parse HTTP; this module decides. Nothing here names a runtime.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::app::Ctx;
use crate::errors::{ApiError, ErrorCode};
use crate::json::Patch;
use crate::limits::Limits;
use crate::ports::PortErrorKind;
use crate::repositories::memories::{Filters, Memories, MemoryRow, MemoryUpdate, NewMemory};
use crate::services::embed_pipeline;
use crate::services::embedding::{Embedder, to_pgvector};

pub mod retrieval;

/// Body of `POST /memory/ingest` and of each `POST /memory/batch` item.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestRequest {
    pub content: String,
    #[serde(default)]
    pub metadata: Option<Value>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    pub expires_at: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    pub items: Vec<Value>,
}

/// Filters as sent in a JSON body.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterBody {
    #[serde(default)]
    pub metadata: Option<Value>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    pub created_after: Option<String>,
    #[serde(default)]
    pub created_before: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetadataMode {
    /// RFC 7386 JSON Merge Patch: keys are added or replaced, `null` removes.
    #[default]
    Merge,
    /// The given object replaces the metadata.
    Replace,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchRequest {
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub metadata: Option<Value>,
    #[serde(default)]
    pub metadata_mode: Option<MetadataMode>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Absent keeps, `null` clears, a timestamp sets.
    #[serde(default)]
    pub expires_at: Patch<String>,
}

/// The outcome of one ingest item: the stored memory (its
/// `embedding_status` says whether it was embedded inline, `ready`, or
/// waits for the scheduled job, `pending`) or an error (409 duplicate,
/// 422 invalid, ...).
pub type IngestOutcome = Result<MemoryRow, ApiError>;

pub const DEFAULT_LIST_LIMIT: usize = 20;
/// Rows per statement of a bulk delete: bounds each transaction's locks
/// and WAL while a delete-all of a large account runs.
pub const DELETE_CHUNK: usize = 1000;

/// RFC 3339 in UTC with microseconds: the form the SQL renders too.
pub fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
        .to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Parses a client timestamp (RFC 3339, any offset) into canonical UTC form.
/// Years outside 1..=9999 are refused: Postgres and clients disagree there.
pub fn parse_timestamp(s: &str) -> Option<(i64, String)> {
    let t = DateTime::parse_from_rfc3339(s.trim())
        .ok()?
        .with_timezone(&Utc);
    let year = t.format("%Y").to_string().parse::<i32>().ok()?;
    if !(1..=9999).contains(&year) {
        return None;
    }
    Some((
        t.timestamp_millis(),
        t.to_rfc3339_opts(SecondsFormat::Micros, true),
    ))
}

pub fn content_hash(content: &str) -> String {
    hex::encode(Sha256::digest(content.as_bytes()))
}

fn invalid(code: ErrorCode, msg: impl Into<String>) -> ApiError {
    ApiError::new(code, msg)
}

/// Postgres text cannot hold NUL; refusing it here turns a would-be 500 into a 422.
fn has_nul(s: &str) -> bool {
    s.contains('\0')
}

pub fn validate_content(content: &str, limits: &Limits, field: &str) -> Result<(), ApiError> {
    if content.trim().is_empty() {
        return Err(invalid(
            ErrorCode::InvalidField,
            format!("{field} must not be empty"),
        ));
    }
    if content.len() > limits.max_content_bytes {
        return Err(invalid(
            ErrorCode::ContentTooLarge,
            format!(
                "{field} is {} bytes; the limit is {}",
                content.len(),
                limits.max_content_bytes
            ),
        ));
    }
    if has_nul(content) {
        return Err(invalid(
            ErrorCode::InvalidField,
            format!("{field} must not contain NUL characters"),
        ));
    }
    Ok(())
}

pub fn validate_metadata(m: &Value, limits: &Limits) -> Result<(), ApiError> {
    let Value::Object(map) = m else {
        return Err(invalid(
            ErrorCode::InvalidField,
            "metadata must be a JSON object",
        ));
    };
    if map.len() > limits.max_metadata_keys {
        return Err(invalid(
            ErrorCode::MetadataTooLarge,
            format!(
                "metadata has {} keys; the limit is {}",
                map.len(),
                limits.max_metadata_keys
            ),
        ));
    }
    let text = m.to_string();
    if text.len() > limits.max_metadata_bytes {
        return Err(invalid(
            ErrorCode::MetadataTooLarge,
            format!(
                "metadata is {} bytes; the limit is {}",
                text.len(),
                limits.max_metadata_bytes
            ),
        ));
    }
    // jsonb rejects \u0000 in strings and keys.
    if text.contains("\\u0000") {
        return Err(invalid(
            ErrorCode::InvalidField,
            "metadata must not contain NUL characters",
        ));
    }
    Ok(())
}

/// Trims, drops duplicates (keeping order) and checks each tag.
pub fn normalize_tags(
    tags: &[String],
    limits: &Limits,
    code: ErrorCode,
) -> Result<Vec<String>, ApiError> {
    if tags.len() > limits.max_tags {
        return Err(invalid(
            code,
            format!("at most {} tags are allowed", limits.max_tags),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for t in tags {
        let t = t.trim();
        if t.is_empty() || t.len() > limits.max_tag_bytes || has_nul(t) {
            return Err(invalid(
                code,
                format!(
                    "each tag must be 1..={} bytes without NUL characters",
                    limits.max_tag_bytes
                ),
            ));
        }
        if !out.iter().any(|o| o == t) {
            out.push(t.to_string());
        }
    }
    Ok(out)
}

fn validate_expiry(s: &str, now_ms: i64) -> Result<String, ApiError> {
    let (ms, canonical) = parse_timestamp(s).ok_or_else(|| {
        invalid(
            ErrorCode::InvalidField,
            "expires_at must be an RFC 3339 timestamp",
        )
    })?;
    if ms <= now_ms {
        return Err(invalid(
            ErrorCode::InvalidField,
            "expires_at must be in the future",
        ));
    }
    Ok(canonical)
}

/// Validates filters from a body or query string into SQL form.
pub fn build_filters(f: &FilterBody, limits: &Limits) -> Result<Filters, ApiError> {
    let metadata = match &f.metadata {
        None => None,
        Some(m @ Value::Object(_)) => {
            let text = m.to_string();
            if text.len() > limits.max_metadata_bytes || text.contains("\\u0000") {
                return Err(invalid(
                    ErrorCode::InvalidFilter,
                    "the metadata filter is too large or contains NUL",
                ));
            }
            Some(text)
        }
        Some(_) => {
            return Err(invalid(
                ErrorCode::InvalidFilter,
                "the metadata filter must be a JSON object",
            ));
        }
    };
    let tags = match &f.tags {
        None => None,
        Some(t) => Some(json!(normalize_tags(t, limits, ErrorCode::InvalidFilter)?).to_string()),
    };
    let ts = |v: &Option<String>, name: &str| -> Result<Option<(i64, String)>, ApiError> {
        v.as_deref()
            .map(|s| {
                parse_timestamp(s).ok_or_else(|| {
                    invalid(
                        ErrorCode::InvalidFilter,
                        format!("{name} must be an RFC 3339 timestamp"),
                    )
                })
            })
            .transpose()
    };
    let after = ts(&f.created_after, "created_after")?;
    let before = ts(&f.created_before, "created_before")?;
    if let (Some(a), Some(b)) = (&after, &before)
        && a.0 >= b.0
    {
        return Err(invalid(
            ErrorCode::InvalidFilter,
            "created_after must be before created_before",
        ));
    }
    Ok(Filters {
        metadata,
        tags,
        created_after: after.map(|a| a.1),
        created_before: before.map(|b| b.1),
    })
}

/// A validated ingest item, ready to insert.
struct Prepared {
    content: String,
    hash: String,
    metadata: Value,
    tags: Vec<String>,
    expires_at: Option<String>,
}

fn prepare(req: IngestRequest, limits: &Limits, now_ms: i64) -> Result<Prepared, ApiError> {
    validate_content(&req.content, limits, "content")?;
    let metadata = req.metadata.unwrap_or_else(|| Value::Object(Map::new()));
    validate_metadata(&metadata, limits)?;
    let tags = normalize_tags(
        req.tags.as_deref().unwrap_or(&[]),
        limits,
        ErrorCode::InvalidField,
    )?;
    let expires_at = req
        .expires_at
        .as_deref()
        .map(|s| validate_expiry(s, now_ms))
        .transpose()?;
    Ok(Prepared {
        hash: content_hash(&req.content),
        content: req.content,
        metadata,
        tags,
        expires_at,
    })
}

/// Hashes of `prepared` items that `inserted` does not hold, each once.
fn missing_hashes<'p>(prepared: &'p [(usize, Prepared)], inserted: &[MemoryRow]) -> Vec<&'p str> {
    let mut m: Vec<&str> = prepared
        .iter()
        .filter(|(_, p)| !inserted.iter().any(|r| r.content_hash == p.hash))
        .map(|(_, p)| p.hash.as_str())
        .collect();
    m.sort_unstable();
    m.dedup();
    m
}

fn duplicate(existing_id: Option<&str>) -> ApiError {
    ApiError::new(
        ErrorCode::DuplicateMemory,
        "a memory with the same content already exists",
    )
    .with_extra(json!({ "existing_id": existing_id }))
}

pub struct MemoryService<'a> {
    pub ctx: &'a Ctx<'a>,
    pub user: String,
}

impl<'a> MemoryService<'a> {
    pub fn new(ctx: &'a Ctx<'a>, user: Uuid) -> Self {
        Self {
            ctx,
            user: user.to_string(),
        }
    }

    fn repo(&self) -> Memories<'a> {
        Memories {
            sql: self.ctx.p.sql,
        }
    }

    fn now(&self) -> String {
        rfc3339(self.ctx.now_ms)
    }

    fn embedder(&self) -> Embedder<'a> {
        Embedder {
            http: self.ctx.p.http,
            kv: self.ctx.p.kv,
            cfg: self.ctx.cfg,
        }
    }

    /// Embeds texts; on failure logs why and returns None (callers store
    /// the rows as pending instead of failing the request).
    async fn try_embed(&self, texts: &[&str]) -> Option<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Some(Vec::new());
        }
        match self.embedder().embed(texts).await {
            Ok(v) => Some(v),
            Err(e) => {
                self.ctx.log(&format!("embedding deferred: {e}"));
                None
            }
        }
    }

    /// Ingests items (already parsed or failed individually), embedding all
    /// new contents in one call. Items keep their positions in the result.
    pub async fn ingest_many(
        &self,
        items: Vec<Result<IngestRequest, ApiError>>,
    ) -> Result<Vec<IngestOutcome>, ApiError> {
        let limits = &self.ctx.cfg.limits;
        let mut outcomes: Vec<Option<IngestOutcome>> = Vec::with_capacity(items.len());
        let mut prepared: Vec<(usize, Prepared)> = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            match item.and_then(|r| prepare(r, limits, self.ctx.now_ms)) {
                // Same content twice in one batch: the first is stored, the
                // others are duplicates of it (resolved below).
                Ok(p) => {
                    outcomes.push(None);
                    prepared.push((i, p));
                }
                Err(e) => outcomes.push(Some(Err(e))),
            }
        }
        let mut first_of_hash: Vec<(usize, &Prepared)> = Vec::new();
        for (i, p) in &prepared {
            if !first_of_hash.iter().any(|(_, q)| q.hash == p.hash) {
                first_of_hash.push((*i, p));
            }
        }
        let texts: Vec<&str> = first_of_hash
            .iter()
            .map(|(_, p)| p.content.as_str())
            .collect();
        // Larger batches go straight to the background (see
        // `Config::inline_embed_max_texts`).
        let vectors = if texts.len() <= self.ctx.cfg.inline_embed_max_texts {
            self.try_embed(&texts).await
        } else {
            None
        };
        let model = vectors
            .as_ref()
            .map(|_| self.ctx.cfg.embedding_model.clone());
        let rows: Vec<NewMemory> = first_of_hash
            .iter()
            .enumerate()
            .map(|(k, (i, p))| NewMemory {
                ord: *i,
                content: p.content.clone(),
                content_hash: p.hash.clone(),
                metadata: p.metadata.clone(),
                tags: p.tags.clone(),
                embedding: vectors
                    .as_ref()
                    .and_then(|v| v.get(k))
                    .map(|v| to_pgvector(v)),
                embedding_model: model.clone(),
                expires_at: p.expires_at.clone(),
            })
            .collect();
        let now = self.now();
        let mut inserted = if rows.is_empty() {
            Vec::new()
        } else {
            self.repo().insert_many(&self.user, &now, &rows).await?
        };
        let missing = |inserted: &[MemoryRow]| missing_hashes(&prepared, inserted);
        let mut existing = self.find_existing(&now, &missing(&inserted)).await?;

        // A hash neither inserted nor live is held by an expired row (or a
        // row deleted meanwhile): clear expired ones and insert those again.
        let absent: Vec<&str> = missing(&inserted)
            .into_iter()
            .filter(|h| !existing.iter().any(|(e, _)| e == h))
            .collect();
        if !absent.is_empty() {
            self.repo()
                .delete_expired_by_hashes(&self.user, &now, &absent)
                .await?;
            let retry: Vec<NewMemory> = rows
                .iter()
                .filter(|r| absent.contains(&r.content_hash.as_str()))
                .cloned()
                .collect();
            inserted.extend(self.repo().insert_many(&self.user, &now, &retry).await?);
            let still: Vec<&str> = missing(&inserted)
                .into_iter()
                .filter(|h| !existing.iter().any(|(e, _)| e == h))
                .collect();
            existing.extend(self.find_existing(&now, &still).await?);
        }
        // Every stored row still waiting for its vector goes to the queue.
        let pending: Vec<String> = inserted
            .iter()
            .filter(|r| r.embedding_status == "pending")
            .map(|r| r.id.clone())
            .collect();
        embed_pipeline::enqueue(self.ctx, self.ctx.p.queue, &pending).await;

        let mut claimed: Vec<&str> = Vec::new();
        for (i, p) in &prepared {
            let outcome = match inserted.iter().find(|r| r.content_hash == p.hash) {
                Some(row) if !claimed.contains(&p.hash.as_str()) => {
                    claimed.push(p.hash.as_str());
                    Ok(row.clone())
                }
                Some(row) => Err(duplicate(Some(&row.id))),
                None => Err(duplicate(
                    existing
                        .iter()
                        .find(|(h, _)| *h == p.hash)
                        .map(|(_, id)| id.as_str()),
                )),
            };
            outcomes[*i] = Some(outcome);
        }
        Ok(outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Err(ApiError::internal("ingest item lost"))))
            .collect())
    }

    /// `(content_hash, id)` of live memories with these hashes.
    async fn find_existing(
        &self,
        now: &str,
        hashes: &[&str],
    ) -> Result<Vec<(String, String)>, ApiError> {
        if hashes.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self.repo().find_by_hashes(&self.user, now, hashes).await?)
    }

    pub async fn get(&self, id: &Uuid) -> Result<MemoryRow, ApiError> {
        self.repo()
            .get(&self.user, &self.now(), &id.to_string())
            .await?
            .ok_or_else(|| invalid(ErrorCode::MemoryNotFound, "no such memory"))
    }

    pub async fn delete(&self, id: &Uuid) -> Result<(), ApiError> {
        if self.repo().delete(&self.user, &id.to_string()).await? {
            Ok(())
        } else {
            Err(invalid(ErrorCode::MemoryNotFound, "no such memory"))
        }
    }

    /// Applies an edit. A content change re-embeds; when the pool is
    /// unavailable the memory answers `embedding_status: "pending"`.
    pub async fn patch(&self, id: &Uuid, req: PatchRequest) -> Result<MemoryRow, ApiError> {
        let limits = &self.ctx.cfg.limits;
        if req.content.is_none()
            && req.metadata.is_none()
            && req.tags.is_none()
            && req.expires_at == Patch::Absent
        {
            return Err(invalid(
                ErrorCode::InvalidField,
                "nothing to update: send content, metadata, tags or expires_at",
            ));
        }
        if let Some(c) = &req.content {
            validate_content(c, limits, "content")?;
        }
        let tags = req
            .tags
            .as_deref()
            .map(|t| normalize_tags(t, limits, ErrorCode::InvalidField))
            .transpose()?;
        let expires_at = match &req.expires_at {
            Patch::Absent => None,
            Patch::Null => Some(None),
            Patch::Value(s) => Some(Some(validate_expiry(s, self.ctx.now_ms)?)),
        };
        let current = self.get(id).await?;
        let metadata = match (&req.metadata, req.metadata_mode.unwrap_or_default()) {
            (None, _) => current.metadata.clone(),
            (Some(m @ Value::Object(_)), MetadataMode::Replace) => m.clone(),
            (Some(m @ Value::Object(_)), MetadataMode::Merge) => {
                let mut merged = current.metadata.clone();
                merge_patch(&mut merged, m);
                merged
            }
            (Some(_), _) => {
                return Err(invalid(
                    ErrorCode::InvalidField,
                    "metadata must be a JSON object",
                ));
            }
        };
        validate_metadata(&metadata, limits)?;
        let content = req.content.unwrap_or_else(|| current.content.clone());
        let hash = content_hash(&content);
        let (embedding, model) = if hash == current.content_hash {
            (None, None)
        } else {
            match self.try_embed(&[&content]).await.and_then(|mut v| v.pop()) {
                Some(v) => (
                    Some(to_pgvector(&v)),
                    Some(self.ctx.cfg.embedding_model.clone()),
                ),
                None => (None, None),
            }
        };
        let update = MemoryUpdate {
            content,
            content_hash: hash.clone(),
            metadata,
            tags: tags.unwrap_or_else(|| current.tags.clone()),
            expires_at: expires_at.unwrap_or_else(|| current.expires_at.clone()),
            embedding,
            embedding_model: model,
            expected_updated_at: current.updated_at.clone(),
        };
        let now = self.now();
        match self
            .repo()
            .update(&self.user, &now, &id.to_string(), &update)
            .await
        {
            Ok(Some(row)) => Ok(row),
            Ok(None) => match self.repo().get(&self.user, &now, &id.to_string()).await? {
                None => Err(invalid(ErrorCode::MemoryNotFound, "no such memory")),
                Some(_) => Err(invalid(
                    ErrorCode::EditConflict,
                    "the memory changed while it was being updated; retry",
                )),
            },
            Err(e) if e.kind == PortErrorKind::UniqueViolation => {
                let existing = self
                    .repo()
                    .find_by_hashes(&self.user, &now, &[hash.as_str()])
                    .await?;
                Err(duplicate(existing.first().map(|(_, id)| id.as_str())))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// One page of the caller's memories, newest first.
    pub async fn list(
        &self,
        filters: &Filters,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<(Vec<MemoryRow>, Option<String>), ApiError> {
        let after = cursor.map(|c| (c.created_at.as_str(), c.id.as_str()));
        let mut rows = self
            .repo()
            .list(&self.user, &self.now(), filters, after, limit + 1)
            .await?;
        let next = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|r| {
                Cursor {
                    created_at: r.created_at.clone(),
                    id: r.id.clone(),
                }
                .encode()
            })
        } else {
            None
        };
        Ok((rows, next))
    }

    /// Deletes every matching memory, [`DELETE_CHUNK`] rows per statement.
    /// A failure part-way leaves the rest for a retry of the same request.
    pub async fn delete_matching(&self, filters: &Filters) -> Result<u64, ApiError> {
        let now = self.now();
        let mut total = 0;
        loop {
            let n = self
                .repo()
                .delete_matching(&self.user, &now, filters, DELETE_CHUNK)
                .await?;
            total += n;
            if n < DELETE_CHUNK as u64 {
                return Ok(total);
            }
        }
    }
}

/// RFC 7386 JSON Merge Patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// A keyset position: the last row of a page. Opaque to clients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    #[serde(rename = "t")]
    pub created_at: String,
    #[serde(rename = "i")]
    pub id: String,
}

impl Cursor {
    pub fn encode(&self) -> String {
        use base64::Engine as _;
        let json = serde_json::to_vec(self).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    pub fn decode(s: &str) -> Result<Cursor, ApiError> {
        use base64::Engine as _;
        let bad = || {
            invalid(
                ErrorCode::InvalidCursor,
                "the cursor is not valid; start again without it",
            )
        };
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| bad())?;
        let c: Cursor = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        let (_, canonical) = parse_timestamp(&c.created_at).ok_or_else(bad)?;
        let id = Uuid::parse_str(&c.id).map_err(|_| bad())?;
        Ok(Cursor {
            created_at: canonical,
            id: id.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123000Z");
        assert_eq!(
            parse_timestamp("2026-01-02T03:04:05+02:00").map(|t| t.1),
            Some("2026-01-02T01:04:05.000000Z".into())
        );
        assert_eq!(parse_timestamp("yesterday"), None);
        assert_eq!(parse_timestamp("2026-13-01T00:00:00Z"), None);
        assert_eq!(parse_timestamp("0000-01-01T00:00:00Z"), None);
    }

    #[test]
    fn content_rules() {
        let l = Limits::default();
        assert!(validate_content("hi", &l, "content").is_ok());
        assert_eq!(
            validate_content("  ", &l, "content").unwrap_err().code,
            ErrorCode::InvalidField
        );
        assert_eq!(
            validate_content("a\0b", &l, "content").unwrap_err().code,
            ErrorCode::InvalidField
        );
        let big = "x".repeat(l.max_content_bytes + 1);
        assert_eq!(
            validate_content(&big, &l, "content").unwrap_err().code,
            ErrorCode::ContentTooLarge
        );
        assert!(validate_content(&big[1..], &l, "content").is_ok());
    }

    #[test]
    fn metadata_rules() {
        let l = Limits::default();
        assert!(validate_metadata(&json!({"a": 1}), &l).is_ok());
        assert_eq!(
            validate_metadata(&json!([1]), &l).unwrap_err().code,
            ErrorCode::InvalidField
        );
        let many: Map<String, Value> = (0..65).map(|i| (format!("k{i}"), json!(1))).collect();
        assert_eq!(
            validate_metadata(&Value::Object(many), &l)
                .unwrap_err()
                .code,
            ErrorCode::MetadataTooLarge
        );
        let big = json!({"k": "x".repeat(l.max_metadata_bytes)});
        assert_eq!(
            validate_metadata(&big, &l).unwrap_err().code,
            ErrorCode::MetadataTooLarge
        );
        assert_eq!(
            validate_metadata(&json!({"k": "a\u{0}"}), &l)
                .unwrap_err()
                .code,
            ErrorCode::InvalidField
        );
    }

    #[test]
    fn tags_are_trimmed_and_deduplicated() {
        let l = Limits::default();
        let t = normalize_tags(
            &[" a".into(), "b".into(), "a".into()],
            &l,
            ErrorCode::InvalidField,
        )
        .unwrap();
        assert_eq!(t, vec!["a", "b"]);
        assert!(normalize_tags(&["".into()], &l, ErrorCode::InvalidField).is_err());
    }

    #[test]
    fn merge_patch_follows_rfc7386() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut t, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(t, json!({"a": "z", "c": {"d": "e"}}));
        let mut t = json!({"a": [1]});
        merge_patch(&mut t, &json!({"a": {"b": 1}, "n": null}));
        assert_eq!(t, json!({"a": {"b": 1}}));
    }

    #[test]
    fn cursor_round_trip_and_rejections() {
        let c = Cursor {
            created_at: "2026-01-01T00:00:00.123456Z".into(),
            id: Uuid::nil().to_string(),
        };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        for bad in [
            "",
            "!!",
            "e30",
            &Cursor {
                created_at: "x".into(),
                id: c.id.clone(),
            }
            .encode(),
        ] {
            assert_eq!(
                Cursor::decode(bad).unwrap_err().code,
                ErrorCode::InvalidCursor,
                "{bad}"
            );
        }
    }

    #[test]
    fn filters_validate() {
        let l = Limits::default();
        let f = FilterBody {
            metadata: Some(json!({"k": 1})),
            tags: Some(vec!["a".into()]),
            created_after: Some("2026-01-01T00:00:00Z".into()),
            created_before: None,
        };
        let b = build_filters(&f, &l).unwrap();
        assert_eq!(b.metadata.as_deref(), Some(r#"{"k":1}"#));
        assert_eq!(b.tags.as_deref(), Some(r#"["a"]"#));
        let bad = FilterBody {
            metadata: Some(json!("x")),
            ..Default::default()
        };
        assert_eq!(
            build_filters(&bad, &l).unwrap_err().code,
            ErrorCode::InvalidFilter
        );
        let bad = FilterBody {
            created_before: Some("nope".into()),
            ..Default::default()
        };
        assert_eq!(
            build_filters(&bad, &l).unwrap_err().code,
            ErrorCode::InvalidFilter
        );
        let bad = FilterBody {
            created_after: Some("2026-01-02T00:00:00Z".into()),
            created_before: Some("2026-01-01T00:00:00Z".into()),
            ..Default::default()
        };
        assert_eq!(
            build_filters(&bad, &l).unwrap_err().code,
            ErrorCode::InvalidFilter
        );
    }
}
