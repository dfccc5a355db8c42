//! Harness for the end-to-end tests: talks HTTP to the stack that
//! `scripts/test.sh` (or `scripts/start.sh`) started — the real Worker under
//! wrangler dev, the real embedding pool, the real Postgres — and signs test
//! tokens with the stack's dev key. Nothing here fakes a component.
//!
//! A test that cannot reach the stack fails with a message saying how to
//! start it; it never passes by skipping.

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::DecodePrivateKey;
use serde_json::{Value, json};
use uuid::Uuid;

pub mod cpu;
pub mod database;
pub mod proxy;
pub mod wrangler;

/// Where the API under test listens (test.sh sets it; default: the dev stack).
pub fn api_url() -> String {
    std::env::var("MEMSHADOW_API_URL").unwrap_or_else(|_| "http://127.0.0.1:8787".into())
}

/// Where the embedding pool under test listens.
pub fn pool_url() -> String {
    std::env::var("MEMSHADOW_POOL_URL").unwrap_or_else(|_| "http://127.0.0.1:8790".into())
}

/// The checkout the tests run from. Cargo sets `CARGO_MANIFEST_DIR` when it
/// runs a test; the compile-time value is only a fallback, because a test
/// binary that cargo reuses from another checkout of the same workspace
/// (one shared `CARGO_TARGET_DIR`) would otherwise point there.
pub fn repo_root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// The directory holding the dev signing key (`private.pem`) and the JWKS
/// the Worker trusts (`jwks.json`), written by `mint-token generate`.
pub fn dev_keys_dir() -> PathBuf {
    std::env::var("MEMSHADOW_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join(".data"))
        .join("dev-keys")
}

/// A response as the tests look at it.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("response is not JSON ({e}): {}", self.text))
    }

    /// The stable error code of an error body `{"error":{"code","message"}}`.
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error.code in {}", self.text))
            .to_string()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    }

    /// Asserts the status and returns self, showing the body on mismatch.
    #[track_caller]
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(
            self.status, status,
            "expected HTTP {status}, got {}: {}",
            self.status, self.text
        );
        self
    }
}

/// An HTTP client bound to one API base URL and, optionally, one user.
#[derive(Clone)]
pub struct Client {
    base: String,
    http: reqwest::blocking::Client,
    token: Option<String>,
}

impl Client {
    pub fn anonymous(base: &str) -> Self {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("HTTP client");
        Client {
            base: base.trim_end_matches('/').to_string(),
            http,
            token: None,
        }
    }

    /// A client for a brand-new user (a random UUID) on the API under test.
    pub fn new_user() -> (Self, Uuid) {
        let user = Uuid::new_v4();
        let token = DevSigner::load().token_for(&user.to_string());
        (Client::anonymous(&api_url()).with_token(&token), user)
    }

    pub fn with_token(mut self, token: &str) -> Self {
        self.token = Some(token.to_string());
        self
    }

    /// The same client with a longer (or shorter) limit per request, for
    /// calls that answer only when their work is done.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.http = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .build()
            .expect("HTTP client");
        self
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        content_type: &str,
    ) -> Reply {
        let url = format!("{}{}", self.base, path);
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(method, &url);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.header("content-type", content_type).body(body);
        }
        let resp = req.send().unwrap_or_else(|e| {
            panic!("cannot reach {url} ({e}); start the stack with scripts/start.sh or run scripts/test.sh")
        });
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().unwrap_or_default();
        Reply {
            status,
            headers,
            text,
        }
    }

    pub fn get(&self, path: &str) -> Reply {
        self.send("GET", path, None, "")
    }

    pub fn delete(&self, path: &str) -> Reply {
        self.send("DELETE", path, None, "")
    }

    pub fn post(&self, path: &str, body: &Value) -> Reply {
        self.send(
            "POST",
            path,
            Some(body.to_string().into_bytes()),
            "application/json",
        )
    }

    pub fn patch(&self, path: &str, body: &Value) -> Reply {
        self.send(
            "PATCH",
            path,
            Some(body.to_string().into_bytes()),
            "application/json",
        )
    }

    pub fn post_raw(&self, path: &str, body: Vec<u8>) -> Reply {
        self.send("POST", path, Some(body), "application/json")
    }

    /// Ingests `content` and returns the stored memory (200, embedded inline
    /// or pending: its `embedding_status` says which).
    #[track_caller]
    pub fn ingest(&self, content: &str, extra: Value) -> Value {
        let mut body = json!({ "content": content });
        if let (Some(obj), Some(more)) = (body.as_object_mut(), extra.as_object()) {
            obj.extend(more.clone());
        }
        self.post("/api/v1/memory/ingest", &body).expect(200).json()
    }

    /// One memory's `embedding_status` (`ready`, `pending`, `failed`).
    pub fn embedding_status(&self, id: &str) -> String {
        self.get(&format!("/api/v1/memory/{id}")).expect(200).json()["embedding_status"]
            .as_str()
            .expect("embedding_status")
            .to_string()
    }

    /// `POST /api/v1/memory/retrieve?{query}`; asserts 200 and returns the
    /// hits (a JSON array, best first) and the whole reply (headers).
    #[track_caller]
    pub fn retrieve(&self, query: &str, body: &Value) -> (Vec<Value>, Reply) {
        let path = if query.is_empty() {
            "/api/v1/memory/retrieve".to_string()
        } else {
            format!("/api/v1/memory/retrieve?{query}")
        };
        let reply = self.post(&path, body).expect(200);
        let hits = reply
            .json()
            .as_array()
            .unwrap_or_else(|| panic!("retrieve answers a JSON array: {}", reply.text))
            .clone();
        (hits, reply)
    }
}

