//! SQL for refresh tokens: insert, spend (rotation), look up, revoke a family.
//! Tokens are stored as sha256 hex; the raw token never reaches Postgres.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use uuid::Uuid;

use crate::ports::{PortError, Sql, SqlParam, SqlScope};
use crate::repositories::rows::{bad_row, col, opt_col};

const INSERT: &str = "INSERT INTO refresh_tokens \
     (token_hash, family_id, user_id, amr, mfa_pending, hwk_at, issued_at, expires_at) \
     VALUES ($1, $2::uuid, $3::uuid, ARRAY(SELECT jsonb_array_elements_text($4::jsonb)), \
       $5::boolean, to_timestamp($6::bigint), $7::timestamptz, $8::timestamptz)";

/// Marks a live token used and returns the session it carried. Only one of
/// two concurrent uses can match `used_at IS NULL`.
const SPEND: &str = "UPDATE refresh_tokens SET used_at = $2::timestamptz \
     WHERE token_hash = $1 AND used_at IS NULL AND revoked_at IS NULL \
       AND expires_at > $2::timestamptz \
     RETURNING family_id::text, user_id::text, array_to_json(amr)::text, mfa_pending::text, \
       floor(extract(epoch FROM hwk_at))::bigint::text";

const FIND: &str = "SELECT family_id::text, (used_at IS NOT NULL)::text, \
     (revoked_at IS NOT NULL)::text FROM refresh_tokens WHERE token_hash = $1";

const REVOKE_FAMILY: &str = "WITH r AS (UPDATE refresh_tokens SET revoked_at = $2::timestamptz \
     WHERE family_id = $1::uuid AND revoked_at IS NULL RETURNING 1) SELECT count(*)::text FROM r";

/// What a refresh token carries from one access token to the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    pub family_id: Uuid,
    pub user_id: Uuid,
    pub amr: Vec<String>,
    pub mfa_pending: bool,
    pub hwk_at: Option<i64>,
}

/// A token's state when it could not be spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenState {
    Unknown,
    /// Used before: a replay.
    Spent(Uuid),
    /// Revoked or expired.
    Dead(Uuid),
}

pub struct RefreshTokens<'a> {
    pub sql: &'a dyn Sql,
}

fn s(v: impl Into<String>) -> SqlParam {
    Some(v.into())
}

impl RefreshTokens<'_> {
    pub async fn insert(
        &self,
        token_hash: &str,
        session: &StoredSession,
        issued_at: &str,
        expires_at: &str,
    ) -> Result<(), PortError> {
        let amr =
            serde_json::to_string(&session.amr).map_err(|e| PortError::failed(e.to_string()))?;
        self.sql
            .query(
                &SqlScope::System,
                INSERT,
                &[
                    s(token_hash),
                    s(session.family_id.to_string()),
                    s(session.user_id.to_string()),
                    s(amr),
                    s(session.mfa_pending.to_string()),
                    session.hwk_at.map(|t| t.to_string()),
                    s(issued_at),
                    s(expires_at),
                ],
            )
            .await?;
        Ok(())
    }

    /// Spends a live token; `None` when it is not live (see [`Self::state`]).
    pub async fn spend(
        &self,
        token_hash: &str,
        now: &str,
    ) -> Result<Option<StoredSession>, PortError> {
        let rows = self
            .sql
            .query(&SqlScope::System, SPEND, &[s(token_hash), s(now)])
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let uuid = |i| -> Result<Uuid, PortError> {
            Uuid::parse_str(col(row, i)?).map_err(|_| bad_row("uuid"))
        };
        Ok(Some(StoredSession {
            family_id: uuid(0)?,
            user_id: uuid(1)?,
            amr: serde_json::from_str(col(row, 2)?).map_err(|_| bad_row("amr"))?,
            mfa_pending: col(row, 3)? == "true",
            hwk_at: opt_col(row, 4)?
                .map(|t| t.parse().map_err(|_| bad_row("hwk_at")))
                .transpose()?,
        }))
    }

    pub async fn state(&self, token_hash: &str) -> Result<TokenState, PortError> {
        let rows = self
            .sql
            .query(&SqlScope::System, FIND, &[s(token_hash)])
            .await?;
        let Some(row) = rows.first() else {
            return Ok(TokenState::Unknown);
        };
        let family = Uuid::parse_str(col(row, 0)?).map_err(|_| bad_row("family"))?;
        Ok(if col(row, 2)? == "true" {
            TokenState::Dead(family)
        } else if col(row, 1)? == "true" {
            TokenState::Spent(family)
        } else {
            TokenState::Dead(family)
        })
    }

    /// Revokes every live token of a family; returns how many.
    pub async fn revoke_family(&self, family: &Uuid, now: &str) -> Result<u64, PortError> {
        let rows = self
            .sql
            .query(
                &SqlScope::System,
                REVOKE_FAMILY,
                &[s(family.to_string()), s(now)],
            )
            .await?;
        let row = rows.first().ok_or_else(|| bad_row("count"))?;
        col(row, 0)?.parse().map_err(|_| bad_row("count"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repositories::rows::uses_every_parameter;

    #[test]
    fn statements_use_every_parameter() {
        for (name, sql, n) in [
            ("INSERT", INSERT, 8),
            ("SPEND", SPEND, 2),
            ("FIND", FIND, 1),
            ("REVOKE_FAMILY", REVOKE_FAMILY, 2),
        ] {
            uses_every_parameter(name, sql, n);
        }
    }
}
