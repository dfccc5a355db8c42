//! Authentication ceremony (§7.2): verifies a `navigator.credentials.get()`
//! response against a stored credential and returns the new counter state.

use super::Policy;
use super::authenticator_data::{
    check_backup_flags, check_rp_id_hash, check_user_present, check_user_verified,
    forbid_attested_credential, parse_authenticator_data,
};
use super::client_data::{CeremonyType, ClientDataExpectations, verify_client_data};
use super::cose::CredentialPublicKey;
use super::errors::{Result, WebauthnError};
use super::response::{AuthenticationResponseJson, check_credential_envelope};

/// A credential as stored at registration.
#[derive(Debug, Clone, Copy)]
pub struct StoredCredential<'a> {
    pub credential_id: &'a [u8],
    /// [`super::RegisteredCredential::public_key_cose`].
    pub public_key_cose: &'a [u8],
    /// The last accepted signature counter.
    pub sign_count: u32,
    /// The WebAuthn user handle (`user.id`) of the credential's owner.
    pub user_handle: &'a [u8],
}

/// Everything needed to verify one authentication.
#[derive(Debug, Clone, Copy)]
pub struct AuthenticationInput<'a> {
    pub response: &'a AuthenticationResponseJson,
    pub expected_challenge: &'a [u8],
    pub rp_id: &'a str,
    pub allowed_origins: &'a [String],
    pub policy: &'a Policy,
    /// The credential the caller looked up by `rawId`.
    pub stored: StoredCredential<'a>,
    /// The user handle of the account being signed in to, when the user was
    /// identified before the ceremony (username-first login). `None` for
    /// discoverable-credential login, where the response must carry the
    /// user handle instead.
    pub expected_user_handle: Option<&'a [u8]>,
}

/// What changed after a successful authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthenticationOutcome {
    /// Store this as the credential's sign count.
    pub new_sign_count: u32,
    pub user_verified: bool,
    pub backup_eligible: bool,
    /// Store this: the credential may have been synced since registration.
    pub backup_state: bool,
}

/// §7.2 steps 5–6: the response names the stored credential, and that
/// credential belongs to the user this ceremony is for.
pub fn check_credential_owner(
    raw_id: &[u8],
    response_user_handle: Option<&[u8]>,
    stored: &StoredCredential<'_>,
    expected_user_handle: Option<&[u8]>,
) -> Result<()> {
    if raw_id != stored.credential_id {
        return Err(WebauthnError::CredentialIdMismatch);
    }
    match expected_user_handle {
        Some(expected) => {
            if stored.user_handle != expected {
                return Err(WebauthnError::CredentialNotOwned);
            }
            if response_user_handle.is_some_and(|h| h != expected) {
                return Err(WebauthnError::CredentialNotOwned);
            }
        }
        None => {
            let handle = response_user_handle.ok_or(WebauthnError::UserHandleMissing)?;
            if handle != stored.user_handle {
                return Err(WebauthnError::CredentialNotOwned);
            }
        }
    }
    Ok(())
}

/// §7.2 step 22: the counter must grow, unless the authenticator has none
/// (both values zero). Equal non-zero values are a rollback too: a cloned
/// authenticator replaying the same count.
pub fn check_sign_count(stored: u32, received: u32) -> Result<()> {
    if (stored == 0 && received == 0) || received > stored {
        Ok(())
    } else {
        Err(WebauthnError::SignCountRollback)
    }
}

