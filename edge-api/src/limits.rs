//! Size and count limits on what callers may send, with their defaults.
//!
//! Limits protect the database (row size, GIN index size) and the embedding
//! pool (model input is truncated anyway, so huge content buys nothing).

/// Every limit the API enforces. Defaults are the documented contract;
/// `Config` may override them from `MEMSHADOW_MAX_*` variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Whole request body, bytes (→ 413 `payload_too_large`).
    pub max_body_bytes: usize,
    /// `content` in UTF-8 bytes (→ 422 `content_too_large`).
    pub max_content_bytes: usize,
    /// `metadata` serialised compactly, bytes (→ 422 `metadata_too_large`).
    pub max_metadata_bytes: usize,
    /// Top-level keys in `metadata` (→ 422 `metadata_too_large`).
    pub max_metadata_keys: usize,
    /// Items in one `POST /memory/batch` (→ 422 `batch_too_large`).
    pub max_batch_items: usize,
    /// Tags per memory, and bytes per tag (→ 422 `invalid_field`).
    pub max_tags: usize,
    pub max_tag_bytes: usize,
    /// Retrieval query text, bytes.
    pub max_query_bytes: usize,
    /// Page size bounds for retrieve and list.
    pub max_page: usize,
    /// Deepest retrieval offset: hybrid ranking fetches offset+limit
    /// candidates per branch, so this bounds the work per request.
    pub max_offset: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_content_bytes: 32 * 1024,
            max_metadata_bytes: 8 * 1024,
            max_metadata_keys: 64,
            max_batch_items: 100,
            max_tags: 32,
            max_tag_bytes: 128,
            max_query_bytes: 4 * 1024,
            max_page: 100,
            max_offset: 1000,
        }
    }
}
