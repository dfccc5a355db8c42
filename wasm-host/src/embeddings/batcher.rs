//! Dynamic micro-batching: requests queue as jobs; a batch closes when it
//! holds `max_batch` texts or `max_wait` after its first job arrived; results
//! fan back to each caller over a oneshot channel.
//!
//! Batch formation waits for a free instance (the pool's semaphore), so while
//! all instances are busy the queue grows and the next batch leaves full: load
//! raises batch size, which raises throughput.
//!
//! One large request is spread over every instance: it is cut into at least
//! as many jobs as there are instances, and two jobs of the same request
//! never share a batch, so a lone request of 32 texts on two instances runs
//! as two batches of 16 at once instead of one batch of 32 on one instance. Before waiting, a batch whose
//! expected local wait exceeds the budget goes to a fallback node instead.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::fallback::Fallbacks;
use super::metrics::Metrics;
use super::pool::{CallError, Embedded, Pool};

/// Why a job got no vectors.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JobError {
    #[error("the guest trapped ({0})")]
    Trap(&'static str),
    #[error("inference failed: {0}")]
    Failed(String),
    #[error("the pool is shutting down")]
    Closed,
}

/// Admission refused: the queue holds `capacity` texts already.
#[derive(Debug, thiserror::Error)]
#[error("queue full")]
pub struct QueueFull;

type Reply = oneshot::Sender<Result<Embedded, JobError>>;

struct Job {
    /// The request this job is part of: its jobs go to different batches.
    request: u64,
    texts: Vec<String>,
    enqueued: Instant,
    reply: Reply,
}

#[derive(Debug, Clone)]
pub struct BatchConfig {
    pub max_batch: usize,
    pub max_wait: Duration,
    pub queue_capacity: usize,
    pub fallback_budget: Duration,
    /// Test hook: a batch containing exactly this text runs with a zero epoch
    /// deadline, i.e. traps for real inside the guest.
    pub trap_text: Option<String>,
}

/// Recent per-batch latency (exponentially weighted), in seconds.
#[derive(Default)]
struct Ewma(Mutex<Option<f64>>);

impl Ewma {
    fn update(&self, sample: f64) {
        if let Ok(mut v) = self.0.lock() {
            *v = Some(match *v {
                Some(prev) => 0.8 * prev + 0.2 * sample,
                None => sample,
            });
        }
    }

    fn get(&self) -> f64 {
        self.0.lock().ok().and_then(|v| *v).unwrap_or(0.0)
    }
}

struct Shared {
    pool: Arc<Pool>,
    fallbacks: Arc<Fallbacks>,
    metrics: Arc<Metrics>,
    config: BatchConfig,
    latency: Ewma,
    requests: AtomicU64,
}

/// Handle used by request handlers.
#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::UnboundedSender<Job>,
    shared: Arc<Shared>,
}

impl Batcher {
    /// Starts the batching task on the current tokio runtime.
    pub fn start(
        pool: Arc<Pool>,
        fallbacks: Arc<Fallbacks>,
        metrics: Arc<Metrics>,
        config: BatchConfig,
    ) -> Batcher {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            pool,
            fallbacks,
            metrics,
            config,
            latency: Ewma::default(),
            requests: AtomicU64::new(0),
        });
        tokio::spawn(run(rx, shared.clone()));
        Batcher { tx, shared }
    }

    /// Queues `texts` (split into jobs of at most `max_batch`) and returns
    /// their vectors in order. The queue's bound is counted in texts so that
    /// one large request cannot hide behind a small job count.
    pub async fn embed(&self, texts: Vec<String>) -> Result<Result<Embedded, JobError>, QueueFull> {
        let n = texts.len() as u64;
        let m = &self.shared.metrics;
        let before = m.queue_depth.fetch_add(n, Ordering::SeqCst);
        if before + n > self.shared.config.queue_capacity as u64 {
            m.queue_depth.fetch_sub(n, Ordering::SeqCst);
            return Err(QueueFull);
        }
        let mut receivers = Vec::new();
        let now = Instant::now();
        let request = self.shared.requests.fetch_add(1, Ordering::Relaxed);
        let chunk = job_size(
            texts.len(),
            self.shared.pool.size(),
            self.shared.config.max_batch,
        );
        let mut rest = texts;
        while !rest.is_empty() {
            let tail = rest.split_off(rest.len().min(chunk));
            let (reply, rx) = oneshot::channel();
            let job = Job {
                request,
                texts: std::mem::replace(&mut rest, tail),
                enqueued: now,
                reply,
            };
            if let Err(e) = self.tx.send(job) {
                m.queue_depth
                    .fetch_sub(e.0.texts.len() as u64, Ordering::SeqCst);
                return Ok(Err(JobError::Closed));
            }
            receivers.push(rx);
        }
        let mut out = Embedded {
            vectors: Vec::with_capacity(n as usize),
            token_counts: Vec::with_capacity(n as usize),
        };
        for rx in receivers {
            match rx.await {
                Ok(Ok(e)) => {
                    out.vectors.extend(e.vectors);
                    out.token_counts.extend(e.token_counts);
                }
                Ok(Err(e)) => return Ok(Err(e)),
                Err(_) => return Ok(Err(JobError::Closed)),
            }
        }
        Ok(Ok(out))
    }

    /// Expected wait of a batch dispatched now: queued batches × recent batch
    /// latency / instances.
    pub fn expected_wait(&self) -> Duration {
        expected_wait(&self.shared)
    }
}

