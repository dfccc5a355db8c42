//! Test-only access to the shared WebAuthn vectors
//! (`/work/shared/data/webauthn/vectors.json`, overridable with
//! `MEMSHADOW_WEBAUTHN_VECTORS`): real responses from the py_webauthn and
//! SimpleWebAuthn test suites, read at run time, never copied into the repo.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use super::response::base64url_decode;

pub const DEFAULT_PATH: &str = "/work/shared/data/webauthn/vectors.json";

/// The vector with `vector_id == id`.
pub fn vector(id: u64) -> serde_json::Value {
    let path =
        std::env::var("MEMSHADOW_WEBAUTHN_VECTORS").unwrap_or_else(|_| DEFAULT_PATH.to_owned());
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let all: Vec<serde_json::Value> =
        serde_json::from_str(&text).expect("vectors.json is a JSON array");
    all.into_iter()
        .find(|v| v["vector_id"].as_u64() == Some(id))
        .unwrap_or_else(|| panic!("vector {id} not in {path}"))
}

/// A base64url field of a vector, decoded.
pub fn bytes(v: &serde_json::Value, pointer: &str) -> Vec<u8> {
    base64url_decode(
        v.pointer(pointer)
            .and_then(|s| s.as_str())
            .unwrap_or_else(|| panic!("no {pointer}")),
    )
    .unwrap_or_else(|| panic!("{pointer} is not base64url"))
}

/// A registration vector decoded down to what attestation verifiers take.
pub struct Registration {
    pub object: super::attestation::AttestationObject,
    pub auth_data: super::authenticator_data::AuthenticatorData,
    pub client_data_hash: [u8; 32],
    pub key: super::cose::CredentialPublicKey,
}

/// Decodes registration vector `id` without running the ceremony checks.
pub fn registration(id: u64) -> Registration {
    use sha2::Digest as _;
    let v = vector(id);
    let object = super::attestation::parse_attestation_object(&bytes(
        &v,
        "/response/response/attestationObject",
    ))
    .unwrap();
    let auth_data = super::authenticator_data::parse_authenticator_data(&object.auth_data).unwrap();
    let cose = auth_data
        .attested_credential
        .as_ref()
        .unwrap()
        .public_key
        .clone();
    let key =
        super::cose::CredentialPublicKey::from_cbor_value(cose, &[-7, -8, -257, -37]).unwrap();
    let client_data_hash =
        sha2::Sha256::digest(bytes(&v, "/response/response/clientDataJSON")).into();
    Registration {
        object,
        auth_data,
        client_data_hash,
        key,
    }
}

impl Registration {
    /// The statement context, with `att_stmt` possibly replaced.
    pub fn ctx<'a>(
        &'a self,
        att_stmt: &'a [(ciborium::Value, ciborium::Value)],
        certificate_time: Option<i64>,
    ) -> super::attestation::StatementContext<'a> {
        super::attestation::StatementContext {
            att_stmt,
            auth_data_raw: &self.object.auth_data,
            auth_data: &self.auth_data,
            client_data_hash: &self.client_data_hash,
            credential_key: &self.key,
            certificate_time,
        }
    }
}

/// `att_stmt` with the last byte of `sig` flipped.
pub fn tamper_sig(
    att_stmt: &[(ciborium::Value, ciborium::Value)],
) -> Vec<(ciborium::Value, ciborium::Value)> {
    let mut copy = att_stmt.to_vec();
    for (k, v) in &mut copy {
        if k.as_text() == Some("sig")
            && let ciborium::Value::Bytes(b) = v
        {
            *b.last_mut().unwrap() ^= 1;
        }
    }
    copy
}

/// `att_stmt` with entry `name` replaced (or removed when `value` is None).
pub fn replace(
    att_stmt: &[(ciborium::Value, ciborium::Value)],
    name: &str,
    value: Option<ciborium::Value>,
) -> Vec<(ciborium::Value, ciborium::Value)> {
    let mut copy: Vec<_> = att_stmt
        .iter()
        .filter(|(k, _)| k.as_text() != Some(name))
        .cloned()
        .collect();
    if let Some(value) = value {
        copy.push((ciborium::Value::Text(name.into()), value));
    }
    copy
}
