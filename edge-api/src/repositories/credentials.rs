//! SQL for passkeys (`webauthn_credentials`). Binary columns cross the port
//! as hex (`decode($n, 'hex')`, `encode(col, 'hex')`).
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde::Serialize;
use uuid::Uuid;

use crate::ports::{PortError, Sql, SqlParam, SqlRow, SqlScope};
use crate::repositories::rows::{bad_row, col, opt_col};

macro_rules! credential_columns {
    () => {
        "c.id::text, encode(c.credential_id, 'hex'), c.name, c.alg::text, c.aaguid::text, \
         c.sign_count::text, c.backup_eligible::text, c.backup_state::text, \
         array_to_json(c.transports)::text, \
         to_char(c.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), \
         to_char(c.last_used_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), \
         c.user_id::text, encode(c.public_key, 'hex')"
    };
}

/// Stores a credential; a credential id already stored (for anyone) gives
/// no row.
const INSERT: &str = concat!(
    "INSERT INTO webauthn_credentials AS c (user_id, credential_id, public_key, alg, sign_count, aaguid, \
       backup_eligible, backup_state, transports, name, created_at) \
     VALUES ($1::uuid, decode($2, 'hex'), decode($3, 'hex'), $4::integer, $5::bigint, $6::uuid, \
       $7::boolean, $8::boolean, ARRAY(SELECT jsonb_array_elements_text($9::jsonb)), $10, $11::timestamptz) \
     ON CONFLICT (credential_id) DO NOTHING RETURNING ",
    credential_columns!()
);

const LIST: &str = concat!(
    "SELECT ",
    credential_columns!(),
    " FROM webauthn_credentials c WHERE c.user_id = $1::uuid ORDER BY c.created_at, c.id"
);

const FIND: &str = concat!(
    "SELECT ",
    credential_columns!(),
    " FROM webauthn_credentials c WHERE c.credential_id = decode($1, 'hex')"
);

/// Compare-and-set on the counter: a concurrent assertion with the same
/// counter loses instead of both succeeding.
const UPDATE_COUNTER: &str = "UPDATE webauthn_credentials SET sign_count = $3::bigint, \
       backup_state = $4::boolean, last_used_at = $5::timestamptz \
     WHERE id = $1::uuid AND sign_count = $2::bigint RETURNING id::text";

const RENAME: &str = concat!(
    "UPDATE webauthn_credentials AS c SET name = $3 WHERE c.user_id = $1::uuid AND c.id = $2::uuid RETURNING ",
    credential_columns!()
);

const DELETE: &str = "DELETE FROM webauthn_credentials WHERE user_id = $1::uuid AND id = $2::uuid \
     RETURNING id::text";

/// A stored passkey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialRow {
    pub id: Uuid,
    pub credential_id: Vec<u8>,
    pub name: String,
    pub alg: i64,
    pub aaguid: String,
    pub sign_count: u32,
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub transports: Vec<String>,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub user_id: Uuid,
    pub public_key: Vec<u8>,
}

/// A passkey as clients see it (no key material, no owner).
#[derive(Debug, Clone, Serialize)]
pub struct CredentialView {
    pub id: String,
    pub credential_id: String,
    pub name: String,
    pub alg: i64,
    pub aaguid: String,
    pub sign_count: u32,
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub transports: Vec<String>,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

impl CredentialRow {
    fn from_row(r: &SqlRow) -> Result<Self, PortError> {
        let uuid = |i| Uuid::parse_str(col(r, i)?).map_err(|_| bad_row("uuid"));
        let hexcol = |i| hex::decode(col(r, i)?).map_err(|_| bad_row("hex"));
        Ok(Self {
            id: uuid(0)?,
            credential_id: hexcol(1)?,
            name: col(r, 2)?.to_string(),
            alg: col(r, 3)?.parse().map_err(|_| bad_row("alg"))?,
            aaguid: col(r, 4)?.to_string(),
            sign_count: col(r, 5)?.parse().map_err(|_| bad_row("sign_count"))?,
            backup_eligible: col(r, 6)? == "true",
            backup_state: col(r, 7)? == "true",
            transports: serde_json::from_str(col(r, 8)?).map_err(|_| bad_row("transports"))?,
            created_at: col(r, 9)?.to_string(),
            last_used_at: opt_col(r, 10)?.map(str::to_string),
            user_id: uuid(11)?,
            public_key: hexcol(12)?,
        })
    }

