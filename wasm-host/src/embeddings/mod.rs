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
use api::{AppState, Limits};
use batcher::{BatchConfig, Batcher};
use fallback::Fallbacks;
use metrics::Metrics;
use pool::Pool;

/// A started pool, ready to be served.
pub struct Service {
    pub state: Arc<AppState>,
    health_task: Option<tokio::task::JoinHandle<()>>,
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
        let s = settings.clone();
        let (model, pool) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let manifest = model::Manifest::load(&s.manifest)?;
            let model =
                model::prepare(&manifest, s.variant.as_deref(), &s.model_dir, &s.cache_dir)?;
            let pool = Pool::start(&s, &model)?;
            Ok((model, Arc::new(pool)))
        })
        .await
        .context("start-up task panicked")??;
        tracing::info!(
            model = %model.id,
            variant = %model.variant,
            instances = pool.size(),
            compiled_cached = pool.load.compiled_cached,
            snapshot_cached = pool.load.snapshot_cached,
            seconds = pool.load.seconds,
            "embedding pool ready"
        );
        let metrics = Arc::new(Metrics::default());
        let fallbacks = Arc::new(Fallbacks::new(
            &settings.fallbacks,
            settings.fallback_timeout,
            settings.breaker_failures,
            settings.breaker_cooldown,
            model.id.clone(),
            model.dim,
            metrics.clone(),
        )?);
        let health_task = (!fallbacks.is_empty())
            .then(|| fallbacks.spawn_health_checks(settings.health_interval));
        let batcher = Batcher::start(
            pool.clone(),
            fallbacks.clone(),
            metrics.clone(),
            BatchConfig {
                max_batch: settings.max_batch,
                max_wait: settings.max_wait,
                queue_capacity: settings.queue_capacity,
                fallback_budget: settings.fallback_budget,
                trap_text,
            },
        );
        let state = Arc::new(AppState {
            batcher,
            pool,
            fallbacks,
            metrics,
            model,
            limits: Limits {
                max_inputs: settings.max_inputs,
                max_chars: settings.max_chars,
                max_body_bytes: settings.max_body_bytes,
                retry_after_s: settings.retry_after_s,
            },
        });
        Ok(Service { state, health_task })
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
        if let Some(t) = self.health_task.take() {
            t.abort();
        }
    }
}
