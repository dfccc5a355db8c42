//! The retrieval use case: hybrid (vector ∪ full text), vector-only or
//! text-only search over the caller's memories, paged by `limit`/`offset`.
//!
//! The request body follows the design documents' contract (`query`, a flat
//! `filters` object of metadata conditions) plus our own members beside it
//! (`tags`, `created_after`, `created_before`, `mode`), so none of ours can
//! collide with a metadata key.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{FilterBody, MemoryService, build_filters, has_nul, invalid};
use crate::errors::{ApiError, ErrorCode};
use crate::limits::Limits;
use crate::repositories::memories::{Hit, MemoryRow};
use crate::repositories::retrieval::Query as RetrievalQuery;
use crate::services::embedding::to_pgvector;

/// Body of `POST /memory/retrieve`. Paging is not here: `limit` and
/// `offset` are query parameters (see [`Page`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrieveRequest {
    pub query: String,
    /// Metadata containment: `{"project": "x"}` keeps memories whose
    /// metadata contains `project = "x"`.
    #[serde(default)]
    pub filters: Option<Value>,
    /// All-of.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    pub created_after: Option<String>,
    #[serde(default)]
    pub created_before: Option<String>,
    #[serde(default)]
    pub mode: Option<RetrieveMode>,
}

/// Which branches of the search run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RetrieveMode {
    /// Nearest vectors ∪ full-text matches, fused by reciprocal rank.
    #[default]
    Hybrid,
    /// Nearest vectors only (needs the embedding pool).
    Vector,
    /// Full-text matches only (never calls the embedding pool).
    Text,
}

impl RetrieveMode {
    /// The name clients see (request member and `x-retrieval-mode`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Hybrid => "hybrid",
            Self::Vector => "vector",
            Self::Text => "text",
        }
    }
}

pub const DEFAULT_RETRIEVE_LIMIT: usize = 10;

/// A validated page: `limit` in 1..=`max_page`, `offset` in 0..=`max_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: usize,
    pub offset: usize,
}

impl Page {
    /// Validates the raw query parameters. A value out of range or not an
    /// integer is refused (422 `invalid_field`), never silently replaced.
    pub fn parse(
        limit: Option<&str>,
        offset: Option<&str>,
        limits: &Limits,
    ) -> Result<Page, ApiError> {
        let number = |raw: Option<&str>, name: &str, min: usize, max: usize, default: usize| {
            let Some(raw) = raw else {
                return Ok(default);
            };
            raw.parse::<usize>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| {
                    invalid(
                        ErrorCode::InvalidField,
                        format!(
                            "the query parameter {name} must be an integer from {min} to {max}; got {:?}",
                            crate::json::truncate(raw, 32)
                        ),
                    )
                })
        };
        Ok(Page {
            limit: number(limit, "limit", 1, limits.max_page, DEFAULT_RETRIEVE_LIMIT)?,
            offset: number(offset, "offset", 0, limits.max_offset, 0)?,
        })
    }
}

/// A retrieval hit as the API shows it: the memory plus its ranking.
#[derive(Debug, Clone, Serialize)]
pub struct HitView {
    #[serde(flatten)]
    pub memory: MemoryRow,
    /// Reciprocal-rank-fusion score (higher is better).
    pub score: f64,
    /// Cosine similarity to the query, when the vector branch found it.
    pub similarity: Option<f64>,
    pub vector_rank: Option<i64>,
    pub text_rank: Option<i64>,
}

impl From<Hit> for HitView {
    fn from(h: Hit) -> Self {
        HitView {
            memory: h.memory,
            score: h.score,
            similarity: h.similarity,
            vector_rank: h.vector_rank,
            text_rank: h.text_rank,
        }
    }
}

/// What a retrieval found, and the facts that travel in response headers.
#[derive(Debug, Clone)]
pub struct Retrieved {
    pub hits: Vec<HitView>,
    /// The mode actually used (`text` when a hybrid query could not be embedded).
    pub mode: RetrieveMode,
    /// The caller's memories still waiting for an embedding: while this is
    /// above zero, vector results may be incomplete.
    pub pending: u64,
    pub timing: RetrieveTiming,
}

/// Where the request's waiting went, in whole milliseconds of the Clock port
/// (the `server-timing` header). Both spans end in I/O, which is what a Worker's
/// clock sees advance; the client's total minus these is the runtime's share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrieveTiming {
    /// Embedding the query (pool or cache); `None` when text mode never asked.
    pub embed_ms: Option<i64>,
    /// The retrieve statement, round trip included.
    pub search_ms: i64,
}

impl RetrieveTiming {
    /// The `server-timing` header value (W3C Server Timing).
    pub fn header(&self) -> String {
        let search = format!("search;dur={}", self.search_ms);
        match self.embed_ms {
            Some(ms) => format!("embed;dur={ms}, {search}"),
            None => search,
        }
    }
}