    pub fn view(&self) -> CredentialView {
        CredentialView {
            id: self.id.to_string(),
            credential_id: crate::webauthn::response::base64url_encode(&self.credential_id),
            name: self.name.clone(),
            alg: self.alg,
            aaguid: self.aaguid.clone(),
            sign_count: self.sign_count,
            backup_eligible: self.backup_eligible,
            backup_state: self.backup_state,
            transports: self.transports.clone(),
            created_at: self.created_at.clone(),
            last_used_at: self.last_used_at.clone(),
        }
    }
}

/// A verified credential to store.
#[derive(Debug, Clone)]
pub struct NewCredential<'a> {
    pub user_id: &'a Uuid,
    pub credential_id: &'a [u8],
    pub public_key: &'a [u8],
    pub alg: i64,
    pub sign_count: u32,
    pub aaguid: &'a [u8; 16],
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub transports: &'a [String],
    pub name: &'a str,
}

pub struct Credentials<'a> {
    pub sql: &'a dyn Sql,
}

fn s(v: impl Into<String>) -> SqlParam {
    Some(v.into())
}

fn rows(rows: Vec<SqlRow>) -> Result<Vec<CredentialRow>, PortError> {
    rows.iter().map(CredentialRow::from_row).collect()
}

impl Credentials<'_> {
    /// Stores `c`; `None` when its credential id is already registered.
    pub async fn insert(
        &self,
        c: &NewCredential<'_>,
        now: &str,
    ) -> Result<Option<CredentialRow>, PortError> {
        let transports =
            serde_json::to_string(c.transports).map_err(|e| PortError::failed(e.to_string()))?;
        let out = self
            .sql
            .query(
                &SqlScope::User(c.user_id.to_string()),
                INSERT,
                &[
                    s(c.user_id.to_string()),
                    s(hex::encode(c.credential_id)),
                    s(hex::encode(c.public_key)),
                    s(c.alg.to_string()),
                    s(c.sign_count.to_string()),
                    s(Uuid::from_bytes(*c.aaguid).to_string()),
                    s(c.backup_eligible.to_string()),
                    s(c.backup_state.to_string()),
                    s(transports),
                    s(c.name),
                    s(now),
                ],
            )
            .await?;
        Ok(rows(out)?.into_iter().next())
    }

    /// The user's passkeys, oldest first. `system`: sign-in looks them up
    /// before the user is authenticated.
    pub async fn list(&self, user: &Uuid, system: bool) -> Result<Vec<CredentialRow>, PortError> {
        let scope = if system {
            SqlScope::System
        } else {
            SqlScope::User(user.to_string())
        };
        rows(self.sql.query(&scope, LIST, &[s(user.to_string())]).await?)
    }

    /// By WebAuthn credential id, whoever owns it (sign-in).
    pub async fn find(&self, credential_id: &[u8]) -> Result<Option<CredentialRow>, PortError> {
        let out = self
            .sql
            .query(&SqlScope::System, FIND, &[s(hex::encode(credential_id))])
            .await?;
        Ok(rows(out)?.into_iter().next())
    }

    /// Moves the counter from `old` to `new`; false when it moved meanwhile.
    pub async fn update_counter(
        &self,
        id: &Uuid,
        old: u32,
        new: u32,
        backup_state: bool,
        now: &str,
    ) -> Result<bool, PortError> {
        let out = self
            .sql
            .query(
                &SqlScope::System,
                UPDATE_COUNTER,
                &[
                    s(id.to_string()),
                    s(old.to_string()),
                    s(new.to_string()),
                    s(backup_state.to_string()),
                    s(now),
                ],
            )
            .await?;
        Ok(!out.is_empty())
    }

    pub async fn rename(
        &self,
        user: &Uuid,
        id: &Uuid,
        name: &str,
    ) -> Result<Option<CredentialRow>, PortError> {
        let out = self
            .sql
            .query(
                &SqlScope::User(user.to_string()),
                RENAME,
                &[s(user.to_string()), s(id.to_string()), s(name)],
            )
            .await?;
        Ok(rows(out)?.into_iter().next())
    }

    pub async fn delete(&self, user: &Uuid, id: &Uuid) -> Result<bool, PortError> {
        let out = self
            .sql
            .query(
                &SqlScope::User(user.to_string()),
                DELETE,
                &[s(user.to_string()), s(id.to_string())],
            )
            .await?;
        Ok(!out.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repositories::rows::uses_every_parameter;

    #[test]
    fn statements_use_every_parameter() {
        for (name, sql, n) in [
            ("INSERT", INSERT, 11),
            ("LIST", LIST, 1),
            ("FIND", FIND, 1),
            ("UPDATE_COUNTER", UPDATE_COUNTER, 5),
            ("RENAME", RENAME, 3),
            ("DELETE", DELETE, 2),
        ] {
            uses_every_parameter(name, sql, n);
        }
    }
}
