//! AWS Signature Version 4 for S3 requests authenticated by header (the
//! `Authorization: AWS4-HMAC-SHA256 …` form with a signed payload), as pure
//! functions of the request, the time and the credentials: no clock, no
//! I/O, no runtime types, so every step is unit-tested against the examples
//! AWS publishes in the S3 API reference ("Signature Calculations for the
//! Authorization Header", examplebucket, 2013-05-24).
//!
//! The caller sends exactly what it signed: the same encoded path and query
//! string, and every signed header (`host` excepted: HTTP clients derive it
//! from the URL's authority, which is what is signed).
//!
//! Security code: a secret key passes through here, so nothing may panic
//! and no error carries key material.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The sha256 of an empty payload (GET, DELETE, list), hex.
pub const EMPTY_PAYLOAD_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Why a request could not be signed. Never holds a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningError(pub &'static str);

impl std::fmt::Display for SigningError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sigv4: {}", self.0)
    }
}

/// One request as it will be sent.
pub struct SignedParts<'a> {
    pub method: &'a str,
    /// Absolute path, URI-encoded already ([`uri_encode`] with `/` kept).
    /// S3 signs it as sent: no second encoding, no normalisation.
    pub path: &'a str,
    /// The query string, canonical already ([`canonical_query`]); `""`
    /// for none.
    pub query: &'a str,
    /// Every header to sign, `host`, `x-amz-date` and
    /// `x-amz-content-sha256` among them; names in any case.
    pub headers: &'a [(&'a str, &'a str)],
    /// Hex sha256 of the body (the value of `x-amz-content-sha256`).
    pub payload_sha256: &'a str,
}

/// Who signs, where and when.
pub struct Signer<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub region: &'a str,
    pub service: &'a str,
    /// `YYYYMMDDTHHMMSSZ` (UTC), the value of `x-amz-date`.
    pub amz_date: &'a str,
}