impl MemoryService<'_> {
    pub async fn retrieve(&self, req: RetrieveRequest, page: Page) -> Result<Retrieved, ApiError> {
        let limits = &self.ctx.cfg.limits;
        let query = req.query.trim();
        if query.is_empty() {
            return Err(invalid(ErrorCode::InvalidField, "query must not be empty"));
        }
        if query.len() > limits.max_query_bytes || has_nul(query) {
            return Err(invalid(
                ErrorCode::InvalidField,
                format!(
                    "query must be at most {} bytes without NUL characters",
                    limits.max_query_bytes
                ),
            ));
        }
        let filters = build_filters(
            &FilterBody {
                metadata: req.filters,
                tags: req.tags,
                created_after: req.created_after,
                created_before: req.created_before,
            },
            limits,
        )?;
        let requested = req.mode.unwrap_or_default();
        let clock = self.ctx.p.clock;
        // The query embedding (an HTTP call) and the pending count (a SQL
        // round trip) do not depend on each other: overlap them.
        let embed = async {
            if requested == RetrieveMode::Text {
                return (None, None);
            }
            let started = clock.now_millis();
            let vector = self
                .try_embed(&[query])
                .await
                .and_then(|mut v| v.pop())
                .map(|v| to_pgvector(&v));
            (vector, Some(clock.now_millis() - started))
        };
        let now = self.now();
        let ((vector, embed_ms), pending) =
            crate::concurrent::join2(embed, self.repo().count_pending_embeddings(&self.user)).await;
        let pending = pending?;
        let mode = match (requested, &vector) {
            (RetrieveMode::Hybrid, None) => RetrieveMode::Text,
            (RetrieveMode::Vector, None) => {
                return Err(invalid(
                    ErrorCode::NotReady,
                    "vector search needs the embedding service, which is unavailable; retry, or use mode \"text\"",
                ));
            }
            (m, _) => m,
        };
        // A NULL text makes the full-text branch empty.
        let search = RetrievalQuery {
            vector,
            model: &self.ctx.cfg.embedding_model,
            dim: self.ctx.cfg.embedding_dim,
            text: (mode != RetrieveMode::Vector).then_some(query),
            budget: Default::default(),
        };
        let started = clock.now_millis();
        let hits: Vec<Hit> = self
            .repo()
            .retrieve(&self.user, &now, &filters, &search, page.limit, page.offset)
            .await?;
        let search_ms = clock.now_millis() - started;
        // The retrieve statement itself recorded the hits (access_stats).
        Ok(Retrieved {
            hits: hits.into_iter().map(HitView::from).collect(),
            mode,
            pending,
            timing: RetrieveTiming {
                embed_ms,
                search_ms,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_defaults_and_bounds() {
        let l = Limits::default();
        assert_eq!(
            Page::parse(None, None, &l).unwrap(),
            Page {
                limit: DEFAULT_RETRIEVE_LIMIT,
                offset: 0
            }
        );
        assert_eq!(
            Page::parse(Some("100"), Some("1000"), &l).unwrap(),
            Page {
                limit: 100,
                offset: 1000
            }
        );
        for (limit, offset) in [
            (Some("0"), None),
            (Some("101"), None),
            (Some("-1"), None),
            (Some("1.5"), None),
            (Some(""), None),
            (Some("ten"), None),
            (None, Some("-1")),
            (None, Some("1001")),
            (None, Some("x")),
        ] {
            assert_eq!(
                Page::parse(limit, offset, &l).unwrap_err().code,
                ErrorCode::InvalidField,
                "{limit:?} {offset:?}"
            );
        }
    }

    #[test]
    fn server_timing_names_only_the_spans_that_ran() {
        let both = RetrieveTiming {
            embed_ms: Some(94),
            search_ms: 46,
        };
        assert_eq!(both.header(), "embed;dur=94, search;dur=46");
        let text_only = RetrieveTiming {
            embed_ms: None,
            search_ms: 7,
        };
        assert_eq!(text_only.header(), "search;dur=7");
    }

    #[test]
    fn body_refuses_paging_members_and_knows_modes() {
        let parse = |s: &str| crate::json::parse_bytes::<RetrieveRequest>(s.as_bytes());
        assert_eq!(
            parse(r#"{"query":"q","limit":5}"#).unwrap_err().code,
            ErrorCode::UnknownField
        );
        assert_eq!(
            parse(r#"{"query":"q","offset":5}"#).unwrap_err().code,
            ErrorCode::UnknownField
        );
        assert_eq!(
            parse(r#"{"query":"q","mode":"fuzzy"}"#).unwrap_err().code,
            ErrorCode::InvalidField
        );
        let r = parse(r#"{"query":"q","filters":{"project":"x"},"mode":"vector"}"#).unwrap();
        assert_eq!(r.mode, Some(RetrieveMode::Vector));
        assert_eq!(r.filters, Some(serde_json::json!({"project": "x"})));
    }
}
