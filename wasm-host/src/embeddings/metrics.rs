//! Prometheus metrics for the embeddings pool, rendered by hand in the text
//! exposition format (a handful of counters and histograms do not justify a
//! metrics framework on the hot path: every update is one relaxed atomic).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A fixed-bucket histogram; `sum` kept in micro-units to stay atomic.
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, value: f64) {
        for (bound, slot) in self.bounds.iter().zip(&self.counts) {
            if value <= *bound {
                slot.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((value * 1e6).max(0.0) as u64, Ordering::Relaxed);
    }

    pub fn observe_duration(&self, d: Duration) {
        self.observe(d.as_secs_f64());
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub fn sum(&self) -> f64 {
        self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (bound, slot) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                slot.load(Ordering::Relaxed)
            );
        }
        let count = self.count();
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {}", self.sum());
        let _ = writeln!(out, "{name}_count {count}");
    }
}

const SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
const BATCH: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// Counters keyed by label values (few distinct keys, so a mutex is fine).
#[derive(Default)]
pub struct LabeledCounter {
    values: Mutex<BTreeMap<Vec<String>, u64>>,
}

impl LabeledCounter {
    pub fn inc(&self, labels: &[&str]) {
        self.add(labels, 1);
    }

    pub fn add(&self, labels: &[&str], n: u64) {
        if let Ok(mut map) = self.values.lock() {
            *map.entry(labels.iter().map(|s| s.to_string()).collect())
                .or_insert(0) += n;
        }
    }

    pub fn get(&self, labels: &[&str]) -> u64 {
        let key: Vec<String> = labels.iter().map(|s| s.to_string()).collect();
        self.values
            .lock()
            .ok()
            .and_then(|m| m.get(&key).copied())
            .unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.values.lock().map(|m| m.values().sum()).unwrap_or(0)
    }

    fn render(&self, out: &mut String, name: &str, help: &str, kind: &str, names: &[&str]) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        if let Ok(map) = self.values.lock() {
            for (values, n) in map.iter() {
                let labels = names
                    .iter()
                    .zip(values)
                    .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                    .collect::<Vec<_>>()
                    .join(",");
                let _ = writeln!(out, "{name}{{{labels}}} {n}");
            }
        }
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub struct Metrics {
    /// Texts admitted but not yet handed to an instance or a fallback node.
    pub queue_depth: AtomicU64,
    pub instances_busy: AtomicU64,
    pub batch_size: Histogram,
    /// Whole `/v1/embeddings` requests, as the client sees them.
    pub request_seconds: Histogram,
    /// One local guest call (instantiate + embed), per batch.
    pub batch_seconds: Histogram,
    /// Time a text waited between admission and dispatch.
    pub queue_wait_seconds: Histogram,
    /// Round trip of one batch sent to a fallback node.
    pub fallback_seconds: Histogram,
    /// Responses by HTTP status and error code ("ok" for 200).
    pub responses: LabeledCounter,
    pub texts: AtomicU64,
    /// Guest traps by kind (deadline, fuel, memory_limit, unreachable, …).
    pub traps: LabeledCounter,
    /// Batches answered by a fallback node, by node.
    pub fallback_batches: LabeledCounter,
    /// Failed fallback attempts (requests and health checks) by node and reason.
    pub fallback_failures: LabeledCounter,
    /// Batches that overflowed the budget but found no usable node.
    pub fallback_unavailable: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            queue_depth: AtomicU64::new(0),
            instances_busy: AtomicU64::new(0),
            batch_size: Histogram::new(BATCH),
            request_seconds: Histogram::new(SECONDS),
            batch_seconds: Histogram::new(SECONDS),
            queue_wait_seconds: Histogram::new(SECONDS),
            fallback_seconds: Histogram::new(SECONDS),
            responses: LabeledCounter::default(),
            texts: AtomicU64::new(0),
            traps: LabeledCounter::default(),
            fallback_batches: LabeledCounter::default(),
            fallback_failures: LabeledCounter::default(),
            fallback_unavailable: AtomicU64::new(0),
        }
    }
}

