//! Native adapters for tests and dev tools: Postgres over TCP, a minimal
//! HTTP/1.1 client, an in-memory KV and blob store, and the system clock.
//!
//! The HTTP client speaks plain `http://` only: it reaches the local
//! embedding pool and test fakes, nothing on the internet, so it needs no
//! TLS stack (and keeps reqwest's dependency tree out of the build).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::platform::postgres::{PgSql, map_error};
use crate::ports::{Blob, Clock, HttpClient, HttpReply, Kv, PortError, Queue};

/// Connects to `database_url` (a `postgres://` URL, no TLS: local only) and
/// drives the connection on a tokio task.
pub async fn connect(database_url: &str) -> Result<PgSql, PortError> {
    let client = connect_client(database_url).await?;
    Ok(PgSql::new(client))
}

/// Like [`connect`] but returns the raw client (migrations, test set-up).
pub async fn connect_client(database_url: &str) -> Result<tokio_postgres::Client, PortError> {
    let (client, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls)
        .await
        .map_err(|e| map_error(&e))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("postgres connection ended: {e}");
        }
    });
    Ok(client)
}

/// Wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}

/// A process-local KV with TTLs, for tests and single-process dev runs.
/// A value and its expiry.
type Entry = (Vec<u8>, Option<SystemTime>);

#[derive(Default)]
pub struct MemoryKv {
    entries: Mutex<HashMap<String, Entry>>,
}

impl MemoryKv {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.entries.lock().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn poisoned() -> PortError {
    PortError::failed("kv lock poisoned")
}

#[async_trait(?Send)]
impl Kv for MemoryKv {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, PortError> {
        let mut m = self.entries.lock().map_err(|_| poisoned())?;
        match m.get(key) {
            Some((_, Some(exp))) if *exp <= SystemTime::now() => {
                m.remove(key);
                Ok(None)
            }
            Some((v, _)) => Ok(Some(v.clone())),
            None => Ok(None),
        }
    }

    async fn put(
        &self,
        key: &str,
        value: &[u8],
        ttl_seconds: Option<u64>,
    ) -> Result<(), PortError> {
        // Same floor as Workers KV, so tests see production behaviour.
        let exp = ttl_seconds.map(|t| SystemTime::now() + Duration::from_secs(t.max(60)));
        self.entries
            .lock()
            .map_err(|_| poisoned())?
            .insert(key.to_string(), (value.to_vec(), exp));
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), PortError> {
        self.entries.lock().map_err(|_| poisoned())?.remove(key);
        Ok(())
    }
}

/// A `Queue` that delivers nowhere. Natively nothing consumes a queue: the
/// scheduled reconcile embeds the pending rows, which is all the queue would
/// have done (sooner).
pub struct NoQueue;

#[async_trait(?Send)]
impl Queue for NoQueue {
    async fn send_ids(&self, _ids: &[String]) -> Result<(), PortError> {
        Ok(())
    }
}

/// Minimal HTTP/1.1 client over tokio: one request per connection
/// (`Connection: close`), `Content-Length` or chunked responses.
pub struct TinyHttp;

struct Url<'a> {
    host: &'a str,
    port: u16,
    path: &'a str,
}

fn parse_url(url: &str) -> Result<Url<'_>, PortError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| PortError::failed("only http:// URLs are supported by the native client"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse()
                .map_err(|_| PortError::failed("bad port in URL"))?,
        ),
        None => (authority, 80),
    };
    Ok(Url { host, port, path })
}

impl TinyHttp {
    async fn exchange(&self, method: &str, url: &str, body: &[u8]) -> Result<HttpReply, PortError> {
        let u = parse_url(url)?;
        let mut stream = TcpStream::connect((u.host, u.port))
            .await
            .map_err(|e| PortError::unavailable(format!("connect {}:{}: {e}", u.host, u.port)))?;
        let mut req = format!(
            "{method} {} HTTP/1.1\r\nHost: {}:{}\r\nConnection: close\r\nAccept: application/json\r\n",
            u.path, u.host, u.port
        );
        if method == "POST" {
            req.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        let io = |e: std::io::Error| PortError::unavailable(format!("http i/o: {e}"));
        stream.write_all(&bytes).await.map_err(io)?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.map_err(io)?;
        parse_response(&raw)
    }
}

fn parse_response(raw: &[u8]) -> Result<HttpReply, PortError> {
    let bad = |m: &str| PortError::unavailable(format!("bad http response: {m}"));
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no header end"))?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| bad("header not utf-8"))?;
    let body = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("status line"))?;
    let mut chunked = false;
    let mut length = None;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            if k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked") {
                chunked = true;
            } else if k == "content-length" {
                length = v.parse::<usize>().ok();
            }
        }
    }
    let body = if chunked {
        let mut out = Vec::new();
        let mut rest = body;
        loop {
            let eol = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .ok_or_else(|| bad("chunk size"))?;
            let size_str = std::str::from_utf8(&rest[..eol]).map_err(|_| bad("chunk size"))?;
            let size = usize::from_str_radix(size_str.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| bad("chunk size"))?;
            rest = &rest[eol + 2..];
            if size == 0 {
                break;
            }
            if rest.len() < size + 2 {
                return Err(bad("truncated chunk"));
            }
            out.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
        out
    } else {
        match length {
            Some(n) if body.len() >= n => body[..n].to_vec(),
            Some(_) => return Err(bad("truncated body")),
            None => body.to_vec(),
        }
    };
    Ok(HttpReply { status, body })
}

