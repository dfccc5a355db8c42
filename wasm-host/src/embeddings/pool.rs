//! The pool of embed-wasm instances: one `Engine`, one `InstancePre` of the
//! pre-initialised module, a fresh `Store` + instance per guest call.
//!
//! Instances come from wasmtime's pooling allocator with copy-on-write memory
//! initialisation, so a new instance maps the snapshot's ≈233 MiB heap instead
//! of copying it (tens of µs), and nothing a call does survives it: a trap, a
//! corrupted heap or a leak dies with its instance. A semaphore sized to the
//! pool bounds concurrent calls; an epoch ticker thread enforces per-call
//! deadlines, `StoreLimits` the memory, optional fuel the instruction count.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, InstancePre, Linker, Module, ModuleExport,
    PoolingAllocationConfig, Store, StoreLimits, StoreLimitsBuilder, Trap,
};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p1::WasiP1Ctx;

use super::model::ModelInfo;
use super::snapshot::{self, LoadReport};
use crate::config::{EPOCH_TICK, Settings};

/// Per-call store data.
pub struct GuestState {
    wasi: WasiP1Ctx,
    limits: StoreLimits,
}

/// Why a guest call failed. All are infrastructure faults from the caller's
/// point of view except that a trap may be caused by one input of a batch.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The guest trapped (deadline, fuel, memory limit, unreachable, …).
    #[error("guest trapped ({kind}): {detail}")]
    Trap { kind: &'static str, detail: String },
    /// The guest answered with a non-zero status (embed-wasm/ABI.md).
    #[error("guest status {status}: {message}")]
    Guest { status: u32, message: String },
    /// The host could not set up the call (instantiation, bad result framing).
    #[error("host error: {0}")]
    Host(String),
}

/// Result of one guest call.
#[derive(Debug, Clone)]
pub struct Embedded {
    pub vectors: Vec<Vec<f32>>,
    pub token_counts: Vec<u32>,
}

struct Exports {
    memory: ModuleExport,
    alloc: ModuleExport,
    embed: ModuleExport,
}

pub struct Pool {
    engine: Engine,
    pre: InstancePre<GuestState>,
    exports: Exports,
    size: usize,
    dim: usize,
    max_memory_bytes: usize,
    deadline_ticks: u64,
    fuel: Option<u64>,
    /// One permit per instance slot that may run a call at a time.
    pub semaphore: Arc<Semaphore>,
    stop_ticker: Arc<AtomicBool>,
    pub load: LoadReport,
}

/// Extra instance slots beyond the pool size, for the start-up self-check and
/// instantiation timing, which run outside the semaphore.
const SPARE_SLOTS: usize = 2;

