//! One configuration struct for flags, environment (`MEMSHADOW_POOL_*`) and an
//! optional TOML/JSON file, resolved and validated into [`Settings`] before any
//! port is bound.
//!
//! Precedence: flag > environment > file > built-in default. Every field of
//! [`Options`] is optional so that the three sources can be layered; the doc
//! comments are the `--help` text and the README's configuration reference.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

/// Errors that stop start-up before the port is bound.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot parse config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// MEMSHADOW wasm-host: a pool of embed-wasm instances on wasmtime behind an
/// OpenAI-compatible embeddings API.
#[derive(Debug, Default, Clone, Parser, Deserialize)]
#[command(name = "wasm-host", version, about, long_about = None)]
#[serde(default, deny_unknown_fields)]
pub struct Options {
    /// Optional TOML (.toml) or JSON (.json) file with any of these settings
    /// (snake_case keys); flags and environment override it.
    #[arg(long, env = "MEMSHADOW_POOL_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Address the embeddings API listens on [default: 127.0.0.1:8790].
    #[arg(long, env = "MEMSHADOW_POOL_LISTEN")]
    pub listen: Option<SocketAddr>,

    /// The embed-wasm module [default:
    /// $CARGO_TARGET_DIR/wasm32-wasip1/release/embed_wasm.wasm, with
    /// CARGO_TARGET_DIR defaulting to ~/.cache/memshadow/target].
    #[arg(long, env = "MEMSHADOW_POOL_WASM")]
    pub wasm: Option<PathBuf>,

    /// Directory holding the model variants and tokenizer.json
    /// [default: ~/.cache/memshadow/model].
    #[arg(long, env = "MEMSHADOW_MODEL_DIR")]
    pub model_dir: Option<PathBuf>,

    /// The model manifest (model id, dim, files with sha256)
    /// [default: embed-wasm/model-manifest.json of this checkout].
    #[arg(long, env = "MEMSHADOW_POOL_MANIFEST")]
    pub manifest: Option<PathBuf>,

    /// Model variant from the manifest (e.g. fp32, int8) [default: the
    /// manifest's default_variant].
    #[arg(long, env = "MEMSHADOW_POOL_VARIANT")]
    pub variant: Option<String>,

