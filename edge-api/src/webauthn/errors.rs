//! Why a WebAuthn ceremony was refused: one variant per verification step,
//! each with a stable snake_case code that clients and logs can rely on.
//!
//! Every variant is the caller's fault (a 4xx in HTTP terms): the verifier does
//! no I/O, so there is no infrastructure failure to report. Messages never echo
//! attacker-controlled bytes back, only the name of the failed check.

use core::fmt;

/// A refused registration or authentication. Match on the variant or use
/// [`WebauthnError::code`]; the code strings are part of the public API and
/// are listed in `edge-api/WEBAUTHN.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WebauthnError {
    /// The PublicKeyCredential JSON is not valid (missing field, bad base64url,
    /// `type` other than `public-key`).
    MalformedResponse,
    /// `id` and `rawId` disagree, or `rawId` is not the credential the
    /// authenticator data / stored credential names.
    CredentialIdMismatch,
    /// clientDataJSON is not the JSON dictionary the spec describes.
    MalformedClientData,
    /// clientDataJSON `type` is not `webauthn.create` / `webauthn.get` as expected.
    ClientDataTypeMismatch,
    /// clientDataJSON `challenge` is not the challenge this server issued.
    ChallengeMismatch,
    /// clientDataJSON `origin` is not in the configured list.
    OriginNotAllowed,
    /// `crossOrigin: true` while the policy forbids cross-origin ceremonies.
    CrossOriginNotAllowed,
    /// `topOrigin` is missing or not allowed for a cross-origin ceremony, or
    /// present on a same-origin one.
    TopOriginNotAllowed,
    /// `tokenBinding.status` is `present` (we cannot verify it) or unknown.
    TokenBindingInvalid,
    /// Authenticator data is truncated, has trailing bytes or bad CBOR.
    MalformedAuthenticatorData,
    /// rpIdHash is not SHA-256 of the configured RP ID.
    RpIdHashMismatch,
    /// The UP flag is clear.
    UserNotPresent,
    /// The policy requires user verification and the UV flag is clear.
    UserNotVerified,
    /// A registration whose authenticator data has no attested credential (AT clear).
    AttestedCredentialMissing,
    /// An assertion whose authenticator data carries attested credential data.
    AttestedCredentialUnexpected,
    /// Bytes after the attested credential data while the ED flag is clear.
    ExtensionDataUnexpected,
    /// BS (backup state) set while BE (backup eligible) is clear.
    BackupStateInconsistent,
    /// Credential id longer than 1023 bytes.
    CredentialIdTooLong,
    /// The credential public key is not a valid COSE key of its declared type.
    CoseKeyInvalid,
    /// The credential's algorithm is not one this server accepts.
    UnsupportedAlgorithm,
    /// The attestation object is not the CBOR map `{fmt, attStmt, authData}`.
    MalformedAttestationObject,
    /// An attestation format we refuse (`tpm`, `android-key`, `apple`, unknown …).
    UnsupportedAttestationFormat,
    /// The attestation statement does not verify (bad signature, bad certificate,
    /// AAGUID mismatch, wrong key type …).
    AttestationInvalid,
    /// The assertion signature does not verify with the stored public key.
    SignatureInvalid,
    /// The signature counter did not increase.
    SignCountRollback,
    /// The credential does not belong to the user this ceremony is for.
    CredentialNotOwned,
    /// Discoverable-credential login without a `userHandle` in the response.
    UserHandleMissing,
}

impl WebauthnError {
    /// Every variant, in the order of the error-code table.
    pub const ALL: [WebauthnError; 27] = [
        Self::MalformedResponse,
        Self::CredentialIdMismatch,
        Self::MalformedClientData,
        Self::ClientDataTypeMismatch,
        Self::ChallengeMismatch,
        Self::OriginNotAllowed,
        Self::CrossOriginNotAllowed,
        Self::TopOriginNotAllowed,
        Self::TokenBindingInvalid,
        Self::MalformedAuthenticatorData,
        Self::RpIdHashMismatch,
        Self::UserNotPresent,
        Self::UserNotVerified,
        Self::AttestedCredentialMissing,
        Self::AttestedCredentialUnexpected,
        Self::ExtensionDataUnexpected,
        Self::BackupStateInconsistent,
        Self::CredentialIdTooLong,
        Self::CoseKeyInvalid,
        Self::UnsupportedAlgorithm,
        Self::MalformedAttestationObject,
        Self::UnsupportedAttestationFormat,
        Self::AttestationInvalid,
        Self::SignatureInvalid,
        Self::SignCountRollback,
        Self::CredentialNotOwned,
        Self::UserHandleMissing,
    ];

