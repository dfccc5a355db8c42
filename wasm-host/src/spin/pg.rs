//! `spin:postgres/postgres@4.2.0` on real Postgres: tokio-postgres clients
//! kept in a small pool per address, so a request's `open` costs a checkout,
//! not a TCP connect and a SCRAM exchange.
//!
//! Parameters are bound as Spin binds them (the server infers each type, the
//! value must fit it); rows come back as the interface's `db-value`s. Every
//! driver error becomes one of the interface's error variants; nothing the
//! guest sends can panic the host. A connection goes back to the pool after
//! a `ROLLBACK`, so a guest that trapped mid-transaction leaves nothing open.

// The interface's own `error` variant (with its db-error record) is what
// these functions return to the guest; boxing it would only add a copy.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::error::Error as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{Client, NoTls, Row};
use wasmtime::component::{Accessor, FutureReader, Resource, StreamReader};

use super::bindings::postgres::{
    self, Column, DbDataType, DbError, DbValue, Error, ParameterValue, QueryError, RowSet,
};
use super::{SpinCtxView, SpinHost};

/// Connections open at once per address; a checkout waits this long for one.
const MAX_CONNECTIONS: usize = 32;
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Pools keyed by connection address, and the hosts the manifest allows.
pub struct PgPools {
    allowed: Vec<String>,
    pools: Mutex<HashMap<String, Arc<Pool>>>,
}

struct Pool {
    permits: Arc<Semaphore>,
    idle: Mutex<Vec<Client>>,
}

impl PgPools {
    /// `allowed`: the manifest's `postgres://host:port` entries.
    pub fn new(allowed: Vec<String>) -> Self {
        Self {
            allowed,
            pools: Mutex::new(HashMap::new()),
        }
    }

    fn pool(&self, address: &str) -> Arc<Pool> {
        let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        pools
            .entry(address.to_string())
            .or_insert_with(|| {
                Arc::new(Pool {
                    permits: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
                    idle: Mutex::new(Vec::new()),
                })
            })
            .clone()
    }

    /// Checks `address` against the allowed hosts and checks a client out.
    async fn checkout(&self, address: &str) -> Result<PgConnection, Error> {
        let config: tokio_postgres::Config = address
            .parse()
            .map_err(|_| Error::ConnectionFailed("the address does not parse".into()))?;
        let allowed = config
            .get_hosts()
            .iter()
            .zip(config.get_ports().iter().chain(std::iter::repeat(&5432)))
            .all(|(host, port)| match host {
                tokio_postgres::config::Host::Tcp(host) => {
                    super::manifest::host_allowed(&self.allowed, "postgres", host, *port)
                }
                #[cfg(unix)]
                tokio_postgres::config::Host::Unix(_) => false,
            });
        if !allowed || config.get_hosts().is_empty() {
            return Err(Error::ConnectionFailed(
                "destination not allowed by allowed_outbound_hosts".into(),
            ));
        }
        let pool = self.pool(address);
        let permit = tokio::time::timeout(CHECKOUT_TIMEOUT, pool.permits.clone().acquire_owned())
            .await
            .map_err(|_| Error::ConnectionFailed("connection pool exhausted".into()))?
            .map_err(|_| Error::ConnectionFailed("connection pool closed".into()))?;
        let idle = {
            let mut idle = pool.idle.lock().unwrap_or_else(|p| p.into_inner());
            std::iter::from_fn(|| idle.pop()).find(|c| !c.is_closed())
        };
        let client = match idle {
            Some(client) => client,
            None => connect(&config).await?,
        };
        Ok(PgConnection {
            client: Arc::new(Checkout {
                client: tokio::sync::Mutex::new(Some(client)),
                pool,
                _permit: permit,
            }),
        })
    }
}

async fn connect(config: &tokio_postgres::Config) -> Result<Client, Error> {
    let (client, connection) = tokio::time::timeout(CONNECT_TIMEOUT, config.connect(NoTls))
        .await
        .map_err(|_| Error::ConnectionFailed("connect timed out".into()))?
        .map_err(|e| Error::ConnectionFailed(describe(&e)))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("postgres connection ended: {e}");
        }
    });
    Ok(client)
}

