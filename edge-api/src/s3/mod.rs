//! The S3 API as the `Blob` port needs it (PutObject, GetObject,
//! ListObjectsV2, DeleteObject), runtime-neutral: this module builds
//! signed requests and reads answers; an adapter sends them over its own
//! outbound HTTP (the Spin adapter's `S3Blob`). Path-style addressing,
//! `{endpoint}/{bucket}/{key}`, which every S3-compatible server accepts,
//! and a signed payload (`x-amz-content-sha256`), so the store refuses a
//! body changed in transit.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod config;
pub mod sigv4;
pub mod xml;

pub use config::S3Config;

use crate::ports::PortError;

/// A signed request, ready to send: the URL holds exactly the path and
/// query that were signed; `headers` are to be sent as they are (`host`
/// is not among them: the HTTP client derives it from the URL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Request {
    pub method: &'static str,
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
}

/// `x-amz-date` for `now_ms` (UTC, `YYYYMMDDTHHMMSSZ`).
pub fn amz_date(now_ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(now_ms).map(|t| t.format("%Y%m%dT%H%M%SZ").to_string())
}

impl S3Config {
    fn object_path(&self, key: &str) -> String {
        format!("/{}/{}", self.bucket, sigv4::uri_encode(key, true))
    }

    fn signed(
        &self,
        method: &'static str,
        path: String,
        query: String,
        payload_sha256: String,
        now_ms: i64,
    ) -> Result<S3Request, PortError> {
        let date = amz_date(now_ms).ok_or_else(|| PortError::failed("s3: clock out of range"))?;
        let headers = [
            ("host", self.host.as_str()),
            ("x-amz-content-sha256", payload_sha256.as_str()),
            ("x-amz-date", date.as_str()),
        ];
        let signer = sigv4::Signer {
            access_key_id: &self.access_key_id,
            secret_access_key: &self.secret_access_key,
            region: &self.region,
            service: "s3",
            amz_date: &date,
        };
        let parts = sigv4::SignedParts {
            method,
            path: &path,
            query: &query,
            headers: &headers,
            payload_sha256: &payload_sha256,
        };
        let authorization =
            sigv4::authorization(&signer, &parts).map_err(|e| PortError::failed(e.to_string()))?;
        let url = if query.is_empty() {
            format!("{}{path}", self.origin)
        } else {
            format!("{}{path}?{query}", self.origin)
        };
        Ok(S3Request {
            method,
            url,
            headers: vec![
                ("authorization", authorization),
                ("x-amz-content-sha256", payload_sha256),
                ("x-amz-date", date),
            ],
        })
    }

    /// PutObject of `body` (sent by the caller, byte for byte).
    pub fn put_object(&self, key: &str, body: &[u8], now_ms: i64) -> Result<S3Request, PortError> {
        let sha = sigv4::payload_sha256(body);
        self.signed("PUT", self.object_path(key), String::new(), sha, now_ms)
    }

    pub fn get_object(&self, key: &str, now_ms: i64) -> Result<S3Request, PortError> {
        let sha = sigv4::EMPTY_PAYLOAD_SHA256.to_string();
        self.signed("GET", self.object_path(key), String::new(), sha, now_ms)
    }

    pub fn delete_object(&self, key: &str, now_ms: i64) -> Result<S3Request, PortError> {
        let sha = sigv4::EMPTY_PAYLOAD_SHA256.to_string();
        self.signed("DELETE", self.object_path(key), String::new(), sha, now_ms)
    }

    /// One ListObjectsV2 page of the keys under `prefix`, after the page
    /// whose `NextContinuationToken` was `token`.
    pub fn list_objects(
        &self,
        prefix: &str,
        token: Option<&str>,
        now_ms: i64,
    ) -> Result<S3Request, PortError> {
        let mut pairs = vec![("list-type", "2"), ("prefix", prefix)];
        if let Some(token) = token {
            pairs.push(("continuation-token", token));
        }
        let query = sigv4::canonical_query(&pairs);
        let sha = sigv4::EMPTY_PAYLOAD_SHA256.to_string();
        self.signed("GET", format!("/{}", self.bucket), query, sha, now_ms)
    }
}

