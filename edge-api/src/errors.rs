//! The one table of stable error codes the API answers with, and the error
//! type every handler returns.
//!
//! Codes are part of the public contract (clients branch on them), so they
//! are declared once here, documented in `schema/errors.md`, and a unit test
//! keeps the two in sync. Caller faults are 4xx with a precise code;
//! infrastructure faults are 5xx and never show internal text: the detail
//! goes to the log only.

use serde_json::{Value, json};

use crate::http::Response;
use crate::ports::{PortError, PortErrorKind};

/// Seconds a client should wait before retrying a 503.
pub const RETRY_AFTER_SECONDS: u32 = 5;

macro_rules! make_error_codes {
    ($($(#[doc = $doc:literal])* $variant:ident => ($name:literal, $status:literal, $kind:literal);)*) => {
        /// A stable error code: its name, HTTP status and error type.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum ErrorCode {
            $($(#[doc = $doc])* $variant,)*
        }

        impl ErrorCode {
            /// Every code, in table order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code as clients see it in `error.code`.
            pub fn name(self) -> &'static str {
                match self { $(ErrorCode::$variant => $name,)* }
            }

            pub fn status(self) -> u16 {
                match self { $(ErrorCode::$variant => $status,)* }
            }

            /// Who caused it: `invalid_request`, `auth`, `not_found`,
            /// `conflict`, `rate_limited`, `unavailable` or `internal`.
            pub fn kind(self) -> &'static str {
                match self { $(ErrorCode::$variant => $kind,)* }
            }

            /// What the code means (the doc comment, also in `schema/errors.md`).
            pub fn meaning(self) -> &'static str {
                match self { $(ErrorCode::$variant => concat!($($doc),*).trim_ascii(),)* }
            }
        }
    };
}

