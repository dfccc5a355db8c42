//! Shared harness for the native integration tests: the real Postgres (app
//! role, so row-level security applies), an in-memory KV, a deterministic
//! in-process embedder (which also records webhook calls), a movable clock,
//! and tokens signed by a test key.
//!
//! The database is required: an unreachable `DATABASE_URL` fails the test
//! with a pointer at `scripts/pg.sh start`, it never skips.
#![allow(dead_code)]

use std::cell::Cell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use edge_api::app::{self, Platform};
use edge_api::config::{Config, JwtKey};
use edge_api::http::{Request, Response};
use edge_api::platform::native::{self, MemoryBlob, MemoryKv};
use edge_api::platform::postgres::PgSql;
use edge_api::ports::{Clock, HttpClient, HttpReply, PortError, Queue};
use jwt_compact::alg::Es256;
use jwt_compact::{AlgorithmExt, Claims, Header};
use p256::ecdsa::SigningKey;
use rand_core::{OsRng, RngCore};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub mod schema;

pub const MODEL: &str = "all-MiniLM-L6-v2";
pub const DIM: usize = 384;

/// The native tests' own database, beside the local stack's `memshadow`:
/// the stack's timer runs the real scheduled job every few seconds, and it
/// must never embed these tests' rows (nor their fake job the stack's).
pub const TEST_DATABASE: &str = "memshadow_native_tests";

/// `url` with its database name replaced by `db`.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let root = match base.rfind('/') {
        Some(i) if i > "postgres://".len() => &base[..i],
        _ => base,
    };
    match query {
        Some(q) => format!("{root}/{db}?{q}"),
        None => format!("{root}/{db}"),
    }
}

pub fn database_url() -> String {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        "postgres://memshadow_app:memshadow_app@127.0.0.1:54329/memshadow".into()
    });
    with_database(&url, TEST_DATABASE)
}

pub fn admin_url() -> String {
    let url = std::env::var("MEMSHADOW_ADMIN_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:54329/memshadow".into());
    with_database(&url, TEST_DATABASE)
}

/// Creates the tests' database when it does not exist yet.
async fn ensure_database() -> Result<(), String> {
    let server = with_database(&admin_url(), "postgres");
    let c = native::connect_client(&server)
        .await
        .map_err(|e| e.to_string())?;
    let exists = c
        .query_opt(
            "SELECT 1 FROM pg_database WHERE datname = $1",
            &[&TEST_DATABASE],
        )
        .await
        .map_err(|e| e.to_string())?
        .is_some();
    if !exists {
        // Another test binary may win the race: "already exists" is fine.
        if let Err(e) = c
            .batch_execute(&format!("CREATE DATABASE {TEST_DATABASE}"))
            .await
            && e.code() != Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE)
        {
            return Err(e.to_string());
        }
    }
    Ok(())
}

/// Applies migrations once per test binary (idempotent; serialised by the
/// runner's table lock), on a thread of its own so any runtime may call it.
fn ensure_migrated() {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    let r = DONE.get_or_init(|| {
        std::thread::spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async {
                ensure_database().await?;
                let mut c = native::connect_client(&admin_url())
                    .await
                    .map_err(|e| e.to_string())?;
                edge_api::platform::migrate::migrate(&mut c, "memshadow_app")
                    .await
                    .map(|_| ())
            })
        })
        .join()
        .unwrap_or_else(|_| Err("migration thread panicked".into()))
    });
    if let Err(e) = r {
        panic!(
            "cannot migrate the test database at MEMSHADOW_ADMIN_DATABASE_URL ({e}). \
             Start it with `scripts/pg.sh start` (Postgres on 127.0.0.1:54329)."
        );
    }
}

pub fn random_uuid() -> Uuid {
    let mut b = [0u8; 16];
    OsRng.fill_bytes(&mut b);
    uuid::Builder::from_random_bytes(b).into_uuid()
}

/// A clock tests can move.
pub struct ManualClock(pub AtomicI64);

