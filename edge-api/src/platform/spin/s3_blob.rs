//! `Blob` over an S3-compatible object store, through Spin's outbound HTTP
//! (`wasi:http`): the requests are built and signed by the runtime-neutral
//! [`crate::s3`] (AWS Signature Version 4, path-style URLs); this file only
//! sends them. The backup store when `memshadow_backup_s3_endpoint` is set
//! (otherwise the key-value store, [`super::blob`]). The endpoint's origin
//! must be granted in `allowed_outbound_hosts` (`memshadow_outbound_backup_s3`
//! in spin.toml); a refused host surfaces as `Unavailable`.

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::Full;

use super::clock::SystemClock;
use super::http_client::bounded;
use crate::ports::{Blob, Clock, HttpReply, PortError};
use crate::s3::{self, S3Config, S3Request};

/// One S3 call's limit. The backup runs inside one scheduled request
/// (`wasm-host serve` cuts those at 30 s by default) and writes a few
/// chunks per call, so a stalled store must fail a call well before that.
const CALL_TIMEOUT_MS: u64 = 15_000;

/// ListObjectsV2 pages at most (1000 keys each): a store that keeps
/// answering "truncated" must not loop the run forever.
const MAX_LIST_PAGES: usize = 1_000;

pub struct S3Blob {
    config: S3Config,
}

impl S3Blob {
    pub fn new(config: S3Config) -> Self {
        Self { config }
    }

    async fn send(&self, req: S3Request, body: &[u8]) -> Result<HttpReply, PortError> {
        let mut builder = http::Request::builder().method(req.method).uri(&req.url);
        for (name, value) in &req.headers {
            builder = builder.header(*name, value);
        }
        // The URL comes from validated configuration and encoded keys; a
        // refusal here is a bug, reported without the URL.
        let request = builder
            .body(Full::new(Bytes::copy_from_slice(body)))
            .map_err(|_| PortError::failed("s3: could not build the request"))?;
        bounded(request, CALL_TIMEOUT_MS).await
    }

    fn now() -> i64 {
        SystemClock.now_millis()
    }
}

#[async_trait(?Send)]
impl Blob for S3Blob {
    async fn put(&self, key: &str, bytes: &[u8]) -> Result<(), PortError> {
        let req = self.config.put_object(key, bytes, Self::now())?;
        let reply = self.send(req, bytes).await?;
        if s3::ok(reply.status) {
            Ok(())
        } else {
            Err(s3::status_error("put", reply.status, &reply.body))
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, PortError> {
        let req = self.config.get_object(key, Self::now())?;
        let reply = self.send(req, &[]).await?;
        match reply.status {
            404 => Ok(None),
            s if s3::ok(s) => Ok(Some(reply.body)),
            s => Err(s3::status_error("get", s, &reply.body)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, PortError> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_LIST_PAGES {
            let req = self
                .config
                .list_objects(prefix, token.as_deref(), Self::now())?;
            let reply = self.send(req, &[]).await?;
            if !s3::ok(reply.status) {
                return Err(s3::status_error("list", reply.status, &reply.body));
            }
            let page = s3::xml::parse_list(&reply.body)
                .map_err(|e| PortError::failed(format!("s3 list: {e}")))?;
            keys.extend(page.keys.into_iter().filter(|k| k.starts_with(prefix)));
            match page.next_token {
                Some(next) if token.as_deref() != Some(next.as_str()) => token = Some(next),
                Some(_) => return Err(PortError::failed("s3 list: the same page twice")),
                None => {
                    // S3 lists in UTF-8 byte order already; the port
                    // promises sorted keys whatever the server does.
                    keys.sort();
                    return Ok(keys);
                }
            }
        }
        Err(PortError::failed(format!(
            "s3 list: more than {MAX_LIST_PAGES} pages"
        )))
    }

    async fn delete(&self, key: &str) -> Result<(), PortError> {
        let req = self.config.delete_object(key, Self::now())?;
        let reply = self.send(req, &[]).await?;
        // S3 answers 204 for a missing key too; some servers say 404.
        if s3::ok(reply.status) || reply.status == 404 {
            Ok(())
        } else {
            Err(s3::status_error("delete", reply.status, &reply.body))
        }
    }
}
