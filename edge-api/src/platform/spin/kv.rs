//! `Kv` over Spin's key-value interface (`spin:key-value/key-value@3.0.0`),
//! store label [`KV_STORE`].
//!
//! The interface has no expiry, so the adapter stores each value in a small
//! envelope that carries its expiry time, and treats an expired or
//! unreadable entry as absent (deleting it on the way). Entries that are
//! never read again stay until overwritten: the port is a cache, and the
//! embedding cache's keys are content hashes that recur.

use async_trait::async_trait;
use spin_sdk::key_value::{Error, Store};

use super::clock::SystemClock;
use crate::ports::{Clock, Kv, PortError};

/// The store the component is granted in `spin.toml` (`key_value_stores`).
/// Spin's own default store, so a plain deployment needs no runtime config.
pub const KV_STORE: &str = "default";

/// Envelope layout: one version byte, the expiry as milliseconds since the
/// epoch (big-endian i64, 0 = never), then the value.
const ENVELOPE_V1: u8 = 1;
const HEADER_LEN: usize = 9;

pub struct SpinKv;

async fn store() -> Result<Store, PortError> {
    Store::open(KV_STORE).await.map_err(|e| kv_error("open", e))
}

fn kv_error(op: &str, e: Error) -> PortError {
    PortError::unavailable(format!("kv {op}: {e:?}"))
}

#[async_trait(?Send)]
impl Kv for SpinKv {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, PortError> {
        let store = store().await?;
        let Some(stored) = store.get(key).await.map_err(|e| kv_error("get", e))? else {
            return Ok(None);
        };
        match open_envelope(&stored, SystemClock.now_millis()) {
            Some(value) => Ok(Some(value.to_vec())),
            None => {
                // Expired or not ours: absent. Removing it is housekeeping;
                // a failure here must not fail the read.
                let _ = store.delete(key).await;
                Ok(None)
            }
        }
    }

    async fn put(
        &self,
        key: &str,
        value: &[u8],
        ttl_seconds: Option<u64>,
    ) -> Result<(), PortError> {
        let expires_at = ttl_seconds.map(|ttl| {
            let ttl_ms = i64::try_from(ttl.saturating_mul(1000)).unwrap_or(i64::MAX);
            SystemClock.now_millis().saturating_add(ttl_ms)
        });
        store()
            .await?
            .set(key, seal(value, expires_at))
            .await
            .map_err(|e| kv_error("set", e))
    }

    async fn delete(&self, key: &str) -> Result<(), PortError> {
        store()
            .await?
            .delete(key)
            .await
            .map_err(|e| kv_error("delete", e))
    }
}

/// Wraps `value` with its expiry (`None`: never expires).
pub fn seal(value: &[u8], expires_at_ms: Option<i64>) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + value.len());
    out.push(ENVELOPE_V1);
    out.extend_from_slice(&expires_at_ms.unwrap_or(0).max(0).to_be_bytes());
    out.extend_from_slice(value);
    out
}

/// The value inside `stored`, unless it has expired at `now_ms` or is not an
/// envelope this adapter wrote.
pub fn open_envelope(stored: &[u8], now_ms: i64) -> Option<&[u8]> {
    let (header, value) = stored.split_at_checked(HEADER_LEN)?;
    if header[0] != ENVELOPE_V1 {
        return None;
    }
    let mut expiry = [0u8; 8];
    expiry.copy_from_slice(&header[1..]);
    let expires_at = i64::from_be_bytes(expiry);
    (expires_at == 0 || now_ms < expires_at).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::{open_envelope, seal};

    #[test]
    fn envelope_round_trip_and_expiry() {
        let sealed = seal(b"vector", Some(10_000));
        assert_eq!(open_envelope(&sealed, 9_999), Some(&b"vector"[..]));
        assert_eq!(open_envelope(&sealed, 10_000), None);
        let forever = seal(b"", None);
        assert_eq!(open_envelope(&forever, i64::MAX), Some(&b""[..]));
    }

    #[test]
    fn foreign_or_short_values_read_as_absent() {
        assert_eq!(open_envelope(b"", 0), None);
        assert_eq!(open_envelope(b"\x01short", 0), None);
        assert_eq!(open_envelope(b"\x02\0\0\0\0\0\0\0\0value", 0), None);
    }
}
