//! Conversion between workers-rs requests/responses and the core's
//! runtime-neutral [`crate::http`] types.

use futures_util::StreamExt;
use worker::Headers;

use crate::http;

/// Reads the method, URL, headers and at most `max_body_bytes + 1` body
/// bytes: one byte more than the core accepts lets it tell "too large" (413)
/// from "exactly at the limit" without the Worker buffering an unbounded
/// upload. Fails only if the runtime cannot parse its own URL or the body
/// stream breaks mid-read.
pub async fn to_core(
    mut req: worker::Request,
    max_body_bytes: usize,
) -> worker::Result<http::Request> {
    let url = req.url()?;
    // The raw method, not `worker::Method`, which folds unknown verbs into GET.
    let method = req.inner().method();
    let headers = req
        .headers()
        .entries()
        .map(|(name, value)| (name.to_ascii_lowercase(), value))
        .collect();
    let body = if req.inner().body().is_some() {
        read_capped(&mut req, max_body_bytes.saturating_add(1)).await?
    } else {
        Vec::new()
    };
    Ok(http::Request {
        method,
        path: url.path().to_owned(),
        query: url.query().unwrap_or_default().to_owned(),
        headers,
        body,
    })
}

/// Keeps the first `cap` bytes and reads the rest without keeping it.
/// Draining instead of cancelling the stream matters under `wrangler dev`:
/// its proxy in front of workerd stalls the next request on a connection
/// whose upload was cancelled mid-body. Memory stays bounded by `cap`;
/// Cloudflare bounds the upload itself (100 MB and up, by plan).
async fn read_capped(req: &mut worker::Request, cap: usize) -> worker::Result<Vec<u8>> {
    let mut stream = req.stream()?;
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        let room = cap.saturating_sub(body.len());
        body.extend(chunk.iter().take(room));
    }
    Ok(body)
}

/// Builds the Workers response. workers-rs unwraps the JavaScript
/// `Response` constructor, which throws on a status outside 200..=599 or on a
/// body with a null-body status (204, 304): both are normalised here so a core
/// mistake becomes a 500 or a dropped body, never an aborted Worker.
pub fn from_core(resp: http::Response) -> worker::Response {
    let headers = Headers::new();
    for (name, value) in &resp.headers {
        if headers.append(name, value).is_err() {
            worker::console_warn!("dropped invalid response header {name}");
        }
    }
    let status = if (200..=599).contains(&resp.status) {
        resp.status
    } else {
        500
    };
    let builder = worker::ResponseBuilder::new()
        .with_status(status)
        .with_headers(headers);
    if resp.body.is_empty() || matches!(status, 204 | 205 | 304) {
        builder.empty()
    } else {
        builder.fixed(resp.body)
    }
}
