//! `spin:key-value/key-value@3.0.0` persisted on disk: one directory per
//! store label, one file per key (named by the key's hex), written to a
//! temporary file and renamed so a crash never leaves half a value. Values
//! survive restarts. Expiry is the guest's business (the interface has no
//! TTL; edge-api's Spin adapter keeps an expiry in each value).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use wasmtime::component::{Accessor, FutureReader, Resource, StreamReader};

use super::bindings::key_value::{self, Error};
use super::{SpinCtxView, SpinHost, SpinShared};

/// The stores a component may open, and where they live.
pub struct KvStores {
    dir: PathBuf,
    labels: Vec<String>,
}

/// An opened store: its directory.
pub struct KvStore {
    dir: PathBuf,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl KvStores {
    /// `labels`: the component's `key_value_stores` from the manifest.
    pub fn new(dir: PathBuf, labels: Vec<String>) -> Self {
        Self { dir, labels }
    }

    fn open(&self, label: &str) -> Result<KvStore, Error> {
        if !self.labels.iter().any(|l| l == label) {
            return Err(Error::AccessDenied);
        }
        if label.is_empty()
            || !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
        {
            return Err(Error::NoSuchStore);
        }
        let dir = self.dir.join(label);
        std::fs::create_dir_all(&dir).map_err(|e| other("open", &e))?;
        Ok(KvStore { dir })
    }
}

fn other(op: &str, e: &std::io::Error) -> Error {
    Error::Other(format!("{op}: {e}"))
}

/// Keys become file names (hex), which file systems cap at 255 bytes.
const MAX_KEY_BYTES: usize = 120;

fn key_path(dir: &Path, key: &str) -> Result<PathBuf, Error> {
    if key.len() > MAX_KEY_BYTES {
        return Err(Error::Other(format!(
            "keys are limited to {MAX_KEY_BYTES} bytes"
        )));
    }
    Ok(dir.join(hex::encode(key.as_bytes())))
}

async fn get(dir: PathBuf, key: String) -> Result<Option<Vec<u8>>, Error> {
    match tokio::fs::read(key_path(&dir, &key)?).await {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(other("get", &e)),
    }
}

async fn set(dir: PathBuf, key: String, value: Vec<u8>) -> Result<(), Error> {
    let path = key_path(&dir, &key)?;
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let temp = dir.join(format!(".tmp-{}-{n}", std::process::id()));
    tokio::fs::write(&temp, &value)
        .await
        .map_err(|e| other("set", &e))?;
    tokio::fs::rename(&temp, path)
        .await
        .map_err(|e| other("set", &e))
}

async fn delete(dir: PathBuf, key: String) -> Result<(), Error> {
    match tokio::fs::remove_file(key_path(&dir, &key)?).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(other("delete", &e)),
    }
}

fn keys(dir: &Path) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| other("get-keys", &e))? {
        let entry = entry.map_err(|e| other("get-keys", &e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(key) = hex::decode(name)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
        {
            out.push(key);
        }
    }
    Ok(out)
}

fn store_dir<T>(
    accessor: &Accessor<T, SpinHost>,
    store: &Resource<KvStore>,
) -> wasmtime::Result<PathBuf> {
    accessor.with(|mut access| Ok(access.get().table.get(store)?.dir.clone()))
}

fn shared<T>(accessor: &Accessor<T, SpinHost>) -> Arc<SpinShared> {
    accessor.with(|mut access| access.get().shared.clone())
}

impl key_value::Host for SpinCtxView<'_> {}

impl key_value::HostStore for SpinCtxView<'_> {
    async fn drop(&mut self, store: Resource<KvStore>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}

impl<U> key_value::HostStoreWithStore<U> for SpinHost {
    async fn open(
        accessor: &Accessor<U, Self>,
        label: String,
    ) -> wasmtime::Result<Result<Resource<KvStore>, Error>> {
        match shared(accessor).kv.open(&label) {
            Ok(store) => accessor.with(|mut access| Ok(Ok(access.get().table.push(store)?))),
            Err(e) => Ok(Err(e)),
        }
    }

    async fn get(
        accessor: &Accessor<U, Self>,
        store: Resource<KvStore>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, Error>> {
        Ok(get(store_dir(accessor, &store)?, key).await)
    }

    async fn set(
        accessor: &Accessor<U, Self>,
        store: Resource<KvStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), Error>> {
        Ok(set(store_dir(accessor, &store)?, key, value).await)
    }

    async fn delete(
        accessor: &Accessor<U, Self>,
        store: Resource<KvStore>,
        key: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        Ok(delete(store_dir(accessor, &store)?, key).await)
    }

    async fn exists(
        accessor: &Accessor<U, Self>,
        store: Resource<KvStore>,
        key: String,
    ) -> wasmtime::Result<Result<bool, Error>> {
        Ok(get(store_dir(accessor, &store)?, key)
            .await
            .map(|v| v.is_some()))
    }

    async fn get_keys(
        accessor: &Accessor<U, Self>,
        store: Resource<KvStore>,
    ) -> wasmtime::Result<(StreamReader<String>, FutureReader<Result<(), Error>>)> {
        let dir = store_dir(accessor, &store)?;
        let (listed, result) = match keys(&dir) {
            Ok(keys) => (keys, Ok(())),
            Err(e) => (Vec::new(), Err(e)),
        };
        accessor.with(|mut access| {
            let stream = StreamReader::new(&mut access, listed)?;
            let done = FutureReader::new(&mut access, async move {
                wasmtime::Result::<Result<(), Error>>::Ok(result)
            })?;
            Ok((stream, done))
        })
    }
}