#[async_trait(?Send)]
impl HttpClient for TinyHttp {
    async fn post_json(
        &self,
        url: &str,
        body: Vec<u8>,
        timeout_ms: u64,
    ) -> Result<HttpReply, PortError> {
        tokio::time::timeout(
            Duration::from_millis(timeout_ms),
            self.exchange("POST", url, &body),
        )
        .await
        .map_err(|_| PortError::unavailable(format!("timed out after {timeout_ms} ms")))?
    }

    async fn get(&self, url: &str, timeout_ms: u64) -> Result<HttpReply, PortError> {
        tokio::time::timeout(
            Duration::from_millis(timeout_ms),
            self.exchange("GET", url, &[]),
        )
        .await
        .map_err(|_| PortError::unavailable(format!("timed out after {timeout_ms} ms")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_responses() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiXX").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hi"[..]));
        let r = parse_response(b"HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
            .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (503, &b"abcde"[..]));
        assert!(parse_response(b"garbage").is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort").is_err());
    }

    #[test]
    fn parses_urls() {
        let u = parse_url("http://127.0.0.1:8790/v1/embeddings").unwrap();
        assert_eq!(
            (u.host, u.port, u.path),
            ("127.0.0.1", 8790, "/v1/embeddings")
        );
        let u = parse_url("http://localhost").unwrap();
        assert_eq!((u.host, u.port, u.path), ("localhost", 80, "/"));
        assert!(parse_url("https://x").is_err());
    }

    #[tokio::test]
    async fn talks_to_a_local_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let n = s.read(&mut buf).await.unwrap();
            let req = String::from_utf8_lossy(&buf[..n]).to_string();
            let body = if req.contains("{\"x\":1}") {
                "seen"
            } else {
                "missing"
            };
            let out = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            s.write_all(out.as_bytes()).await.unwrap();
        });
        let r = TinyHttp
            .post_json(&format!("http://{addr}/p"), b"{\"x\":1}".to_vec(), 2000)
            .await
            .unwrap();
        assert_eq!(String::from_utf8(r.body).unwrap(), "seen");
        let closed = TinyHttp.get("http://127.0.0.1:1/", 500).await.unwrap_err();
        assert_eq!(closed.kind, crate::ports::PortErrorKind::Unavailable);
    }

    #[tokio::test]
    async fn memory_blob_lists_by_prefix_and_deletes() {
        let b = MemoryBlob::new();
        for k in ["backups/a/2", "backups/a/1", "backups/ab/1", "backups/b/1"] {
            b.put(k, k.as_bytes()).await.unwrap();
        }
        assert_eq!(
            b.list("backups/a/").await.unwrap(),
            vec!["backups/a/1", "backups/a/2"]
        );
        b.delete("backups/a/1").await.unwrap();
        b.delete("backups/a/missing").await.unwrap();
        assert_eq!(
            b.list("backups/a").await.unwrap(),
            vec!["backups/a/2", "backups/ab/1"]
        );
        assert_eq!(b.get("backups/a/1").await.unwrap(), None);
    }
}

/// A process-local object store (backups in tests).
#[derive(Default)]
pub struct MemoryBlob {
    objects: Mutex<std::collections::BTreeMap<String, Vec<u8>>>,
}

impl MemoryBlob {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every object, by key (tests read backups back through it).
    pub fn snapshot(&self) -> std::collections::BTreeMap<String, Vec<u8>> {
        self.objects.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Replaces or removes an object behind the API's back (tampering tests).
    pub fn set(&self, key: &str, value: Option<Vec<u8>>) {
        if let Ok(mut m) = self.objects.lock() {
            match value {
                Some(v) => m.insert(key.to_string(), v),
                None => m.remove(key),
            };
        }
    }
}

#[async_trait(?Send)]
impl Blob for MemoryBlob {
    async fn put(&self, key: &str, bytes: &[u8]) -> Result<(), PortError> {
        self.objects
            .lock()
            .map_err(|_| PortError::failed("blob lock poisoned"))?
            .insert(key.to_string(), bytes.to_vec());
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, PortError> {
        Ok(self
            .objects
            .lock()
            .map_err(|_| PortError::failed("blob lock poisoned"))?
            .get(key)
            .cloned())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, PortError> {
        Ok(self
            .objects
            .lock()
            .map_err(|_| PortError::failed("blob lock poisoned"))?
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect())
    }

    async fn delete(&self, key: &str) -> Result<(), PortError> {
        self.objects
            .lock()
            .map_err(|_| PortError::failed("blob lock poisoned"))?
            .remove(key);
        Ok(())
    }
}