fn engine_config(settings: &Settings) -> Config {
    let mut cfg = Config::new();
    cfg.epoch_interruption(true);
    cfg.consume_fuel(settings.fuel.is_some());
    let slots = (settings.pool_size + SPARE_SLOTS) as u32;
    let mut pooling = PoolingAllocationConfig::new();
    pooling
        .total_core_instances(slots)
        .total_memories(slots)
        .total_tables(slots)
        .max_memory_size(settings.max_memory_bytes)
        // Rust modules with many indirect-call targets (tract's kernels)
        // exceed the small default table; tables cost only address space.
        .table_elements(200_000);
    cfg.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    cfg.memory_init_cow(true);
    if settings.perfmap {
        cfg.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    cfg
}

fn module_export(module: &Module, name: &str) -> anyhow::Result<ModuleExport> {
    module
        .get_export_index(name)
        .ok_or_else(|| anyhow::anyhow!("the embed-wasm snapshot does not export `{name}`"))
}

impl Pool {
    /// Builds the engine, loads (or creates and caches) the snapshot, and
    /// checks one real call. Blocking: call it outside async code.
    pub fn start(settings: &Settings, model: &ModelInfo) -> anyhow::Result<Pool> {
        let engine = Engine::new(&engine_config(settings))?;
        let (module, load) =
            snapshot::load_or_build(&engine, &settings.wasm, model, &settings.cache_dir)?;
        let memory_min = module.exports().find_map(|e| match e.ty() {
            wasmtime::ExternType::Memory(m) if e.name() == "memory" => Some(m.minimum()),
            _ => None,
        });
        let memory_min_bytes = memory_min.unwrap_or(0) * 65536;
        if memory_min_bytes > settings.max_memory_bytes as u64 {
            anyhow::bail!(
                "the snapshot starts with {} MiB of linear memory, above max_memory_mib = {} MiB",
                memory_min_bytes >> 20,
                settings.max_memory_bytes >> 20
            );
        }
        let mut linker: Linker<GuestState> = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |s| &mut s.wasi)?;
        let pre = linker.instantiate_pre(&module)?;
        let exports = Exports {
            memory: module_export(&module, "memory")?,
            alloc: module_export(&module, "ms_alloc")?,
            embed: module_export(&module, "ms_embed")?,
        };

        let stop_ticker = Arc::new(AtomicBool::new(false));
        {
            let engine = engine.weak();
            let stop = stop_ticker.clone();
            std::thread::Builder::new()
                .name("epoch-ticker".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        match engine.upgrade() {
                            Some(e) => e.increment_epoch(),
                            None => break,
                        }
                    }
                })?;
        }
        let pool = Pool {
            engine,
            pre,
            exports,
            size: settings.pool_size,
            dim: model.dim,
            max_memory_bytes: settings.max_memory_bytes,
            deadline_ticks: settings.deadline_ticks(),
            fuel: settings.fuel,
            semaphore: Arc::new(Semaphore::new(settings.pool_size)),
            stop_ticker,
            load,
        };
        // Self-check: a snapshot that cannot embed must stop start-up, not
        // fail every request later.
        let probe = pool
            .call(&["memshadow start-up probe".to_owned()], None)
            .map_err(|e| anyhow::anyhow!("the snapshot failed its first call: {e}"))?;
        if probe.vectors.first().map(Vec::len) != Some(model.dim) {
            anyhow::bail!(
                "model_mismatch: the guest's vectors do not have dimension {}",
                model.dim
            );
        }
        Ok(pool)
    }

    pub fn size(&self) -> usize {
        self.size
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    fn new_store(&self, deadline_ticks: u64) -> Result<Store<GuestState>, CallError> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.max_memory_bytes)
            .instances(1)
            .memories(1)
            .tables(1)
            // Turn a refused `memory.grow` into a trap right away rather than
            // letting the guest's allocator abort somewhere less obvious.
            .trap_on_grow_failure(true)
            .build();
        // No preopens, no stdio: a serving instance touches nothing outside.
        let wasi = WasiCtxBuilder::new().build_p1();
        let mut store = Store::new(&self.engine, GuestState { wasi, limits });
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(deadline_ticks);
        store.epoch_deadline_trap();
        if let Some(fuel) = self.fuel {
            store
                .set_fuel(fuel)
                .map_err(|e| CallError::Host(e.to_string()))?;
        }
        Ok(store)
    }

    /// Time to create a store and an instance from the `InstancePre`, for the
    /// benchmark.
    pub fn time_instantiation(&self) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let mut store = self.new_store(self.deadline_ticks)?;
        let _instance = self.pre.instantiate(&mut store)?;
        Ok(started.elapsed())
    }

    /// One guest call in a fresh instance. Blocking (runs wasm); callers hold
    /// a semaphore permit. `deadline` overrides the configured one (tests).
    pub fn call(
        &self,
        texts: &[String],
        deadline: Option<Duration>,
    ) -> Result<Embedded, CallError> {
        let ticks = deadline.map_or(self.deadline_ticks, |d| {
            (d.as_millis() / EPOCH_TICK.as_millis().max(1)) as u64
        });
        let mut store = self.new_store(ticks)?;
        let instance = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| CallError::Host(format!("instantiation failed: {e:#}")))?;
        let host = |what: &str| CallError::Host(format!("snapshot lacks `{what}`"));
        let memory = instance
            .get_module_export(&mut store, &self.exports.memory)
            .and_then(|e| e.into_memory())
            .ok_or_else(|| host("memory"))?;
        let alloc = instance
            .get_module_export(&mut store, &self.exports.alloc)
            .and_then(|e| e.into_func())
            .ok_or_else(|| host("ms_alloc"))?
            .typed::<u32, u32>(&store)
            .map_err(|e| CallError::Host(e.to_string()))?;
        let embed = instance
            .get_module_export(&mut store, &self.exports.embed)
            .and_then(|e| e.into_func())
            .ok_or_else(|| host("ms_embed"))?
            .typed::<(u32, u32), u32>(&store)
            .map_err(|e| CallError::Host(e.to_string()))?;

        let request = encode_request(texts)?;
        let len = u32::try_from(request.len())
            .map_err(|_| CallError::Host("request exceeds 4 GiB".into()))?;
        let ptr = alloc.call(&mut store, len).map_err(trap)?;
        if ptr == 0 {
            return Err(CallError::Guest {
                status: 0,
                message: "ms_alloc could not allocate the request".into(),
            });
        }
        memory
            .write(&mut store, ptr as usize, &request)
            .map_err(|e| CallError::Host(format!("writing the request: {e}")))?;
        let result = embed.call(&mut store, (ptr, len)).map_err(trap)?;
        decode_result(memory.data(&store), result as usize, texts.len(), self.dim)
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