/// The port error for an unsuccessful answer to `op`: the store being down
/// or overloaded (5xx, 429, 408) may pass, anything else (a refused
/// signature, a missing bucket, no permission) is a fault to fix. The
/// detail names the status and S3's error code, never the body.
pub fn status_error(op: &str, status: u16, body: &[u8]) -> PortError {
    let code = xml::error_code(body).map_or_else(String::new, |c| format!(" {c}"));
    let detail = format!("s3 {op}: HTTP {status}{code}");
    if status >= 500 || status == 429 || status == 408 {
        PortError::unavailable(detail)
    } else {
        PortError::failed(detail)
    }
}

/// Whether `status` is a success.
pub fn ok(status: u16) -> bool {
    (200..300).contains(&status)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::ports::PortErrorKind;

    fn cfg() -> S3Config {
        let pairs = config::tests::valid_keys();
        S3Config::from_lookup(|n| pairs.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()))
            .unwrap()
            .unwrap()
    }

    // 2013-05-24T00:00:00Z, the time of AWS's examples.
    const NOW: i64 = 1_369_353_600_000;

    #[test]
    fn amz_date_is_compact_utc() {
        assert_eq!(amz_date(NOW).unwrap(), "20130524T000000Z");
        assert_eq!(amz_date(i64::MAX), None);
    }

    #[test]
    fn objects_are_addressed_path_style_with_encoded_keys() {
        let req = cfg()
            .put_object("backups/1 a/manifest.json", b"hi", NOW)
            .unwrap();
        assert_eq!(req.method, "PUT");
        assert_eq!(
            req.url,
            "http://127.0.0.1:9000/memshadow-backups/backups/1%20a/manifest.json"
        );
        let header = |name: &str| {
            req.headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_str())
                .unwrap()
        };
        assert_eq!(header("x-amz-content-sha256"), sigv4::payload_sha256(b"hi"));
        assert_eq!(header("x-amz-date"), "20130524T000000Z");
        let auth = header("authorization");
        assert!(
            auth.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/20130524/us-east-1/s3/aws4_request,\
                 SignedHeaders=host;x-amz-content-sha256;x-amz-date,Signature="
            ),
            "{auth}"
        );
        assert!(!auth.contains("secret"));
    }

    #[test]
    fn the_listing_query_is_sent_as_signed() {
        let req = cfg().list_objects("backups/", Some("t/o+k="), NOW).unwrap();
        assert_eq!(
            req.url,
            "http://127.0.0.1:9000/memshadow-backups?continuation-token=t%2Fo%2Bk%3D&list-type=2&prefix=backups%2F"
        );
        // The same request signed independently of the URL builder.
        let headers = [
            ("host", "127.0.0.1:9000"),
            ("x-amz-content-sha256", sigv4::EMPTY_PAYLOAD_SHA256),
            ("x-amz-date", "20130524T000000Z"),
        ];
        let parts = sigv4::SignedParts {
            method: "GET",
            path: "/memshadow-backups",
            query: "continuation-token=t%2Fo%2Bk%3D&list-type=2&prefix=backups%2F",
            headers: &headers,
            payload_sha256: sigv4::EMPTY_PAYLOAD_SHA256,
        };
        let signer = sigv4::Signer {
            access_key_id: "AKIAEXAMPLE",
            secret_access_key: "secret/key+value",
            region: "us-east-1",
            service: "s3",
            amz_date: "20130524T000000Z",
        };
        let expected = sigv4::authorization(&signer, &parts).unwrap();
        assert!(req.headers.contains(&("authorization", expected)));
    }

    #[test]
    fn outages_may_pass_and_refusals_are_faults() {
        let e = status_error("put", 503, b"<Error><Code>SlowDown</Code></Error>");
        assert_eq!(
            (e.kind, e.detail.as_str()),
            (PortErrorKind::Unavailable, "s3 put: HTTP 503 SlowDown")
        );
        let e = status_error("get", 403, b"<Error><Code>SignatureDoesNotMatch</Code><Message>the string to sign</Message></Error>");
        assert_eq!(e.kind, PortErrorKind::Failed);
        assert_eq!(e.detail, "s3 get: HTTP 403 SignatureDoesNotMatch");
        assert_eq!(
            status_error("list", 429, b"").kind,
            PortErrorKind::Unavailable
        );
    }
}