/// A checked-out client; returned to its pool (after `ROLLBACK`) when the
/// guest drops the connection or its instance goes away.
struct Checkout {
    client: tokio::sync::Mutex<Option<Client>>,
    pool: Arc<Pool>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Checkout {
    fn drop(&mut self) {
        let Some(client) = self.client.get_mut().take() else {
            return;
        };
        let pool = self.pool.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if client.batch_execute("ROLLBACK").await.is_ok() && !client.is_closed() {
                    pool.idle
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(client);
                }
            });
        }
    }
}

/// The `connection` resource.
pub struct PgConnection {
    client: Arc<Checkout>,
}

/// The `connection-builder` resource: an address and an optional CA root,
/// which this host (plain TCP only) refuses at build time.
pub struct PgBuilder {
    address: String,
    ca_root: Option<String>,
}

/// NULL of whatever type the server inferred for the parameter.
#[derive(Debug)]
struct Null;

impl ToSql for Null {
    fn to_sql(
        &self,
        _: &Type,
        _: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        Ok(IsNull::Yes)
    }
    fn accepts(_: &Type) -> bool {
        true
    }
    to_sql_checked!();
}

/// A column value of a type this host does not decode: its raw bytes.
struct Raw(Vec<u8>);

impl<'a> FromSql<'a> for Raw {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(raw.to_vec()))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

type Param = Box<dyn ToSql + Sync + Send>;

fn to_param(p: ParameterValue) -> Result<Param, Error> {
    Ok(match p {
        ParameterValue::Boolean(v) => Box::new(v),
        ParameterValue::Int8(v) => Box::new(v),
        ParameterValue::Int16(v) => Box::new(v),
        ParameterValue::Int32(v) => Box::new(v),
        ParameterValue::Int64(v) => Box::new(v),
        ParameterValue::Floating32(v) => Box::new(v),
        ParameterValue::Floating64(v) => Box::new(v),
        ParameterValue::Str(v) => Box::new(v),
        ParameterValue::Binary(v) => Box::new(v),
        ParameterValue::DbNull => Box::new(Null),
        _ => {
            return Err(Error::BadParameter(
                "this parameter type is not supported by wasm-host".into(),
            ));
        }
    })
}

fn data_type(ty: &Type) -> DbDataType {
    match *ty {
        Type::BOOL => DbDataType::Boolean,
        Type::CHAR => DbDataType::Int8,
        Type::INT2 => DbDataType::Int16,
        Type::INT4 => DbDataType::Int32,
        Type::INT8 => DbDataType::Int64,
        Type::FLOAT4 => DbDataType::Floating32,
        Type::FLOAT8 => DbDataType::Floating64,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => DbDataType::Str,
        Type::BYTEA => DbDataType::Binary,
        Type::UUID => DbDataType::Uuid,
        Type::JSONB => DbDataType::Jsonb,
        _ => DbDataType::Other(ty.name().to_string()),
    }
}

fn value<'a, T: FromSql<'a>>(
    row: &'a Row,
    i: usize,
    wrap: impl FnOnce(T) -> DbValue,
) -> Result<DbValue, Error> {
    match row.try_get::<_, Option<T>>(i) {
        Ok(Some(v)) => Ok(wrap(v)),
        Ok(None) => Ok(DbValue::DbNull),
        Err(e) => Err(Error::ValueConversionFailed(format!("column {i}: {e}"))),
    }
}

fn convert_row(row: &Row) -> Result<Vec<DbValue>, Error> {
    (0..row.len())
        .map(|i| match *row.columns()[i].type_() {
            Type::BOOL => value(row, i, DbValue::Boolean),
            Type::CHAR => value(row, i, DbValue::Int8),
            Type::INT2 => value(row, i, DbValue::Int16),
            Type::INT4 => value(row, i, DbValue::Int32),
            Type::INT8 => value(row, i, DbValue::Int64),
            Type::FLOAT4 => value(row, i, DbValue::Floating32),
            Type::FLOAT8 => value(row, i, DbValue::Floating64),
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
                value(row, i, DbValue::Str)
            }
            Type::BYTEA => value(row, i, DbValue::Binary),
            Type::UUID => value(row, i, |Raw(b)| match <[u8; 16]>::try_from(b.as_slice()) {
                Ok(bytes) => DbValue::Uuid(format_uuid(&bytes)),
                Err(_) => DbValue::Unsupported(b),
            }),
            // jsonb's binary form is a version byte, then the JSON text.
            Type::JSONB => value(row, i, |Raw(b)| match b.split_first() {
                Some((1, json)) => DbValue::Jsonb(json.to_vec()),
                _ => DbValue::Unsupported(b),
            }),
            _ => value(row, i, |Raw(b)| DbValue::Unsupported(b)),
        })
        .collect()
}

