//! SQL for accounts (`users`) and failed-login throttling (`login_throttle`).
//! Sign-in spans users before it knows who is signing in, so these
//! statements run in the system scope.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use uuid::Uuid;

use crate::ports::{PortError, Sql, SqlParam, SqlScope};
use crate::repositories::rows::{bad_row, col, opt_col};

/// Inserts an account unless the email or username exists (then no row).
const INSERT: &str = "INSERT INTO users (email, username, password_hash, created_at) \
     VALUES ($1, $2, $3, $4::timestamptz) ON CONFLICT DO NOTHING RETURNING id::text";

/// Which of email / username is taken.
const CONFLICTS: &str = "SELECT bool_or(email = $1)::text, bool_or(username = $2)::text \
     FROM users WHERE email = $1 OR username = $2";

macro_rules! account_columns {
    () => {
        "u.id::text, u.email, u.username, u.password_hash, \
         (SELECT count(*) FROM webauthn_credentials c WHERE c.user_id = u.id)::text"
    };
}

/// By username or email (both stored lower-case; usernames cannot hold `@`).
const FIND_BY_NAME: &str = concat!(
    "SELECT ",
    account_columns!(),
    " FROM users u WHERE u.username = $1 OR u.email = $1 LIMIT 1"
);

const FIND_BY_ID: &str = concat!(
    "SELECT ",
    account_columns!(),
    " FROM users u WHERE u.id = $1::uuid"
);

/// Replaces a password hash unless it changed meanwhile.
const REHASH: &str =
    "UPDATE users SET password_hash = $3 WHERE id = $1::uuid AND password_hash = $2";

/// Locks in force for any of the keys ($1: JSON array), in ms since the epoch.
const ACTIVE_LOCKS: &str = "SELECT key, floor(extract(epoch FROM locked_until) * 1000)::bigint::text \
     FROM login_throttle WHERE key IN (SELECT jsonb_array_elements_text($1::jsonb)) \
       AND locked_until > $2::timestamptz";

/// Counts one failure; a failure after a quiet `window` ($3 seconds) starts
/// the count again. Returns the count.
const RECORD_FAILURE: &str = "INSERT INTO login_throttle AS t (key, failures, last_failure_at) \
     VALUES ($1, 1, $2::timestamptz) ON CONFLICT (key) DO UPDATE SET \
       failures = CASE WHEN t.last_failure_at < $2::timestamptz - make_interval(secs => $3::bigint) \
         THEN 1 ELSE t.failures + 1 END, \
       last_failure_at = $2::timestamptz \
     RETURNING failures::text";

const LOCK: &str = "UPDATE login_throttle SET locked_until = $2::timestamptz WHERE key = $1";

const CLEAR: &str = "DELETE FROM login_throttle WHERE key = $1";

/// An account as sign-in needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: Uuid,
    pub email: String,
    pub username: String,
    pub password_hash: String,
    pub passkeys: u64,
}

/// Which unique field a registration collided with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    Email,
    Username,
}

pub struct Users<'a> {
    pub sql: &'a dyn Sql,
}

fn s(v: impl Into<String>) -> SqlParam {
    Some(v.into())
}

fn account(row: &crate::ports::SqlRow) -> Result<Account, PortError> {
    Ok(Account {
        id: Uuid::parse_str(col(row, 0)?).map_err(|_| bad_row("id"))?,
        email: col(row, 1)?.to_string(),
        username: col(row, 2)?.to_string(),
        password_hash: col(row, 3)?.to_string(),
        passkeys: col(row, 4)?.parse().map_err(|_| bad_row("passkeys"))?,
    })
}

