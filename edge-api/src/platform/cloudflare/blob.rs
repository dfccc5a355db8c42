//! `Blob` over the R2 bucket bound as `MEMSHADOW_BACKUPS` (miniflare's
//! local R2 under `wrangler dev`, kept under `--persist-to`): writes, reads
//! back, lists and deletes (backup retention).

use async_trait::async_trait;
use worker::{Bucket, Data, Env};

use crate::ports::{Blob, PortError};

/// Name of the R2 bucket binding in `wrangler.toml`.
pub const BLOB_BINDING: &str = "MEMSHADOW_BACKUPS";

pub struct R2Blob {
    env: Env,
}

impl R2Blob {
    pub fn new(env: Env) -> Self {
        Self { env }
    }

    /// Resolved per call: a missing binding fails the backup, not the isolate.
    fn bucket(&self) -> Result<Bucket, PortError> {
        self.env
            .bucket(BLOB_BINDING)
            .map_err(|_| PortError::unavailable(format!("binding {BLOB_BINDING} missing")))
    }
}

fn r2_error(op: &str, e: worker::Error) -> PortError {
    PortError::unavailable(format!("r2 {op}: {e}"))
}

#[async_trait(?Send)]
impl Blob for R2Blob {
    async fn put(&self, key: &str, bytes: &[u8]) -> Result<(), PortError> {
        self.bucket()?
            .put(key, Data::Bytes(bytes.to_vec()))
            .execute()
            .await
            .map(|_| ())
            .map_err(|e| r2_error("put", e))
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, PortError> {
        let Some(object) = self
            .bucket()?
            .get(key)
            .execute()
            .await
            .map_err(|e| r2_error("get", e))?
        else {
            return Ok(None);
        };
        let body = object
            .body()
            .ok_or_else(|| PortError::failed(format!("r2 get {key}: no body")))?;
        body.bytes().await.map(Some).map_err(|e| r2_error("get", e))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, PortError> {
        let bucket = self.bucket()?;
        let mut keys = Vec::new();
        let mut cursor: Option<String> = None;
        // R2 answers at most 1,000 keys a page; a truncated page has a cursor.
        loop {
            let mut req = bucket.list().prefix(prefix);
            if let Some(c) = cursor.take() {
                req = req.cursor(c);
            }
            let page = req.execute().await.map_err(|e| r2_error("list", e))?;
            keys.extend(page.objects().iter().map(|o| o.key()));
            match page.cursor() {
                Some(c) if page.truncated() => cursor = Some(c),
                _ => break,
            }
        }
        keys.sort();
        Ok(keys)
    }

    async fn delete(&self, key: &str) -> Result<(), PortError> {
        self.bucket()?
            .delete(key)
            .await
            .map_err(|e| r2_error("delete", e))
    }
}
