//! Strict JSON in and out: request bodies are parsed into types that deny
//! unknown fields, and each kind of failure maps to its own error code.
//!
//! Strictness is deliberate: a misspelt optional field (`expire_at`) that
//! was silently ignored would store a memory that never expires.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::errors::{ApiError, ErrorCode};
use crate::http::{Request, Response};

/// A JSON response with the headers every API answer carries.
pub fn response<T: Serialize + ?Sized>(status: u16, body: &T) -> Response {
    // Serialising our own types cannot fail (no maps with non-string keys).
    let body = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    Response {
        status,
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("cache-control".into(), "no-store".into()),
        ],
        body,
    }
}

/// Checks the content type: absent (curl without `-H`) or `application/json`
/// with optional parameters. Anything else is a client mistake worth naming.
pub fn check_content_type(req: &Request) -> Result<(), ApiError> {
    match req.header("content-type") {
        None => Ok(()),
        Some(ct) => {
            let essence = ct.split(';').next().unwrap_or("").trim();
            if essence.eq_ignore_ascii_case("application/json") {
                Ok(())
            } else {
                Err(ApiError::new(
                    ErrorCode::UnsupportedMediaType,
                    format!(
                        "expected Content-Type application/json, got {:?}",
                        truncate(ct, 64)
                    ),
                ))
            }
        }
    }
}

/// Parses a request body into `T` (which should `deny_unknown_fields`).
pub fn parse_body<T: DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    check_content_type(req)?;
    parse_bytes(&req.body)
}

/// Parses bytes into `T`, classifying errors:
/// syntax → 400 `invalid_json`; unknown field → 422 `unknown_field`;
/// wrong type or missing field → 422 `invalid_field`.
pub fn parse_bytes<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(
            ErrorCode::InvalidJson,
            "the request body is empty; a JSON object is required",
        ));
    }
    serde_json::from_slice(bytes).map_err(classify)
}

/// Converts an already parsed value (e.g. a batch item) into `T`.
pub fn from_value<T: DeserializeOwned>(v: Value) -> Result<T, ApiError> {
    serde_json::from_value(v).map_err(classify)
}

fn classify(e: serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    let msg = e.to_string();
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            ApiError::new(ErrorCode::InvalidJson, format!("malformed JSON: {msg}"))
        }
        Category::Data if msg.starts_with("unknown field") => {
            ApiError::new(ErrorCode::UnknownField, msg)
        }
        Category::Data => ApiError::new(ErrorCode::InvalidField, msg),
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary (for echoing
/// client input in messages without echoing megabytes).
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A field that distinguishes "absent" from "null" (PATCH `expires_at: null`
/// clears the expiry; leaving it out keeps it).
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Patch<T> {
    #[default]
    Absent,
    Null,
    Value(T),
}

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for Patch<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Option::<T>::deserialize(d).map(|o| match o {
            None => Patch::Null,
            Some(v) => Patch::Value(v),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        content: String,
        #[serde(default)]
        n: Option<u32>,
        #[serde(default)]
        p: Patch<String>,
    }

    #[test]
    fn classifies_errors() {
        let code = |b: &str| {
            parse_bytes::<Body>(b.as_bytes())
                .map(|_| ())
                .map_err(|e| e.code.name())
        };
        assert_eq!(code(r#"{"content":"x"}"#), Ok(()));
        assert_eq!(code(r#"{"content":"x""#), Err("invalid_json"));
        assert_eq!(code(""), Err("invalid_json"));
        assert_eq!(code("nope"), Err("invalid_json"));
        assert_eq!(code(r#"{"content":"x","extra":1}"#), Err("unknown_field"));
        assert_eq!(code(r#"{"content":1}"#), Err("invalid_field"));
        assert_eq!(code(r#"{}"#), Err("invalid_field"));
        assert_eq!(code(r#"[1]"#), Err("invalid_field"));
        assert_eq!(code(r#"{"content":"x","n":-1}"#), Err("invalid_field"));
    }

    #[test]
    fn patch_distinguishes_absent_and_null() {
        let b: Body = parse_bytes(br#"{"content":"x"}"#).expect("ok");
        assert_eq!(b.p, Patch::Absent);
        let b: Body = parse_bytes(br#"{"content":"x","p":null}"#).expect("ok");
        assert_eq!(b.p, Patch::Null);
        let b: Body = parse_bytes(br#"{"content":"x","p":"v"}"#).expect("ok");
        assert_eq!(b.p, Patch::Value("v".into()));
    }

    #[test]
    fn content_type() {
        let mut req = Request::default();
        assert!(check_content_type(&req).is_ok());
        req.headers.push((
            "content-type".into(),
            "application/json; charset=utf-8".into(),
        ));
        assert!(check_content_type(&req).is_ok());
        req.headers[0].1 = "text/plain".into();
        assert_eq!(
            check_content_type(&req).map_err(|e| e.code),
            Err(ErrorCode::UnsupportedMediaType)
        );
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
