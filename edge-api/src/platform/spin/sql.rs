//! `Sql` over Spin's Postgres interface (`spin:postgres/postgres@4.2.0`).
//!
//! One connection per request, opened by the first statement (so `/health`
//! works while Postgres is down); a failed open is kept for the rest of the
//! request, so an outage costs one connect attempt, not one per statement.
//!
//! Each statement runs as `BEGIN; set scope; statement; COMMIT` on that
//! connection, like the tokio-postgres adapter: the scope is set with
//! `set_config(…, true)`, which is transaction-local, so a connection that
//! the host pools can never carry one user's scope into another request.
//! Parameters are declared `text` in the statement itself
//! ([`declare_params_text`]), because the interface lets the server infer
//! parameter types; every result column must arrive as a string (the core's
//! SQL casts with `::text`), and pgvector crosses as text.

use std::time::Duration;

use async_trait::async_trait;
use futures_util::lock::Mutex;
use spin_sdk::pg::{self, Connection, DbValue, ParameterValue, PgError, QueryError};

use super::with_timeout;
use crate::platform::sql_text::declare_params_text;
use crate::platform::sqlstate;
use crate::ports::{PortError, PortErrorKind, Sql, SqlParam, SqlRow, SqlScope};

/// Upper bound on opening a connection (the host's pool may have to dial
/// Postgres); waiting longer only delays the 503.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

enum State {
    Unopened,
    Open(Connection),
    /// Opening failed, or the connection was left unusable; kept for the
    /// rest of the request.
    Broken(PortError),
}

pub struct SpinSql {
    /// The Postgres URL from the `memshadow_database_url` variable; `None`
    /// when unset, which every statement reports as `Unavailable`.
    url: Option<String>,
    /// Statements of one request may be issued concurrently by the core; a
    /// transaction needs the connection to itself.
    state: Mutex<State>,
}

impl SpinSql {
    pub fn new(url: Option<String>) -> Self {
        Self {
            url,
            state: Mutex::new(State::Unopened),
        }
    }
}

#[async_trait(?Send)]
impl Sql for SpinSql {
    async fn query(
        &self,
        scope: &SqlScope,
        sql: &str,
        params: &[SqlParam],
    ) -> Result<Vec<SqlRow>, PortError> {
        let mut state = self.state.lock().await;
        if let State::Unopened = *state {
            *state = match open(self.url.as_deref()).await {
                Ok(conn) => State::Open(conn),
                Err(e) => State::Broken(e),
            };
        }
        let conn = match &*state {
            State::Open(conn) => conn,
            State::Broken(e) => return Err(e.clone()),
            State::Unopened => return Err(PortError::unavailable("postgres not opened")),
        };
        match in_transaction(conn, scope, sql, params).await {
            Ok(rows) => Ok(rows),
            Err(e) => {
                // Leave the connection idle for the next statement; if even
                // that fails the connection is gone for this request.
                if let Err(rollback) = conn.execute("ROLLBACK", Vec::new()).await {
                    *state = State::Broken(map_error(rollback));
                }
                Err(e)
            }
        }
    }
}

/// Opens a connection and rolls back whatever transaction a pooled
/// connection may still hold (a guest that trapped mid-statement returns
/// its connection to the host's pool as it was); outside a transaction
/// ROLLBACK is only a warning.
async fn open(url: Option<&str>) -> Result<Connection, PortError> {
    let url = url.ok_or_else(|| {
        PortError::unavailable(format!("variable {} is not set", super::DATABASE_URL_VAR))
    })?;
    let conn = with_timeout(CONNECT_TIMEOUT, Connection::open(url))
        .await
        .ok_or_else(|| PortError::unavailable("postgres connect timed out"))?
        .map_err(map_error)?;
    conn.execute("ROLLBACK", Vec::new())
        .await
        .map_err(map_error)?;
    Ok(conn)
}