    /// More models served beside the default one, each as its manifest,
    /// optionally followed by `=MODEL_DIR` (default: the subfolder of
    /// --model-dir named by the manifest's model_id), in its manifest's
    /// default variant. Requests choose one by `model`; a request without
    /// `model` gets the default (--manifest). Comma-separated in the
    /// environment [default: none].
    #[arg(
        long = "extra-model",
        env = "MEMSHADOW_POOL_EXTRA_MODELS",
        value_delimiter = ','
    )]
    pub extra_models: Option<Vec<String>>,

    /// Directory for compiled modules and snapshots [default:
    /// ~/.cache/memshadow/wasm-cache].
    #[arg(long, env = "MEMSHADOW_POOL_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Number of wasm instances that may run at once [default: number of cores].
    #[arg(long, env = "MEMSHADOW_POOL_SIZE")]
    pub pool_size: Option<usize>,

    /// Largest micro-batch, in texts [default: 32].
    #[arg(long, env = "MEMSHADOW_POOL_MAX_BATCH")]
    pub max_batch: Option<usize>,

    /// Longest a batch waits for more texts after its first, in ms [default: 5].
    #[arg(long, env = "MEMSHADOW_POOL_MAX_WAIT_MS")]
    pub max_wait_ms: Option<u64>,

    /// Texts that may wait in the queue before requests get 503 queue_full
    /// [default: 1024].
    #[arg(long, env = "MEMSHADOW_POOL_QUEUE_CAPACITY")]
    pub queue_capacity: Option<usize>,

    /// Most texts in one request [default: 256].
    #[arg(long, env = "MEMSHADOW_POOL_MAX_INPUTS")]
    pub max_inputs: Option<usize>,

    /// Most characters (Unicode scalar values) in one text [default: 8192].
    #[arg(long, env = "MEMSHADOW_POOL_MAX_CHARS")]
    pub max_chars: Option<usize>,

    /// Largest request body in bytes [default: 2097152].
    #[arg(long, env = "MEMSHADOW_POOL_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,

    /// Linear-memory limit per instance in MiB; must exceed the snapshot's
    /// ≈233 MiB [default: 1024].
    #[arg(long, env = "MEMSHADOW_POOL_MAX_MEMORY_MIB")]
    pub max_memory_mib: Option<usize>,

    /// Wall-clock deadline per guest call in ms, enforced by epoch
    /// interruption [default: 30000].
    #[arg(long, env = "MEMSHADOW_POOL_DEADLINE_MS")]
    pub deadline_ms: Option<u64>,

    /// Fuel per guest call; unset disables fuel metering (it costs ≈10–20 %
    /// speed) [default: unset].
    #[arg(long, env = "MEMSHADOW_POOL_FUEL")]
    pub fuel: Option<u64>,

    /// Seconds sent in Retry-After with 503 queue_full [default: 1].
    #[arg(long, env = "MEMSHADOW_POOL_RETRY_AFTER_S")]
    pub retry_after_s: Option<u64>,

    /// Fallback node base URLs speaking the same API with the same model
    /// (comma-separated in the environment) [default: none].
    #[arg(
        long = "fallback",
        env = "MEMSHADOW_POOL_FALLBACKS",
        value_delimiter = ','
    )]
    pub fallbacks: Option<Vec<String>>,

    /// Expected local wait (ms) above which a batch goes to a fallback node
    /// [default: 250].
    #[arg(long, env = "MEMSHADOW_POOL_FALLBACK_BUDGET_MS")]
    pub fallback_budget_ms: Option<u64>,

    /// Timeout of one fallback request in ms [default: 10000].
    #[arg(long, env = "MEMSHADOW_POOL_FALLBACK_TIMEOUT_MS")]
    pub fallback_timeout_ms: Option<u64>,

    /// Interval of fallback health checks (GET /health) in ms [default: 5000].
    #[arg(long, env = "MEMSHADOW_POOL_HEALTH_INTERVAL_MS")]
    pub health_interval_ms: Option<u64>,

    /// Consecutive failures that open a fallback node's circuit [default: 3].
    #[arg(long, env = "MEMSHADOW_POOL_BREAKER_FAILURES")]
    pub breaker_failures: Option<u32>,

    /// How long an open circuit stays open before one trial, in ms
    /// [default: 10000].
    #[arg(long, env = "MEMSHADOW_POOL_BREAKER_COOLDOWN_MS")]
    pub breaker_cooldown_ms: Option<u64>,

    /// Write /tmp/perf-PID.map so that `perf report` names guest functions
    /// (wasmtime's perfmap profiler), for profiling [default: false].
    #[arg(long, env = "MEMSHADOW_POOL_PERFMAP")]
    pub perfmap: Option<bool>,
}

impl Options {
    /// Parses flags and environment, then layers the config file under them.
    pub fn load() -> Result<Options, ConfigError> {
        let cli = Options::parse();
        match cli.config.clone() {
            Some(path) => Ok(cli.over(Options::from_file(&path)?)),
            None => Ok(cli),
        }
    }

