//! Bearer-token authentication: verifies an ES256 JWT against the configured
//! public keys (selected by `kid`) and yields the caller's user id (`sub`).
//!
//! Every check has its own error code so a client (or its operator) can tell
//! a clock problem from a key-rotation problem from a forged token.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::todo,
    clippy::indexing_slicing
)]

use chrono::{DateTime, Duration, Utc};
use jwt_compact::alg::Es256;
use jwt_compact::{AlgorithmExt, Claims, TimeOptions, UntrustedToken, ValidationError};
use serde::Deserialize;
use uuid::Uuid;

use crate::config::Config;
use crate::errors::{ApiError, ErrorCode};
use crate::http::Request;

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Caller {
    pub user_id: Uuid,
    /// How the user proved themselves (RFC 8176 values: `pwd`, `hwk`,
    /// `user`, `mfa`); empty for tokens minted outside sign-in.
    pub amr: Vec<String>,
    /// A password sign-in to an account with a passkey, second factor not
    /// yet given: only the passkey assertion accepts such a token.
    pub mfa_pending: bool,
    /// Unix seconds of the last passkey assertion in this session.
    pub hwk_at: Option<i64>,
    /// The session (refresh-token family) the token belongs to.
    pub sid: Option<Uuid>,
}

impl Caller {
    /// Whether a passkey assertion happened within `window_s` of `now_ms`.
    pub fn fresh_hwk(&self, now_ms: i64, window_s: i64) -> bool {
        self.hwk_at
            .is_some_and(|t| t <= now_ms / 1000 + 60 && now_ms / 1000 - t <= window_s)
    }
}

/// `aud` may be one string or an array of strings (RFC 7519 §4.1.3).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
struct Custom {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    aud: Option<Audience>,
    #[serde(default)]
    amr: Option<Vec<String>>,
    #[serde(default)]
    mfa_pending: Option<bool>,
    #[serde(default)]
    hwk_at: Option<i64>,
    #[serde(default)]
    sid: Option<String>,
}

fn fail(code: ErrorCode, message: &str) -> ApiError {
    ApiError::new(code, message).with_header("www-authenticate", "Bearer error=\"invalid_token\"")
}

/// Extracts the token from `Authorization: Bearer <token>`.
pub fn bearer_token(req: &Request) -> Result<&str, ApiError> {
    let Some(value) = req.header("authorization") else {
        return Err(ApiError::new(
            ErrorCode::MissingToken,
            "send Authorization: Bearer <token>",
        )
        .with_header("www-authenticate", "Bearer"));
    };
    let value = value.trim();
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(fail(
            ErrorCode::InvalidToken,
            "the Authorization scheme must be Bearer",
        ));
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(
            ApiError::new(ErrorCode::MissingToken, "the bearer token is empty")
                .with_header("www-authenticate", "Bearer"),
        );
    }
    Ok(token)
}

/// Verifies the request's bearer token at `now_millis`.
pub fn authenticate(cfg: &Config, req: &Request, now_millis: i64) -> Result<Caller, ApiError> {
    verify_token(cfg, bearer_token(req)?, now_millis)
}