make_error_codes! {
    /// The request body is not well-formed JSON.
    InvalidJson => ("invalid_json", 400, "invalid_request");
    /// A path or query parameter is malformed (for example not a UUID, or an unknown query parameter).
    InvalidParameter => ("invalid_parameter", 400, "invalid_request");
    /// A pagination cursor was not issued by this API or is corrupted.
    InvalidCursor => ("invalid_cursor", 400, "invalid_request");
    /// The WebAuthn `state` names no live challenge for this ceremony: unknown, expired (after 5 minutes) or already used.
    InvalidChallenge => ("invalid_challenge", 400, "invalid_request");
    /// A passkey registration response failed verification; `reason` names the failed check (see `edge-api/WEBAUTHN.md`).
    WebauthnRejected => ("webauthn_rejected", 400, "invalid_request");
    /// The `Authorization: Bearer` header is missing.
    MissingToken => ("missing_token", 401, "auth");
    /// The bearer token is malformed, uses another algorithm, or its signature does not verify.
    InvalidToken => ("invalid_token", 401, "auth");
    /// The token's `kid` names no configured public key.
    UnknownKey => ("unknown_key", 401, "auth");
    /// The token's `exp` is in the past.
    TokenExpired => ("token_expired", 401, "auth");
    /// The token's `nbf` or `iat` is in the future.
    TokenNotYetValid => ("token_not_yet_valid", 401, "auth");
    /// The token's `iss` is not the configured issuer.
    InvalidIssuer => ("invalid_issuer", 401, "auth");
    /// The token's `aud` does not contain the configured audience.
    InvalidAudience => ("invalid_audience", 401, "auth");
    /// The token's `sub` is missing or not a UUID.
    InvalidSubject => ("invalid_subject", 401, "auth");
    /// The username (or email) and password do not match an account; an unknown account gets the same answer.
    InvalidCredentials => ("invalid_credentials", 401, "auth");
    /// The refresh token is unknown, expired or revoked.
    InvalidRefreshToken => ("invalid_refresh_token", 401, "auth");
    /// A refresh token was used a second time; its whole family is revoked and the user must sign in again.
    RefreshTokenReused => ("refresh_token_reused", 401, "auth");
    /// A passkey sign-in failed; `reason` names the failed check (`unknown_credential`, `sign_count_rollback`, or a code from `edge-api/WEBAUTHN.md`).
    PasskeyRejected => ("passkey_rejected", 401, "auth");
    /// The token comes from a password sign-in to an account with a passkey; complete a passkey assertion with it first.
    MfaRequired => ("mfa_required", 403, "auth");
    /// Recent behaviour looks unusual: this destructive or bulk action needs a passkey assertion from the last 5 minutes.
    StepUpRequired => ("step_up_required", 403, "auth");
    /// This operator endpoint is for the users listed in `MEMSHADOW_ADMIN_USER_IDS`; the caller is not one.
    AdminRequired => ("admin_required", 403, "auth");
    /// No route has this path.
    NotFound => ("not_found", 404, "not_found");
    /// The token's subject has no account (for example a token minted outside sign-in).
    AccountNotFound => ("account_not_found", 404, "not_found");
    /// No passkey with this id belongs to the caller.
    CredentialNotFound => ("credential_not_found", 404, "not_found");
    /// No memory with this id exists for the caller (another user's memory is reported the same way).
    MemoryNotFound => ("memory_not_found", 404, "not_found");
    /// The route exists but not with this method; `Allow` lists the methods.
    MethodNotAllowed => ("method_not_allowed", 405, "invalid_request");
    /// The caller already stored a memory with the same content; `existing_id` names it.
    DuplicateMemory => ("duplicate_memory", 409, "conflict");
    /// The memory changed while it was being updated; retry the PATCH.
    EditConflict => ("edit_conflict", 409, "conflict");
    /// An account with this email already exists.
    EmailTaken => ("email_taken", 409, "conflict");
    /// An account with this username already exists.
    UsernameTaken => ("username_taken", 409, "conflict");
    /// This passkey is already registered.
    CredentialExists => ("credential_exists", 409, "conflict");
    /// The request body exceeds the body size limit.
    PayloadTooLarge => ("payload_too_large", 413, "invalid_request");
    /// The request body is not `application/json`.
    UnsupportedMediaType => ("unsupported_media_type", 415, "invalid_request");
    /// The JSON body has a field the endpoint does not know.
    UnknownField => ("unknown_field", 422, "invalid_request");
    /// A field is missing, has the wrong type or an invalid value.
    InvalidField => ("invalid_field", 422, "invalid_request");
    /// A retrieval or listing filter is invalid.
    InvalidFilter => ("invalid_filter", 422, "invalid_request");
    /// `content` exceeds the content size limit.
    ContentTooLarge => ("content_too_large", 422, "invalid_request");
    /// `metadata` exceeds the metadata size or key-count limit.
    MetadataTooLarge => ("metadata_too_large", 422, "invalid_request");
    /// A batch has more items than allowed, or none.
    BatchTooLarge => ("batch_too_large", 422, "invalid_request");
    /// `email` is not an email address (one `@`, a dotted domain, at most 254 bytes, no spaces).
    InvalidEmail => ("invalid_email", 422, "invalid_request");
    /// `username` must be 3 to 32 characters from `a-z 0-9 _ . -`.
    InvalidUsername => ("invalid_username", 422, "invalid_request");
    /// `password` is shorter than 12 characters, longer than 1024 bytes, or on the list of common passwords.
    WeakPassword => ("weak_password", 422, "invalid_request");
    /// Too many failed sign-ins for this account or client; retry after `Retry-After` seconds (the delay doubles with each further failure).
    TooManyAttempts => ("too_many_attempts", 429, "rate_limited");
    /// An unexpected fault inside the API; details are in the server log under the request id.
    InternalError => ("internal_error", 500, "internal");
    /// The service configuration is invalid; an operator must fix it.
    Misconfigured => ("misconfigured", 503, "unavailable");
    /// The database is unreachable or timed out; retry after `Retry-After` seconds.
    DatabaseUnavailable => ("database_unavailable", 503, "unavailable");
    /// A dependency checked by `/ready` is down; the message names which.
    NotReady => ("not_ready", 503, "unavailable");
}

