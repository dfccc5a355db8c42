//! The embeddings pool: embed-wasm on wasmtime behind an OpenAI-compatible API.
//!
//! Start-up order matters: everything that can fail (manifest, model hashes,
//! snapshot, compile, self-check) runs in [`Service::start`], before any port
//! is bound, so a broken deployment never answers health checks.

pub mod api;
pub mod batcher;
pub mod error;
pub mod fallback;
pub mod metrics;
pub mod model;
pub mod pool;
pub mod snapshot;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;

use crate::config::Settings;
use api::{AppState, Limits, ServedModel};
use batcher::{BatchConfig, Batcher};
use fallback::Fallbacks;
use metrics::Metrics;
use pool::Pool;

/// A started pool, ready to be served.
pub struct Service {
    pub state: Arc<AppState>,
    health_tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Where one served model comes from.
struct ModelSource {
    manifest_path: std::path::PathBuf,
    /// Read once, before anything is started.
    manifest: model::Manifest,
    /// None: the subfolder of the model directory named by the model id.
    model_dir: Option<std::path::PathBuf>,
    variant: Option<String>,
    fallbacks: Vec<reqwest::Url>,
}

/// Verifies one model, loads or builds its snapshot, checks one call and
/// starts its batcher. Each model has its own pool of `pool_size`
/// instances, queue and metrics, so one model's load never queues behind
/// another's.
async fn start_model(
    settings: &Settings,
    source: ModelSource,
    trap_text: Option<String>,
) -> anyhow::Result<ServedModel> {
    let s = settings.clone();
    let manifest_path = source.manifest_path.clone();
    let manifest = source.manifest;
    let model_dir = source.model_dir;
    let variant = source.variant;
    let (model, pool) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let model_dir = model_dir.unwrap_or_else(|| s.model_dir.join(&manifest.model_id));
        let model = model::prepare(&manifest, variant.as_deref(), &model_dir, &s.cache_dir)?;
        let pool = Pool::start(&s, &model)?;
        Ok((model, Arc::new(pool)))
    })
    .await
    .context("start-up task panicked")?
    .with_context(|| format!("model of {}", manifest_path.display()))?;
    tracing::info!(
        model = %model.id,
        variant = %model.variant,
        dim = model.dim,
        instances = pool.size(),
        compiled_cached = pool.load.compiled_cached,
        snapshot_cached = pool.load.snapshot_cached,
        seconds = pool.load.seconds,
        "embedding pool ready"
    );
    let metrics = Arc::new(Metrics::default());
    let fallbacks = Arc::new(Fallbacks::new(
        &source.fallbacks,
        settings.fallback_timeout,
        settings.breaker_failures,
        settings.breaker_cooldown,
        model.id.clone(),
        model.dim,
        metrics.clone(),
    )?);
    let max_batch = model
        .max_batch
        .map_or(settings.max_batch, |cap| cap.clamp(1, settings.max_batch));
    let batcher = Batcher::start(
        pool.clone(),
        fallbacks.clone(),
        metrics.clone(),
        BatchConfig {
            max_batch,
            max_wait: settings.max_wait,
            queue_capacity: settings.queue_capacity,
            fallback_budget: settings.fallback_budget,
            trap_text,
        },
    );
    Ok(ServedModel {
        model,
        max_batch,
        pool,
        batcher,
        fallbacks,
        metrics,
    })
}

impl ModelSource {
    fn read(
        manifest_path: &std::path::Path,
        model_dir: Option<std::path::PathBuf>,
        variant: Option<String>,
        fallbacks: Vec<reqwest::Url>,
    ) -> anyhow::Result<ModelSource> {
        let manifest = model::Manifest::load(manifest_path)
            .with_context(|| format!("model of {}", manifest_path.display()))?;
        Ok(ModelSource {
            manifest_path: manifest_path.to_path_buf(),
            manifest,
            model_dir,
            variant,
            fallbacks,
        })
    }
}

/// Two manifests naming one model id would leave one of them unreachable:
/// refused from the manifests alone, before any snapshot is built.
fn refuse_repeated_model_ids(sources: &[ModelSource]) -> anyhow::Result<()> {
    for (i, source) in sources.iter().enumerate() {
        let id = &source.manifest.model_id;
        if let Some(first) = sources[..i].iter().find(|s| s.manifest.model_id == *id) {
            anyhow::bail!(
                "model {id:?} is configured twice ({} and {})",
                first.manifest_path.display(),
                source.manifest_path.display()
            );
        }
    }
    Ok(())
}

impl Service {
    /// Verifies the model, loads or builds the snapshot, starts the batcher
    /// and the fallback health checks. Must run inside a tokio runtime.
    pub async fn start(settings: &Settings) -> anyhow::Result<Service> {
        Service::start_with_trap_text(settings, None).await
    }

    /// As [`Service::start`], with the test hook that makes any batch
    /// containing `trap_text` trap inside the guest (zero epoch deadline).
    pub async fn start_with_trap_text(
        settings: &Settings,
        trap_text: Option<String>,
    ) -> anyhow::Result<Service> {
        let mut sources = vec![ModelSource::read(
            &settings.manifest,
            Some(settings.model_dir.clone()),
            settings.variant.clone(),
            settings.fallbacks.clone(),
        )?];
        for extra in &settings.extra_models {
            // Fallback nodes serve the default model (README).
            sources.push(ModelSource::read(
                &extra.manifest,
                extra.model_dir.clone(),
                None,
                Vec::new(),
            )?);
        }
        refuse_repeated_model_ids(&sources)?;
        let mut served = Vec::with_capacity(sources.len());
        for source in sources {
            served.push(start_model(settings, source, trap_text.clone()).await?);
        }
        let health_tasks = served
            .iter()
            .filter(|m| !m.fallbacks.is_empty())
            .map(|m| m.fallbacks.spawn_health_checks(settings.health_interval))
            .collect();
        let mut served = served.into_iter();
        let default = served.next().context("no model to serve")?;
        let state = Arc::new(AppState {
            default,
            extra: served.collect(),
            limits: Limits {
                max_inputs: settings.max_inputs,
                max_chars: settings.max_chars,
                max_body_bytes: settings.max_body_bytes,
                retry_after_s: settings.retry_after_s,
            },
        });
        Ok(Service {
            state,
            health_tasks,
        })
    }

    pub fn router(&self) -> axum::Router {
        api::router(self.state.clone())
    }

    /// Binds `addr` and serves until `shutdown` resolves.
    pub async fn serve(
        self,
        addr: SocketAddr,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        self.serve_on(listener, shutdown).await
    }

    /// Serves on an already bound listener (tests bind port 0 first).
    pub async fn serve_on(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        tracing::info!(addr = %listener.local_addr()?, "serving embeddings");
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await?;
        Ok(())
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        for t in self.health_tasks.drain(..) {
            t.abort();
        }
    }
}
