//! The `packed` attestation format (§8.2): self attestation with the
//! credential key, or basic attestation with an `x5c` leaf certificate that
//! meets §8.2.1 (chain not validated, see the parent module's trust policy).

use ciborium::Value;

use super::cert::{CertKey, check_packed_leaf, check_validity, parse_certificate};
use super::{AttestationType, StatementContext, stmt_bytes, stmt_get, stmt_x5c};
use crate::webauthn::errors::{Result, WebauthnError};

/// Verifies `attStmt = {alg, sig, x5c?}` over authenticatorData ‖ clientDataHash.
pub fn verify(ctx: &StatementContext<'_>) -> Result<AttestationType> {
    let alg = match stmt_get(ctx.att_stmt, "alg")? {
        Some(Value::Integer(i)) => {
            i64::try_from(*i).map_err(|_| WebauthnError::AttestationInvalid)?
        }
        _ => return Err(WebauthnError::AttestationInvalid),
    };
    let sig = stmt_bytes(ctx.att_stmt, "sig")?;
    // ECDAA was removed from WebAuthn L2; nothing produces it.
    if stmt_get(ctx.att_stmt, "ecdaaKeyId")?.is_some() {
        return Err(WebauthnError::AttestationInvalid);
    }
    let signed = ctx.signed_data();

    match stmt_x5c(ctx.att_stmt)? {
        Some(chain) => {
            let leaf_der = chain.first().ok_or(WebauthnError::AttestationInvalid)?;
            let leaf = parse_certificate(leaf_der)?;
            CertKey::from_certificate(&leaf)?.verify(alg, &signed, sig)?;
            let aaguid = ctx
                .auth_data
                .attested_credential
                .as_ref()
                .map(|c| c.aaguid)
                .ok_or(WebauthnError::AttestedCredentialMissing)?;
            check_packed_leaf(&leaf, &aaguid)?;
            if let Some(now) = ctx.certificate_time {
                check_validity(&leaf, now)?;
            }
            Ok(AttestationType::Basic)
        }
        None => {
            // Self attestation: the statement alg must be the credential's own.
            if alg != ctx.credential_key.alg().cose_id() {
                return Err(WebauthnError::AttestationInvalid);
            }
            ctx.credential_key
                .verify(&signed, sig)
                .map_err(|_| WebauthnError::AttestationInvalid)?;
            Ok(AttestationType::SelfAttestation)
        }
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
    use crate::webauthn::test_vectors::{registration, replace, tamper_sig};

    /// Vector ids: 10 YubiKey 5 (x5c, ES256 key), 11 YubiKey (x5c, Ed25519
    /// key), 32 Chrome virtual authenticator (x5c with explicit cA=FALSE),
    /// 35 self attestation (EC2), 46 self attestation (PS256).
    #[test]
    fn real_packed_statements_verify() {
        for (id, expected) in [
            (10, AttestationType::Basic),
            (11, AttestationType::Basic),
            (32, AttestationType::Basic),
            (35, AttestationType::SelfAttestation),
            (46, AttestationType::SelfAttestation),
        ] {
            let reg = registration(id);
            assert_eq!(
                verify(&reg.ctx(&reg.object.att_stmt, None)),
                Ok(expected),
                "vector {id}"
            );
        }
    }

    #[test]
    fn tampered_signatures_refused() {
        for id in [10, 11, 32, 35, 46] {
            let reg = registration(id);
            let stmt = tamper_sig(&reg.object.att_stmt);
            assert_eq!(
                verify(&reg.ctx(&stmt, None)),
                Err(WebauthnError::AttestationInvalid),
                "vector {id}"
            );
        }
    }

    #[test]
    fn aaguid_extension_must_match() {
        // SimpleWebAuthn: x5c leaf id-fido-gen-ce-aaguid differs from authData AAGUID.
        let reg = registration(33);
        assert_eq!(
            verify(&reg.ctx(&reg.object.att_stmt, None)),
            Err(WebauthnError::AttestationInvalid)
        );
    }

    #[test]
    fn self_attestation_alg_must_be_the_credential_alg() {
        let reg = registration(35);
        let stmt = replace(
            &reg.object.att_stmt,
            "alg",
            Some(ciborium::Value::from(-257)),
        );
        assert_eq!(
            verify(&reg.ctx(&stmt, None)),
            Err(WebauthnError::AttestationInvalid)
        );
    }

    #[test]
    fn x5c_alg_must_match_the_leaf_key() {
        let reg = registration(10);
        let stmt = replace(
            &reg.object.att_stmt,
            "alg",
            Some(ciborium::Value::from(-257)),
        );
        assert_eq!(
            verify(&reg.ctx(&stmt, None)),
            Err(WebauthnError::AttestationInvalid)
        );
        let stmt = replace(
            &reg.object.att_stmt,
            "alg",
            Some(ciborium::Value::from(-35)),
        );
        assert_eq!(
            verify(&reg.ctx(&stmt, None)),
            Err(WebauthnError::UnsupportedAlgorithm)
        );
    }

    #[test]
    fn malformed_statements_refused() {
        let reg = registration(10);
        let cases = [
            replace(&reg.object.att_stmt, "alg", None),
            replace(&reg.object.att_stmt, "sig", None),
            replace(
                &reg.object.att_stmt,
                "x5c",
                Some(ciborium::Value::Array(vec![])),
            ),
            replace(
                &reg.object.att_stmt,
                "x5c",
                Some(ciborium::Value::Array(vec![ciborium::Value::Bytes(vec![
                    0x30, 0x00,
                ])])),
            ),
            replace(
                &reg.object.att_stmt,
                "ecdaaKeyId",
                Some(ciborium::Value::Bytes(vec![1])),
            ),
        ];
        for stmt in cases {
            assert_eq!(
                verify(&reg.ctx(&stmt, None)),
                Err(WebauthnError::AttestationInvalid),
                "{stmt:?}"
            );
        }
    }

    #[test]
    fn certificate_validity_checked_when_a_time_is_given() {
        let reg = registration(10);
        // 2020-01-01: inside the Yubico leaf's validity; 1970: before it.
        assert_eq!(
            verify(&reg.ctx(&reg.object.att_stmt, Some(1_577_836_800))),
            Ok(AttestationType::Basic)
        );
        assert_eq!(
            verify(&reg.ctx(&reg.object.att_stmt, Some(0))),
            Err(WebauthnError::AttestationInvalid)
        );
    }
}
