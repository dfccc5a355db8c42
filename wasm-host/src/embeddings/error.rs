//! The one table of error codes the embeddings API answers with.
//!
//! Caller faults are 4xx with a precise code; infrastructure faults are 5xx
//! with a fixed message (internal detail goes to the log, never the body).
//! Codes are stable: clients branch on them. wasm-host/README.md repeats this
//! table; `table_matches_readme` keeps the two in step.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

macro_rules! error_codes {
    ($($variant:ident => $code:literal, $status:ident, $kind:literal, $doc:literal;)*) => {
        /// Stable error codes (name, HTTP status, type).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Code { $($variant),* }

        impl Code {
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $code),* }
            }

            pub fn status(self) -> StatusCode {
                match self { $(Code::$variant => StatusCode::$status),* }
            }

            /// `invalid_request` (caller fault), `unavailable` (retry later) or
            /// `server_error` (ours).
            pub fn kind(self) -> &'static str {
                match self { $(Code::$variant => $kind),* }
            }

            pub fn description(self) -> &'static str {
                match self { $(Code::$variant => $doc),* }
            }
        }
    };
}

error_codes! {
    InvalidJson => "invalid_json", BAD_REQUEST, "invalid_request",
        "The body is not syntactically valid JSON.";
    InvalidUtf8 => "invalid_utf8", BAD_REQUEST, "invalid_request",
        "The body is not valid UTF-8.";
    InvalidInput => "invalid_input", UNPROCESSABLE_ENTITY, "invalid_request",
        "Valid JSON of the wrong shape: `input` missing or not a string / array of strings, bad `model`, `encoding_format` or `dimensions` type or value.";
    EmptyInput => "empty_input", UNPROCESSABLE_ENTITY, "invalid_request",
        "`input` is an empty array or contains an empty string.";
    TooManyInputs => "too_many_inputs", PAYLOAD_TOO_LARGE, "invalid_request",
        "More texts than `max_inputs`.";
    TextTooLong => "text_too_long", PAYLOAD_TOO_LARGE, "invalid_request",
        "A text has more characters than `max_chars`.";
    BodyTooLarge => "body_too_large", PAYLOAD_TOO_LARGE, "invalid_request",
        "The body exceeds `max_body_bytes`.";
    UnsupportedModel => "unsupported_model", NOT_FOUND, "invalid_request",
        "`model` names a model this pool does not serve.";
    NotFound => "not_found", NOT_FOUND, "invalid_request",
        "No such route.";
    MethodNotAllowed => "method_not_allowed", METHOD_NOT_ALLOWED, "invalid_request",
        "The route exists but not for this method.";
    QueueFull => "queue_full", SERVICE_UNAVAILABLE, "unavailable",
        "The queue holds `queue_capacity` texts; retry after `Retry-After` seconds.";
    ShuttingDown => "shutting_down", SERVICE_UNAVAILABLE, "unavailable",
        "The pool is stopping.";
    InferenceFailed => "inference_failed", INTERNAL_SERVER_ERROR, "server_error",
        "The guest trapped (deadline, fuel, memory limit) or reported an error; only this call failed.";
}

/// An error response: `{"error":{"code","message","type"}}`.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: Code,
    pub message: String,
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            retry_after_s: None,
        }
    }

    pub fn retry_after(mut self, seconds: u64) -> ApiError {
        self.retry_after_s = Some(seconds);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": {
                "code": self.code.as_str(),
                "message": self.message,
                "type": self.code.kind(),
            }
        });
        let mut resp = (self.code.status(), axum::Json(body)).into_response();
        if let Some(s) = self.retry_after_s {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        // Lets the metrics middleware count by code without parsing bodies.
        resp.extensions_mut().insert(self.code);
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_classified() {
        let mut seen = std::collections::HashSet::new();
        for c in Code::ALL {
            assert!(seen.insert(c.as_str()), "duplicate {}", c.as_str());
            let s = c.status().as_u16();
            match c.kind() {
                "invalid_request" => assert!((400..500).contains(&s)),
                "unavailable" => assert_eq!(s, 503),
                "server_error" => assert!(s >= 500),
                k => panic!("unknown kind {k}"),
            }
        }
    }

    #[test]
    fn table_matches_readme() {
        let readme = include_str!("../../README.md");
        for c in Code::ALL {
            let row = format!("| `{}` | {} |", c.as_str(), c.status().as_u16());
            assert!(readme.contains(&row), "README lacks the row {row}");
        }
    }

    #[test]
    fn queue_full_carries_retry_after() {
        let r = ApiError::new(Code::QueueFull, "full")
            .retry_after(2)
            .into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
    }
}