fn format_uuid(b: &[u8; 16]) -> String {
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The server's error with its SQLSTATE, or the driver's text (a closed
/// connection, a value that does not fit its parameter).
fn query_failed(e: &tokio_postgres::Error) -> Error {
    match e.as_db_error() {
        Some(db) => Error::QueryFailed(QueryError::DbError(DbError {
            as_text: db.to_string(),
            severity: db.severity().to_string(),
            code: db.code().code().to_string(),
            message: db.message().to_string(),
            detail: db.detail().map(str::to_string),
            extras: Vec::new(),
        })),
        None => Error::QueryFailed(QueryError::Text(describe(e))),
    }
}

/// The driver error and its cause (tokio-postgres's Display alone says
/// little, e.g. "error connecting to server"); never the address.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.source() {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

impl Checkout {
    async fn run(
        &self,
        statement: &str,
        params: Vec<ParameterValue>,
    ) -> Result<(Vec<Column>, Vec<Vec<DbValue>>), Error> {
        let params = params
            .into_iter()
            .map(to_param)
            .collect::<Result<Vec<_>, _>>()?;
        let refs: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let guard = self.client.lock().await;
        let client = guard
            .as_ref()
            .ok_or_else(|| Error::ConnectionFailed("connection closed".into()))?;
        let statement = client
            .prepare(statement)
            .await
            .map_err(|e| query_failed(&e))?;
        let columns = statement
            .columns()
            .iter()
            .map(|c| Column {
                name: c.name().to_string(),
                data_type: data_type(c.type_()),
            })
            .collect();
        let rows = client
            .query(&statement, &refs)
            .await
            .map_err(|e| query_failed(&e))?;
        let rows = rows.iter().map(convert_row).collect::<Result<_, _>>()?;
        Ok((columns, rows))
    }

    async fn execute(&self, statement: &str, params: Vec<ParameterValue>) -> Result<u64, Error> {
        let params = params
            .into_iter()
            .map(to_param)
            .collect::<Result<Vec<_>, _>>()?;
        let refs: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let guard = self.client.lock().await;
        let client = guard
            .as_ref()
            .ok_or_else(|| Error::ConnectionFailed("connection closed".into()))?;
        client
            .execute(statement, &refs)
            .await
            .map_err(|e| query_failed(&e))
    }
}

fn pools<T>(accessor: &Accessor<T, SpinHost>) -> Arc<super::SpinShared> {
    accessor.with(|mut access| access.get().shared.clone())
}

fn checkout<T>(
    accessor: &Accessor<T, SpinHost>,
    conn: &Resource<PgConnection>,
) -> wasmtime::Result<Arc<Checkout>> {
    accessor.with(|mut access| Ok(access.get().table.get(conn)?.client.clone()))
}

fn push<T>(
    accessor: &Accessor<T, SpinHost>,
    conn: Result<PgConnection, Error>,
) -> wasmtime::Result<Result<Resource<PgConnection>, Error>> {
    match conn {
        Ok(conn) => accessor.with(|mut access| Ok(Ok(access.get().table.push(conn)?))),
        Err(e) => Ok(Err(e)),
    }
}

fn builder_error(b: &PgBuilder) -> Option<Error> {
    b.ca_root
        .as_ref()
        .map(|_| Error::ConnectionFailed("TLS (a CA root) is not supported by wasm-host".into()))
}

impl postgres::Host for SpinCtxView<'_> {}

impl postgres::HostConnectionBuilder for SpinCtxView<'_> {
    async fn new(&mut self, address: String) -> wasmtime::Result<Resource<PgBuilder>> {
        Ok(self.table.push(PgBuilder {
            address,
            ca_root: None,
        })?)
    }

    async fn set_ca_root(
        &mut self,
        builder: Resource<PgBuilder>,
        certificate: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        self.table.get_mut(&builder)?.ca_root = Some(certificate);
        Ok(Ok(()))
    }

    async fn build(
        &mut self,
        builder: Resource<PgBuilder>,
    ) -> wasmtime::Result<Result<Resource<PgConnection>, Error>> {
        let b = self.table.get(&builder)?;
        if let Some(e) = builder_error(b) {
            return Ok(Err(e));
        }
        let address = b.address.clone();
        match self.shared.pg.checkout(&address).await {
            Ok(conn) => Ok(Ok(self.table.push(conn)?)),
            Err(e) => Ok(Err(e)),
        }
    }

    async fn drop(&mut self, builder: Resource<PgBuilder>) -> wasmtime::Result<()> {
        self.table.delete(builder)?;
        Ok(())
    }
}

impl postgres::HostConnection for SpinCtxView<'_> {
    async fn open(
        &mut self,
        address: String,
    ) -> wasmtime::Result<Result<Resource<PgConnection>, Error>> {
        match self.shared.pg.checkout(&address).await {
            Ok(conn) => Ok(Ok(self.table.push(conn)?)),
            Err(e) => Ok(Err(e)),
        }
    }

    async fn query(
        &mut self,
        conn: Resource<PgConnection>,
        statement: String,
        params: Vec<postgres::ParameterValue>,
    ) -> wasmtime::Result<Result<RowSet, Error>> {
        let checkout = self.table.get(&conn)?.client.clone();
        Ok(checkout
            .run(&statement, params)
            .await
            .map(|(columns, rows)| RowSet { columns, rows }))
    }

    async fn execute(
        &mut self,
        conn: Resource<PgConnection>,
        statement: String,
        params: Vec<postgres::ParameterValue>,
    ) -> wasmtime::Result<Result<u64, Error>> {
        let checkout = self.table.get(&conn)?.client.clone();
        Ok(checkout.execute(&statement, params).await)
    }

    async fn drop(&mut self, conn: Resource<PgConnection>) -> wasmtime::Result<()> {
        self.table.delete(conn)?;
        Ok(())
    }
}