/// Verifies an authentication response; see `edge-api/WEBAUTHN.md` for the steps.
pub fn verify_authentication(input: &AuthenticationInput<'_>) -> Result<AuthenticationOutcome> {
    let response = input.response;
    check_credential_envelope(&response.type_, &response.id, &response.raw_id.0)?;
    check_credential_owner(
        &response.raw_id.0,
        response.response.user_handle(),
        &input.stored,
        input.expected_user_handle,
    )?;

    let client_data_hash = verify_client_data(
        &response.response.client_data_json.0,
        &ClientDataExpectations {
            ceremony: CeremonyType::Get,
            challenge: input.expected_challenge,
            allowed_origins: input.allowed_origins,
            cross_origin: input.policy.cross_origin(),
        },
    )?;

    let auth_data_raw = &response.response.authenticator_data.0;
    let auth_data = parse_authenticator_data(auth_data_raw)?;
    forbid_attested_credential(&auth_data)?;
    check_rp_id_hash(&auth_data, input.rp_id)?;
    check_user_present(&auth_data)?;
    check_user_verified(&auth_data, input.policy.require_user_verification)?;
    check_backup_flags(&auth_data)?;

    let key = CredentialPublicKey::from_cose_bytes(
        input.stored.public_key_cose,
        &input.policy.supported_algs,
    )?;
    let mut signed = Vec::with_capacity(auth_data_raw.len() + 32);
    signed.extend_from_slice(auth_data_raw);
    signed.extend_from_slice(&client_data_hash);
    key.verify(&signed, &response.response.signature.0)?;

    check_sign_count(input.stored.sign_count, auth_data.sign_count)?;

    Ok(AuthenticationOutcome {
        new_sign_count: auth_data.sign_count,
        user_verified: auth_data.flags.user_verified(),
        backup_eligible: auth_data.flags.backup_eligible(),
        backup_state: auth_data.flags.backup_state(),
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

    const STORED: StoredCredential<'static> = StoredCredential {
        credential_id: b"cred",
        public_key_cose: b"",
        sign_count: 0,
        user_handle: b"alice",
    };

    /// py_webauthn `test_verify_authentication_response_with_EC2_public_key` (vector 18).
    fn ec2_vector() -> (serde_json::Value, AuthenticationResponseJson) {
        let v = crate::webauthn::test_vectors::vector(18);
        let response = serde_json::from_value(v["response"].clone()).unwrap();
        (v, response)
    }

    fn run(
        v: &serde_json::Value,
        response: &AuthenticationResponseJson,
        policy: &Policy,
        stored_count: u32,
        owner: &[u8],
        expected_user: Option<&[u8]>,
    ) -> Result<AuthenticationOutcome> {
        use crate::webauthn::test_vectors::bytes;
        let origins = vec![v["origin"].as_str().unwrap().to_owned()];
        verify_authentication(&AuthenticationInput {
            response,
            expected_challenge: &bytes(v, "/challenge_b64url"),
            rp_id: v["rp_id"].as_str().unwrap(),
            allowed_origins: &origins,
            policy,
            stored: StoredCredential {
                credential_id: &response.raw_id.0,
                public_key_cose: &bytes(v, "/credential_public_key_b64url"),
                sign_count: stored_count,
                user_handle: owner,
            },
            expected_user_handle: expected_user,
        })
    }

    fn lenient() -> Policy {
        Policy {
            require_user_verification: false,
            ..Policy::default()
        }
    }

    #[test]
    fn real_assertion_verifies() {
        let (v, response) = ec2_vector();
        let outcome = run(&v, &response, &lenient(), 77, b"alice", Some(b"alice")).unwrap();
        assert_eq!(outcome.new_sign_count, 78);
        assert!(!outcome.user_verified && !outcome.backup_eligible && !outcome.backup_state);
    }

    #[test]
    fn real_assertion_refusals() {
        let (v, response) = ec2_vector();
        // UV flag is clear in this vector.
        assert_eq!(
            run(
                &v,
                &response,
                &Policy::default(),
                77,
                b"alice",
                Some(b"alice")
            ),
            Err(WebauthnError::UserNotVerified)
        );
        assert_eq!(
            run(&v, &response, &lenient(), 78, b"alice", Some(b"alice")),
            Err(WebauthnError::SignCountRollback)
        );
        assert_eq!(
            run(&v, &response, &lenient(), 77, b"alice", Some(b"bob")),
            Err(WebauthnError::CredentialNotOwned)
        );
        assert_eq!(
            run(&v, &response, &lenient(), 77, b"alice", None),
            Err(WebauthnError::UserHandleMissing)
        );
        let rsa_only = Policy {
            supported_algs: vec![-257],
            ..lenient()
        };
        assert_eq!(
            run(&v, &response, &rsa_only, 77, b"alice", Some(b"alice")),
            Err(WebauthnError::UnsupportedAlgorithm)
        );
        let mut tampered = response.clone();
        *tampered.response.signature.0.last_mut().unwrap() ^= 1;
        assert_eq!(
            run(&v, &tampered, &lenient(), 77, b"alice", Some(b"alice")),
            Err(WebauthnError::SignatureInvalid)
        );
        let mut attested = response.clone();
        attested.response.authenticator_data.0[32] |=
            crate::webauthn::authenticator_data::Flags::AT;
        assert!(run(&v, &attested, &lenient(), 77, b"alice", Some(b"alice")).is_err());
        let mut renamed = response;
        renamed.id = "AAAA".into();
        assert_eq!(
            run(&v, &renamed, &lenient(), 77, b"alice", Some(b"alice")),
            Err(WebauthnError::CredentialIdMismatch)
        );
    }

    #[test]
    fn sign_count_rules() {
        assert!(check_sign_count(0, 0).is_ok());
        assert!(check_sign_count(0, 1).is_ok());
        assert!(check_sign_count(143, 144).is_ok());
        assert_eq!(
            check_sign_count(144, 144),
            Err(WebauthnError::SignCountRollback)
        );
        assert_eq!(
            check_sign_count(144, 143),
            Err(WebauthnError::SignCountRollback)
        );
        assert_eq!(
            check_sign_count(5, 0),
            Err(WebauthnError::SignCountRollback)
        );
    }

    #[test]
    fn owner_identified_user() {
        assert!(check_credential_owner(b"cred", None, &STORED, Some(b"alice")).is_ok());
        assert!(check_credential_owner(b"cred", Some(b"alice"), &STORED, Some(b"alice")).is_ok());
        assert_eq!(
            check_credential_owner(b"cred", None, &STORED, Some(b"bob")),
            Err(WebauthnError::CredentialNotOwned)
        );
        assert_eq!(
            check_credential_owner(b"cred", Some(b"bob"), &STORED, Some(b"alice")),
            Err(WebauthnError::CredentialNotOwned)
        );
        assert_eq!(
            check_credential_owner(b"other", None, &STORED, Some(b"alice")),
            Err(WebauthnError::CredentialIdMismatch)
        );
    }

    #[test]
    fn owner_discoverable_login() {
        assert!(check_credential_owner(b"cred", Some(b"alice"), &STORED, None).is_ok());
        assert_eq!(
            check_credential_owner(b"cred", None, &STORED, None),
            Err(WebauthnError::UserHandleMissing)
        );
        assert_eq!(
            check_credential_owner(b"cred", Some(b"bob"), &STORED, None),
            Err(WebauthnError::CredentialNotOwned)
        );
    }
}
