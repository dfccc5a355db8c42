//! Ports: the narrow traits through which the runtime-neutral core reaches
//! the outside world. Adapters under `platform/` implement them for one
//! runtime each (Cloudflare Workers, Spin, native tokio for tests).
//!
//! The traits are `?Send` because both edge runtimes run one request on one
//! thread; nothing here is shared across threads.

use async_trait::async_trait;

/// Why a port call failed. Adapters never put secrets or connection strings
/// in `detail`; the core logs it and answers 5xx without showing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortError {
    pub kind: PortErrorKind,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortErrorKind {
    /// The dependency could not be reached or timed out: retrying may help.
    Unavailable,
    /// A unique constraint was violated (Postgres SQLSTATE 23505).
    UniqueViolation,
    /// Any other rejection by the dependency (bad SQL, bad value, ...).
    Failed,
}

impl PortError {
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self {
            kind: PortErrorKind::Unavailable,
            detail: detail.into(),
        }
    }
    pub fn failed(detail: impl Into<String>) -> Self {
        Self {
            kind: PortErrorKind::Failed,
            detail: detail.into(),
        }
    }
}

impl std::fmt::Display for PortError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.detail)
    }
}

impl std::error::Error for PortError {}

/// A query parameter. Every parameter crosses the port as text (or NULL) and
/// the SQL casts it explicitly (`$1::uuid`, `$2::jsonb`, `$3::text::vector`),
/// so adapters never need to know Postgres types.
pub type SqlParam = Option<String>;

/// One result row: every column as text (or NULL). The SQL selects columns
/// with explicit `::text` casts where the type is not textual already.
pub type SqlRow = Vec<Option<String>>;

/// Whose rows a statement may see. Adapters run every statement inside a
/// transaction that first sets `app.user_id` (for `User`) or `app.system`
/// (for `System`), which the row-level-security policies key on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlScope {
    /// A request on behalf of one user (UUID as text).
    User(String),
    /// Scheduled jobs and account management that span users.
    System,
}

#[async_trait(?Send)]
pub trait Sql {
    /// Runs one parameterised statement in `scope` and returns its rows
    /// (empty for statements without RETURNING).
    async fn query(
        &self,
        scope: &SqlScope,
        sql: &str,
        params: &[SqlParam],
    ) -> Result<Vec<SqlRow>, PortError>;
}

/// Key-value store. Eventually consistent (Workers KV): use it for caches,
/// never for anything that must happen exactly once.
#[async_trait(?Send)]
pub trait Kv {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, PortError>;
    /// `ttl_seconds` below the store's minimum (60 s on Workers KV) is raised to it.
    async fn put(&self, key: &str, value: &[u8], ttl_seconds: Option<u64>)
    -> Result<(), PortError>;
    async fn delete(&self, key: &str) -> Result<(), PortError>;
}

/// An outbound HTTP response as the core needs it.
#[derive(Debug, Clone)]
pub struct HttpReply {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Outbound HTTP (the embedding pool, webhooks). `timeout_ms` bounds the
/// whole exchange; on expiry the adapter returns `Unavailable`.
#[async_trait(?Send)]
pub trait HttpClient {
    async fn post_json(
        &self,
        url: &str,
        body: Vec<u8>,
        timeout_ms: u64,
    ) -> Result<HttpReply, PortError>;
    async fn get(&self, url: &str, timeout_ms: u64) -> Result<HttpReply, PortError>;
}

/// A work queue (Cloudflare Queues on Workers): at-least-once delivery of
/// the ids of rows waiting to be embedded, to the consumer entry point
/// [`crate::app::run_embed_queue`]. Never the only record of work: every
/// id sent is also a `pending` row that the scheduled reconcile finds.
#[async_trait(?Send)]
pub trait Queue {
    /// Sends one message per id (ids are memory UUIDs as text).
    async fn send_ids(&self, ids: &[String]) -> Result<(), PortError>;
}

/// Object storage (backups): R2 on Workers, S3-compatible stores elsewhere,
/// memory in tests. Objects are written whole; keys are `/`-separated paths.
#[async_trait(?Send)]
pub trait Blob {
    async fn put(&self, key: &str, bytes: &[u8]) -> Result<(), PortError>;
    /// `Ok(None)`: no such object.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, PortError>;
    /// The keys of every object whose key starts with `prefix`, sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, PortError>;
    /// Removes an object; removing one that does not exist succeeds.
    async fn delete(&self, key: &str) -> Result<(), PortError>;
}

/// Wall-clock time. A port so tests can move time (expiry, token lifetimes).
pub trait Clock {
    /// Milliseconds since the Unix epoch.
    fn now_millis(&self) -> i64;
}
