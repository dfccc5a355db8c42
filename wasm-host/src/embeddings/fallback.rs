//! GPU fallback nodes: whole batches go to another server speaking the same
//! embeddings API when the local queue is over budget.
//!
//! Each node has a circuit breaker fed by both real requests and periodic
//! `GET /health` checks. Every answer is checked against our model id and
//! dimension: a node serving another model would silently poison the vector
//! index (vectors of different models are not comparable), so a mismatch is a
//! failure, counted, and the batch runs locally.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::metrics::Metrics;
use super::pool::Embedded;

/// Breaker states as exported in metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn code(self) -> u8 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::Open => 1,
            BreakerState::HalfOpen => 2,
        }
    }
}

#[derive(Debug)]
enum Inner {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One trial is in flight; everyone else stays away until it reports.
    HalfOpen,
}

/// Opens after `threshold` consecutive failures; after `cooldown` lets one
/// trial through (half-open), which closes it on success or re-opens it.
#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    inner: Mutex<Inner>,
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Breaker {
        Breaker {
            threshold: threshold.max(1),
            cooldown,
            inner: Mutex::new(Inner::Closed { failures: 0 }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock only means a panic elsewhere mid-update; the state
        // itself is always a valid enum value.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a request may go to the node now (claims the half-open trial).
    pub fn try_acquire(&self, now: Instant) -> bool {
        let mut s = self.lock();
        match *s {
            Inner::Closed { .. } => true,
            Inner::Open { until } if now >= until => {
                *s = Inner::HalfOpen;
                true
            }
            Inner::Open { .. } | Inner::HalfOpen => false,
        }
    }

    pub fn on_success(&self) {
        *self.lock() = Inner::Closed { failures: 0 };
    }

    pub fn on_failure(&self, now: Instant) {
        let mut s = self.lock();
        *s = match *s {
            Inner::Closed { failures } if failures + 1 < self.threshold => Inner::Closed {
                failures: failures + 1,
            },
            _ => Inner::Open {
                until: now + self.cooldown,
            },
        };
    }

    pub fn state(&self, now: Instant) -> BreakerState {
        match *self.lock() {
            Inner::Closed { .. } => BreakerState::Closed,
            Inner::Open { until } if now >= until => BreakerState::HalfOpen,
            Inner::Open { .. } => BreakerState::Open,
            Inner::HalfOpen => BreakerState::HalfOpen,
        }
    }
}

pub struct Node {
    /// Base URL, always ending in `/` so joins append.
    pub base: reqwest::Url,
    /// The URL as configured, for labels and logs.
    pub label: String,
    pub breaker: Breaker,
    /// Outcome of the latest health check (None before the first).
    pub healthy: Mutex<Option<bool>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Connect,
    Timeout,
    Status,
    BadBody,
    ModelMismatch,
    DimensionMismatch,
    CountMismatch,
}

impl Failure {
    pub fn reason(self) -> &'static str {
        match self {
            Failure::Connect => "connect",
            Failure::Timeout => "timeout",
            Failure::Status => "http_status",
            Failure::BadBody => "bad_body",
            Failure::ModelMismatch => "model_mismatch",
            Failure::DimensionMismatch => "dimension_mismatch",
            Failure::CountMismatch => "count_mismatch",
        }
    }
}

fn classify(e: &reqwest::Error) -> Failure {
    if e.is_timeout() {
        Failure::Timeout
    } else if e.is_decode() || e.is_body() {
        Failure::BadBody
    } else {
        Failure::Connect
    }
}

#[derive(Deserialize)]
struct EmbeddingsAnswer {
    model: String,
    data: Vec<EmbeddingItem>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct EmbeddingItem {
    embedding: Vec<f32>,
    index: usize,
}

#[derive(Deserialize)]
struct Usage {
    prompt_tokens: u64,
}

#[derive(Deserialize)]
struct HealthAnswer {
    model: String,
    dim: usize,
}

pub struct Fallbacks {
    pub nodes: Vec<Arc<Node>>,
    client: reqwest::Client,
    model_id: String,
    dim: usize,
    metrics: Arc<Metrics>,
}

impl Fallbacks {
    pub fn new(
        urls: &[reqwest::Url],
        timeout: Duration,
        breaker_failures: u32,
        breaker_cooldown: Duration,
        model_id: String,
        dim: usize,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Fallbacks> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(2)))
            .build()?;
        let nodes = urls
            .iter()
            .map(|u| {
                let mut base = u.clone();
                if !base.path().ends_with('/') {
                    base.set_path(&format!("{}/", base.path()));
                }
                Arc::new(Node {
                    base,
                    label: u.as_str().trim_end_matches('/').to_owned(),
                    breaker: Breaker::new(breaker_failures, breaker_cooldown),
                    healthy: Mutex::new(None),
                })
            })
            .collect();
        Ok(Fallbacks {
            nodes,
            client,
            model_id,
            dim,
            metrics,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Whether some node would be tried now (without claiming a trial).
    pub fn any_usable(&self) -> bool {
        let now = Instant::now();
        self.nodes
            .iter()
            .any(|n| n.breaker.state(now) != BreakerState::Open)
    }

    fn fail(&self, node: &Node, f: Failure) {
        tracing::warn!(node = %node.label, reason = f.reason(), "fallback node failed");
        self.metrics
            .fallback_failures
            .inc(&[&node.label, f.reason()]);
        node.breaker.on_failure(Instant::now());
    }

    /// Sends the batch to the first node whose breaker allows it, trying the
    /// next on failure. `None` means: run it locally.
    pub async fn embed(&self, texts: &[String]) -> Option<Embedded> {
        for node in &self.nodes {
            if !node.breaker.try_acquire(Instant::now()) {
                continue;
            }
            let started = Instant::now();
            match self.send(node, texts).await {
                Ok(e) => {
                    node.breaker.on_success();
                    self.metrics
                        .fallback_seconds
                        .observe_duration(started.elapsed());
                    self.metrics.fallback_batches.inc(&[&node.label]);
                    return Some(e);
                }
                Err(f) => self.fail(node, f),
            }
        }
        self.metrics
            .fallback_unavailable
            .fetch_add(1, Ordering::Relaxed);
        None
    }

    async fn send(&self, node: &Node, texts: &[String]) -> Result<Embedded, Failure> {
        let url = node
            .base
            .join("v1/embeddings")
            .map_err(|_| Failure::Connect)?;
        let body = serde_json::json!({ "input": texts, "model": self.model_id });
        let resp = self
            .client
            .post(url)
            .json(&body)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        if !resp.status().is_success() {
            return Err(Failure::Status);
        }
        let answer: EmbeddingsAnswer = resp.json().await.map_err(|e| classify(&e))?;
        if answer.model != self.model_id {
            return Err(Failure::ModelMismatch);
        }
        if answer.data.len() != texts.len() {
            return Err(Failure::CountMismatch);
        }
        let mut vectors: Vec<Option<Vec<f32>>> = vec![None; texts.len()];
        for item in answer.data {
            if item.embedding.len() != self.dim {
                return Err(Failure::DimensionMismatch);
            }
            match vectors.get_mut(item.index) {
                Some(slot @ None) => *slot = Some(item.embedding),
                _ => return Err(Failure::CountMismatch),
            }
        }
        let vectors: Vec<Vec<f32>> = vectors.into_iter().flatten().collect();
        if vectors.len() != texts.len() {
            return Err(Failure::CountMismatch);
        }
        // The API reports only a total; spread it over texts by length so
        // that per-request usage stays close (exact when one request).
        let total_tokens = answer.usage.map_or(0, |u| u.prompt_tokens);
        let total_bytes: u64 = texts.iter().map(|t| t.len() as u64).sum::<u64>().max(1);
        let mut token_counts: Vec<u32> = texts
            .iter()
            .map(|t| (total_tokens * t.len() as u64 / total_bytes) as u32)
            .collect();
        let assigned: u64 = token_counts.iter().map(|&c| c as u64).sum();
        if let Some(first) = token_counts.first_mut() {
            *first += total_tokens.saturating_sub(assigned) as u32;
        }
        Ok(Embedded {
            vectors,
            token_counts,
        })
    }

    /// One round of health checks over all nodes.
    pub async fn check_all(&self) {
        for node in &self.nodes {
            let outcome = self.check(node).await;
            if let Ok(mut h) = node.healthy.lock() {
                *h = Some(outcome.is_ok());
            }
            match outcome {
                Ok(()) => {
                    // A passing check closes a breaker only once its cool-down
                    // is over, so a flapping node still gets its pause.
                    if node.breaker.state(Instant::now()) != BreakerState::Open {
                        node.breaker.on_success();
                    }
                }
                Err(f) => self.fail(node, f),
            }
        }
    }

    async fn check(&self, node: &Node) -> Result<(), Failure> {
        let url = node.base.join("health").map_err(|_| Failure::Connect)?;
        let resp = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        if !resp.status().is_success() {
            return Err(Failure::Status);
        }
        let h: HealthAnswer = resp.json().await.map_err(|e| classify(&e))?;
        if h.model != self.model_id {
            return Err(Failure::ModelMismatch);
        }
        if h.dim != self.dim {
            return Err(Failure::DimensionMismatch);
        }
        Ok(())
    }

    /// Health checks every `interval` until the returned handle is aborted.
    pub fn spawn_health_checks(
        self: &Arc<Self>,
        interval: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                this.check_all().await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_opens_after_threshold_and_half_opens_after_cooldown() {
        let b = Breaker::new(3, Duration::from_secs(10));
        let t0 = Instant::now();
        assert!(b.try_acquire(t0));
        b.on_failure(t0);
        b.on_failure(t0);
        assert_eq!(b.state(t0), BreakerState::Closed);
        b.on_failure(t0);
        assert_eq!(b.state(t0), BreakerState::Open);
        assert!(!b.try_acquire(t0 + Duration::from_secs(9)));
        // After the cool-down exactly one trial goes through.
        let t1 = t0 + Duration::from_secs(10);
        assert!(b.try_acquire(t1));
        assert!(!b.try_acquire(t1));
        assert_eq!(b.state(t1), BreakerState::HalfOpen);
        // A failed trial re-opens for a full cool-down.
        b.on_failure(t1);
        assert!(!b.try_acquire(t1 + Duration::from_secs(5)));
        let t2 = t1 + Duration::from_secs(10);
        assert!(b.try_acquire(t2));
        b.on_success();
        assert_eq!(b.state(t2), BreakerState::Closed);
        assert!(b.try_acquire(t2));
    }

    #[test]
    fn success_resets_the_failure_count() {
        let b = Breaker::new(2, Duration::from_secs(1));
        let t = Instant::now();
        b.on_failure(t);
        b.on_success();
        b.on_failure(t);
        assert_eq!(b.state(t), BreakerState::Closed);
        b.on_failure(t);
        assert_eq!(b.state(t), BreakerState::Open);
    }
}
