//! `Blob` over Spin's key-value interface (`spin:key-value/key-value@3.0.0`),
//! store label [`BLOB_STORE`]: the SDAP backups' objects, one value per key.
//!
//! Spin has no object-storage interface; a key-value store is the durable
//! store every Spin runtime offers, and which backend holds the label is
//! the runtime's choice (runtime config: SQLite, Redis, Azure Cosmos DB, ...;
//! `wasm-host serve`: files under its data directory). A store of its own
//! keeps backups apart from the embedding cache (`default`), whose entries
//! are disposable. Backends cap value sizes differently: size chunks
//! (`MEMSHADOW_BACKUP_ROWS_PER_CHUNK`) to fit the backend's limit; a refused
//! write fails the run, which the core records and reports.
//!
//! `list` reads every key of the store (the interface lists keys without a
//! prefix) and keeps those under the prefix; the store holds only backup
//! objects, a few per backup.

use async_trait::async_trait;
use spin_sdk::key_value::{Error, Store};

use crate::ports::{Blob, PortError};

/// The store the component is granted in `spin.toml` (`key_value_stores`).
pub const BLOB_STORE: &str = "backups";

pub struct SpinBlob;

async fn store() -> Result<Store, PortError> {
    Store::open(BLOB_STORE)
        .await
        .map_err(|e| blob_error("open", e))
}

fn blob_error(op: &str, e: Error) -> PortError {
    PortError::unavailable(format!("blob {op} (key-value store {BLOB_STORE}): {e:?}"))
}

/// The keys under `prefix`, sorted (the port's contract).
fn under_prefix(keys: Vec<String>, prefix: &str) -> Vec<String> {
    let mut keys: Vec<String> = keys.into_iter().filter(|k| k.starts_with(prefix)).collect();
    keys.sort();
    keys
}

#[async_trait(?Send)]
impl Blob for SpinBlob {
    async fn put(&self, key: &str, bytes: &[u8]) -> Result<(), PortError> {
        store()
            .await?
            .set(key, bytes)
            .await
            .map_err(|e| blob_error("put", e))
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, PortError> {
        store()
            .await?
            .get(key)
            .await
            .map_err(|e| blob_error("get", e))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, PortError> {
        let keys = store()
            .await?
            .get_keys()
            .await
            .collect()
            .await
            .map_err(|e| blob_error("list", e))?;
        Ok(under_prefix(keys, prefix))
    }

    async fn delete(&self, key: &str) -> Result<(), PortError> {
        // Spin's delete succeeds for an absent key, as the port requires.
        store()
            .await?
            .delete(key)
            .await
            .map_err(|e| blob_error("delete", e))
    }
}
