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
