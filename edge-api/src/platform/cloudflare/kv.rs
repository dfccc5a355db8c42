//! `Kv` over the Workers KV namespace bound as `MEMSHADOW_KV`.

use async_trait::async_trait;
use worker::{Env, KvStore};

use crate::ports::{Kv, PortError};

/// Name of the KV namespace binding in `wrangler.toml`.
pub const KV_BINDING: &str = "MEMSHADOW_KV";

/// Workers KV rejects `expirationTtl` below 60 seconds.
const MIN_TTL_SECONDS: u64 = 60;

pub struct WorkersKv {
    env: Env,
}

impl WorkersKv {
    pub fn new(env: Env) -> Self {
        Self { env }
    }

    /// Resolved per call: a missing binding is a deployment fault that should
    /// fail the cache lookup, not the whole request.
    fn store(&self) -> Result<KvStore, PortError> {
        self.env
            .kv(KV_BINDING)
            .map_err(|_| PortError::unavailable(format!("binding {KV_BINDING} missing")))
    }
}

fn kv_error(op: &str, e: worker::KvError) -> PortError {
    PortError::unavailable(format!("kv {op}: {e}"))
}

#[async_trait(?Send)]
impl Kv for WorkersKv {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, PortError> {
        self.store()?
            .get(key)
            .bytes()
            .await
            .map_err(|e| kv_error("get", e))
    }

    async fn put(
        &self,
        key: &str,
        value: &[u8],
        ttl_seconds: Option<u64>,
    ) -> Result<(), PortError> {
        let mut put = self
            .store()?
            .put_bytes(key, value)
            .map_err(|e| kv_error("put", e))?;
        if let Some(ttl) = ttl_seconds {
            put = put.expiration_ttl(ttl.max(MIN_TTL_SECONDS));
        }
        put.execute().await.map_err(|e| kv_error("put", e))
    }

    async fn delete(&self, key: &str) -> Result<(), PortError> {
        self.store()?
            .delete(key)
            .await
            .map_err(|e| kv_error("delete", e))
    }
}
