//! SQL for behavioural telemetry (`auth_telemetry`), in the user's scope.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde::Serialize;

use crate::ports::{PortError, Sql, SqlParam, SqlScope};
use crate::repositories::rows::{bad_row, col};

const INSERT_MANY: &str = "WITH i AS (INSERT INTO auth_telemetry \
       (user_id, session_id, at, typing_speed, error, command_length, command_tokens, received_at) \
     SELECT $1::uuid, $2, x.at, x.typing_speed, x.error, x.command_length, x.command_tokens, $4::timestamptz \
     FROM jsonb_to_recordset($3::jsonb) AS x(at timestamptz, typing_speed double precision, \
       error boolean, command_length integer, command_tokens integer) RETURNING 1) \
     SELECT count(*)::text FROM i";

/// The user's events of the last 90 days, newest first, at most 5,000.
const RECENT: &str = "SELECT session_id, floor(extract(epoch FROM at) * 1000)::bigint::text, \
       typing_speed::text, error::text, command_length::text, command_tokens::text \
     FROM auth_telemetry WHERE user_id = $1::uuid AND at > $2::timestamptz - interval '90 days' \
     ORDER BY at DESC LIMIT 5000";

/// One event as stored (the command itself is reduced to its size).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredEvent {
    pub session_id: String,
    pub at_ms: i64,
    pub typing_speed: f64,
    pub error: bool,
    pub command_length: u32,
    pub command_tokens: u32,
}

/// The `jsonb_to_recordset` row of [`INSERT_MANY`].
#[derive(Debug, Clone, Serialize)]
pub struct NewEvent {
    pub at: String,
    pub typing_speed: f64,
    pub error: bool,
    pub command_length: u32,
    pub command_tokens: u32,
}

pub struct Telemetry<'a> {
    pub sql: &'a dyn Sql,
}

fn s(v: impl Into<String>) -> SqlParam {
    Some(v.into())
}

impl Telemetry<'_> {
    pub async fn insert(
        &self,
        user: &str,
        session_id: &str,
        events: &[NewEvent],
        now: &str,
    ) -> Result<u64, PortError> {
        let json = serde_json::to_string(events).map_err(|e| PortError::failed(e.to_string()))?;
        let rows = self
            .sql
            .query(
                &SqlScope::User(user.to_string()),
                INSERT_MANY,
                &[s(user), s(session_id), s(json), s(now)],
            )
            .await?;
        let row = rows.first().ok_or_else(|| bad_row("count"))?;
        col(row, 0)?.parse().map_err(|_| bad_row("count"))
    }

    pub async fn recent(&self, user: &str, now: &str) -> Result<Vec<StoredEvent>, PortError> {
        let rows = self
            .sql
            .query(
                &SqlScope::User(user.to_string()),
                RECENT,
                &[s(user), s(now)],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(StoredEvent {
                    session_id: col(r, 0)?.to_string(),
                    at_ms: col(r, 1)?.parse().map_err(|_| bad_row("at"))?,
                    typing_speed: col(r, 2)?.parse().map_err(|_| bad_row("typing_speed"))?,
                    error: col(r, 3)? == "true",
                    command_length: col(r, 4)?.parse().map_err(|_| bad_row("length"))?,
                    command_tokens: col(r, 5)?.parse().map_err(|_| bad_row("tokens"))?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repositories::rows::uses_every_parameter;

    #[test]
    fn statements_use_every_parameter() {
        uses_every_parameter("INSERT_MANY", INSERT_MANY, 4);
        uses_every_parameter("RECENT", RECENT, 2);
    }
}