    /// Reads a TOML or JSON file (by extension; TOML otherwise).
    pub fn from_file(path: &Path) -> Result<Options, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let parsed = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text).map_err(|e| e.to_string())
        } else {
            toml::from_str(&text).map_err(|e| e.to_string())
        };
        parsed.map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })
    }

    /// `self` wins wherever it has a value.
    pub fn over(self, lower: Options) -> Options {
        Options {
            config: self.config.or(lower.config),
            listen: self.listen.or(lower.listen),
            wasm: self.wasm.or(lower.wasm),
            model_dir: self.model_dir.or(lower.model_dir),
            manifest: self.manifest.or(lower.manifest),
            variant: self.variant.or(lower.variant),
            extra_models: self.extra_models.or(lower.extra_models),
            cache_dir: self.cache_dir.or(lower.cache_dir),
            pool_size: self.pool_size.or(lower.pool_size),
            max_batch: self.max_batch.or(lower.max_batch),
            max_wait_ms: self.max_wait_ms.or(lower.max_wait_ms),
            queue_capacity: self.queue_capacity.or(lower.queue_capacity),
            max_inputs: self.max_inputs.or(lower.max_inputs),
            max_chars: self.max_chars.or(lower.max_chars),
            max_body_bytes: self.max_body_bytes.or(lower.max_body_bytes),
            max_memory_mib: self.max_memory_mib.or(lower.max_memory_mib),
            deadline_ms: self.deadline_ms.or(lower.deadline_ms),
            fuel: self.fuel.or(lower.fuel),
            retry_after_s: self.retry_after_s.or(lower.retry_after_s),
            fallbacks: self.fallbacks.or(lower.fallbacks),
            fallback_budget_ms: self.fallback_budget_ms.or(lower.fallback_budget_ms),
            fallback_timeout_ms: self.fallback_timeout_ms.or(lower.fallback_timeout_ms),
            health_interval_ms: self.health_interval_ms.or(lower.health_interval_ms),
            breaker_failures: self.breaker_failures.or(lower.breaker_failures),
            breaker_cooldown_ms: self.breaker_cooldown_ms.or(lower.breaker_cooldown_ms),
            perfmap: self.perfmap.or(lower.perfmap),
        }
    }
}

/// Validated configuration with every default applied.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub wasm: PathBuf,
    pub model_dir: PathBuf,
    pub manifest: PathBuf,
    pub variant: Option<String>,
    pub extra_models: Vec<ExtraModel>,
    pub cache_dir: PathBuf,
    pub pool_size: usize,
    pub max_batch: usize,
    pub max_wait: Duration,
    pub queue_capacity: usize,
    pub max_inputs: usize,
    pub max_chars: usize,
    pub max_body_bytes: usize,
    pub max_memory_bytes: usize,
    pub deadline: Duration,
    pub fuel: Option<u64>,
    pub retry_after_s: u64,
    pub fallbacks: Vec<reqwest::Url>,
    pub fallback_budget: Duration,
    pub fallback_timeout: Duration,
    pub health_interval: Duration,
    pub breaker_failures: u32,
    pub breaker_cooldown: Duration,
    pub perfmap: bool,
}

/// A model served beside the default one (`--extra-model`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraModel {
    pub manifest: PathBuf,
    /// None: the model directory's subfolder named by the manifest's model_id.
    pub model_dir: Option<PathBuf>,
}

impl ExtraModel {
    fn parse(raw: &str) -> Result<ExtraModel, ConfigError> {
        let (manifest, model_dir) = match raw.split_once('=') {
            Some((m, d)) => (m.trim(), Some(d.trim())),
            None => (raw.trim(), None),
        };
        if manifest.is_empty() || model_dir.is_some_and(str::is_empty) {
            return Err(ConfigError::Invalid(format!(
                "extra model {raw:?} must be MANIFEST or MANIFEST=MODEL_DIR"
            )));
        }
        Ok(ExtraModel {
            manifest: PathBuf::from(manifest),
            model_dir: model_dir.map(PathBuf::from),
        })
    }
}

/// The epoch ticker's period; deadlines are rounded up to whole ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"))
}

fn memshadow_cache() -> PathBuf {
    std::env::var_os("MEMSHADOW_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".cache/memshadow"))
}

/// Where `cargo build -p embed-wasm --release --target wasm32-wasip1` puts the module.
pub fn default_wasm_path() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| memshadow_cache().join("target"));
    target.join("wasm32-wasip1/release/embed_wasm.wasm")
}

/// The manifest of the checkout this binary runs from: `cargo run` and
/// `cargo test` set `CARGO_MANIFEST_DIR`; otherwise the checkout it was built
/// from (scripts pass `--manifest` explicitly).
pub fn default_manifest_path() -> PathBuf {
    crate_dir().join("../embed-wasm/model-manifest.json")
}

