//! The `Sql` port over a `tokio_postgres::Client`, whatever carries its
//! bytes (a native TCP socket, a Workers socket to Hyperdrive).
//!
//! Each statement runs in its own transaction that first sets the row-level
//! security scope (`app.user_id` or `app.system`) with `set_config(…, true)`,
//! which is transaction-local: a pooled connection can never leak one
//! user's scope into the next statement.

use async_trait::async_trait;
use tokio::sync::Mutex;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Error};

use crate::concurrent::join2;
use crate::ports::{PortError, PortErrorKind, Sql, SqlParam, SqlRow, SqlScope};

/// A connected client. The mutex serialises statements: a transaction
/// needs the connection to itself.
pub struct PgSql {
    client: Mutex<Client>,
}

impl PgSql {
    /// Wraps a client the caller connected (and whose connection task the
    /// caller drives).
    pub fn new(client: Client) -> Self {
        Self {
            client: Mutex::new(client),
        }
    }
}

/// Classifies a driver error: unique violations for the core to handle,
/// connection-level and transient faults as `Unavailable`, the rest as
/// `Failed`. The detail never contains connection strings.
pub fn map_error(e: &Error) -> PortError {
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        let kind = crate::platform::sqlstate::classify(code.code());
        return PortError {
            kind,
            detail: format!("{}: {}", code.code(), db.message()),
        };
    }
    // No SQLSTATE: the connection itself failed (closed, I/O, timeout).
    PortError {
        kind: PortErrorKind::Unavailable,
        detail: format!("postgres connection: {e}"),
    }
}

#[async_trait(?Send)]
impl Sql for PgSql {
    async fn query(
        &self,
        scope: &SqlScope,
        sql: &str,
        params: &[SqlParam],
    ) -> Result<Vec<SqlRow>, PortError> {
        let mut client = self.client.lock().await;
        if client.is_closed() {
            return Err(PortError::unavailable("postgres connection is closed"));
        }
        let tx = client.transaction().await.map_err(|e| map_error(&e))?;
        let typed: Vec<(&(dyn ToSql + Sync), Type)> = params
            .iter()
            .map(|p| (p as &(dyn ToSql + Sync), Type::TEXT))
            .collect();
        // The scope and the statement are pipelined: tokio-postgres sends
        // requests in the order their futures are first polled, so the
        // server runs set_config before the statement, and the pair costs
        // one round trip instead of two (this runs per statement on the edge).
        let scope_fut = async {
            match scope {
                SqlScope::User(user) => {
                    tx.query_typed(
                        "SELECT set_config('app.user_id', $1, true)",
                        &[(user, Type::TEXT)],
                    )
                    .await
                }
                SqlScope::System => {
                    tx.query_typed("SELECT set_config('app.system', 'on', true)", &[])
                        .await
                }
            }
        };
        let (scoped, rows) = join2(scope_fut, tx.query_typed(sql, &typed)).await;
        scoped.map_err(|e| map_error(&e))?;
        let rows = rows.map_err(|e| map_error(&e))?;
        tx.commit().await.map_err(|e| map_error(&e))?;
        rows.iter()
            .map(|row| {
                (0..row.len())
                    .map(|i| {
                        row.try_get::<_, Option<String>>(i).map_err(|e| {
                            PortError::failed(format!(
                                "column {i} is not text (cast it in SQL): {e}"
                            ))
                        })
                    })
                    .collect()
            })
            .collect()
    }
}