impl Users<'_> {
    /// Creates the account, or says which field is taken.
    pub async fn insert(
        &self,
        email: &str,
        username: &str,
        password_hash: &str,
        now: &str,
    ) -> Result<Result<Uuid, Taken>, PortError> {
        let rows = self
            .sql
            .query(
                &SqlScope::System,
                INSERT,
                &[s(email), s(username), s(password_hash), s(now)],
            )
            .await?;
        if let Some(row) = rows.first() {
            return Ok(Ok(Uuid::parse_str(col(row, 0)?).map_err(|_| bad_row("id"))?));
        }
        let rows = self
            .sql
            .query(&SqlScope::System, CONFLICTS, &[s(email), s(username)])
            .await?;
        let email_taken =
            rows.first().map(|r| opt_col(r, 0)).transpose()?.flatten() == Some("true");
        Ok(Err(if email_taken {
            Taken::Email
        } else {
            Taken::Username
        }))
    }

    pub async fn find_by_name(&self, name: &str) -> Result<Option<Account>, PortError> {
        let rows = self
            .sql
            .query(&SqlScope::System, FIND_BY_NAME, &[s(name)])
            .await?;
        rows.first().map(account).transpose()
    }

    pub async fn find_by_id(&self, id: &Uuid) -> Result<Option<Account>, PortError> {
        let rows = self
            .sql
            .query(&SqlScope::System, FIND_BY_ID, &[s(id.to_string())])
            .await?;
        rows.first().map(account).transpose()
    }

    /// Stores a stronger hash of the same password (compare-and-set on the old one).
    pub async fn rehash(&self, id: &Uuid, old: &str, new: &str) -> Result<(), PortError> {
        self.sql
            .query(
                &SqlScope::System,
                REHASH,
                &[s(id.to_string()), s(old), s(new)],
            )
            .await?;
        Ok(())
    }

    /// The latest lock in force among `keys`, as ms since the epoch.
    pub async fn active_lock(&self, keys: &[String], now: &str) -> Result<Option<i64>, PortError> {
        let keys = serde_json::to_string(keys).map_err(|e| PortError::failed(e.to_string()))?;
        let rows = self
            .sql
            .query(&SqlScope::System, ACTIVE_LOCKS, &[s(keys), s(now)])
            .await?;
        let mut latest = None;
        for row in &rows {
            let until: i64 = col(row, 1)?.parse().map_err(|_| bad_row("locked_until"))?;
            latest = Some(latest.map_or(until, |l: i64| l.max(until)));
        }
        Ok(latest)
    }

    /// Counts a failure for `key`; returns the failures in the window.
    pub async fn record_failure(
        &self,
        key: &str,
        now: &str,
        window_s: i64,
    ) -> Result<u32, PortError> {
        let rows = self
            .sql
            .query(
                &SqlScope::System,
                RECORD_FAILURE,
                &[s(key), s(now), s(window_s.to_string())],
            )
            .await?;
        let row = rows.first().ok_or_else(|| bad_row("failures"))?;
        col(row, 0)?.parse().map_err(|_| bad_row("failures"))
    }

    pub async fn lock(&self, key: &str, until: &str) -> Result<(), PortError> {
        self.sql
            .query(&SqlScope::System, LOCK, &[s(key), s(until)])
            .await?;
        Ok(())
    }

    pub async fn clear_failures(&self, key: &str) -> Result<(), PortError> {
        self.sql.query(&SqlScope::System, CLEAR, &[s(key)]).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repositories::rows::uses_every_parameter;

    #[test]
    fn statements_use_every_parameter() {
        for (name, sql, n) in [
            ("INSERT", INSERT, 4),
            ("CONFLICTS", CONFLICTS, 2),
            ("FIND_BY_NAME", FIND_BY_NAME, 1),
            ("FIND_BY_ID", FIND_BY_ID, 1),
            ("REHASH", REHASH, 3),
            ("ACTIVE_LOCKS", ACTIVE_LOCKS, 2),
            ("RECORD_FAILURE", RECORD_FAILURE, 3),
            ("LOCK", LOCK, 2),
            ("CLEAR", CLEAR, 1),
        ] {
            uses_every_parameter(name, sql, n);
        }
    }
}
