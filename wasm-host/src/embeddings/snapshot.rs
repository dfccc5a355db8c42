//! Pre-initialisation of embed-wasm with wasmtime-wizer, and the on-disk cache
//! of the snapshot and its compiled artifact.
//!
//! Loading the model inside the guest costs ≈0.4 s and ≈210 MiB, so it must
//! never happen per call. We run `_initialize` + `ms_init` once in a
//! throw-away instance with `/model` preopened, and let wizer rewrite the
//! module so its data segments *are* the initialised heap. Instances of the
//! rewritten module start with the model loaded, by copy-on-write.
//!
//! We drive wizer's two halves (`instrument`, `snapshot`) ourselves instead of
//! `Wizer::run`, because `run` requires an init function of type `() -> ()`
//! while the ABI's `ms_init` returns a status we must check.
//!
//! Cache layout (all files written atomically, tmp + rename):
//! - `snapshot-<K1>.wasm`, K1 = sha256(format ‖ wasmtime version ‖ module ‖
//!   model ‖ tokenizer): independent of engine settings.
//! - `snapshot-<K2>.cwasm`, K2 = sha256(K1 ‖ engine compatibility hash), the
//!   compatibility hash covering compiler and tunables (fuel, epochs, …).

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::bail;
use sha2::{Digest, Sha256};
use wasmtime::error::Context as _;
use wasmtime::{Engine, Instance, Linker, Module, Store};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};
use wasmtime_wizer::{InstanceState, SnapshotVal, ValType, Wizer};

use super::model::{ModelInfo, temp_sibling};

/// Bump when the snapshot procedure changes, to invalidate old caches.
const FORMAT: &str = "memshadow-wasm-host-snapshot-v1";
const WASMTIME_VERSION: &str = "48.0.8";
/// The guest ABI version this host speaks (embed-wasm/ABI.md).
pub const ABI_VERSION: u32 = 1;

/// What start-up learned, for logs and `/health`.
#[derive(Debug, Clone)]
pub struct LoadReport {
    pub snapshot_cached: bool,
    pub compiled_cached: bool,
    pub cwasm_path: PathBuf,
    pub seconds: f64,
}

struct InitState {
    wasi: WasiP1Ctx,
}

/// Wizer reads globals and memory through this view of our init instance.
struct InitView<'a> {
    store: &'a mut Store<InitState>,
    instance: Instance,
}

impl InstanceState for InitView<'_> {
    async fn global_get(&mut self, name: &str, _type_hint: ValType) -> SnapshotVal {
        // Wizer only asks for globals its own instrumentation exported; a
        // missing one is a wizer bug, for which its API leaves no error path.
        let Some(global) = self.instance.get_global(&mut *self.store, name) else {
            panic!("wizer asked for unknown global {name}");
        };
        match global.get(&mut *self.store) {
            wasmtime::Val::I32(x) => SnapshotVal::I32(x),
            wasmtime::Val::I64(x) => SnapshotVal::I64(x),
            wasmtime::Val::F32(x) => SnapshotVal::F32(x),
            wasmtime::Val::F64(x) => SnapshotVal::F64(x),
            wasmtime::Val::V128(x) => SnapshotVal::V128(x.as_u128()),
            other => panic!("global {name} has a type wizer cannot snapshot: {other:?}"),
        }
    }

    async fn memory_contents(&mut self, name: &str, contents: impl FnOnce(&[u8]) + Send) {
        let Some(memory) = self.instance.get_memory(&mut *self.store, name) else {
            panic!("wizer asked for unknown memory {name}");
        };
        contents(memory.data(&*self.store))
    }
}

fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        // Length-prefixed so that no two part lists hash alike.
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    hex::encode(h.finalize())
}

fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = temp_sibling(path);
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

