//! `wasm-host serve`: the local runtime of the Spin build of edge-api, doing
//! what `spin up` would. One engine, one `InstancePre` of the component, a
//! fresh `Store` (memory limit, epoch deadline) per request, and host
//! implementations of exactly what the component imports:
//! - WASI 0.2 and 0.3 (cli, clocks, random, io) and `wasi:http@0.3` from
//!   wasmtime's own crates; outbound HTTP only to `allowed_outbound_hosts`;
//! - `spin:variables@3.0.0` from the manifest, flags, environment, a file
//!   ([`manifest`]);
//! - `spin:key-value@3.0.0` persisted on disk ([`kv`]);
//! - `spin:postgres@4.2.0` over pooled tokio-postgres clients ([`pg`]).
//!
//! The scheduled route is called on a timer ([`server`]).

pub mod bindings;
mod kv;
pub mod manifest;
mod pg;
pub mod server;

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::StoreLimits;
use wasmtime::component::{Accessor, HasData, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use bindings::variables;

pub use server::{ServeOptions, run};

/// The interfaces wasm-host provides to the component beyond WASI: the
/// import test (tests/spin_imports.rs) checks the component asks for no
/// other `spin:` interface.
pub const SPIN_INTERFACES: &[&str] = &[
    "spin:key-value/key-value@3.0.0",
    "spin:postgres/postgres@4.2.0",
    "spin:variables/variables@3.0.0",
];

/// What every request's store shares: resolved variables, stores, pools.
pub struct SpinShared {
    pub variables: BTreeMap<String, String>,
    pub kv: kv::KvStores,
    pub pg: pg::PgPools,
    pub allowed_outbound_hosts: Vec<String>,
}

/// Per-request store data.
pub struct State {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: OutboundHooks,
    shared: Arc<SpinShared>,
    pub(crate) limits: StoreLimits,
}

impl State {
    pub fn new(shared: Arc<SpinShared>, limits: StoreLimits) -> Self {
        let wasi = wasmtime_wasi::WasiCtxBuilder::new()
            .inherit_stdout()
            .inherit_stderr()
            .build();
        Self {
            table: ResourceTable::new(),
            wasi,
            http: WasiHttpCtx::new(),
            hooks: OutboundHooks {
                shared: shared.clone(),
            },
            shared,
            limits,
        }
    }

    pub fn hooks(&mut self) -> &mut dyn WasiHttpHooks {
        &mut self.hooks
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for State {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            hooks: &mut self.hooks,
            table: &mut self.table,
            ctx: &mut self.http,
        }
    }
}

/// Outbound HTTP as Spin allows it: only to `allowed_outbound_hosts`.
struct OutboundHooks {
    shared: Arc<SpinShared>,
}

type SendFuture = Box<
    dyn Future<
            Output = wasmtime_wasi_http::Result<(
                http::Response<wasmtime_wasi_http::WasiBody>,
                Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
            )>,
        > + Send,
>;

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> SendFuture {
        let uri = request.uri();
        let scheme = uri.scheme_str().unwrap_or("https");
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "http" { 80 } else { 443 });
        let allowed = uri.host().is_some_and(|host| {
            manifest::host_allowed(&self.shared.allowed_outbound_hosts, scheme, host, port)
        });
        if !allowed {
            tracing::warn!(uri = %uri, "outbound request refused: not in allowed_outbound_hosts");
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        Box::new(async move {
            use http_body_util::BodyExt;
            let (res, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                res.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

/// The Spin interfaces' view of a store: its resource table and the shared
/// state.
pub struct SpinCtxView<'a> {
    pub table: &'a mut ResourceTable,
    pub shared: &'a Arc<SpinShared>,
}

/// Marker type the Spin bindings are added to the linker with.
pub struct SpinHost;

impl HasData for SpinHost {
    type Data<'a> = SpinCtxView<'a>;
}

fn spin_view(state: &mut State) -> SpinCtxView<'_> {
    SpinCtxView {
        table: &mut state.table,
        shared: &state.shared,
    }
}

/// Adds the Spin interfaces to `linker`.
pub fn add_spin_to_linker(linker: &mut wasmtime::component::Linker<State>) -> anyhow::Result<()> {
    bindings::postgres::add_to_linker::<State, SpinHost>(linker, spin_view)?;
    bindings::key_value::add_to_linker::<State, SpinHost>(linker, spin_view)?;
    bindings::variables::add_to_linker::<State, SpinHost>(linker, spin_view)?;
    Ok(())
}

/// Spin's rule for variable names: lower-case letters, digits and single
/// underscores, starting with a letter.
fn valid_variable_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.contains("__")
        && !name.ends_with('_')
}

impl variables::Host for SpinCtxView<'_> {}

impl<U> variables::HostWithStore<U> for SpinHost {
    async fn get(
        accessor: &Accessor<U, Self>,
        name: String,
    ) -> wasmtime::Result<Result<String, variables::Error>> {
        if !valid_variable_name(&name) {
            return Ok(Err(variables::Error::InvalidName(name)));
        }
        Ok(accessor.with(
            |mut access| match access.get().shared.variables.get(&name) {
                Some(value) => Ok(value.clone()),
                None => Err(variables::Error::Undefined(name)),
            },
        ))
    }
}
