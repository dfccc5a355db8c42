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

/// Optional var naming a Postgres URL to reach with a plain Workers socket
/// instead of the Hyperdrive binding. For local runs only: wrangler 4.86's
/// local Hyperdrive proxy has no error handler on its database socket, so
/// a refused connection (Postgres stopped) kills the whole `wrangler dev`
/// process instead of failing one query. workerd's own sockets report the
/// refusal to the Worker, which answers 503 and stays up. Never set it in a
/// deployment: Workers cannot reach private addresses, and Hyperdrive's
/// pooling is the point there.
pub const DIRECT_URL_VAR: &str = "MEMSHADOW_DEV_DATABASE_URL";

/// Where to connect and with which credentials.
struct Target {
    config: tokio_postgres::Config,
    host: String,
    port: u16,
}

fn target(env: &Env) -> Result<Target, PortError> {
    if let Some(url) = env
        .var(DIRECT_URL_VAR)
        .ok()
        .map(|v| v.to_string())
        .filter(|v| !v.is_empty())
    {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|_| PortError::unavailable(format!("{DIRECT_URL_VAR} does not parse")))?;
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
            _ => {
                return Err(PortError::unavailable(format!(
                    "{DIRECT_URL_VAR} names no TCP host"
                )));
            }
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        return Ok(Target { config, host, port });
    }
    let hyperdrive = env
        .hyperdrive(HYPERDRIVE_BINDING)
        .map_err(|_| PortError::unavailable(format!("binding {HYPERDRIVE_BINDING} missing")))?;
    // The connection string carries user, password and database; host and
    // port come from the binding itself (Hyperdrive's local endpoint).
    let config = hyperdrive
        .connection_string()
        .parse()
        .map_err(|_| PortError::unavailable("hyperdrive connection string does not parse"))?;
    Ok(Target {
        config,
        host: hyperdrive.host(),
        port: hyperdrive.port(),
    })
}

/// Opens a socket to Hyperdrive (or the direct URL) and runs the Postgres
/// start-up on it. The connection driver runs as a spawned task; it ends
/// when the client (and so the request's `HyperdriveSql`) is dropped.
async fn connect(env: &Env) -> Result<PgSql, PortError> {
    let Target { config, host, port } = target(env)?;
    let socket = Socket::builder()
        .secure_transport(SecureTransport::StartTls)
        .connect(host, port)
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
