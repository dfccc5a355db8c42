//! clientDataJSON: parsing and the checks of WebAuthn §7.1 steps 7–11 and
//! §7.2 steps 10–14 (type, challenge, origin, cross-origin, token binding).
//!
//! The JSON is parsed, never compared against a template: browsers add members
//! (`other_keys_can_be_added_here`, `androidPackageName`) and escape `/`.

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::errors::{Result, WebauthnError};
use super::response::base64url_decode;

/// Which ceremony a clientDataJSON must belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CeremonyType {
    /// `webauthn.create` (registration).
    Create,
    /// `webauthn.get` (authentication).
    Get,
}

impl CeremonyType {
    /// The `type` member the browser writes for this ceremony.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Create => "webauthn.create",
            Self::Get => "webauthn.get",
        }
    }
}

/// The members of `CollectedClientData` we act on.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CollectedClientData {
    #[serde(rename = "type")]
    pub type_: String,
    pub challenge: String,
    pub origin: String,
    #[serde(default)]
    pub cross_origin: Option<bool>,
    #[serde(default)]
    pub top_origin: Option<String>,
    /// Kept loosely typed: old Chrome wrote the string `"unused"` here.
    #[serde(default)]
    pub token_binding: Option<serde_json::Value>,
}

/// Cross-origin settings from the policy.
#[derive(Debug, Clone, Copy)]
pub struct CrossOriginPolicy<'a> {
    /// Accept `crossOrigin: true` (the RP is embedded in an iframe).
    pub allow_cross_origin: bool,
    /// When cross-origin is allowed, the top-level origins accepted in
    /// `topOrigin`; empty means any top-level origin.
    pub allowed_top_origins: &'a [String],
}

/// Parses clientDataJSON (UTF-8 JSON object; duplicate members are refused).
pub fn parse_client_data(bytes: &[u8]) -> Result<CollectedClientData> {
    serde_json::from_slice(bytes).map_err(|_| WebauthnError::MalformedClientData)
}

/// §7.1 step 7 / §7.2 step 11: `type` is the expected ceremony.
pub fn check_type(client_data: &CollectedClientData, expected: CeremonyType) -> Result<()> {
    if client_data.type_ == expected.as_str() {
        Ok(())
    } else {
        Err(WebauthnError::ClientDataTypeMismatch)
    }
}

/// §7.1 step 8 / §7.2 step 12: the decoded challenge equals the issued bytes.
pub fn check_challenge(client_data: &CollectedClientData, expected: &[u8]) -> Result<()> {
    let received =
        base64url_decode(&client_data.challenge).ok_or(WebauthnError::MalformedClientData)?;
    if received == expected {
        Ok(())
    } else {
        Err(WebauthnError::ChallengeMismatch)
    }
}

/// §7.1 step 9 / §7.2 step 13: the origin is exactly one of the configured ones.
pub fn check_origin(client_data: &CollectedClientData, allowed_origins: &[String]) -> Result<()> {
    if allowed_origins.contains(&client_data.origin) {
        Ok(())
    } else {
        Err(WebauthnError::OriginNotAllowed)
    }
}

/// §7.1 step 10–11: `crossOrigin` / `topOrigin` against the policy.
pub fn check_cross_origin(
    client_data: &CollectedClientData,
    policy: CrossOriginPolicy<'_>,
) -> Result<()> {
    if client_data.cross_origin != Some(true) {
        // topOrigin only makes sense for a cross-origin ceremony.
        return match client_data.top_origin {
            None => Ok(()),
            Some(_) => Err(WebauthnError::TopOriginNotAllowed),
        };
    }
    if !policy.allow_cross_origin {
        return Err(WebauthnError::CrossOriginNotAllowed);
    }
    if policy.allowed_top_origins.is_empty() {
        return Ok(());
    }
    match &client_data.top_origin {
        Some(top) if policy.allowed_top_origins.iter().any(|o| o == top) => Ok(()),
        _ => Err(WebauthnError::TopOriginNotAllowed),
    }
}

/// Token binding (WebAuthn L2 §5.8.1): we have no TLS token-binding id to
/// compare with, so `status: "present"` is refused rather than ignored; the
/// only accepted status is `supported`. A non-object value (Chrome's legacy
/// `"unused"`) carries no binding and is ignored.
pub fn check_token_binding(client_data: &CollectedClientData) -> Result<()> {
    let Some(serde_json::Value::Object(binding)) = &client_data.token_binding else {
        return Ok(());
    };
    match binding.get("status").and_then(|s| s.as_str()) {
        Some("supported") => Ok(()),
        _ => Err(WebauthnError::TokenBindingInvalid),
    }
}

