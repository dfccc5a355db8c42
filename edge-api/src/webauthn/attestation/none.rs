//! The `none` attestation format (§8.7): the statement must be empty.

use super::{AttestationType, StatementContext};
use crate::webauthn::errors::{Result, WebauthnError};

/// `attStmt` must be the empty map.
pub fn verify(ctx: &StatementContext<'_>) -> Result<AttestationType> {
    if ctx.att_stmt.is_empty() {
        Ok(AttestationType::None)
    } else {
        Err(WebauthnError::AttestationInvalid)
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
    use crate::webauthn::test_vectors::{registration, replace};

    #[test]
    fn empty_statement_verifies() {
        // py_webauthn test_verifies_none_attestation_response.
        let reg = registration(1);
        assert_eq!(
            verify(&reg.ctx(&reg.object.att_stmt, None)),
            Ok(AttestationType::None)
        );
    }

    #[test]
    fn non_empty_statement_refused() {
        let reg = registration(1);
        let stmt = replace(
            &reg.object.att_stmt,
            "sig",
            Some(ciborium::Value::Bytes(vec![1])),
        );
        assert_eq!(
            verify(&reg.ctx(&stmt, None)),
            Err(WebauthnError::AttestationInvalid)
        );
    }
}
