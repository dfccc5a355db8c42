//! The WebAuthn JSON serialisation of `PublicKeyCredential` (what
//! `credential.toJSON()` and the common browser libraries send), deserialised
//! with serde.
//!
//! Binary fields are base64url. We accept them with or without `=` padding
//! (some client libraries pad), but only in the URL-safe alphabet: `+` and `/`
//! are refused, so one credential id has exactly one accepted spelling apart
//! from padding. Unknown members (`clientExtensionResults`, `transports`,
//! `authenticatorAttachment` …) are ignored.

use base64::Engine as _;
use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::errors::{Result, WebauthnError};

/// URL-safe alphabet, padding optional on input, never written on output.
const B64URL_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decodes base64url, padded or not.
pub fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    B64URL_LENIENT.decode(text).ok()
}

/// Encodes unpadded base64url.
pub fn base64url_encode(bytes: &[u8]) -> String {
    B64URL_LENIENT.encode(bytes)
}

/// Bytes carried as a base64url string in JSON.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Base64UrlBytes(pub Vec<u8>);

impl<'de> Deserialize<'de> for Base64UrlBytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> core::result::Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        base64url_decode(&text)
            .map(Base64UrlBytes)
            .ok_or_else(|| serde::de::Error::custom("invalid base64url"))
    }
}

impl Serialize for Base64UrlBytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> core::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(&base64url_encode(&self.0))
    }
}

/// `RegistrationResponseJSON`: the result of `navigator.credentials.create()`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationResponseJson {
    pub id: String,
    pub raw_id: Base64UrlBytes,
    #[serde(rename = "type")]
    pub type_: String,
    pub response: AuthenticatorAttestationResponseJson,
}

/// `AuthenticatorAttestationResponseJSON`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticatorAttestationResponseJson {
    #[serde(rename = "clientDataJSON")]
    pub client_data_json: Base64UrlBytes,
    pub attestation_object: Base64UrlBytes,
}

/// `AuthenticationResponseJSON`: the result of `navigator.credentials.get()`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticationResponseJson {
    pub id: String,
    pub raw_id: Base64UrlBytes,
    #[serde(rename = "type")]
    pub type_: String,
    pub response: AuthenticatorAssertionResponseJson,
}

/// `AuthenticatorAssertionResponseJSON`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticatorAssertionResponseJson {
    #[serde(rename = "clientDataJSON")]
    pub client_data_json: Base64UrlBytes,
    pub authenticator_data: Base64UrlBytes,
    pub signature: Base64UrlBytes,
    /// Absent, `null` or empty all mean "no user handle".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_handle: Option<Base64UrlBytes>,
}

impl AuthenticatorAssertionResponseJson {
    /// The user handle, treating an empty one as absent (some clients send `""`).
    pub fn user_handle(&self) -> Option<&[u8]> {
        self.user_handle
            .as_ref()
            .map(|h| h.0.as_slice())
            .filter(|h| !h.is_empty())
    }
}

/// Checks `type == "public-key"` and that `id` is the base64url of `rawId`.
pub fn check_credential_envelope(type_: &str, id: &str, raw_id: &[u8]) -> Result<()> {
    if type_ != "public-key" {
        return Err(WebauthnError::MalformedResponse);
    }
    let id_bytes = base64url_decode(id).ok_or(WebauthnError::MalformedResponse)?;
    if id_bytes != raw_id {
        return Err(WebauthnError::CredentialIdMismatch);
    }
    Ok(())
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

    #[test]
    fn base64url_accepts_padding_but_not_std_alphabet() {
        assert_eq!(base64url_decode("-_8").unwrap(), vec![0xfb, 0xff]);
        assert_eq!(base64url_decode("-_8=").unwrap(), vec![0xfb, 0xff]);
        assert!(base64url_decode("+/8").is_none());
        assert!(base64url_decode("a").is_none());
        assert_eq!(base64url_encode(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn envelope_checks_type_and_id() {
        assert!(check_credential_envelope("public-key", "AQI", &[1, 2]).is_ok());
        assert_eq!(
            check_credential_envelope("password", "AQI", &[1, 2]),
            Err(WebauthnError::MalformedResponse)
        );
        assert_eq!(
            check_credential_envelope("public-key", "AQM", &[1, 2]),
            Err(WebauthnError::CredentialIdMismatch)
        );
        assert_eq!(
            check_credential_envelope("public-key", "!!", &[1, 2]),
            Err(WebauthnError::MalformedResponse)
        );
    }

    #[test]
    fn assertion_json_user_handle_forms() {
        let base = r#"{"clientDataJSON":"e30","authenticatorData":"AA","signature":"AA""#;
        for (tail, expect) in [
            ("}", None),
            (r#","userHandle":null}"#, None),
            (r#","userHandle":""}"#, None),
            (r#","userHandle":"AQI"}"#, Some(&[1u8, 2][..])),
        ] {
            let json = format!("{base}{tail}");
            let parsed: AuthenticatorAssertionResponseJson = serde_json::from_str(&json).unwrap();
            assert_eq!(parsed.user_handle(), expect, "{json}");
        }
    }
}
