//! SQL for WebAuthn challenges: issue, and consume exactly once.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use uuid::Uuid;

use crate::ports::{PortError, Sql, SqlParam, SqlScope};
use crate::repositories::rows::{bad_row, col, opt_col};

/// Stores a challenge; also sweeps challenges that expired over an hour
/// ago, so the table stays small without a job of its own.
const INSERT: &str = "WITH sweep AS (DELETE FROM webauthn_challenges \
       WHERE expires_at < $4::timestamptz - interval '1 hour') \
     INSERT INTO webauthn_challenges (challenge, ceremony, user_id, created_at, expires_at) \
     VALUES (decode($1, 'hex'), $2, $3::uuid, $4::timestamptz, $5::timestamptz) RETURNING id::text";

/// Deletes and returns the challenge: of two concurrent completes only one
/// gets the row. Expired rows are consumed too, and reported as such.
const CONSUME: &str = "DELETE FROM webauthn_challenges WHERE id = $1::uuid AND ceremony = $2 \
     RETURNING encode(challenge, 'hex'), user_id::text, (expires_at > $3::timestamptz)::text";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ceremony {
    Register,
    Authenticate,
}

impl Ceremony {
    fn as_str(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::Authenticate => "authenticate",
        }
    }
}

/// A consumed, unexpired challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub bytes: Vec<u8>,
    pub user_id: Option<Uuid>,
}

pub struct Challenges<'a> {
    pub sql: &'a dyn Sql,
}

fn s(v: impl Into<String>) -> SqlParam {
    Some(v.into())
}

impl Challenges<'_> {
    pub async fn insert(
        &self,
        bytes: &[u8],
        ceremony: Ceremony,
        user: Option<&Uuid>,
        now: &str,
        expires_at: &str,
    ) -> Result<Uuid, PortError> {
        let rows = self
            .sql
            .query(
                &SqlScope::System,
                INSERT,
                &[
                    s(hex::encode(bytes)),
                    s(ceremony.as_str()),
                    user.map(Uuid::to_string),
                    s(now),
                    s(expires_at),
                ],
            )
            .await?;
        let row = rows.first().ok_or_else(|| bad_row("id"))?;
        Uuid::parse_str(col(row, 0)?).map_err(|_| bad_row("id"))
    }

    /// Consumes the challenge `id` of `ceremony`: `None` if it does not
    /// exist, was used, or has expired.
    pub async fn consume(
        &self,
        id: &Uuid,
        ceremony: Ceremony,
        now: &str,
    ) -> Result<Option<Challenge>, PortError> {
        let rows = self
            .sql
            .query(
                &SqlScope::System,
                CONSUME,
                &[s(id.to_string()), s(ceremony.as_str()), s(now)],
            )
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        if col(row, 2)? != "true" {
            return Ok(None);
        }
        Ok(Some(Challenge {
            bytes: hex::decode(col(row, 0)?).map_err(|_| bad_row("challenge"))?,
            user_id: opt_col(row, 1)?
                .map(|u| Uuid::parse_str(u).map_err(|_| bad_row("user_id")))
                .transpose()?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repositories::rows::uses_every_parameter;

    #[test]
    fn statements_use_every_parameter() {
        uses_every_parameter("INSERT", INSERT, 5);
        uses_every_parameter("CONSUME", CONSUME, 3);
    }
}