    /// The stable snake_case code of this error.
    pub const fn code(self) -> &'static str {
        match self {
            Self::MalformedResponse => "malformed_response",
            Self::CredentialIdMismatch => "credential_id_mismatch",
            Self::MalformedClientData => "malformed_client_data",
            Self::ClientDataTypeMismatch => "client_data_type_mismatch",
            Self::ChallengeMismatch => "challenge_mismatch",
            Self::OriginNotAllowed => "origin_not_allowed",
            Self::CrossOriginNotAllowed => "cross_origin_not_allowed",
            Self::TopOriginNotAllowed => "top_origin_not_allowed",
            Self::TokenBindingInvalid => "token_binding_invalid",
            Self::MalformedAuthenticatorData => "malformed_authenticator_data",
            Self::RpIdHashMismatch => "rp_id_hash_mismatch",
            Self::UserNotPresent => "user_not_present",
            Self::UserNotVerified => "user_not_verified",
            Self::AttestedCredentialMissing => "attested_credential_missing",
            Self::AttestedCredentialUnexpected => "attested_credential_unexpected",
            Self::ExtensionDataUnexpected => "extension_data_unexpected",
            Self::BackupStateInconsistent => "backup_state_inconsistent",
            Self::CredentialIdTooLong => "credential_id_too_long",
            Self::CoseKeyInvalid => "cose_key_invalid",
            Self::UnsupportedAlgorithm => "unsupported_algorithm",
            Self::MalformedAttestationObject => "malformed_attestation_object",
            Self::UnsupportedAttestationFormat => "unsupported_attestation_format",
            Self::AttestationInvalid => "attestation_invalid",
            Self::SignatureInvalid => "signature_invalid",
            Self::SignCountRollback => "sign_count_rollback",
            Self::CredentialNotOwned => "credential_not_owned",
            Self::UserHandleMissing => "user_handle_missing",
        }
    }

    /// A short human-readable message, safe to return to the client.
    pub const fn message(self) -> &'static str {
        match self {
            Self::MalformedResponse => "the credential response is not valid WebAuthn JSON",
            Self::CredentialIdMismatch => "the credential id does not match",
            Self::MalformedClientData => "clientDataJSON is malformed",
            Self::ClientDataTypeMismatch => "clientDataJSON has the wrong type",
            Self::ChallengeMismatch => "the challenge does not match",
            Self::OriginNotAllowed => "the origin is not allowed",
            Self::CrossOriginNotAllowed => "cross-origin ceremonies are not allowed",
            Self::TopOriginNotAllowed => "the top-level origin is not allowed",
            Self::TokenBindingInvalid => "the token binding status is not acceptable",
            Self::MalformedAuthenticatorData => "authenticator data is malformed",
            Self::RpIdHashMismatch => "the RP ID hash does not match",
            Self::UserNotPresent => "user presence was not asserted",
            Self::UserNotVerified => "user verification is required",
            Self::AttestedCredentialMissing => "attested credential data is missing",
            Self::AttestedCredentialUnexpected => "attested credential data is not allowed here",
            Self::ExtensionDataUnexpected => "extension data present without the ED flag",
            Self::BackupStateInconsistent => {
                "backup state set on a credential that is not backup eligible"
            }
            Self::CredentialIdTooLong => "the credential id is longer than 1023 bytes",
            Self::CoseKeyInvalid => "the credential public key is invalid",
            Self::UnsupportedAlgorithm => "the credential algorithm is not supported",
            Self::MalformedAttestationObject => "the attestation object is malformed",
            Self::UnsupportedAttestationFormat => "the attestation format is not supported",
            Self::AttestationInvalid => "the attestation statement does not verify",
            Self::SignatureInvalid => "the signature does not verify",
            Self::SignCountRollback => "the signature counter did not increase",
            Self::CredentialNotOwned => "the credential does not belong to this user",
            Self::UserHandleMissing => "the user handle is missing",
        }
    }
}

impl fmt::Display for WebauthnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code(), self.message())
    }
}

impl std::error::Error for WebauthnError {}

/// Shorthand used throughout the verifier.
pub type Result<T> = core::result::Result<T, WebauthnError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case() {
        let mut seen = std::collections::BTreeSet::new();
        for e in WebauthnError::ALL {
            let code = e.code();
            assert!(seen.insert(code), "duplicate code {code}");
            assert!(
                code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{code} is not snake_case"
            );
            assert!(!e.message().is_empty());
        }
    }
}
