//! `HttpClient` over WASI HTTP 0.3 (`spin_sdk::http::send`), bounded by a
//! timer: whichever of the exchange (status and whole body) and the timer
//! finishes first wins; on expiry the exchange is dropped (cancelled) and
//! the call reports `Unavailable`. Spin refuses hosts missing from the
//! component's `allowed_outbound_hosts`, which surfaces here as an error.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{Empty, Full};
use spin_sdk::http::body::IncomingBodyExt;
use spin_sdk::http::{IntoRequest, send};

use super::with_timeout;
use crate::ports::{HttpClient, HttpReply, PortError};

pub struct SpinHttp;

async fn exchange(request: impl IntoRequest) -> Result<HttpReply, PortError> {
    let response = send(request)
        .await
        .map_err(|e| PortError::unavailable(format!("outbound http: {e:?}")))?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .bytes()
        .await
        .map_err(|e| PortError::unavailable(format!("outbound http body: {e:?}")))?;
    Ok(HttpReply {
        status,
        body: body.to_vec(),
    })
}

/// Sends `request`, bounded by `timeout_ms`; every failure `Unavailable`.
pub(super) async fn bounded(
    request: impl IntoRequest,
    timeout_ms: u64,
) -> Result<HttpReply, PortError> {
    with_timeout(Duration::from_millis(timeout_ms), exchange(request))
        .await
        .unwrap_or_else(|| {
            Err(PortError::unavailable(format!(
                "outbound http timed out after {timeout_ms} ms"
            )))
        })
}

#[async_trait(?Send)]
impl HttpClient for SpinHttp {
    async fn post_json(
        &self,
        url: &str,
        body: Vec<u8>,
        timeout_ms: u64,
    ) -> Result<HttpReply, PortError> {
        // Only the URL can make this fail; it is configuration, not user input.
        let request = http::Request::post(url)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|_| PortError::failed("invalid outbound URL"))?;
        bounded(request, timeout_ms).await
    }

    async fn get(&self, url: &str, timeout_ms: u64) -> Result<HttpReply, PortError> {
        let request = http::Request::get(url)
            .body(Empty::<Bytes>::new())
            .map_err(|_| PortError::failed("invalid outbound URL"))?;
        bounded(request, timeout_ms).await
    }
}