/// RFC 3986 percent-encoding as S3 wants it: unreserved characters
/// (`A-Z a-z 0-9 - . _ ~`) stay, every other byte becomes `%XX` (upper-case
/// hex); `/` stays only when `keep_slash` (object key paths), never in
/// query names and values.
pub fn uri_encode(input: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(input.len());
    for b in input.bytes() {
        let unreserved = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
        if unreserved || (keep_slash && b == b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The canonical query string of `pairs` (raw names and values): each
/// encoded, sorted by name then value, joined by `&`. Sending this very
/// string as the URL's query keeps what is sent and what is signed equal.
pub fn canonical_query(pairs: &[(&str, &str)]) -> String {
    let mut encoded: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
        .collect();
    encoded.sort();
    encoded
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Lower-cased names with trimmed values whose inner runs of spaces are
/// one space, sorted by name; repeated names joined by `,`.
fn canonical_headers(headers: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut list: Vec<(String, String)> = headers
        .iter()
        .map(|(name, value)| {
            let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
            (name.trim().to_ascii_lowercase(), value)
        })
        .collect();
    // Stable: repeated names keep their order, as AWS requires.
    list.sort_by(|a, b| a.0.cmp(&b.0));
    let mut merged: Vec<(String, String)> = Vec::with_capacity(list.len());
    for (name, value) in list {
        match merged.last_mut() {
            Some((last, joined)) if *last == name => {
                joined.push(',');
                joined.push_str(&value);
            }
            _ => merged.push((name, value)),
        }
    }
    merged
}

/// `host;range;x-amz-date`: the signed header names, as the
/// `SignedHeaders=` part of the Authorization header lists them.
pub fn signed_headers(headers: &[(&str, &str)]) -> String {
    canonical_headers(headers)
        .into_iter()
        .map(|(name, _)| name)
        .collect::<Vec<_>>()
        .join(";")
}

/// Method, path, query, headers, signed header names, payload hash, one
/// per line.
pub fn canonical_request(parts: &SignedParts<'_>) -> String {
    let headers: String = canonical_headers(parts.headers)
        .iter()
        .map(|(name, value)| format!("{name}:{value}\n"))
        .collect();
    format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        parts.method,
        parts.path,
        parts.query,
        headers,
        signed_headers(parts.headers),
        parts.payload_sha256
    )
}

/// `YYYYMMDD/region/service/aws4_request`.
pub fn credential_scope(signer: &Signer<'_>) -> Result<String, SigningError> {
    Ok(format!(
        "{}/{}/{}/aws4_request",
        scope_date(signer.amz_date)?,
        signer.region,
        signer.service
    ))
}

fn scope_date(amz_date: &str) -> Result<&str, SigningError> {
    let well_formed = amz_date.len() == 16
        && amz_date.bytes().enumerate().all(|(i, b)| match i {
            8 => b == b'T',
            15 => b == b'Z',
            _ => b.is_ascii_digit(),
        });
    if !well_formed {
        return Err(SigningError("x-amz-date must be YYYYMMDDTHHMMSSZ"));
    }
    amz_date
        .get(..8)
        .ok_or(SigningError("x-amz-date must be YYYYMMDDTHHMMSSZ"))
}

/// The algorithm, the time, the scope and the canonical request's hash.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    )
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Result<[u8; 32], SigningError> {
    // HMAC takes keys of any length; the error exists only in the type.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .map_err(|_| SigningError("HMAC refused the key"))?;
    mac.update(data);
    Ok(mac.finalize().into_bytes().into())
}

/// HMAC chain `AWS4<secret>` → date → region → service → `aws4_request`.
pub fn signing_key(signer: &Signer<'_>) -> Result<[u8; 32], SigningError> {
    let date = scope_date(signer.amz_date)?;
    let k_secret = format!("AWS4{}", signer.secret_access_key);
    let k_date = hmac_sha256(k_secret.as_bytes(), date.as_bytes())?;
    let k_region = hmac_sha256(&k_date, signer.region.as_bytes())?;
    let k_service = hmac_sha256(&k_region, signer.service.as_bytes())?;
    hmac_sha256(&k_service, b"aws4_request")
}

/// The hex signature of `parts`.
pub fn signature(signer: &Signer<'_>, parts: &SignedParts<'_>) -> Result<String, SigningError> {
    let scope = credential_scope(signer)?;
    let to_sign = string_to_sign(signer.amz_date, &scope, &canonical_request(parts));
    let key = signing_key(signer)?;
    Ok(hex::encode(hmac_sha256(&key, to_sign.as_bytes())?))
}

/// The value of the `Authorization` header for `parts`.
pub fn authorization(signer: &Signer<'_>, parts: &SignedParts<'_>) -> Result<String, SigningError> {
    if signer.access_key_id.is_empty() || signer.secret_access_key.is_empty() {
        return Err(SigningError(
            "access key id and secret access key are required",
        ));
    }
    Ok(format!(
        "{ALGORITHM} Credential={}/{},SignedHeaders={},Signature={}",
        signer.access_key_id,
        credential_scope(signer)?,
        signed_headers(parts.headers),
        signature(signer, parts)?
    ))
}

/// Hex sha256 of a payload, for `x-amz-content-sha256`.
pub fn payload_sha256(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    // The credentials and time of AWS's published examples (S3 API
    // reference, "Examples: Signature Calculations", examplebucket).
    const ACCESS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const DATE: &str = "20130524T000000Z";
    const HOST: &str = "examplebucket.s3.amazonaws.com";

    fn signer() -> Signer<'static> {
        Signer {
            access_key_id: ACCESS_KEY,
            secret_access_key: SECRET,
            region: "us-east-1",
            service: "s3",
            amz_date: DATE,
        }
    }

    #[test]
    fn aws_example_get_object_with_range() {
        let headers = [
            ("Host", HOST),
            ("Range", "bytes=0-9"),
            ("x-amz-content-sha256", EMPTY_PAYLOAD_SHA256),
            ("x-amz-date", DATE),
        ];
        let parts = SignedParts {
            method: "GET",
            path: "/test.txt",
            query: "",
            headers: &headers,
            payload_sha256: EMPTY_PAYLOAD_SHA256,
        };
        // The canonical request and string to sign as the example prints them.
        let canonical = canonical_request(&parts);
        assert_eq!(
            canonical,
            "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n\
             x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n\
             x-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let scope = credential_scope(&signer()).unwrap();
        assert_eq!(scope, "20130524/us-east-1/s3/aws4_request");
        assert_eq!(
            string_to_sign(DATE, &scope, &canonical),
            "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n\
             7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"
        );
        assert_eq!(
            authorization(&signer(), &parts).unwrap(),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,\
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,\
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn aws_example_put_object_with_a_key_that_needs_encoding() {
        let body = b"Welcome to Amazon S3.";
        let sha = payload_sha256(body);
        assert_eq!(
            sha,
            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"
        );
        let path = format!("/{}", uri_encode("test$file.text", true));
        assert_eq!(path, "/test%24file.text");
        let headers = [
            ("Host", HOST),
            ("Date", "Fri, 24 May 2013 00:00:00 GMT"),
            ("x-amz-date", DATE),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
            ("x-amz-content-sha256", sha.as_str()),
        ];
        let parts = SignedParts {
            method: "PUT",
            path: &path,
            query: "",
            headers: &headers,
            payload_sha256: &sha,
        };
        assert_eq!(
            signature(&signer(), &parts).unwrap(),
            "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
        );
        assert_eq!(
            signed_headers(&headers),
            "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class"
        );
    }

    #[test]
    fn aws_example_list_objects_with_a_sorted_query() {
        // Given out of order: the canonical query sorts by name.
        let query = canonical_query(&[("prefix", "J"), ("max-keys", "2")]);
        assert_eq!(query, "max-keys=2&prefix=J");
        let headers = [
            ("host", HOST),
            ("x-amz-content-sha256", EMPTY_PAYLOAD_SHA256),
            ("x-amz-date", DATE),
        ];
        let parts = SignedParts {
            method: "GET",
            path: "/",
            query: &query,
            headers: &headers,
            payload_sha256: EMPTY_PAYLOAD_SHA256,
        };
        assert_eq!(
            signature(&signer(), &parts).unwrap(),
            "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
        );
    }

    #[test]
    fn encoding_keeps_unreserved_and_encodes_everything_else() {
        assert_eq!(uri_encode("a-b_c.d~e/F9", true), "a-b_c.d~e/F9");
        assert_eq!(uri_encode("a/b", false), "a%2Fb");
        assert_eq!(uri_encode("a b+c=d&é", true), "a%20b%2Bc%3Dd%26%C3%A9");
        // A continuation token is opaque base64: '+', '/' and '=' encoded.
        assert_eq!(
            canonical_query(&[("continuation-token", "1/a+b=="), ("list-type", "2")]),
            "continuation-token=1%2Fa%2Bb%3D%3D&list-type=2"
        );
    }

    #[test]
    fn header_values_are_trimmed_and_repeated_names_joined() {
        let headers = [("X-Foo", "  a   b "), ("x-foo", "c"), ("Host", "h")];
        let parts = SignedParts {
            method: "GET",
            path: "/",
            query: "",
            headers: &headers,
            payload_sha256: EMPTY_PAYLOAD_SHA256,
        };
        assert!(canonical_request(&parts).contains("\nhost:h\nx-foo:a b,c\n\nhost;x-foo\n"));
    }

    #[test]
    fn a_malformed_date_or_missing_key_is_an_error_not_a_panic() {
        let parts = SignedParts {
            method: "GET",
            path: "/",
            query: "",
            headers: &[],
            payload_sha256: EMPTY_PAYLOAD_SHA256,
        };
        for bad in [
            "",
            "2013",
            "20130524 000000Z",
            "2013052410000000Z",
            "20130524T00000éZ",
        ] {
            let s = Signer {
                amz_date: bad,
                ..signer()
            };
            assert!(authorization(&s, &parts).is_err(), "{bad:?}");
        }
        let s = Signer {
            secret_access_key: "",
            ..signer()
        };
        let err = authorization(&s, &parts).unwrap_err();
        assert!(!err.to_string().contains(SECRET));
    }
}
