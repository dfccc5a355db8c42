//! The HTTP side of `wasm-host serve`: options, the engine and linker, one
//! `InstancePre`, a fresh store per request, and the scheduled-route timer.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use axum::extract::{ConnectInfo, State as AxumState};
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, Store, StoreLimitsBuilder};
use wasmtime_wasi_http::p3::bindings::ServicePre;

use super::{SpinShared, State, kv, manifest, pg};

/// `wasm-host serve [options]`.
#[derive(Parser, Debug, Clone)]
#[command(name = "wasm-host serve", about = "Serve the Spin build of edge-api")]
pub struct ServeOptions {
    /// The Spin manifest.
    #[arg(long, env = "MEMSHADOW_SPIN_MANIFEST", default_value = "spin.toml")]
    pub manifest: PathBuf,
    /// The component [default: the manifest's `source` if it exists, else
    /// $CARGO_TARGET_DIR/wasm32-wasip2/release/edge_api.wasm].
    #[arg(long, env = "MEMSHADOW_SPIN_COMPONENT")]
    pub component: Option<PathBuf>,
    #[arg(long, env = "MEMSHADOW_SPIN_LISTEN", default_value = "127.0.0.1:8788")]
    pub listen: SocketAddr,
    /// An application variable, `name=value` (repeatable); overrides the
    /// environment (`SPIN_VARIABLE_<NAME>`) and the variables file.
    #[arg(long = "variable", value_name = "NAME=VALUE")]
    pub variables: Vec<String>,
    /// A dotenv file of variables (`MEMSHADOW_JWT_PUBLIC_KEYS=...`; names
    /// are lower-cased).
    #[arg(long, env = "MEMSHADOW_SPIN_VARIABLES_FILE")]
    pub variables_file: Option<PathBuf>,
    /// Where key-value stores persist (one directory per store).
    #[arg(long, env = "MEMSHADOW_SPIN_DATA_DIR", default_value = ".data/spin")]
    pub data_dir: PathBuf,
    /// Linear memory per request, MiB.
    #[arg(long, env = "MEMSHADOW_SPIN_MAX_MEMORY_MIB", default_value_t = 256)]
    pub max_memory_mib: usize,
    /// Wall-clock limit of one request, ms (epoch deadline).
    #[arg(long, env = "MEMSHADOW_SPIN_TIMEOUT_MS", default_value_t = 30_000)]
    pub timeout_ms: u64,
    /// Request bodies above this are refused (413) before the guest runs.
    #[arg(long, env = "MEMSHADOW_SPIN_MAX_BODY_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Where the compiled component is cached [default:
    /// ~/.cache/memshadow/wasm-cache].
    #[arg(long, env = "MEMSHADOW_SPIN_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Seconds between calls of the scheduled route (0: never). Needs the
    /// variable memshadow_scheduled_secret.
    #[arg(long, env = "MEMSHADOW_SPIN_SCHEDULED_EVERY_S", default_value_t = 60)]
    pub scheduled_every_s: u64,
}

/// The route and variable of edge-api's Spin adapter (platform/spin).
const SCHEDULED_PATH: &str = "/__memshadow/scheduled";
const SCHEDULED_SECRET: &str = "memshadow_scheduled_secret";
/// Epoch ticks every 10 ms.
const TICK: Duration = Duration::from_millis(10);

/// The engine `serve` runs components on: component model with async,
/// epoch interruption for per-request deadlines.
pub fn engine() -> Result<Engine> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.wasm_component_model_async(true);
    config.concurrency_support(true);
    config.epoch_interruption(true);
    Ok(Engine::new(&config)?)
}

/// Links `component` against everything wasm-host provides (WASI 0.2 and
/// 0.3, wasi:http 0.3, the Spin interfaces): fails, naming the import, when
/// the component imports anything else.
pub fn link(engine: &Engine, component: &Component) -> Result<ServicePre<State>> {
    let mut linker = Linker::<State>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi::p3::add_to_linker(&mut linker)?;
    wasmtime_wasi_http::p3::add_to_linker(&mut linker)?;
    super::add_spin_to_linker(&mut linker)?;
    Ok(ServicePre::new(linker.instantiate_pre(component)?)?)
}