/// Texts per job for a request of `n` texts: enough jobs to occupy every
/// instance (and no job above `max_batch`), of nearly equal size.
fn job_size(n: usize, instances: usize, max_batch: usize) -> usize {
    let jobs = instances.max(n.div_ceil(max_batch.max(1))).max(1);
    n.div_ceil(jobs).clamp(1, max_batch.max(1))
}

fn expected_wait(s: &Shared) -> Duration {
    let depth = s.metrics.queue_depth.load(Ordering::SeqCst) as usize;
    let batches = depth.div_ceil(s.config.max_batch);
    Duration::from_secs_f64(batches as f64 * s.latency.get() / s.pool.size() as f64)
}

async fn run(mut rx: mpsc::UnboundedReceiver<Job>, s: Arc<Shared>) {
    let mut carry: Option<Job> = None;
    loop {
        let first = match carry.take() {
            Some(job) => job,
            None => match rx.recv().await {
                Some(job) => job,
                None => return,
            },
        };
        let deadline = tokio::time::Instant::from_std(first.enqueued + s.config.max_wait);
        let mut size = first.texts.len();
        let mut batch = vec![first];
        while size < s.config.max_batch {
            // `timeout_at` polls the receiver before the clock, so jobs that
            // queued up while we waited for an instance join at once.
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(job))
                    if size + job.texts.len() > s.config.max_batch
                        || batch.iter().any(|j| j.request == job.request) =>
                {
                    carry = Some(job);
                    break;
                }
                Ok(Some(job)) => {
                    size += job.texts.len();
                    batch.push(job);
                }
                Ok(None) | Err(_) => break,
            }
        }
        dispatch(&s, batch, size).await;
    }
}

async fn dispatch(s: &Arc<Shared>, batch: Vec<Job>, size: usize) {
    if !s.fallbacks.is_empty() && expected_wait(s) > s.config.fallback_budget {
        if s.fallbacks.any_usable() {
            dequeue(s, &batch, size);
            let s = s.clone();
            tokio::spawn(async move {
                let texts: Vec<String> = batch.iter().flat_map(|j| j.texts.clone()).collect();
                match s.fallbacks.embed(&texts).await {
                    Some(e) => reply_all(batch, Ok(e)),
                    None => run_local(&s, batch, size).await,
                }
            });
            return;
        }
        s.metrics
            .fallback_unavailable
            .fetch_add(1, Ordering::Relaxed);
    }
    let permit = match s.pool.semaphore.clone().acquire_owned().await {
        Ok(p) => p,
        Err(_) => return reply_all(batch, Err(JobError::Closed)),
    };
    // While the batch waited for an instance, some callers may have gone
    // (a client that timed out): their texts are not worth an instance.
    let (batch, size) = drop_abandoned(s, batch, size);
    if batch.is_empty() {
        return;
    }
    dequeue(s, &batch, size);
    let s = s.clone();
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        local_blocking(&s, batch, size);
    });
}

/// The jobs whose caller still waits, and their texts; the others leave the
/// queue unrun.
fn drop_abandoned(s: &Shared, batch: Vec<Job>, size: usize) -> (Vec<Job>, usize) {
    let live: Vec<Job> = batch.into_iter().filter(|j| !j.reply.is_closed()).collect();
    let live_size: usize = live.iter().map(|j| j.texts.len()).sum();
    if live_size < size {
        s.metrics
            .queue_depth
            .fetch_sub((size - live_size) as u64, Ordering::SeqCst);
        tracing::debug!(
            dropped = size - live_size,
            "texts of departed callers skipped"
        );
    }
    (live, live_size)
}

