//! `HttpClient` over the Workers `fetch`, bounded by a timer: whichever of
//! the exchange (status and whole body) and the timer finishes first wins,
//! and a timeout aborts the fetch and reports `Unavailable`.

use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::{Either, select};
use worker::js_sys::Uint8Array;
use worker::{AbortController, Delay, Fetch, Headers, Method, Request, RequestInit};

use crate::ports::{HttpClient, HttpReply, PortError};

pub struct WorkersFetch;

impl WorkersFetch {
    async fn send(&self, request: Request, timeout_ms: u64) -> Result<HttpReply, PortError> {
        let controller = AbortController::default();
        let signal = controller.signal();
        let exchange = Box::pin(async {
            let fetch = Fetch::Request(request);
            let mut response = fetch
                .send_with_signal(&signal)
                .await
                .map_err(|e| PortError::unavailable(format!("fetch: {e}")))?;
            let status = response.status_code();
            let body = response
                .bytes()
                .await
                .map_err(|e| PortError::unavailable(format!("fetch body: {e}")))?;
            Ok(HttpReply { status, body })
        });
        match select(exchange, Delay::from(Duration::from_millis(timeout_ms))).await {
            Either::Left((reply, _)) => reply,
            Either::Right(((), _)) => {
                controller.abort();
                Err(PortError::unavailable(format!(
                    "fetch timed out after {timeout_ms} ms"
                )))
            }
        }
    }
}

fn build(url: &str, init: &RequestInit) -> Result<Request, PortError> {
    // Only the URL can make this fail; it is configuration, not user input.
    Request::new_with_init(url, init).map_err(|_| PortError::failed("invalid outbound URL"))
}

#[async_trait(?Send)]
impl HttpClient for WorkersFetch {
    async fn post_json(
        &self,
        url: &str,
        body: Vec<u8>,
        timeout_ms: u64,
    ) -> Result<HttpReply, PortError> {
        let headers = Headers::new();
        headers
            .set("content-type", "application/json")
            .map_err(|_| PortError::failed("content-type header"))?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_headers(headers)
            .with_body(Some(Uint8Array::from(body.as_slice()).into()));
        self.send(build(url, &init)?, timeout_ms).await
    }

    async fn get(&self, url: &str, timeout_ms: u64) -> Result<HttpReply, PortError> {
        let mut init = RequestInit::new();
        init.with_method(Method::Get);
        self.send(build(url, &init)?, timeout_ms).await
    }
}
