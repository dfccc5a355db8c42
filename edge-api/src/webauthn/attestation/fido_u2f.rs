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

    /// 6 FIDO conformance, 7 YubiKey via Firefox, 34 SimpleWebAuthn, 45 SHA-1-signed leaf.
    const U2F: [u64; 4] = [6, 7, 34, 45];

    #[test]
    fn real_u2f_statements_verify() {
        for id in U2F {
            let reg = registration(id);
            assert_eq!(
                verify(&reg.ctx(&reg.object.att_stmt, None)),
                Ok(AttestationType::Basic),
                "vector {id}"
            );
        }
    }

    #[test]
    fn tampered_signatures_refused() {
        for id in U2F {
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
    fn statement_shape_enforced() {
        let reg = registration(6);
        let x5c = reg
            .object
            .att_stmt
            .iter()
            .find(|(k, _)| k.as_text() == Some("x5c"))
            .map(|(_, v)| v.clone())
            .unwrap();
        let ciborium::Value::Array(certs) = x5c else {
            panic!("x5c is an array")
        };
        let two = ciborium::Value::Array(vec![certs[0].clone(), certs[0].clone()]);
        for stmt in [
            replace(&reg.object.att_stmt, "x5c", None),
            replace(&reg.object.att_stmt, "x5c", Some(two)),
            replace(&reg.object.att_stmt, "sig", None),
        ] {
            assert_eq!(
                verify(&reg.ctx(&stmt, None)),
                Err(WebauthnError::AttestationInvalid)
            );
        }
    }

    #[test]
    fn credential_key_must_be_p256() {
        // The Ed25519 credential of vector 11 with a U2F statement.
        let u2f = registration(6);
        let ed = registration(11);
        let ctx = StatementContext {
            credential_key: &ed.key,
            ..u2f.ctx(&u2f.object.att_stmt, None)
        };
        assert_eq!(verify(&ctx), Err(WebauthnError::AttestationInvalid));
    }
}