/// Verifies a compact JWT: signature (ES256, key by `kid`), then `exp`
/// (required), `nbf` (if present), `iat` (required, not in the future),
/// `iss`, `aud`, and `sub` as a UUID.
pub fn verify_token(cfg: &Config, token: &str, now_millis: i64) -> Result<Caller, ApiError> {
    let untrusted = UntrustedToken::new(token)
        .map_err(|_| fail(ErrorCode::InvalidToken, "the token is not a JWT"))?;
    if untrusted.algorithm() != "ES256" {
        return Err(fail(
            ErrorCode::InvalidToken,
            "the token must be signed with ES256",
        ));
    }
    let kid = untrusted
        .header()
        .key_id
        .as_deref()
        .ok_or_else(|| fail(ErrorCode::InvalidToken, "the token header has no kid"))?;
    let key = cfg.jwt_keys.iter().find(|k| k.kid == kid).ok_or_else(|| {
        fail(
            ErrorCode::UnknownKey,
            "the token's kid names no configured key",
        )
    })?;
    let token = Es256
        .validator::<Custom>(&key.key)
        .validate(&untrusted)
        .map_err(|e| match e {
            ValidationError::MalformedClaims(_) => {
                fail(ErrorCode::InvalidToken, "the token's claims are malformed")
            }
            _ => fail(
                ErrorCode::InvalidToken,
                "the token's signature does not verify",
            ),
        })?;
    let claims: &Claims<Custom> = token.claims();

    let now = DateTime::<Utc>::from_timestamp_millis(now_millis)
        .ok_or_else(|| ApiError::internal("clock out of range"))?;
    let options = TimeOptions::new(Duration::seconds(cfg.jwt_leeway_seconds), move || now);
    claims.validate_expiration(&options).map_err(|e| match e {
        ValidationError::Expired => fail(ErrorCode::TokenExpired, "the token has expired"),
        _ => fail(ErrorCode::InvalidToken, "the token has no exp claim"),
    })?;
    if claims.not_before.is_some() {
        claims.validate_maturity(&options).map_err(|_| {
            fail(
                ErrorCode::TokenNotYetValid,
                "the token is not valid yet (nbf)",
            )
        })?;
    }
    match claims.issued_at {
        None => return Err(fail(ErrorCode::InvalidToken, "the token has no iat claim")),
        Some(iat) if iat > now + options.leeway => {
            return Err(fail(
                ErrorCode::TokenNotYetValid,
                "the token was issued in the future (iat)",
            ));
        }
        Some(_) => {}
    }

    let c = &claims.custom;
    if c.iss.as_deref() != Some(cfg.jwt_issuer.as_str()) {
        return Err(fail(
            ErrorCode::InvalidIssuer,
            "the token's iss is not accepted",
        ));
    }
    let aud_ok = match &c.aud {
        Some(Audience::One(a)) => *a == cfg.jwt_audience,
        Some(Audience::Many(list)) => list.contains(&cfg.jwt_audience),
        None => false,
    };
    if !aud_ok {
        return Err(fail(
            ErrorCode::InvalidAudience,
            "the token's aud does not include this API",
        ));
    }
    let user_id = c
        .sub
        .as_deref()
        .and_then(|s| Uuid::parse_str(s).ok())
        .filter(|u| !u.is_nil())
        .ok_or_else(|| {
            fail(
                ErrorCode::InvalidSubject,
                "the token's sub must be a user UUID",
            )
        })?;
    Ok(Caller {
        user_id,
        amr: c.amr.clone().unwrap_or_default(),
        mfa_pending: c.mfa_pending.unwrap_or(false),
        hwk_at: c.hwk_at,
        sid: c.sid.as_deref().and_then(|s| Uuid::parse_str(s).ok()),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::config::JwtKey;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jwt_compact::Header;
    use p256::ecdsa::SigningKey;
    use serde_json::{Value, json};

    const NOW: i64 = 1_800_000_000_000;
    const SUB: &str = "6f1c2a9e-3b7d-4c1e-9a55-2b1f0e4d8c71";

    /// Deterministic test keys: scalars 7 and 11 (valid, obviously not secret).
    fn key(n: u8) -> SigningKey {
        let mut b = [0u8; 32];
        b[31] = n;
        SigningKey::from_slice(&b).unwrap()
    }

    fn cfg() -> Config {
        let mut c = Config::from_lookup(crate::config::tests::lookup(&[(
            crate::config::JWT_PUBLIC_KEYS,
            crate::config::tests::TEST_JWKS,
        )]))
        .unwrap();
        c.jwt_keys = vec![
            JwtKey {
                kid: "k7".into(),
                key: *key(7).verifying_key(),
            },
            JwtKey {
                kid: "k11".into(),
                key: *key(11).verifying_key(),
            },
        ];
        c
    }

    fn claims() -> Value {
        json!({"sub": SUB, "iss": "memshadow", "aud": "memshadow-api",
               "iat": NOW / 1000 - 10, "exp": NOW / 1000 + 600})
    }

    /// Signs raw claims JSON (so tests can omit or garble any claim).
    fn sign(k: &SigningKey, kid: Option<&str>, claims: &Value) -> String {
        let mut header = Header::empty();
        if let Some(kid) = kid {
            header = header.with_key_id(kid);
        }
        let claims: Claims<Value> = serde_json::from_value(claims.clone()).unwrap();
        Es256.token(&header, &claims, k).unwrap()
    }

    fn code(token: &str) -> Result<Uuid, &'static str> {
        verify_token(&cfg(), token, NOW)
            .map(|c| c.user_id)
            .map_err(|e| e.code.name())
    }

    #[test]
    fn accepts_a_valid_token_from_either_key() {
        assert_eq!(
            code(&sign(&key(7), Some("k7"), &claims())),
            Ok(Uuid::parse_str(SUB).unwrap())
        );
        assert_eq!(
            code(&sign(&key(11), Some("k11"), &claims())),
            Ok(Uuid::parse_str(SUB).unwrap())
        );
        let mut c = claims();
        c["aud"] = json!(["other", "memshadow-api"]);
        assert!(code(&sign(&key(7), Some("k7"), &c)).is_ok());
    }

    #[test]
    fn tampered_twin_fails_with_invalid_token() {
        let t = sign(&key(7), Some("k7"), &claims());
        let parts: Vec<&str> = t.split('.').collect();
        // Same signature, claims with another sub.
        let mut c = claims();
        c["sub"] = json!("00000000-0000-4000-8000-000000000001");
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(c.to_string()),
            parts[2]
        );
        assert_eq!(code(&forged), Err("invalid_token"));
        // One signature byte flipped.
        let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        sig[5] ^= 1;
        let flipped = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(sig));
        assert_eq!(code(&flipped), Err("invalid_token"));
        // alg=none with the signature stripped.
        let none = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","kid":"k7"}"#);
        assert_eq!(code(&format!("{none}.{}.", parts[1])), Err("invalid_token"));
        // HS256 header over the same claims (algorithm confusion).
        let hs = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","kid":"k7"}"#);
        assert_eq!(
            code(&format!("{hs}.{}.{}", parts[1], parts[2])),
            Err("invalid_token")
        );
        // Signed by key 11 but claiming key 7.
        assert_eq!(
            code(&sign(&key(11), Some("k7"), &claims())),
            Err("invalid_token")
        );
    }

    #[test]
    fn precise_codes() {
        let with = |f: &dyn Fn(&mut Value)| {
            let mut c = claims();
            f(&mut c);
            code(&sign(&key(7), Some("k7"), &c))
        };
        assert_eq!(code("abc"), Err("invalid_token"));
        assert_eq!(code(&sign(&key(7), None, &claims())), Err("invalid_token"));
        assert_eq!(
            code(&sign(&key(7), Some("nope"), &claims())),
            Err("unknown_key")
        );
        assert_eq!(
            with(&|c| c["exp"] = json!(NOW / 1000 - 120)),
            Err("token_expired")
        );
        assert_eq!(
            with(&|c| c["exp"] = json!(NOW / 1000 - 5)),
            Ok(Uuid::parse_str(SUB).unwrap()),
            "leeway"
        );
        assert_eq!(
            with(&|c| drop(c.as_object_mut().unwrap().remove("exp"))),
            Err("invalid_token")
        );
        assert_eq!(
            with(&|c| c["nbf"] = json!(NOW / 1000 + 120)),
            Err("token_not_yet_valid")
        );
        assert_eq!(
            with(&|c| c["iat"] = json!(NOW / 1000 + 120)),
            Err("token_not_yet_valid")
        );
        assert_eq!(
            with(&|c| drop(c.as_object_mut().unwrap().remove("iat"))),
            Err("invalid_token")
        );
        assert_eq!(with(&|c| c["iss"] = json!("evil")), Err("invalid_issuer"));
        assert_eq!(
            with(&|c| drop(c.as_object_mut().unwrap().remove("iss"))),
            Err("invalid_issuer")
        );
        assert_eq!(
            with(&|c| c["aud"] = json!("other")),
            Err("invalid_audience")
        );
        assert_eq!(
            with(&|c| c["aud"] = json!(["a", "b"])),
            Err("invalid_audience")
        );
        assert_eq!(with(&|c| c["sub"] = json!("alice")), Err("invalid_subject"));
        assert_eq!(
            with(&|c| c["sub"] = json!(Uuid::nil().to_string())),
            Err("invalid_subject")
        );
        assert_eq!(with(&|c| c["sub"] = json!(42)), Err("invalid_token"));
    }

    #[test]
    fn header_parsing() {
        let mut req = Request::default();
        assert_eq!(
            bearer_token(&req).map_err(|e| e.code.name()),
            Err("missing_token")
        );
        req.headers
            .push(("authorization".into(), "Basic abc".into()));
        assert_eq!(
            bearer_token(&req).map_err(|e| e.code.name()),
            Err("invalid_token")
        );
        req.headers[0].1 = "Bearer ".into();
        assert_eq!(
            bearer_token(&req).map_err(|e| e.code.name()),
            Err("missing_token")
        );
        req.headers[0].1 = "bearer  abc.def.ghi ".into();
        assert_eq!(
            bearer_token(&req).map_err(|e| e.code.name()),
            Ok("abc.def.ghi")
        );
    }
}