impl Clock for ManualClock {
    fn now_millis(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum EmbedMode {
    Up,
    Down,
    WrongModel,
    WrongDim,
    /// Answers this HTTP status with an error body (503: busy, 500: broken).
    Status(u16),
    /// Refuses (413) any request holding a text longer than this many bytes,
    /// as a pool with a smaller `max_chars` would.
    RefuseLonger(usize),
}

/// A deterministic embedding pool: a hashed bag of words, L2-normalised,
/// so texts sharing words are close. Speaks the OpenAI-compatible API.
pub struct FakeEmbedder {
    pub mode: Cell<EmbedMode>,
    pub calls: Cell<usize>,
    pub texts: Cell<usize>,
    /// (texts, timeout_ms) of every call, in order.
    pub budgets: std::cell::RefCell<Vec<(usize, u64)>>,
    /// (URL, JSON body) of every POST to a [`WEBHOOK_BASE`] URL, in order.
    pub webhooks: std::cell::RefCell<Vec<(String, Value)>>,
    /// How webhooks answer: an HTTP status, or None for unreachable.
    pub webhook_status: Cell<Option<u16>>,
}

/// URLs under this base reach the fake's webhook receiver, not the pool.
pub const WEBHOOK_BASE: &str = "http://webhook.test/";

impl FakeEmbedder {
    pub fn new() -> Self {
        Self {
            mode: Cell::new(EmbedMode::Up),
            calls: Cell::new(0),
            texts: Cell::new(0),
            budgets: std::cell::RefCell::new(Vec::new()),
            webhooks: std::cell::RefCell::new(Vec::new()),
            webhook_status: Cell::new(Some(204)),
        }
    }
}

pub fn fake_vector(text: &str) -> Vec<f32> {
    let mut v = vec![0f32; DIM];
    for word in text
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let h = Sha256::digest(word.as_bytes());
        let i = (u16::from_le_bytes([h[0], h[1]]) as usize) % DIM;
        v[i] += if h[2] & 1 == 0 { 1.0 } else { -1.0 };
    }
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n == 0.0 {
        v[0] = 1.0;
        return v;
    }
    v.iter().map(|x| x / n).collect()
}

#[async_trait(?Send)]
impl HttpClient for FakeEmbedder {
    async fn post_json(
        &self,
        url: &str,
        body: Vec<u8>,
        timeout_ms: u64,
    ) -> Result<HttpReply, PortError> {
        if url.starts_with(WEBHOOK_BASE) {
            let v: Value = serde_json::from_slice(&body).expect("webhook body is JSON");
            self.webhooks.borrow_mut().push((url.to_string(), v));
            return match self.webhook_status.get() {
                Some(status) => Ok(HttpReply {
                    status,
                    body: Vec::new(),
                }),
                None => Err(PortError::unavailable("fake webhook is down")),
            };
        }
        self.calls.set(self.calls.get() + 1);
        assert!(url.ends_with("/v1/embeddings"), "unexpected URL {url}");
        let mode = self.mode.get();
        if mode == EmbedMode::Down {
            return Err(PortError::unavailable("fake pool is down"));
        }
        let req: Value = serde_json::from_slice(&body).expect("embedding request is JSON");
        assert_eq!(req["model"], MODEL);
        let inputs = req["input"].as_array().expect("input array");
        self.budgets.borrow_mut().push((inputs.len(), timeout_ms));
        let refusal = |status: u16| HttpReply {
            status,
            body: br#"{"error":{"code":"fake","message":"refused"}}"#.to_vec(),
        };
        match mode {
            EmbedMode::Status(status) => return Ok(refusal(status)),
            EmbedMode::RefuseLonger(max)
                if inputs
                    .iter()
                    .any(|t| t.as_str().is_some_and(|s| s.len() > max)) =>
            {
                return Ok(refusal(413));
            }
            _ => {}
        }
        self.texts.set(self.texts.get() + inputs.len());
        let data: Vec<Value> = inputs
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let mut v = fake_vector(t.as_str().expect("string input"));
                if mode == EmbedMode::WrongDim {
                    v.truncate(10);
                }
                json!({"object": "embedding", "index": i, "embedding": v})
            })
            .collect();
        let model = if mode == EmbedMode::WrongModel {
            "other-model"
        } else {
            MODEL
        };
        let out = json!({"object": "list", "data": data, "model": model});
        Ok(HttpReply {
            status: 200,
            body: serde_json::to_vec(&out).expect("json"),
        })
    }

    async fn get(&self, url: &str, _timeout_ms: u64) -> Result<HttpReply, PortError> {
        assert!(url.ends_with("/health"), "unexpected URL {url}");
        match self.mode.get() {
            EmbedMode::Down => Err(PortError::unavailable("fake pool is down")),
            _ => Ok(HttpReply {
                status: 200,
                body: b"{\"status\":\"ok\"}".to_vec(),
            }),
        }
    }
}