/// Compiles the component, or loads the compiled form from `cache_dir`
/// (keyed by sha256 of the component, the wasmtime version and the engine's
/// compatibility hash), so a restart costs milliseconds instead of seconds.
pub fn load_component(engine: &Engine, path: &Path, cache_dir: &Path) -> Result<Component> {
    use sha2::{Digest, Sha256};
    use std::hash::{Hash, Hasher};
    let wasm =
        std::fs::read(path).with_context(|| format!("reading the component {}", path.display()))?;
    let mut compat = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut compat);
    let mut key = Sha256::new();
    key.update(b"memshadow-spin-component-v1 wasmtime 48.0.8");
    key.update(Sha256::digest(&wasm));
    key.update(compat.finish().to_le_bytes());
    let cached = cache_dir.join(format!("spin-{}.cwasm", &hex::encode(key.finalize())[..32]));
    if cached.exists() {
        // SAFETY: a file this host wrote into its own cache directory;
        // wasmtime still checks its header and refuses an incompatible one.
        match unsafe { Component::deserialize_file(engine, &cached) } {
            Ok(component) => return Ok(component),
            Err(e) => tracing::warn!(error = %e, "ignoring unusable compiled component"),
        }
    }
    let component = Component::new(engine, &wasm)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("compiling the component {}", path.display()))?;
    let written = std::fs::create_dir_all(cache_dir).and_then(|()| {
        let temp = cache_dir.join(format!(".spin-{}.tmp", std::process::id()));
        std::fs::write(&temp, component.serialize().map_err(std::io::Error::other)?)?;
        std::fs::rename(&temp, &cached)
    });
    if let Err(e) = written {
        tracing::warn!(error = %e, "cannot cache the compiled component");
    }
    Ok(component)
}

pub struct Server {
    engine: Engine,
    pre: ServicePre<State>,
    shared: Arc<SpinShared>,
    opts: ServeOptions,
}

fn component_path(opts: &ServeOptions, source: &std::path::Path) -> PathBuf {
    if let Some(path) = &opts.component {
        return path.clone();
    }
    let beside = opts
        .manifest
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .join(source);
    if beside.exists() {
        return beside;
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/memshadow/target")
        });
    target.join("wasm32-wasip2/release/edge_api.wasm")
}

impl Server {
    pub fn new(opts: ServeOptions) -> Result<Self> {
        let mut flags = std::collections::BTreeMap::new();
        for pair in &opts.variables {
            let (k, v) = pair
                .split_once('=')
                .with_context(|| format!("--variable {pair:?} is not NAME=VALUE"))?;
            flags.insert(k.trim().to_ascii_lowercase(), v.to_string());
        }
        let sources = manifest::Sources {
            flags,
            env: true,
            file: opts.variables_file.clone(),
        };
        let resolved = manifest::load(&opts.manifest, &sources)?;
        let path = component_path(&opts, &resolved.source);

        let engine = engine()?;
        let started = Instant::now();
        let cache_dir = opts
            .cache_dir
            .clone()
            .unwrap_or_else(crate::config::default_cache_dir);
        let component = load_component(&engine, &path, &cache_dir)?;
        let pre = link(&engine, &component)?;
        tracing::info!(
            component = %path.display(),
            ms = started.elapsed().as_millis() as u64,
            "component compiled and linked"
        );

        let postgres_hosts = resolved
            .allowed_outbound_hosts
            .iter()
            .filter(|h| h.starts_with("postgres://"))
            .cloned()
            .collect();
        let shared = Arc::new(SpinShared {
            variables: resolved.variables,
            kv: kv::KvStores::new(opts.data_dir.join("kv"), resolved.key_value_stores),
            pg: pg::PgPools::new(postgres_hosts),
            allowed_outbound_hosts: resolved.allowed_outbound_hosts,
        });

        let ticker = engine.weak();
        std::thread::spawn(move || {
            while let Some(engine) = ticker.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(TICK);
            }
        });
        Ok(Self {
            engine,
            pre,
            shared,
            opts,
        })
    }

    /// Runs one request in a fresh instance. Errors are host-side failures
    /// of this request only (a trap, the deadline, the memory limit).
    pub async fn call(&self, req: http::Request<Full<Bytes>>) -> Result<http::Response<Bytes>> {
        Ok(self.call_timed(req).await?.0)
    }

    /// [`Self::call`], also returning how long instantiation took (µs).
    pub async fn call_timed(
        &self,
        req: http::Request<Full<Bytes>>,
    ) -> Result<(http::Response<Bytes>, u64)> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.opts.max_memory_mib * 1024 * 1024)
            .trap_on_grow_failure(true)
            .build();
        let mut store = Store::new(&self.engine, State::new(self.shared.clone(), limits));
        store.limiter(|s| &mut s.limits);
        let ticks = (self.opts.timeout_ms / TICK.as_millis() as u64).max(1);
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();

        let started = Instant::now();
        let service = self.pre.instantiate_async(&mut store).await?;
        let instantiate_us = started.elapsed().as_micros() as u64;

        let (req, _io) = wasmtime_wasi_http::p3::Request::from_http(store.data_mut().hooks(), req);
        // The epoch deadline stops guest code; this bounds the whole
        // exchange, host calls (a stalled Postgres, the pool) included.
        let limit = Duration::from_millis(self.opts.timeout_ms);
        let exchange = store.run_concurrent(async move |accessor| -> Result<_> {
            let res = match service.handle(accessor, req).await? {
                Ok(res) => res,
                Err(code) => bail!("the component answered error code {code:?}"),
            };
            let res = accessor.with(|store| res.into_http(store, async { Ok(()) }))?;
            let (parts, body) = res.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| anyhow!("response body: {e:?}"))?
                .to_bytes();
            Ok((parts, body))
        });
        let (parts, body) = tokio::time::timeout(limit, exchange)
            .await
            .map_err(|_| anyhow!("the request exceeded {} ms", self.opts.timeout_ms))???;
        Ok((http::Response::from_parts(parts, body), instantiate_us))
    }

    async fn scheduled_loop(self: Arc<Self>) {
        let every = Duration::from_secs(self.opts.scheduled_every_s);
        let Some(secret) = self
            .shared
            .variables
            .get(SCHEDULED_SECRET)
            .filter(|s| !s.is_empty())
            .cloned()
        else {
            tracing::warn!("no {SCHEDULED_SECRET}: the scheduled route is not called");
            return;
        };
        loop {
            tokio::time::sleep(every).await;
            let req = http::Request::post(format!("http://localhost{SCHEDULED_PATH}"))
                .header("authorization", format!("Bearer {secret}"))
                .body(Full::new(Bytes::new()));
            let Ok(req) = req else { return };
            match self.call(req).await {
                Ok(res) => tracing::info!(status = res.status().as_u16(), "scheduled route called"),
                Err(e) => tracing::warn!("scheduled route failed: {e:#}"),
            }
        }
    }
}

