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
