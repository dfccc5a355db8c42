//! The `fido-u2f` attestation format (§8.6): a P-256 attestation certificate
//! signs 0x00 ‖ rpIdHash ‖ clientDataHash ‖ credentialId ‖ 0x04 ‖ x ‖ y.

use super::cert::{CertKey, check_validity, parse_certificate};
use super::{AttestationType, StatementContext, stmt_bytes, stmt_x5c};
use crate::webauthn::errors::{Result, WebauthnError};

/// Verifies `attStmt = {x5c: [cert], sig}`.
pub fn verify(ctx: &StatementContext<'_>) -> Result<AttestationType> {
    let sig = stmt_bytes(ctx.att_stmt, "sig")?;
    let chain = stmt_x5c(ctx.att_stmt)?.ok_or(WebauthnError::AttestationInvalid)?;
    let [cert_der] = chain.as_slice() else {
        return Err(WebauthnError::AttestationInvalid);
    };
    let cert = parse_certificate(cert_der)?;
    let CertKey::P256(cert_key) = CertKey::from_certificate(&cert)? else {
        return Err(WebauthnError::AttestationInvalid);
    };
    if let Some(now) = ctx.certificate_time {
        check_validity(&cert, now)?;
    }
    // U2F devices only have P-256 credential keys.
    let point = ctx
        .credential_key
        .p256_uncompressed_point()
        .ok_or(WebauthnError::AttestationInvalid)?;
    let credential = ctx
        .auth_data
        .attested_credential
        .as_ref()
        .ok_or(WebauthnError::AttestedCredentialMissing)?;

    let mut data = Vec::with_capacity(1 + 32 + 32 + credential.credential_id.len() + point.len());
    data.push(0x00);
    data.extend_from_slice(&ctx.auth_data.rp_id_hash);
    data.extend_from_slice(ctx.client_data_hash);
    data.extend_from_slice(&credential.credential_id);
    data.extend_from_slice(&point);
    CertKey::P256(cert_key).verify(-7, &data, sig)?;
    Ok(AttestationType::Basic)
}