/// wasm-host's folder in the checkout (see [`default_manifest_path`]): a
/// binary cargo reuses from another checkout through a shared target
/// directory must not read that checkout's files.
pub fn crate_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

pub fn default_model_dir() -> PathBuf {
    memshadow_cache().join("model")
}

pub fn default_cache_dir() -> PathBuf {
    memshadow_cache().join("wasm-cache")
}

fn positive<T: PartialOrd + Default + std::fmt::Display>(
    name: &str,
    value: T,
) -> Result<T, ConfigError> {
    if value > T::default() {
        Ok(value)
    } else {
        Err(ConfigError::Invalid(format!(
            "{name} must be greater than 0 (got {value})"
        )))
    }
}

impl Settings {
    pub fn resolve(o: Options) -> Result<Settings, ConfigError> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let pool_size = positive("pool_size", o.pool_size.unwrap_or(cores))?;
        let max_batch = positive("max_batch", o.max_batch.unwrap_or(32))?;
        if max_batch > 1024 {
            return Err(ConfigError::Invalid(format!(
                "max_batch must be at most 1024 (got {max_batch})"
            )));
        }
        let max_memory_mib = positive("max_memory_mib", o.max_memory_mib.unwrap_or(1024))?;
        // 4 GiB is the wasm32 address space; the pooling allocator reserves
        // this much virtual memory per slot.
        if max_memory_mib > 4096 {
            return Err(ConfigError::Invalid(format!(
                "max_memory_mib must be at most 4096 (got {max_memory_mib})"
            )));
        }
        let mut fallbacks = Vec::new();
        for raw in o.fallbacks.unwrap_or_default() {
            let raw = raw.trim();
            if raw.is_empty() {
                continue;
            }
            let url = reqwest::Url::parse(raw).map_err(|e| {
                ConfigError::Invalid(format!("fallback URL {raw:?} is not a URL: {e}"))
            })?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(ConfigError::Invalid(format!(
                    "fallback URL {raw:?} must be http or https"
                )));
            }
            fallbacks.push(url);
        }
        let extra_models = o
            .extra_models
            .unwrap_or_default()
            .iter()
            .filter(|raw| !raw.trim().is_empty())
            .map(|raw| ExtraModel::parse(raw))
            .collect::<Result<Vec<_>, _>>()?;
        let queue_capacity = positive("queue_capacity", o.queue_capacity.unwrap_or(1024))?;
        let max_inputs = positive("max_inputs", o.max_inputs.unwrap_or(256))?;
        if max_inputs > queue_capacity {
            return Err(ConfigError::Invalid(format!(
                "max_inputs ({max_inputs}) must not exceed queue_capacity ({queue_capacity}): \
                 such a request could never be admitted"
            )));
        }
        Ok(Settings {
            listen: o
                .listen
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8790))),
            wasm: o.wasm.unwrap_or_else(default_wasm_path),
            model_dir: o.model_dir.unwrap_or_else(default_model_dir),
            manifest: o.manifest.unwrap_or_else(default_manifest_path),
            variant: o.variant,
            extra_models,
            cache_dir: o.cache_dir.unwrap_or_else(default_cache_dir),
            pool_size,
            max_batch,
            max_wait: Duration::from_millis(o.max_wait_ms.unwrap_or(5)),
            queue_capacity,
            max_inputs,
            max_chars: positive("max_chars", o.max_chars.unwrap_or(8192))?,
            max_body_bytes: positive("max_body_bytes", o.max_body_bytes.unwrap_or(2 << 20))?,
            max_memory_bytes: max_memory_mib << 20,
            deadline: Duration::from_millis(positive(
                "deadline_ms",
                o.deadline_ms.unwrap_or(30_000),
            )?),
            fuel: match o.fuel {
                Some(f) => Some(positive("fuel", f)?),
                None => None,
            },
            retry_after_s: o.retry_after_s.unwrap_or(1).max(1),
            fallbacks,
            fallback_budget: Duration::from_millis(o.fallback_budget_ms.unwrap_or(250)),
            fallback_timeout: Duration::from_millis(positive(
                "fallback_timeout_ms",
                o.fallback_timeout_ms.unwrap_or(10_000),
            )?),
            health_interval: Duration::from_millis(positive(
                "health_interval_ms",
                o.health_interval_ms.unwrap_or(5_000),
            )?),
            breaker_failures: positive("breaker_failures", o.breaker_failures.unwrap_or(3))?,
            breaker_cooldown: Duration::from_millis(o.breaker_cooldown_ms.unwrap_or(10_000)),
            perfmap: o.perfmap.unwrap_or(false),
        })
    }

    /// Defaults for everything, as if no flag, variable or file were given.
    pub fn defaults() -> Settings {
        // Defaults are valid by construction; the test below keeps them so.
        match Settings::resolve(Options::default()) {
            Ok(s) => s,
            Err(e) => unreachable!("built-in defaults are invalid: {e}"),
        }
    }

    /// Epoch ticks that make up the per-call deadline.
    pub fn deadline_ticks(&self) -> u64 {
        let tick = EPOCH_TICK.as_millis().max(1);
        (self.deadline.as_millis().div_ceil(tick)).max(1) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let s = Settings::resolve(Options::default()).expect("defaults");
        assert_eq!(s.listen.to_string(), "127.0.0.1:8790");
        assert!(s.pool_size >= 1);
        assert!(s.fallbacks.is_empty());
        assert_eq!(s.deadline_ticks(), 3000);
        assert!(!s.perfmap, "profiling is opt-in");
    }

    #[test]
    fn flags_override_file() {
        let cli = Options::try_parse_from(["wasm-host", "--pool-size", "3"]).expect("flags");
        let file: Options = toml::from_str(
            "pool_size = 7\nmax_batch = 4\nfallbacks = [\"http://gpu:1\"]\nperfmap = true",
        )
        .expect("toml");
        let s = Settings::resolve(cli.over(file)).expect("valid");
        assert_eq!(s.pool_size, 3);
        assert_eq!(s.max_batch, 4);
        assert_eq!(s.fallbacks.len(), 1);
        assert!(s.perfmap);
    }

    #[test]
    fn invalid_values_are_rejected() {
        for args in [
            vec!["wasm-host", "--pool-size", "0"],
            vec!["wasm-host", "--max-batch", "0"],
            vec!["wasm-host", "--fallback", "ftp://x"],
            vec!["wasm-host", "--fallback", "not a url"],
            vec!["wasm-host", "--max-memory-mib", "5000"],
            vec!["wasm-host", "--max-inputs", "10", "--queue-capacity", "5"],
        ] {
            let o = Options::try_parse_from(&args).expect("parses");
            assert!(
                matches!(Settings::resolve(o), Err(ConfigError::Invalid(_))),
                "{args:?} should be invalid"
            );
        }
    }

    #[test]
    fn extra_models_take_an_optional_folder() {
        let o = Options::try_parse_from(["wasm-host", "--extra-model", "a.json,b.json=/models/b"])
            .expect("flags");
        let s = Settings::resolve(o).expect("valid");
        assert_eq!(
            s.extra_models,
            vec![
                ExtraModel {
                    manifest: "a.json".into(),
                    model_dir: None
                },
                ExtraModel {
                    manifest: "b.json".into(),
                    model_dir: Some("/models/b".into())
                },
            ]
        );
        for bad in ["=dir", "a.json="] {
            let o = Options::try_parse_from(["wasm-host", "--extra-model", bad]).expect("parses");
            assert!(
                matches!(Settings::resolve(o), Err(ConfigError::Invalid(_))),
                "{bad:?} should be invalid"
            );
        }
    }

    #[test]
    fn unknown_file_keys_are_rejected() {
        let r: Result<Options, _> = toml::from_str("pool_sise = 2");
        assert!(r.is_err());
    }
}
