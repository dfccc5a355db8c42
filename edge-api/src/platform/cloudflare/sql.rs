//! `Sql` over tokio-postgres on a Workers TCP socket to the Hyperdrive
//! binding, connected lazily so routes that never query (such as `/health`)
//! keep working while Postgres is down.

use std::cell::OnceCell;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::{Either, select};
use worker::postgres_tls::PassthroughTls;
use worker::{Delay, Env, SecureTransport, Socket};

use crate::platform::postgres::PgSql;
use crate::ports::{PortError, Sql, SqlParam, SqlRow, SqlScope};

/// Name of the Hyperdrive binding in `wrangler.toml`.
pub const HYPERDRIVE_BINDING: &str = "HYPERDRIVE";

/// Upper bound on opening the socket and completing the Postgres start-up
/// exchange. Hyperdrive keeps warm pooled connections at the edge, so a
/// healthy connect takes milliseconds; waiting longer only delays the 503.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One connection per request, opened by the first query. The outcome,
/// failure included, is kept for the rest of the request so a database
/// outage costs one connect attempt, not one per statement.
pub struct HyperdriveSql {
    env: Env,
    conn: OnceCell<Result<PgSql, PortError>>,
}

impl HyperdriveSql {
    pub fn new(env: Env) -> Self {
        Self {
            env,
            conn: OnceCell::new(),
        }
    }

    async fn connection(&self) -> Result<&PgSql, PortError> {
        if self.conn.get().is_none() {
            let opened = connect(&self.env).await;
            // Two statements of one request may race to connect; the first
            // result wins and the other connection is dropped (closed).
            let _ = self.conn.set(opened);
        }
        match self.conn.get() {
            Some(Ok(pg)) => Ok(pg),
            Some(Err(e)) => Err(e.clone()),
            None => Err(PortError::unavailable(
                "postgres connection not initialised",
            )),
        }
    }
}

#[async_trait(?Send)]
impl Sql for HyperdriveSql {
    async fn query(
        &self,
        scope: &SqlScope,
        sql: &str,
        params: &[SqlParam],
    ) -> Result<Vec<SqlRow>, PortError> {
        self.connection().await?.query(scope, sql, params).await
    }
}

/// Opens a socket to Hyperdrive and runs the Postgres start-up on it. The
/// connection driver runs as a spawned task; it ends when the client (and so
/// the request's `HyperdriveSql`) is dropped.
async fn connect(env: &Env) -> Result<PgSql, PortError> {
    let hyperdrive = env
        .hyperdrive(HYPERDRIVE_BINDING)
        .map_err(|_| PortError::unavailable(format!("binding {HYPERDRIVE_BINDING} missing")))?;
    // The connection string carries user, password and database; host and
    // port come from the binding itself (Hyperdrive's local endpoint).
    let config: tokio_postgres::Config = hyperdrive
        .connection_string()
        .parse()
        .map_err(|_| PortError::unavailable("hyperdrive connection string does not parse"))?;
    let socket = Socket::builder()
        .secure_transport(SecureTransport::StartTls)
        .connect(hyperdrive.host(), hyperdrive.port())
        .map_err(|e| PortError::unavailable(format!("postgres socket: {e}")))?;

    let handshake = Box::pin(config.connect_raw(socket, PassthroughTls));
    let timeout = Delay::from(CONNECT_TIMEOUT);
    let (client, connection) = match select(handshake, timeout).await {
        Either::Left((Ok(pair), _)) => pair,
        Either::Left((Err(e), _)) => {
            return Err(PortError::unavailable(format!(
                "postgres connect: {}",
                describe(&e)
            )));
        }
        Either::Right(((), _)) => return Err(PortError::unavailable("postgres connect timed out")),
    };
    worker::wasm_bindgen_futures::spawn_local(async move {
        if let Err(e) = connection.await {
            worker::console_error!("postgres connection: {e}");
        }
    });
    Ok(PgSql::new(client))
}

/// tokio-postgres displays a server error as just "db error"; the SQLSTATE
/// and message (a missing role, a refused password) are what an operator
/// needs, and they carry no secrets.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} {}: {}", db.severity(), db.code().code(), db.message()),
        None => e.to_string(),
    }
}