fn error_response(status: u16, code: &str, message: &str) -> axum::response::Response {
    let body = serde_json::json!({"error": {"code": code, "message": message}});
    axum::response::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body.to_string()))
        .unwrap_or_default()
}

async fn handle(
    AxumState(server): AxumState<Arc<Server>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    req: axum::extract::Request,
) -> axum::response::Response {
    let started = Instant::now();
    let (mut parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, server.opts.max_body_bytes).await {
        Ok(b) => b,
        Err(_) => return error_response(413, "payload_too_large", "the request body is too large"),
    };
    // What Spin tells a component about the caller; a client cannot set it.
    parts.headers.remove("spin-client-addr");
    if let Ok(v) = http::HeaderValue::from_str(&client.to_string()) {
        parts.headers.insert("spin-client-addr", v);
    }
    // wasi:http wants an absolute URI.
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    parts.uri = match format!("http://{}{path}", server.opts.listen).parse() {
        Ok(uri) => uri,
        Err(_) => return error_response(400, "invalid_request", "the request URI is invalid"),
    };
    let method = parts.method.clone();
    let req = http::Request::from_parts(parts, Full::new(body));
    let mut instantiate_us = 0;
    let response = match server.call_timed(req).await {
        Ok((res, us)) => {
            instantiate_us = us;
            let (mut parts, body) = res.into_parts();
            // For benchmarks and operators: what the host spent before the
            // guest ran (the standard Server-Timing header, milliseconds).
            if let Ok(v) =
                http::HeaderValue::from_str(&format!("instantiate;dur={:.3}", us as f64 / 1000.0))
            {
                parts.headers.append("server-timing", v);
            }
            axum::response::Response::from_parts(parts, axum::body::Body::from(body))
        }
        Err(e) => {
            // A trap, the deadline or the memory limit: this request fails,
            // the next one gets a fresh instance.
            tracing::warn!("request failed in the component: {e:#}");
            error_response(
                500,
                "internal_error",
                "the request failed inside the component",
            )
        }
    };
    tracing::info!(
        method = %method,
        path = %path,
        status = response.status().as_u16(),
        ms = started.elapsed().as_millis() as u64,
        instantiate_us,
        "spin request"
    );
    response
}

/// Loads the manifest and component, binds, serves until `shutdown`.
pub async fn run(
    opts: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    std::fs::create_dir_all(&opts.data_dir)
        .with_context(|| format!("creating {}", opts.data_dir.display()))?;
    let listen = opts.listen;
    let scheduled = opts.scheduled_every_s > 0;
    let server = Arc::new(Server::new(opts)?);
    if scheduled {
        tokio::spawn(server.clone().scheduled_loop());
    }
    let app = axum::Router::new().fallback(handle).with_state(server);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    tracing::info!(%listen, "serving the Spin component");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await?;
    Ok(())
}