/// The work queue as the core sees it: records the ids sent, or fails
/// every send while `down`.
#[derive(Default)]
pub struct RecordingQueue {
    pub sent: std::cell::RefCell<Vec<String>>,
    pub down: Cell<bool>,
}

#[async_trait(?Send)]
impl Queue for RecordingQueue {
    async fn send_ids(&self, ids: &[String]) -> Result<(), PortError> {
        if self.down.get() {
            return Err(PortError::unavailable("fake queue is down"));
        }
        self.sent.borrow_mut().extend(ids.iter().cloned());
        Ok(())
    }
}

pub struct Harness {
    pub sql: PgSql,
    pub queue: RecordingQueue,
    pub kv: MemoryKv,
    pub blob: MemoryBlob,
    pub embedder: FakeEmbedder,
    pub clock: ManualClock,
    pub cfg: Config,
    pub key: SigningKey,
}

/// A fixed test key (scalar 0x4d53…, "MS"): valid, and worthless outside tests.
pub fn test_key() -> SigningKey {
    let mut b = [0x11u8; 32];
    b[0] = 0x4d;
    b[1] = 0x53;
    SigningKey::from_slice(&b).expect("valid scalar")
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

impl Harness {
    pub async fn new() -> Harness {
        ensure_migrated();
        let sql = match native::connect(&database_url()).await {
            Ok(s) => s,
            Err(e) => panic!(
                "cannot connect to DATABASE_URL as the app role ({e}). \
                 Start Postgres with `scripts/pg.sh start` (127.0.0.1:54329, role memshadow_app)."
            ),
        };
        let key = test_key();
        let lookup = |k: &str| match k {
            "MEMSHADOW_JWT_PUBLIC_KEYS" => Some(jwks_for(&key, "test-1")),
            _ => None,
        };
        let mut cfg = Config::from_lookup(lookup).expect("test config");
        cfg.jwt_keys = vec![JwtKey {
            kid: "test-1".into(),
            key: *key.verifying_key(),
        }];
        Harness {
            sql,
            queue: RecordingQueue::default(),
            kv: MemoryKv::new(),
            blob: MemoryBlob::new(),
            embedder: FakeEmbedder::new(),
            clock: ManualClock(AtomicI64::new(now_ms())),
            cfg,
            key,
        }
    }

    pub fn platform(&self) -> Platform<'_> {
        Platform {
            sql: &self.sql,
            kv: &self.kv,
            http: &self.embedder,
            clock: &self.clock,
            queue: &self.queue,
            blob: &self.blob,
        }
    }

    pub fn advance(&self, ms: i64) {
        self.clock.0.fetch_add(ms, Ordering::SeqCst);
    }

    pub fn now_rfc3339(&self, plus_ms: i64) -> String {
        DateTime::<Utc>::from_timestamp_millis(self.clock.now_millis() + plus_ms)
            .expect("time")
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }

    /// A valid token for `user`, issued now by the harness clock.
    pub fn token(&self, user: Uuid) -> String {
        self.token_with(
            json!({"sub": user.to_string(), "iss": "memshadow", "aud": "memshadow-api"}),
            600,
        )
    }

    pub fn token_with(&self, custom: Value, ttl_s: i64) -> String {
        let now = DateTime::<Utc>::from_timestamp_millis(self.clock.now_millis()).expect("time");
        let mut claims = Claims::new(custom);
        claims.issued_at = Some(now);
        claims.expiration = Some(now + chrono::Duration::seconds(ttl_s));
        Es256
            .token(&Header::empty().with_key_id("test-1"), &claims, &self.key)
            .expect("sign")
    }

    pub async fn raw(&self, req: Request) -> Response {
        app::handle(&self.platform(), &self.cfg, req).await
    }

    /// Sends a JSON request as `user` (None = no Authorization header).
    pub async fn call(
        &self,
        method: &str,
        path_and_query: &str,
        user: Option<Uuid>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let res = self
            .send(
                method,
                path_and_query,
                user,
                body.map(|b| serde_json::to_vec(&b).expect("json")),
            )
            .await;
        let v = if res.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&res.body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&res.body).into_owned()))
        };
        (res.status, v)
    }

    pub async fn send(
        &self,
        method: &str,
        path_and_query: &str,
        user: Option<Uuid>,
        body: Option<Vec<u8>>,
    ) -> Response {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
        if let Some(u) = user {
            headers.push(("authorization".into(), format!("Bearer {}", self.token(u))));
        }
        let res = self
            .raw(Request {
                method: method.into(),
                path: path.into(),
                query: query.into(),
                headers,
                body: body.unwrap_or_default(),
            })
            .await;
        assert!(
            res.header("x-request-id").is_some(),
            "every response carries x-request-id"
        );
        res
    }

    /// `POST /api/v1/memory/retrieve?{query}` as `user`: the status, the
    /// JSON body, and the `x-retrieval-mode` / `x-pending-embeddings` headers.
    pub async fn retrieve(&self, user: Uuid, query: &str, body: Value) -> Retrieval {
        let path = if query.is_empty() {
            "/api/v1/memory/retrieve".to_string()
        } else {
            format!("/api/v1/memory/retrieve?{query}")
        };
        let res = self
            .send(
                "POST",
                &path,
                Some(user),
                Some(serde_json::to_vec(&body).expect("json")),
            )
            .await;
        Retrieval {
            status: res.status,
            body: serde_json::from_slice(&res.body).expect("JSON body"),
            mode: res.header("x-retrieval-mode").map(str::to_string),
            pending: res
                .header("x-pending-embeddings")
                .map(|p| p.parse().expect("x-pending-embeddings is a count")),
        }
    }

    pub async fn ingest(&self, user: Uuid, body: Value) -> (u16, Value) {
        self.call("POST", "/api/v1/memory/ingest", Some(user), Some(body))
            .await
    }

    /// Removes every row of `user` (as that user: RLS scope).
    pub async fn cleanup(&self, user: Uuid) {
        let (s, _) = self
            .call("DELETE", "/api/v1/memory", Some(user), None)
            .await;
        assert_eq!(s, 200);
    }
}

/// One retrieve answer (see [`Harness::retrieve`]).
pub struct Retrieval {
    pub status: u16,
    pub body: Value,
    pub mode: Option<String>,
    pub pending: Option<u64>,
}

impl Retrieval {
    /// The ids of the hits, in order.
    pub fn ids(&self) -> Vec<String> {
        self.body
            .as_array()
            .unwrap_or_else(|| panic!("retrieve answers an array: {}", self.body))
            .iter()
            .map(|x| x["id"].as_str().expect("id").to_string())
            .collect()
    }
}

pub fn jwks_for(key: &SigningKey, kid: &str) -> String {
    use base64::Engine as _;
    let p = key.verifying_key().to_encoded_point(false);
    let b = |c: Option<&p256::FieldBytes>| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(c.expect("coord"))
    };
    json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": kid, "x": b(p.x()), "y": b(p.y())}]})
        .to_string()
}

/// The error code of an error body.
pub fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<no error code>")
}
