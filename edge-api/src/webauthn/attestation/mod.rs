//! Attestation objects (WebAuthn §6.5.4) and the statement formats we verify:
//! `none`, `packed` and `fido-u2f`.
//!
//! Trust policy: attestation is verified for *integrity* (the statement's
//! signature is made by the key it names, over this credential), never for
//! *provenance*. We do not chain `x5c` certificates to FIDO Metadata Service
//! or vendor roots, so an attestation proves nothing about the authenticator
//! model and the result is reported as [`AttestationType::Basic`] with
//! `trusted: false` in spirit: callers must not make authorisation decisions
//! on it. Formats whose meaning rests entirely on a vendor root (`tpm`,
//! `android-key`, `android-safetynet`, `apple`) are refused with
//! `unsupported_attestation_format` rather than half-verified; so is any
//! unknown format.

pub mod fido_u2f;
pub mod none;
pub mod packed;

mod cert;

use ciborium::Value;

use super::authenticator_data::AuthenticatorData;
use super::cose::CredentialPublicKey;
use super::errors::{Result, WebauthnError};

/// Deepest CBOR nesting accepted in an attestation object.
const CBOR_RECURSION_LIMIT: usize = 16;

/// Attestation statement formats we verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttestationFormat {
    None,
    Packed,
    FidoU2f,
}

impl AttestationFormat {
    /// Maps the `fmt` string; every other format (registered or not) is
    /// `unsupported_attestation_format`.
    pub fn from_fmt(fmt: &str) -> Result<Self> {
        match fmt {
            "none" => Ok(Self::None),
            "packed" => Ok(Self::Packed),
            "fido-u2f" => Ok(Self::FidoU2f),
            // Listed for the reader: these are refused on purpose (see module docs).
            "tpm" | "android-key" | "android-safetynet" | "apple" => {
                Err(WebauthnError::UnsupportedAttestationFormat)
            }
            _ => Err(WebauthnError::UnsupportedAttestationFormat),
        }
    }

    /// The `fmt` identifier.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Packed => "packed",
            Self::FidoU2f => "fido-u2f",
        }
    }
}

/// What kind of attestation was verified (§6.5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttestationType {
    /// `none`: no statement.
    None,
    /// `packed` without x5c: signed by the credential key itself.
    SelfAttestation,
    /// `packed` with x5c or `fido-u2f`: signed by an attestation certificate
    /// whose chain we do not validate (untrusted, see module docs).
    Basic,
}

/// A decoded attestation object.
#[derive(Debug, Clone)]
pub struct AttestationObject {
    pub fmt: String,
    /// The `attStmt` map entries, undecoded beyond CBOR.
    pub att_stmt: Vec<(Value, Value)>,
    pub auth_data: Vec<u8>,
}

/// Decodes the CBOR attestation object `{fmt: tstr, attStmt: map, authData: bstr}`.
/// Other keys and trailing bytes are refused.
pub fn parse_attestation_object(bytes: &[u8]) -> Result<AttestationObject> {
    let mut cursor = bytes;
    let value: Value =
        ciborium::de::from_reader_with_recursion_limit(&mut cursor, CBOR_RECURSION_LIMIT)
            .map_err(|_| WebauthnError::MalformedAttestationObject)?;
    if !cursor.is_empty() {
        return Err(WebauthnError::MalformedAttestationObject);
    }
    let Value::Map(entries) = value else {
        return Err(WebauthnError::MalformedAttestationObject);
    };
    let (mut fmt, mut att_stmt, mut auth_data) = (None, None, None);
    for (key, value) in entries {
        let slot_filled = match (key.as_text(), value) {
            (Some("fmt"), Value::Text(t)) => fmt.replace(t).is_some(),
            (Some("attStmt"), Value::Map(m)) => att_stmt.replace(m).is_some(),
            (Some("authData"), Value::Bytes(b)) => auth_data.replace(b).is_some(),
            _ => return Err(WebauthnError::MalformedAttestationObject),
        };
        if slot_filled {
            return Err(WebauthnError::MalformedAttestationObject);
        }
    }
    match (fmt, att_stmt, auth_data) {
        (Some(fmt), Some(att_stmt), Some(auth_data)) => Ok(AttestationObject {
            fmt,
            att_stmt,
            auth_data,
        }),
        _ => Err(WebauthnError::MalformedAttestationObject),
    }
}

/// Everything a statement verifier needs.
pub struct StatementContext<'a> {
    pub att_stmt: &'a [(Value, Value)],
    /// The raw authenticator data (signed bytes).
    pub auth_data_raw: &'a [u8],
    pub auth_data: &'a AuthenticatorData,
    pub client_data_hash: &'a [u8; 32],
    pub credential_key: &'a CredentialPublicKey,
    /// Unix seconds at which to check certificate validity; `None` skips it.
    pub certificate_time: Option<i64>,
}