/// What the caller expects of a clientDataJSON.
#[derive(Debug, Clone, Copy)]
pub struct ClientDataExpectations<'a> {
    pub ceremony: CeremonyType,
    pub challenge: &'a [u8],
    pub allowed_origins: &'a [String],
    pub cross_origin: CrossOriginPolicy<'a>,
}

/// Runs every clientDataJSON check in spec order and returns
/// `sha256(clientDataJSON)`, the hash the authenticator signed.
pub fn verify_client_data(bytes: &[u8], expected: &ClientDataExpectations<'_>) -> Result<[u8; 32]> {
    let client_data = parse_client_data(bytes)?;
    check_type(&client_data, expected.ceremony)?;
    check_challenge(&client_data, expected.challenge)?;
    check_origin(&client_data, expected.allowed_origins)?;
    check_cross_origin(&client_data, expected.cross_origin)?;
    check_token_binding(&client_data)?;
    Ok(Sha256::digest(bytes).into())
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use super::*;

    /// clientDataJSON of py_webauthn's `test_verify_authentication_response_with_EC2_public_key`
    /// (vector 18 in /work/shared/data/webauthn/vectors.json), decoded.
    const EC2_GET: &str = r#"{"challenge":"xi30GPGAFYRxVDpY1sM10DaLzVQG66nv-_7RUazH0vI2YvG8LYgDEnvN5fZZNVuvEDuMi9te3VLqb42N0fkLGA","clientExtensions":{},"hashAlgorithm":"SHA-256","origin":"http://localhost:5000","type":"webauthn.get"}"#;
    /// SimpleWebAuthn's Firefox-on-Android clientDataJSON (vector 37): escaped slashes.
    const ANDROID_CREATE: &str = r#"{"type":"webauthn.create","challenge":"aEVjY1BXdXppUDAwSDBwNWd4aDJfdTVfUEM0TmVZZ2Q","origin":"https:\/\/dev.dontneeda.pw","androidPackageName":"org.mozilla.firefox"}"#;

    fn ec2_challenge() -> Vec<u8> {
        base64url_decode("xi30GPGAFYRxVDpY1sM10DaLzVQG66nv-_7RUazH0vI2YvG8LYgDEnvN5fZZNVuvEDuMi9te3VLqb42N0fkLGA").unwrap()
    }

    fn origins(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    const SAME_ORIGIN_ONLY: CrossOriginPolicy<'static> = CrossOriginPolicy {
        allow_cross_origin: false,
        allowed_top_origins: &[],
    };

    #[test]
    fn real_client_data_passes_all_checks() {
        let allowed = origins(&["http://localhost:5000"]);
        let expect = ClientDataExpectations {
            ceremony: CeremonyType::Get,
            challenge: &ec2_challenge(),
            allowed_origins: &allowed,
            cross_origin: SAME_ORIGIN_ONLY,
        };
        let hash = verify_client_data(EC2_GET.as_bytes(), &expect).unwrap();
        assert_eq!(hash, <[u8; 32]>::from(Sha256::digest(EC2_GET.as_bytes())));
    }

    #[test]
    fn escaped_origin_is_compared_after_unescaping() {
        let cd = parse_client_data(ANDROID_CREATE.as_bytes()).unwrap();
        assert!(check_origin(&cd, &origins(&["https://dev.dontneeda.pw"])).is_ok());
        assert!(check_type(&cd, CeremonyType::Create).is_ok());
    }

    #[test]
    fn type_mismatch() {
        let cd = parse_client_data(EC2_GET.as_bytes()).unwrap();
        assert_eq!(
            check_type(&cd, CeremonyType::Create),
            Err(WebauthnError::ClientDataTypeMismatch)
        );
    }

    #[test]
    fn challenge_mismatch_and_malformed() {
        let cd = parse_client_data(EC2_GET.as_bytes()).unwrap();
        let mut wrong = ec2_challenge();
        wrong[0] ^= 1;
        assert_eq!(
            check_challenge(&cd, &wrong),
            Err(WebauthnError::ChallengeMismatch)
        );
        assert_eq!(
            check_challenge(&cd, &wrong[1..]),
            Err(WebauthnError::ChallengeMismatch)
        );
        let bad: CollectedClientData =
            serde_json::from_str(r#"{"type":"webauthn.get","challenge":"a+b/","origin":"x"}"#)
                .unwrap();
        assert_eq!(
            check_challenge(&bad, b"x"),
            Err(WebauthnError::MalformedClientData)
        );
    }

    #[test]
    fn origin_must_match_exactly() {
        let cd = parse_client_data(EC2_GET.as_bytes()).unwrap();
        for other in [
            "http://localhost:5001",
            "http://localhost",
            "HTTP://localhost:5000",
            "http://localhost:5000/",
        ] {
            assert_eq!(
                check_origin(&cd, &origins(&[other])),
                Err(WebauthnError::OriginNotAllowed)
            );
        }
        assert_eq!(check_origin(&cd, &[]), Err(WebauthnError::OriginNotAllowed));
    }

    #[test]
    fn cross_origin_policy() {
        let parse = |s: &str| -> CollectedClientData { serde_json::from_str(s).unwrap() };
        let cross = parse(
            r#"{"type":"webauthn.get","challenge":"","origin":"o","crossOrigin":true,"topOrigin":"https://top"}"#,
        );
        let same_with_top = parse(
            r#"{"type":"webauthn.get","challenge":"","origin":"o","crossOrigin":false,"topOrigin":"https://top"}"#,
        );
        let cross_no_top =
            parse(r#"{"type":"webauthn.get","challenge":"","origin":"o","crossOrigin":true}"#);
        assert_eq!(
            check_cross_origin(&cross, SAME_ORIGIN_ONLY),
            Err(WebauthnError::CrossOriginNotAllowed)
        );
        assert_eq!(
            check_cross_origin(&same_with_top, SAME_ORIGIN_ONLY),
            Err(WebauthnError::TopOriginNotAllowed)
        );
        let any_top = CrossOriginPolicy {
            allow_cross_origin: true,
            allowed_top_origins: &[],
        };
        assert!(check_cross_origin(&cross, any_top).is_ok());
        assert!(check_cross_origin(&cross_no_top, any_top).is_ok());
        let tops = origins(&["https://top"]);
        let listed = CrossOriginPolicy {
            allow_cross_origin: true,
            allowed_top_origins: &tops,
        };
        assert!(check_cross_origin(&cross, listed).is_ok());
        assert_eq!(
            check_cross_origin(&cross_no_top, listed),
            Err(WebauthnError::TopOriginNotAllowed)
        );
        let others = origins(&["https://elsewhere"]);
        let unlisted = CrossOriginPolicy {
            allow_cross_origin: true,
            allowed_top_origins: &others,
        };
        assert_eq!(
            check_cross_origin(&cross, unlisted),
            Err(WebauthnError::TopOriginNotAllowed)
        );
    }

    #[test]
    fn token_binding_statuses() {
        let with = |tb: &str| -> CollectedClientData {
            serde_json::from_str(&format!(
                r#"{{"type":"webauthn.create","challenge":"","origin":"o","tokenBinding":{tb}}}"#
            ))
            .unwrap()
        };
        assert!(check_token_binding(&with(r#"{"status":"supported"}"#)).is_ok());
        assert!(check_token_binding(&with(r#""unused""#)).is_ok());
        assert_eq!(
            check_token_binding(&with(r#"{"status":"present","id":"AA"}"#)),
            Err(WebauthnError::TokenBindingInvalid)
        );
        assert_eq!(
            check_token_binding(&with(r#"{"status":"not-supported"}"#)),
            Err(WebauthnError::TokenBindingInvalid)
        );
        assert_eq!(
            check_token_binding(&with("{}")),
            Err(WebauthnError::TokenBindingInvalid)
        );
    }

    #[test]
    fn malformed_client_data() {
        for bad in [
            &b""[..],
            b"[]",
            b"{\"type\":\"webauthn.get\"}",
            b"\xff\xfe",
            b"{\"type\":1,\"challenge\":\"\",\"origin\":\"\"}",
        ] {
            assert_eq!(
                parse_client_data(bad).err(),
                Some(WebauthnError::MalformedClientData)
            );
        }
        let dup =
            br#"{"type":"webauthn.get","type":"webauthn.create","challenge":"","origin":"o"}"#;
        assert_eq!(
            parse_client_data(dup).err(),
            Some(WebauthnError::MalformedClientData)
        );
    }
}