/// An error on its way to becoming a response. `detail` is for the log,
/// never for the client.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// Extra public fields merged into the `error` object (e.g. `existing_id`).
    pub extra: Option<Value>,
    /// Extra response headers (e.g. `Allow`).
    pub headers: Vec<(String, String)>,
    /// Internal detail, logged with the request id, never sent.
    pub detail: Option<String>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            extra: None,
            headers: Vec::new(),
            detail: None,
        }
    }

    pub fn with_extra(mut self, extra: Value) -> Self {
        self.extra = Some(extra);
        self
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// An infrastructure fault: the client sees only the code's generic
    /// message; `detail` is kept for the log.
    pub fn internal(detail: impl Into<String>) -> Self {
        Self {
            detail: Some(detail.into()),
            ..Self::new(
                ErrorCode::InternalError,
                "internal error; see the server log for this request id",
            )
        }
    }

    /// The public error object (`{"code","message",...}`), without the envelope.
    pub fn body_object(&self) -> Value {
        let mut obj = json!({
            "code": self.code.name(),
            "message": self.message,
            "type": self.code.kind(),
        });
        if let (Some(Value::Object(extra)), Some(map)) = (&self.extra, obj.as_object_mut()) {
            for (k, v) in extra {
                map.insert(k.clone(), v.clone());
            }
        }
        obj
    }

    /// The full response: `{"error":{...}}`, with `Retry-After` on 503.
    pub fn into_response(self) -> Response {
        let mut res =
            crate::json::response(self.code.status(), &json!({ "error": self.body_object() }));
        if self.code.status() == 503 {
            res.headers
                .push(("retry-after".into(), RETRY_AFTER_SECONDS.to_string()));
        }
        res.headers.extend(self.headers);
        res
    }
}

impl From<PortError> for ApiError {
    /// Port failures are infrastructure faults: unavailable → 503, anything
    /// else → 500. Unique violations are handled where they are expected;
    /// one reaching here is a bug, hence 500.
    fn from(e: PortError) -> Self {
        match e.kind {
            PortErrorKind::Unavailable => Self {
                detail: Some(e.detail),
                ..Self::new(
                    ErrorCode::DatabaseUnavailable,
                    "the database is unavailable; retry later",
                )
            },
            PortErrorKind::UniqueViolation | PortErrorKind::Failed => Self::internal(e.detail),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses the rows of the table in `schema/errors.md`:
    /// `| code | status | type | meaning |`.
    fn documented() -> Vec<(String, u16, String, String)> {
        let doc = include_str!("../../schema/errors.md");
        doc.lines()
            .filter(|l| l.starts_with("| `"))
            .map(|l| {
                let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
                assert_eq!(cells.len(), 4, "row {l:?} must have 4 cells");
                (
                    cells[0].trim_matches('`').to_string(),
                    cells[1].parse().expect("status is a number"),
                    cells[2].trim_matches('`').to_string(),
                    cells[3].to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn errors_md_matches_the_code_table() {
        let doc = documented();
        let code: Vec<(String, u16, String, String)> = ErrorCode::ALL
            .iter()
            .map(|c| {
                (
                    c.name().to_string(),
                    c.status(),
                    c.kind().to_string(),
                    c.meaning().to_string(),
                )
            })
            .collect();
        assert_eq!(doc, code, "schema/errors.md and src/errors.rs disagree");
    }

    #[test]
    fn names_are_unique_snake_case() {
        let mut names: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.name()).collect();
        assert!(
            names
                .iter()
                .all(|n| n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        );
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ErrorCode::ALL.len());
    }

    #[test]
    fn unavailable_carries_retry_after_and_hides_detail() {
        let res = ApiError::from(PortError::unavailable("connect to 10.0.0.1:5432 refused"))
            .into_response();
        assert_eq!(res.status, 503);
        assert_eq!(res.header("retry-after"), Some("5"));
        let body = String::from_utf8(res.body).expect("utf8");
        assert!(!body.contains("10.0.0.1"), "{body}");
        assert!(body.contains("database_unavailable"));
    }

    #[test]
    fn internal_hides_detail() {
        let res =
            ApiError::from(PortError::failed("syntax error at or near SELECT")).into_response();
        assert_eq!(res.status, 500);
        assert!(
            !String::from_utf8(res.body)
                .expect("utf8")
                .contains("syntax")
        );
    }
}