fn trap(e: wasmtime::Error) -> CallError {
    let kind = match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => "deadline",
        Some(Trap::OutOfFuel) => "fuel",
        Some(Trap::StackOverflow) => "stack_overflow",
        Some(Trap::MemoryOutOfBounds) => "memory_out_of_bounds",
        Some(Trap::UnreachableCodeReached) => "unreachable",
        Some(_) => "other",
        // `trap_on_grow_failure` reports a refused grow as a plain error.
        None if format!("{e:#}").contains("grow") => "memory_limit",
        None => "other",
    };
    CallError::Trap {
        kind,
        detail: format!("{e:#}"),
    }
}

/// `u32 count, count × { u32 len, bytes }`, little-endian (ABI.md).
pub fn encode_request(texts: &[String]) -> Result<Vec<u8>, CallError> {
    let total: usize = 4 + texts.iter().map(|t| 4 + t.len()).sum::<usize>();
    let mut buf = Vec::with_capacity(total);
    let count = u32::try_from(texts.len()).map_err(|_| CallError::Host("too many texts".into()))?;
    buf.extend_from_slice(&count.to_le_bytes());
    for t in texts {
        let n = u32::try_from(t.len()).map_err(|_| CallError::Host("text too long".into()))?;
        buf.extend_from_slice(&n.to_le_bytes());
        buf.extend_from_slice(t.as_bytes());
    }
    Ok(buf)
}

fn read_u32(mem: &[u8], at: usize) -> Result<u32, CallError> {
    mem.get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or_else(|| CallError::Host(format!("result framing: offset {at} outside memory")))
}

/// Parses the result buffer at `at`, checking every length against memory.
pub fn decode_result(
    mem: &[u8],
    at: usize,
    expected_count: usize,
    expected_dim: usize,
) -> Result<Embedded, CallError> {
    let status = read_u32(mem, at)?;
    if status != 0 {
        let len = read_u32(mem, at + 4)? as usize;
        let message = mem
            .get(at + 8..at + 8 + len)
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_else(|| "(unreadable message)".into());
        return Err(CallError::Guest { status, message });
    }
    let count = read_u32(mem, at + 4)? as usize;
    let dim = read_u32(mem, at + 8)? as usize;
    if count != expected_count || dim != expected_dim {
        return Err(CallError::Host(format!(
            "result framing: got {count}×{dim}, expected {expected_count}×{expected_dim}"
        )));
    }
    let tokens_at = at + 12;
    let vectors_at = tokens_at + 4 * count;
    let end = vectors_at + 4 * count * dim;
    let bytes = mem
        .get(tokens_at..end)
        .ok_or_else(|| CallError::Host("result framing: vectors outside memory".into()))?;
    let (tok_bytes, vec_bytes) = bytes.split_at(4 * count);
    let token_counts = tok_bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let vectors = vec_bytes
        .chunks_exact(4 * dim)
        .map(|row| {
            row.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        })
        .collect();
    Ok(Embedded {
        vectors,
        token_counts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_framing_is_length_prefixed() {
        let buf = encode_request(&["ab".into(), "\u{e9}".into()]).expect("encode");
        assert_eq!(
            buf,
            [2, 0, 0, 0, 2, 0, 0, 0, b'a', b'b', 2, 0, 0, 0, 0xc3, 0xa9]
        );
    }

    fn result(status: u32, body: &[u32]) -> Vec<u8> {
        let mut m = vec![0u8; 8];
        m.extend_from_slice(&status.to_le_bytes());
        for w in body {
            m.extend_from_slice(&w.to_le_bytes());
        }
        m
    }

    #[test]
    fn decodes_ok_results() {
        let one = 1.0f32.to_bits();
        let half = 0.5f32.to_bits();
        let mem = result(0, &[2, 2, 3, 4, one, 0, half, half]);
        let e = decode_result(&mem, 8, 2, 2).expect("ok");
        assert_eq!(e.token_counts, vec![3, 4]);
        assert_eq!(e.vectors, vec![vec![1.0, 0.0], vec![0.5, 0.5]]);
    }

    #[test]
    fn rejects_truncated_or_mismatched_results() {
        let mem = result(0, &[2, 2, 3, 4, 0]);
        assert!(matches!(
            decode_result(&mem, 8, 2, 2),
            Err(CallError::Host(_))
        ));
        let mem = result(0, &[1, 2, 3, 0, 0]);
        assert!(matches!(
            decode_result(&mem, 8, 2, 2),
            Err(CallError::Host(_))
        ));
        assert!(matches!(
            decode_result(&mem, 1 << 20, 1, 2),
            Err(CallError::Host(_))
        ));
    }

    #[test]
    fn surfaces_guest_status_messages() {
        let mut mem = result(4, &[3]);
        mem.extend_from_slice(b"bad");
        match decode_result(&mem, 8, 1, 2) {
            Err(CallError::Guest { status, message }) => {
                assert_eq!(status, 4);
                assert_eq!(message, "bad");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