impl StatementContext<'_> {
    /// authenticatorData ‖ clientDataHash, what `packed` signs.
    fn signed_data(&self) -> Vec<u8> {
        let mut data = Vec::with_capacity(self.auth_data_raw.len() + 32);
        data.extend_from_slice(self.auth_data_raw);
        data.extend_from_slice(self.client_data_hash);
        data
    }
}

/// Verifies the statement for `format`.
pub fn verify_statement(
    format: AttestationFormat,
    ctx: &StatementContext<'_>,
) -> Result<AttestationType> {
    match format {
        AttestationFormat::None => none::verify(ctx),
        AttestationFormat::Packed => packed::verify(ctx),
        AttestationFormat::FidoU2f => fido_u2f::verify(ctx),
    }
}

/// Looks up a text key in `attStmt`; duplicate keys are refused.
fn stmt_get<'a>(att_stmt: &'a [(Value, Value)], name: &str) -> Result<Option<&'a Value>> {
    let mut found = None;
    for (key, value) in att_stmt {
        if key.as_text() == Some(name) && found.replace(value).is_some() {
            return Err(WebauthnError::AttestationInvalid);
        }
    }
    Ok(found)
}

fn stmt_bytes<'a>(att_stmt: &'a [(Value, Value)], name: &str) -> Result<&'a [u8]> {
    match stmt_get(att_stmt, name)? {
        Some(Value::Bytes(b)) => Ok(b),
        _ => Err(WebauthnError::AttestationInvalid),
    }
}

/// `x5c`: a non-empty array of DER certificates, leaf first.
fn stmt_x5c(att_stmt: &[(Value, Value)]) -> Result<Option<Vec<&[u8]>>> {
    match stmt_get(att_stmt, "x5c")? {
        None => Ok(None),
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|c| match c {
                Value::Bytes(b) => Ok(b.as_slice()),
                _ => Err(WebauthnError::AttestationInvalid),
            })
            .collect::<Result<Vec<_>>>()
            .map(Some),
        Some(_) => Err(WebauthnError::AttestationInvalid),
    }
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

    fn encode(value: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::ser::into_writer(value, &mut out).unwrap();
        out
    }

    fn object(entries: Vec<(&str, Value)>) -> Vec<u8> {
        encode(&Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| (Value::Text(k.into()), v))
                .collect(),
        ))
    }

    #[test]
    fn parses_minimal_object() {
        let bytes = object(vec![
            ("fmt", Value::Text("none".into())),
            ("attStmt", Value::Map(vec![])),
            ("authData", Value::Bytes(vec![1, 2, 3])),
        ]);
        let obj = parse_attestation_object(&bytes).unwrap();
        assert_eq!(obj.fmt, "none");
        assert_eq!(obj.auth_data, vec![1, 2, 3]);
    }

    #[test]
    fn refuses_malformed_objects() {
        let good = || {
            vec![
                ("fmt", Value::Text("none".into())),
                ("attStmt", Value::Map(vec![])),
                ("authData", Value::Bytes(vec![1])),
            ]
        };
        let mut missing = good();
        missing.pop();
        let mut extra = good();
        extra.push(("x", Value::Null));
        let mut dup = good();
        dup.push(("fmt", Value::Text("packed".into())));
        let mut wrong_type = good();
        wrong_type[2].1 = Value::Text("AQ".into());
        let mut trailing = object(good());
        trailing.push(0);
        for bad in [
            object(missing),
            object(extra),
            object(dup),
            object(wrong_type),
            trailing,
            vec![],
            vec![0x80],
            vec![0xff],
        ] {
            assert_eq!(
                parse_attestation_object(&bad).err(),
                Some(WebauthnError::MalformedAttestationObject)
            );
        }
    }

    #[test]
    fn formats() {
        assert_eq!(
            AttestationFormat::from_fmt("packed"),
            Ok(AttestationFormat::Packed)
        );
        assert_eq!(
            AttestationFormat::from_fmt("fido-u2f"),
            Ok(AttestationFormat::FidoU2f)
        );
        assert_eq!(
            AttestationFormat::from_fmt("none"),
            Ok(AttestationFormat::None)
        );
        for refused in [
            "tpm",
            "android-key",
            "android-safetynet",
            "apple",
            "not_real_fmt",
            "",
            "NONE",
        ] {
            assert_eq!(
                AttestationFormat::from_fmt(refused),
                Err(WebauthnError::UnsupportedAttestationFormat)
            );
        }
    }
}