/// Runs `_initialize` + `ms_init` and returns the pre-initialised module bytes.
pub fn build_snapshot(wasm: &[u8], model: &ModelInfo) -> anyhow::Result<Vec<u8>> {
    let wizer = Wizer::new();
    let (cx, instrumented) = wizer
        .instrument(wasm)
        .context("wizer cannot instrument the embed-wasm module")?;
    // A plain engine (on-demand allocation, no limits): loading the model
    // peaks well above what a serving instance needs.
    let engine = Engine::new(&wasmtime::Config::new())?;
    let module =
        Module::new(&engine, &instrumented).context("compiling the instrumented module")?;
    let mut linker: Linker<InitState> = Linker::new(&engine);
    wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |s| &mut s.wasi)?;
    // The guest's truncation comes from the manifest (see embed-wasm/ABI.md).
    let wasi = WasiCtxBuilder::new()
        .inherit_stderr()
        .env("MEMSHADOW_MAX_TOKENS", model.max_tokens.to_string())
        .preopened_dir(&model.staged_dir, "/model", FsPerms::ReadOnly)?
        .build_p1();
    let mut store = Store::new(&engine, InitState { wasi });
    // The guest reads the model file in one `fd_read`, and wasmtime's WASI
    // refuses a call that moves more than its hostcall fuel (128 MiB by
    // default) with ENOMEM: all-mpnet-base-v2 is 438 MB. Our own module at
    // start-up, not a request, so the bound is the 4 GiB address space.
    store.set_hostcall_fuel(1 << 32);
    let instance = linker.instantiate(&mut store, &module)?;

    if let Ok(init) = instance.get_typed_func::<(), ()>(&mut store, "_initialize") {
        init.call(&mut store, ())
            .context("the guest trapped in _initialize")?;
    }
    let abi = instance
        .get_typed_func::<(), u32>(&mut store, "ms_abi_version")
        .context("the module does not export ms_abi_version")?
        .call(&mut store, ())?;
    if abi != ABI_VERSION {
        bail!("embed-wasm speaks ABI version {abi}, this host speaks {ABI_VERSION}");
    }
    let status = instance
        .get_typed_func::<(), u32>(&mut store, "ms_init")?
        .call(&mut store, ())
        .context("the guest trapped in ms_init")?;
    if status != 0 {
        bail!(
            "ms_init failed with status {status} (5 = model_load_failed; see the guest's stderr above)"
        );
    }
    // What the guest loaded must be what the manifest describes.
    for (export, expected) in [("ms_dim", model.dim), ("ms_max_tokens", model.max_tokens)] {
        let got = instance
            .get_typed_func::<(), u32>(&mut store, export)?
            .call(&mut store, ())?;
        if got as usize != expected {
            bail!("model_mismatch: the guest's {export} is {got}, the manifest says {expected}");
        }
    }
    let snapshot = futures::executor::block_on(wizer.snapshot(
        &cx,
        &mut InitView {
            store: &mut store,
            instance,
        },
    ))?;
    Ok(snapshot)
}

/// Returns the compiled, pre-initialised module for `engine`, from the cache
/// when possible.
pub fn load_or_build(
    engine: &Engine,
    wasm_path: &Path,
    model: &ModelInfo,
    cache_dir: &Path,
) -> anyhow::Result<(Module, LoadReport)> {
    // Pools started concurrently in one process (tests) build the snapshot
    // once: the others wait here and then find it in the cache.
    static BUILD: Mutex<()> = Mutex::new(());
    let _building = BUILD.lock().unwrap_or_else(|p| p.into_inner());
    let started = Instant::now();
    let wasm = std::fs::read(wasm_path).with_context(|| {
        format!(
            "cannot read the embed-wasm module {} (build it with \
             `cargo build -p embed-wasm --release --target wasm32-wasip1` or pass --wasm)",
            wasm_path.display()
        )
    })?;
    std::fs::create_dir_all(cache_dir)
        .with_context(|| format!("cannot create cache dir {}", cache_dir.display()))?;

    let k1 = sha256_hex(&[
        FORMAT.as_bytes(),
        WASMTIME_VERSION.as_bytes(),
        &Sha256::digest(&wasm),
        model.model_sha256.as_bytes(),
        model.tokenizer_sha256.as_bytes(),
        model.max_tokens.to_string().as_bytes(),
    ]);
    let mut compat = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut compat);
    let k2 = sha256_hex(&[k1.as_bytes(), &compat.finish().to_le_bytes()]);
    let snap_path = cache_dir.join(format!("snapshot-{}.wasm", &k1[..32]));
    let cwasm_path = cache_dir.join(format!("snapshot-{}.cwasm", &k2[..32]));

    if cwasm_path.exists() {
        // SAFETY: the file is one this host wrote into its own cache
        // directory; wasmtime still checks the engine/version header and
        // refuses an incompatible artifact, in which case we rebuild.
        match unsafe { Module::deserialize_file(engine, &cwasm_path) } {
            Ok(module) => {
                return Ok((
                    module,
                    LoadReport {
                        snapshot_cached: true,
                        compiled_cached: true,
                        cwasm_path,
                        seconds: started.elapsed().as_secs_f64(),
                    },
                ));
            }
            Err(e) => tracing::warn!(error = %e, "ignoring unusable compiled cache entry"),
        }
    }

    let (snapshot, snapshot_cached) = match std::fs::read(&snap_path) {
        Ok(bytes) => (bytes, true),
        Err(_) => {
            tracing::info!("pre-initialising embed-wasm (wizer); cached for later starts");
            let bytes = build_snapshot(&wasm, model)?;
            write_atomically(&snap_path, &bytes)?;
            (bytes, false)
        }
    };
    tracing::info!(bytes = snapshot.len(), "compiling the snapshot");
    let module = Module::new(engine, &snapshot).context("compiling the snapshot")?;
    write_atomically(&cwasm_path, &module.serialize()?)?;
    Ok((
        module,
        LoadReport {
            snapshot_cached,
            compiled_cached: false,
            cwasm_path,
            seconds: started.elapsed().as_secs_f64(),
        },
    ))
}
