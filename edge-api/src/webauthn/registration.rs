//! Registration ceremony (§7.1): verifies a `navigator.credentials.create()`
//! response and returns the credential to store.

use super::Policy;
use super::attestation::{
    AttestationFormat, AttestationType, StatementContext, parse_attestation_object,
    verify_statement,
};
use super::authenticator_data::{
    check_backup_flags, check_rp_id_hash, check_user_present, check_user_verified,
    parse_authenticator_data, require_attested_credential,
};
use super::client_data::{CeremonyType, ClientDataExpectations, verify_client_data};
use super::cose::{Alg, CredentialPublicKey};
use super::errors::{Result, WebauthnError};
use super::response::{RegistrationResponseJson, check_credential_envelope};

/// Everything needed to verify one registration.
#[derive(Debug, Clone, Copy)]
pub struct RegistrationInput<'a> {
    pub response: &'a RegistrationResponseJson,
    /// The challenge bytes this server issued for this ceremony.
    pub expected_challenge: &'a [u8],
    /// The RP ID (a registrable domain, e.g. `memshadow.example`).
    pub rp_id: &'a str,
    /// Exact origins accepted in clientDataJSON (`https://app.memshadow.example`).
    pub allowed_origins: &'a [String],
    pub policy: &'a Policy,
}

/// A verified new credential, to be stored with its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredCredential {
    pub credential_id: Vec<u8>,
    /// The COSE_Key bytes exactly as the authenticator sent them; pass them
    /// back as [`super::StoredCredential::public_key_cose`].
    pub public_key_cose: Vec<u8>,
    pub alg: Alg,
    pub sign_count: u32,
    pub aaguid: [u8; 16],
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub user_verified: bool,
    pub format: AttestationFormat,
    pub attestation_type: AttestationType,
}

/// Verifies a registration response; see `edge-api/WEBAUTHN.md` for the steps.
pub fn verify_registration(input: &RegistrationInput<'_>) -> Result<RegisteredCredential> {
    let response = input.response;
    check_credential_envelope(&response.type_, &response.id, &response.raw_id.0)?;

    let client_data_hash = verify_client_data(
        &response.response.client_data_json.0,
        &ClientDataExpectations {
            ceremony: CeremonyType::Create,
            challenge: input.expected_challenge,
            allowed_origins: input.allowed_origins,
            cross_origin: input.policy.cross_origin(),
        },
    )?;

    let object = parse_attestation_object(&response.response.attestation_object.0)?;
    // Refuse unsupported formats before anything else so the caller always
    // sees the explicit reason, whatever else is wrong with the response.
    let format = AttestationFormat::from_fmt(&object.fmt)?;

    let auth_data = parse_authenticator_data(&object.auth_data)?;
    check_rp_id_hash(&auth_data, input.rp_id)?;
    check_user_present(&auth_data)?;
    check_user_verified(&auth_data, input.policy.require_user_verification)?;
    check_backup_flags(&auth_data)?;
    let credential = require_attested_credential(&auth_data)?;
    if credential.credential_id != response.raw_id.0 {
        return Err(WebauthnError::CredentialIdMismatch);
    }
    let key = CredentialPublicKey::from_cbor_value(
        credential.public_key.clone(),
        &input.policy.supported_algs,
    )?;

    let attestation_type = verify_statement(
        format,
        &StatementContext {
            att_stmt: &object.att_stmt,
            auth_data_raw: &object.auth_data,
            auth_data: &auth_data,
            client_data_hash: &client_data_hash,
            credential_key: &key,
            certificate_time: input.policy.certificate_time,
        },
    )?;

    Ok(RegisteredCredential {
        credential_id: credential.credential_id.clone(),
        public_key_cose: credential.public_key_cose.clone(),
        alg: key.alg(),
        sign_count: auth_data.sign_count,
        aaguid: credential.aaguid,
        backup_eligible: auth_data.flags.backup_eligible(),
        backup_state: auth_data.flags.backup_state(),
        user_verified: auth_data.flags.user_verified(),
        format,
        attestation_type,
    })
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
    use crate::webauthn::test_vectors::{bytes, vector};

    fn run(
        id: u64,
        policy: &Policy,
        edit: impl FnOnce(&mut RegistrationResponseJson),
    ) -> Result<RegisteredCredential> {
        let v = vector(id);
        let mut response: RegistrationResponseJson =
            serde_json::from_value(v["response"].clone()).unwrap();
        edit(&mut response);
        let origins = vec![v["origin"].as_str().unwrap().to_owned()];
        verify_registration(&RegistrationInput {
            response: &response,
            expected_challenge: &bytes(&v, "/challenge_b64url"),
            rp_id: v["rp_id"].as_str().unwrap(),
            allowed_origins: &origins,
            policy,
        })
    }

    fn lenient() -> Policy {
        Policy {
            require_user_verification: false,
            ..Policy::default()
        }
    }

    #[test]
    fn real_packed_registration() {
        // py_webauthn YubiKey 5 packed x5c (vector 10).
        let cred = run(10, &Policy::default(), |_| {}).unwrap();
        let v = vector(10);
        assert_eq!(cred.credential_id, bytes(&v, "/response/rawId"));
        assert_eq!(
            cred.public_key_cose,
            bytes(&v, "/registered_credential_public_key_b64url")
        );
        assert_eq!(cred.alg, Alg::Es256);
        assert_eq!(cred.sign_count, 52);
        assert_eq!(cred.format, AttestationFormat::Packed);
        assert_eq!(cred.attestation_type, AttestationType::Basic);
        assert!(cred.user_verified);
    }

    #[test]
    fn real_u2f_registration_needs_uv_off() {
        // FIDO U2F keys cannot verify the user (vector 6, UV clear).
        assert_eq!(
            run(6, &Policy::default(), |_| {}),
            Err(WebauthnError::UserNotVerified)
        );
        let cred = run(6, &lenient(), |_| {}).unwrap();
        assert_eq!(cred.format, AttestationFormat::FidoU2f);
        assert!(!cred.user_verified);
    }

    #[test]
    fn raw_id_must_name_the_attested_credential() {
        let other = |r: &mut RegistrationResponseJson| {
            r.raw_id.0[0] ^= 1;
            r.id = crate::webauthn::response::base64url_encode(&r.raw_id.0);
        };
        assert_eq!(
            run(1, &lenient(), other),
            Err(WebauthnError::CredentialIdMismatch)
        );
    }

    #[test]
    fn policy_algorithms_apply_at_registration() {
        let eddsa_only = Policy {
            supported_algs: vec![-8],
            ..lenient()
        };
        assert_eq!(
            run(1, &eddsa_only, |_| {}),
            Err(WebauthnError::UnsupportedAlgorithm)
        );
    }

    #[test]
    fn unsupported_formats_are_reported_first() {
        // Apple attestation (vector 5) with a wrong RP ID would fail later
        // checks too; the format is what the caller is told.
        let v = vector(5);
        let response: RegistrationResponseJson =
            serde_json::from_value(v["response"].clone()).unwrap();
        let origins = vec![v["origin"].as_str().unwrap().to_owned()];
        let result = verify_registration(&RegistrationInput {
            response: &response,
            expected_challenge: &bytes(&v, "/challenge_b64url"),
            rp_id: "elsewhere.example",
            allowed_origins: &origins,
            policy: &lenient(),
        });
        assert_eq!(result, Err(WebauthnError::UnsupportedAttestationFormat));
    }
}