async fn in_transaction(
    conn: &Connection,
    scope: &SqlScope,
    sql: &str,
    params: &[SqlParam],
) -> Result<Vec<SqlRow>, PortError> {
    conn.execute("BEGIN", Vec::new()).await.map_err(map_error)?;
    // Both settings every time: the one this scope does not use is cleared,
    // so nothing left on a pooled connection widens what a statement sees
    // (the policies read '' as unset).
    let (user, system) = match scope {
        SqlScope::User(user) => (user.as_str(), ""),
        SqlScope::System => ("", "on"),
    };
    conn.execute(
        "SELECT set_config('app.user_id', $1, true), set_config('app.system', $2, true)",
        vec![
            ParameterValue::Str(user.to_string()),
            ParameterValue::Str(system.to_string()),
        ],
    )
    .await
    .map_err(map_error)?;
    let params: Vec<ParameterValue> = params
        .iter()
        .map(|p| match p {
            Some(text) => ParameterValue::Str(text.clone()),
            None => ParameterValue::DbNull,
        })
        .collect();
    let mut result = conn
        .query(declare_params_text(sql), params)
        .await
        .map_err(map_error)?;
    let mut rows = Vec::new();
    while let Some(row) = result.rows().next().await {
        rows.push(text_row(row)?);
    }
    result.result().await.map_err(map_error)?;
    conn.execute("COMMIT", Vec::new())
        .await
        .map_err(map_error)?;
    Ok(rows)
}

/// Every column as text or NULL, as the port promises; anything else is a
/// statement that forgot its `::text` cast.
fn text_row(values: Vec<DbValue>) -> Result<SqlRow, PortError> {
    values
        .into_iter()
        .enumerate()
        .map(|(i, value)| match value {
            DbValue::Str(text) => Ok(Some(text)),
            DbValue::DbNull => Ok(None),
            other => Err(PortError::failed(format!(
                "column {i} is not text (cast it in SQL): {}",
                variant_name(&other)
            ))),
        })
        .collect()
}

fn variant_name(value: &DbValue) -> &'static str {
    match value {
        DbValue::Boolean(_) => "boolean",
        DbValue::Int8(_) | DbValue::Int16(_) | DbValue::Int32(_) | DbValue::Int64(_) => "integer",
        DbValue::Floating32(_) | DbValue::Floating64(_) => "float",
        DbValue::Binary(_) => "binary",
        DbValue::Uuid(_) => "uuid",
        DbValue::Jsonb(_) => "jsonb",
        DbValue::Decimal(_) => "decimal",
        DbValue::Date(_) | DbValue::Time(_) | DbValue::Datetime(_) | DbValue::Timestamp(_) => {
            "date/time"
        }
        _ => "another type",
    }
}

/// Maps the interface's errors onto the port's kinds: a server error by its
/// SQLSTATE (as the tokio-postgres adapter does), a failed connection or a
/// driver error without SQLSTATE as `Unavailable`, a value the driver could
/// not convert as `Failed` (a bug in the statement, not an outage). The
/// detail never carries the connection string.
fn map_error(e: pg::Error) -> PortError {
    match e {
        pg::Error::PgError(PgError::QueryFailed(QueryError::DbError(db))) => PortError {
            kind: sqlstate::classify(&db.code),
            detail: format!("{}: {}", db.code, db.message),
        },
        pg::Error::PgError(PgError::QueryFailed(QueryError::Text(text))) => PortError {
            kind: PortErrorKind::Unavailable,
            detail: format!("postgres: {text}"),
        },
        pg::Error::PgError(PgError::ConnectionFailed(text)) => {
            PortError::unavailable(format!("postgres connect: {text}"))
        }
        pg::Error::PgError(PgError::BadParameter(text))
        | pg::Error::PgError(PgError::ValueConversionFailed(text)) => {
            PortError::failed(format!("postgres value: {text}"))
        }
        pg::Error::PgError(PgError::Other(text)) => {
            PortError::unavailable(format!("postgres: {text}"))
        }
        pg::Error::Decode(text) => PortError::failed(format!("postgres decode: {text}")),
    }
}