/// The fallback path's way back to local inference when no node answered.
async fn run_local(s: &Arc<Shared>, batch: Vec<Job>, size: usize) {
    let permit = match s.pool.semaphore.clone().acquire_owned().await {
        Ok(p) => p,
        Err(_) => return reply_all(batch, Err(JobError::Closed)),
    };
    let s = s.clone();
    let _ = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        local_blocking(&s, batch, size);
    })
    .await;
}

fn dequeue(s: &Shared, batch: &[Job], size: usize) {
    let now = Instant::now();
    s.metrics
        .queue_depth
        .fetch_sub(size as u64, Ordering::SeqCst);
    s.metrics.batch_size.observe(size as f64);
    for job in batch {
        s.metrics
            .queue_wait_seconds
            .observe_duration(now.duration_since(job.enqueued));
    }
}

fn reply_all(batch: Vec<Job>, result: Result<Embedded, JobError>) {
    match result {
        Ok(mut e) => {
            for job in batch {
                let n = job.texts.len();
                let rest_v = e.vectors.split_off(n.min(e.vectors.len()));
                let rest_t = e.token_counts.split_off(n.min(e.token_counts.len()));
                let mine = Embedded {
                    vectors: std::mem::replace(&mut e.vectors, rest_v),
                    token_counts: std::mem::replace(&mut e.token_counts, rest_t),
                };
                // A caller that went away (client disconnect) needs no answer.
                let _ = job.reply.send(Ok(mine));
            }
        }
        Err(err) => {
            for job in batch {
                let _ = job.reply.send(Err(err.clone()));
            }
        }
    }
}

fn call(s: &Shared, texts: &[String]) -> Result<Embedded, CallError> {
    let deadline = match &s.config.trap_text {
        Some(t) if texts.iter().any(|x| x == t) => Some(Duration::ZERO),
        _ => None,
    };
    s.metrics.instances_busy.fetch_add(1, Ordering::Relaxed);
    let started = Instant::now();
    let result = s.pool.call(texts, deadline);
    let elapsed = started.elapsed();
    s.metrics.instances_busy.fetch_sub(1, Ordering::Relaxed);
    s.metrics.batch_seconds.observe_duration(elapsed);
    match &result {
        Ok(_) => s.latency.update(elapsed.as_secs_f64()),
        Err(CallError::Trap { kind, detail }) => {
            s.metrics.traps.inc(&[kind]);
            tracing::warn!(
                kind,
                detail,
                texts = texts.len(),
                "guest trapped; instance discarded"
            );
        }
        Err(e) => tracing::error!(error = %e, "guest call failed"),
    }
    result
}

fn to_job_error(e: CallError) -> JobError {
    match e {
        CallError::Trap { kind, .. } => JobError::Trap(kind),
        other => JobError::Failed(other.to_string()),
    }
}

/// Runs one batch in a fresh instance. If it traps and holds several jobs,
/// each job is re-run alone, so one poisonous input fails only its request.
fn local_blocking(s: &Shared, batch: Vec<Job>, size: usize) {
    let texts: Vec<String> = batch.iter().flat_map(|j| j.texts.iter().cloned()).collect();
    debug_assert_eq!(texts.len(), size);
    match call(s, &texts) {
        Ok(e) => reply_all(batch, Ok(e)),
        Err(CallError::Trap { .. }) if batch.len() > 1 => {
            for job in batch {
                let result = call(s, &job.texts).map_err(to_job_error);
                let _ = job.reply.send(result);
            }
        }
        Err(e) => reply_all(batch, Err(to_job_error(e))),
    }
}

#[cfg(test)]
mod tests {
    use super::job_size;

    #[test]
    fn a_request_is_cut_into_at_least_one_job_per_instance() {
        // 32 texts, 2 instances, batches of 32: two jobs of 16.
        assert_eq!(job_size(32, 2, 32), 16);
        // 100 texts: four jobs of 25 rather than 32, 32, 32, 4.
        assert_eq!(job_size(100, 2, 32), 25);
        // Fewer texts than instances: one text per job.
        assert_eq!(job_size(1, 4, 32), 1);
        assert_eq!(job_size(3, 4, 32), 1);
        // One instance: jobs as large as a batch may be.
        assert_eq!(job_size(40, 1, 32), 20);
        assert_eq!(job_size(10, 1, 32), 10);
    }
}