/// Signs ES256 tokens with the stack's dev key, and forges bad ones.
pub struct DevSigner {
    key: SigningKey,
    kid: String,
}

impl DevSigner {
    pub fn load() -> Self {
        let dir = dev_keys_dir();
        let pem = std::fs::read_to_string(dir.join("private.pem")).unwrap_or_else(|e| {
            panic!(
                "no dev key in {} ({e}); start the stack with scripts/start.sh",
                dir.display()
            )
        });
        let key = SigningKey::from_pkcs8_pem(&pem).expect("dev key is a PKCS#8 P-256 key");
        let jwks: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join("jwks.json")).expect("jwks.json next to the dev key"),
        )
        .expect("jwks.json is JSON");
        let kid = jwks["keys"][0]["kid"]
            .as_str()
            .expect("the dev JWKS names a kid")
            .to_string();
        DevSigner { key, kid }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The claims a valid access token carries for `sub`.
    pub fn claims_for(&self, sub: &str) -> Value {
        let now = chrono::Utc::now().timestamp();
        json!({
            "iss": std::env::var("MEMSHADOW_JWT_ISSUER").unwrap_or_else(|_| "memshadow".into()),
            "aud": std::env::var("MEMSHADOW_JWT_AUDIENCE").unwrap_or_else(|_| "memshadow-api".into()),
            "sub": sub,
            "iat": now,
            "nbf": now,
            "exp": now + 900,
            "jti": Uuid::new_v4().to_string(),
            "amr": ["pwd"],
        })
    }

    pub fn token_for(&self, sub: &str) -> String {
        self.sign(
            &json!({"alg": "ES256", "typ": "JWT", "kid": self.kid}),
            &self.claims_for(sub),
        )
    }

    /// Signs any header and claims with the dev key (for forged tokens).
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature: Signature = self.key.sign(signing_input.as_bytes());
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.to_bytes())
        )
    }
}

/// Polls `check` until it returns Some or `timeout` passes.
pub fn eventually<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if std::time::Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// How many of the client's memories are in each embedding status, read
/// through the list endpoint page by page.
pub fn embedding_statuses(client: &Client) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/memory?limit=100&cursor={c}"),
            None => "/api/v1/memory?limit=100".to_string(),
        };
        let page = client.get(&path).expect(200).json();
        for m in page["memories"].as_array().expect("memories") {
            let status = m["embedding_status"].as_str().expect("status").to_string();
            *counts.entry(status).or_insert(0) += 1;
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return counts,
        }
    }
}

/// Synthetic, distinct, everyday memories (the bulk test and the ingest
/// benchmark use the same texts).
pub fn synthetic_memory(i: usize) -> String {
    const WHO: &[&str] = &[
        "Priya", "Tomás", "Mei", "Jonas", "Aisha", "Kofi", "Lena", "Ravi",
    ];
    const WHAT: &[&str] = &[
        "booked the dentist for",
        "owes the landlord rent until",
        "moved the team offsite to",
        "renewed the car insurance on",
        "promised to call grandma on",
        "ordered printer toner for",
        "has a flight to Lisbon on",
        "scheduled the boiler service for",
    ];
    const WHEN: &[&str] = &[
        "Monday",
        "Wednesday",
        "Friday",
        "the 3rd",
        "the 17th",
        "next week",
    ];
    format!(
        "{} {} {} (note {i}).",
        WHO[i % WHO.len()],
        WHAT[(i / WHO.len()) % WHAT.len()],
        WHEN[(i / (WHO.len() * WHAT.len())) % WHEN.len()]
    )
}