impl<U> postgres::HostConnectionBuilderWithStore<U> for SpinHost {
    async fn build_async(
        accessor: &Accessor<U, Self>,
        builder: Resource<PgBuilder>,
    ) -> wasmtime::Result<Result<Resource<PgConnection>, Error>> {
        let (address, refused) = accessor.with(|mut access| {
            let b = access.get().table.get(&builder)?;
            wasmtime::Result::<_>::Ok((b.address.clone(), builder_error(b)))
        })?;
        if let Some(e) = refused {
            return Ok(Err(e));
        }
        let conn = pools(accessor).pg.checkout(&address).await;
        push(accessor, conn)
    }
}

impl<U> postgres::HostConnectionWithStore<U> for SpinHost {
    async fn open_async(
        accessor: &Accessor<U, Self>,
        address: String,
    ) -> wasmtime::Result<Result<Resource<PgConnection>, Error>> {
        let conn = pools(accessor).pg.checkout(&address).await;
        push(accessor, conn)
    }

    #[allow(clippy::type_complexity)]
    async fn query_async(
        accessor: &Accessor<U, Self>,
        conn: Resource<PgConnection>,
        statement: String,
        params: Vec<postgres::ParameterValue>,
    ) -> wasmtime::Result<
        Result<
            (
                Vec<Column>,
                StreamReader<Vec<DbValue>>,
                FutureReader<Result<(), Error>>,
            ),
            Error,
        >,
    > {
        let checkout = checkout(accessor, &conn)?;
        // The whole result is read before the stream opens: the core's
        // statements return pages, not unbounded sets.
        let (columns, rows) = match checkout.run(&statement, params).await {
            Ok(result) => result,
            Err(e) => return Ok(Err(e)),
        };
        accessor.with(|mut access| {
            let rows = StreamReader::new(&mut access, rows)?;
            let done = FutureReader::new(&mut access, async {
                wasmtime::Result::<Result<(), Error>>::Ok(Ok(()))
            })?;
            Ok(Ok((columns, rows, done)))
        })
    }

    async fn execute_async(
        accessor: &Accessor<U, Self>,
        conn: Resource<PgConnection>,
        statement: String,
        params: Vec<postgres::ParameterValue>,
    ) -> wasmtime::Result<Result<u64, Error>> {
        let checkout = checkout(accessor, &conn)?;
        Ok(checkout.execute(&statement, params).await)
    }
}
