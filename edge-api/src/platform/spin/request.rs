//! Conversion between the WASI HTTP request/response (as spin-sdk's `http`
//! types) and the core's runtime-neutral [`crate::http`] types.

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::Full;
use spin_sdk::http::Request;
use spin_sdk::http::body::IncomingBodyExt;

use crate::http;

/// Header Spin sets to the client's socket address (`ip:port`).
const SPIN_CLIENT_ADDR: &str = "spin-client-addr";
/// The header the core reads the client address from (services/accounts.rs
/// `client_key`). Outside Cloudflare a client could send it itself, so the
/// adapter always replaces it with the address Spin saw.
const CLIENT_IP: &str = "cf-connecting-ip";

/// Reads the method, path, query, headers and at most `max_body_bytes + 1`
/// body bytes (one more than the core accepts, so it can tell "too large"
/// from "exactly at the limit"); the rest of an oversized body is read and
/// dropped so memory stays bounded. `None` when the body stream breaks.
pub async fn to_core(req: Request, max_body_bytes: usize) -> Option<http::Request> {
    let (parts, body) = req.into_parts();
    let mut headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .filter(|(name, _)| name.as_str() != CLIENT_IP)
        .map(|(name, value)| {
            (
                name.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let client_ip = headers
        .iter()
        .find(|(name, _)| name == SPIN_CLIENT_ADDR)
        .map(|(_, addr)| ip_of(addr).to_string());
    if let Some(ip) = client_ip {
        headers.push((CLIENT_IP.to_string(), ip));
    }

    let cap = max_body_bytes.saturating_add(1);
    let mut stream = body.stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.ok()?;
        let room = cap.saturating_sub(bytes.len());
        bytes.extend(chunk.iter().take(room));
    }
    Some(http::Request {
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or_default().to_string(),
        headers,
        body: bytes,
    })
}

/// The address part of `ip:port` or `[v6]:port`.
fn ip_of(addr: &str) -> &str {
    if let Some(rest) = addr.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match addr.rsplit_once(':') {
        // One colon: IPv4 with a port. More: a bare IPv6 address.
        Some((ip, _)) if !ip.contains(':') => ip,
        _ => addr,
    }
}

/// Builds the WASI response. A status outside 100..=599 becomes 500 and an
/// invalid header is dropped (and logged), so a core mistake never aborts
/// the component.
pub fn from_core(resp: http::Response) -> ::http::Response<Full<Bytes>> {
    let status = ::http::StatusCode::from_u16(resp.status)
        .ok()
        .filter(|s| (100..=599).contains(&s.as_u16()))
        .unwrap_or(::http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut out = ::http::Response::new(Full::new(Bytes::from(resp.body)));
    *out.status_mut() = status;
    for (name, value) in resp.headers {
        match (
            ::http::HeaderName::from_bytes(name.as_bytes()),
            ::http::HeaderValue::from_str(&value),
        ) {
            (Ok(name), Ok(value)) => {
                out.headers_mut().append(name, value);
            }
            _ => crate::app::log(&format!("dropped invalid response header {name}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::ip_of;

    #[test]
    fn client_address_without_port() {
        assert_eq!(ip_of("192.0.2.7:51234"), "192.0.2.7");
        assert_eq!(ip_of("[2001:db8::1]:443"), "2001:db8::1");
        assert_eq!(ip_of("2001:db8::1"), "2001:db8::1");
        assert_eq!(ip_of("192.0.2.7"), "192.0.2.7");
    }
}