/// Point-in-time values owned elsewhere (pool size, breaker states).
pub struct Gauges<'a> {
    pub instances: usize,
    pub breakers: Vec<(&'a str, u8)>,
}

impl Metrics {
    pub fn render(&self, gauges: &Gauges<'_>) -> String {
        let mut out = String::with_capacity(4096);
        let gauge = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        gauge(
            &mut out,
            "memshadow_pool_queue_depth",
            "Texts waiting for an instance or a fallback node.",
            self.queue_depth.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "memshadow_pool_instances",
            "Wasm instances that may run at once (pool size).",
            gauges.instances as u64,
        );
        gauge(
            &mut out,
            "memshadow_pool_instances_busy",
            "Wasm instances running a call now.",
            self.instances_busy.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "memshadow_pool_texts_total",
            "Texts embedded (locally or by a fallback node).",
            self.texts.load(Ordering::Relaxed),
        );
        self.batch_size.render(
            &mut out,
            "memshadow_pool_batch_size",
            "Texts per micro-batch.",
        );
        self.request_seconds.render(
            &mut out,
            "memshadow_pool_request_duration_seconds",
            "Latency of /v1/embeddings requests.",
        );
        self.batch_seconds.render(
            &mut out,
            "memshadow_pool_batch_duration_seconds",
            "Latency of one local guest call (fresh instance + embed).",
        );
        self.queue_wait_seconds.render(
            &mut out,
            "memshadow_pool_queue_wait_seconds",
            "Time between admission and dispatch of a text.",
        );
        self.fallback_seconds.render(
            &mut out,
            "memshadow_pool_fallback_duration_seconds",
            "Round trip of batches answered by fallback nodes.",
        );
        self.responses.render(
            &mut out,
            "memshadow_pool_responses_total",
            "Embedding responses by status and error code.",
            "counter",
            &["status", "code"],
        );
        self.traps.render(
            &mut out,
            "memshadow_pool_traps_total",
            "Guest traps by kind; each failed only its own call.",
            "counter",
            &["kind"],
        );
        self.fallback_batches.render(
            &mut out,
            "memshadow_pool_fallback_batches_total",
            "Batches answered by a fallback node.",
            "counter",
            &["node"],
        );
        self.fallback_failures.render(
            &mut out,
            "memshadow_pool_fallback_failures_total",
            "Failed fallback requests and health checks by node and reason.",
            "counter",
            &["node", "reason"],
        );
        counter(
            &mut out,
            "memshadow_pool_fallback_unavailable_total",
            "Over-budget batches run locally because no fallback node was usable.",
            self.fallback_unavailable.load(Ordering::Relaxed),
        );
        let name = "memshadow_pool_fallback_breaker_state";
        let _ = writeln!(
            out,
            "# HELP {name} Circuit breaker per fallback node: 0 closed, 1 open, 2 half-open.\n# TYPE {name} gauge"
        );
        for (node, state) in &gauges.breakers {
            let _ = writeln!(out, "{name}{{node=\"{}\"}} {state}", escape(node));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::new(BATCH);
        h.observe(1.0);
        h.observe(3.0);
        h.observe(500.0);
        let mut out = String::new();
        h.render(&mut out, "b", "help");
        assert!(out.contains("b_bucket{le=\"1\"} 1\n"), "{out}");
        assert!(out.contains("b_bucket{le=\"4\"} 2\n"), "{out}");
        assert!(out.contains("b_bucket{le=\"256\"} 2\n"), "{out}");
        assert!(out.contains("b_bucket{le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("b_sum 504\n"), "{out}");
    }

    #[test]
    fn labels_are_escaped() {
        let c = LabeledCounter::default();
        c.inc(&["a\"b"]);
        let mut out = String::new();
        c.render(&mut out, "c", "h", "counter", &["node"]);
        assert!(out.contains("c{node=\"a\\\"b\"} 1"), "{out}");
    }
}
