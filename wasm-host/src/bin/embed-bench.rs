//! `embed-bench`: throughput and latency of embed-wasm under wasm-host against
//! tract native and onnxruntime, on the same model file, texts and thread
//! count (one), plus cold start and instance start times.
//!
//! (a) is measured in-process through `Pool::call` — the exact per-call path
//! of the server (fresh instance from the `InstancePre`, request framing,
//! guest inference, result decoding), without HTTP and queueing.
//! Run: `cargo run -p wasm-host --release --features bench --bin embed-bench`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use serde_json::Value;
use wasm_host::config::{Options, Settings};
use wasm_host::embeddings::model::{self, Manifest};
use wasm_host::embeddings::pool::Pool;

/// Benchmark embed-wasm under wasm-host vs tract native vs onnxruntime.
#[derive(Parser)]
struct Args {
    /// Seconds to spend per (engine, length, batch) cell, at least 3 calls.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Batch sizes to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    batches: Vec<usize>,
    /// Python with onnxruntime, tokenizers, numpy.
    #[arg(long, default_value = "/root/.cache/memshadow/venv/bin/python")]
    python: PathBuf,
    /// Source of realistic texts (BEIR SciFact corpus).
    #[arg(long, default_value = "/work/shared/data/scifact/corpus.jsonl")]
    corpus: PathBuf,
    /// Also measure a start with an empty cache (wizer snapshot + compile).
    #[arg(long)]
    cold_cache: bool,
    /// Measure only (a), the pool: a quick loop while tuning the guest.
    #[arg(long)]
    pool_only: bool,
    #[command(flatten)]
    pool: Options,
}

struct Stat {
    calls: usize,
    texts_per_s: f64,
    p50_ms: f64,
    p95_ms: f64,
}

fn measure(
    seconds: f64,
    batch: usize,
    mut f: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Stat> {
    f()?; // warm-up
    let mut lat = Vec::new();
    let start = Instant::now();
    while (start.elapsed().as_secs_f64() < seconds || lat.len() < 3) && lat.len() < 200 {
        let t = Instant::now();
        f()?;
        lat.push(t.elapsed().as_secs_f64());
    }
    lat.sort_by(f64::total_cmp);
    let total: f64 = lat.iter().sum();
    Ok(Stat {
        calls: lat.len(),
        texts_per_s: (batch * lat.len()) as f64 / total,
        p50_ms: 1e3 * lat[lat.len() / 2],
        p95_ms: 1e3 * lat[((lat.len() as f64 * 0.95) as usize).min(lat.len() - 1)],
    })
}

/// Short texts ≈16 tokens (titles), long ≈128 tokens (abstract prefixes),
/// token counts by the guest's own tokenizer.
fn pick_texts(
    corpus: &Path,
    tok: &embed_wasm::tokenizer::Tokenizer,
) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let text =
        std::fs::read_to_string(corpus).with_context(|| format!("reading {}", corpus.display()))?;
    let (mut short, mut long) = (Vec::new(), Vec::new());
    for line in text.lines() {
        let v: Value = serde_json::from_str(line)?;
        let title = v["title"].as_str().unwrap_or_default();
        if short.len() < 64 && (15..=17).contains(&tok.encode(title).ids.len()) {
            short.push(title.to_owned());
        }
        if long.len() < 64 {
            let words: Vec<&str> = v["text"]
                .as_str()
                .unwrap_or_default()
                .split_whitespace()
                .collect();
            let mut prefix = String::new();
            for w in words {
                if !prefix.is_empty() {
                    prefix.push(' ');
                }
                prefix.push_str(w);
                let n = tok.encode(&prefix).ids.len();
                if n >= 126 {
                    if n <= 130 {
                        long.push(prefix.clone());
                    }
                    break;
                }
            }
        }
        if short.len() >= 64 && long.len() >= 64 {
            break;
        }
    }
    if short.len() < 32 || long.len() < 32 {
        bail!(
            "not enough texts of the right length in {}",
            corpus.display()
        );
    }
    Ok((short, long))
}

fn take(pool: &[String], n: usize) -> Vec<String> {
    (0..n).map(|i| pool[i % pool.len()].clone()).collect()
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Process start → first 200 from /v1/embeddings.
fn cold_start(bin: &Path, settings: &Settings, cache_dir: &Path) -> anyhow::Result<Duration> {
    let port = free_port()?;
    let started = Instant::now();
    let mut child = std::process::Command::new(bin)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--wasm")
        .arg(&settings.wasm)
        .arg("--manifest")
        .arg(&settings.manifest)
        .arg("--model-dir")
        .arg(&settings.model_dir)
        .arg("--cache-dir")
        .arg(cache_dir)
        .env("RUST_LOG", "warn")
        .stderr(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let result = loop {
        if started.elapsed() > Duration::from_secs(600) {
            break Err(anyhow::anyhow!("no answer within 600 s"));
        }
        if let Ok(Some(status)) = child.try_wait() {
            break Err(anyhow::anyhow!("wasm-host exited early: {status}"));
        }
        if probe::answers(port) {
            break Ok(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// A tiny blocking HTTP/1.1 probe, so the timing does not include building an
/// async runtime in this process.
mod probe {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    pub fn answers(port: u16) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
            return false;
        };
        let body = br#"{"input":"cold start probe"}"#;
        let head = format!(
            "POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        if s.write_all(head.as_bytes()).is_err() || s.write_all(body).is_err() {
            return false;
        }
        let mut resp = Vec::new();
        let _ = s.read_to_end(&mut resp);
        resp.starts_with(b"HTTP/1.1 200")
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let settings = Settings::resolve(Options {
        pool_size: Some(1),
        ..args.pool.clone()
    })?;
    let manifest = Manifest::load(&settings.manifest)?;
    let info = model::prepare(
        &manifest,
        settings.variant.as_deref(),
        &settings.model_dir,
        &settings.cache_dir,
    )?;
    let model_path = info.staged_dir.join("model.onnx");
    let tok_path = info.staged_dir.join("tokenizer.json");
    println!(
        "model {} ({}), {} threads per engine, {:.0} s per cell; texts from {}",
        info.id,
        info.variant,
        1,
        args.seconds,
        args.corpus.display()
    );

    // (b) tract native, also the tokenizer used to pick texts.
    let native = embed_wasm::model::Embedder::load_owned(
        std::fs::read(&model_path)?,
        embed_wasm::ModelFiles {
            tokenizer_json: &std::fs::read(&tok_path)?,
            max_tokens: info.max_tokens,
        },
    )
    .map_err(|e| anyhow::anyhow!("tract native load: {e}"))?;
    let (short, long) = pick_texts(&args.corpus, native.tokenizer())?;

    // (a) the pool, one instance: the per-core figure.
    let pool = Pool::start(&settings, &info)?;
    let mut rows: Vec<(&str, &str, usize, Stat)> = Vec::new();
    for (len, texts) in [("short", &short), ("long", &long)] {
        for &b in &args.batches {
            let batch = take(texts, b);
            let s = measure(args.seconds, b, || {
                pool.call(&batch, None)
                    .map(|_| ())
                    .map_err(|e| anyhow::anyhow!("{e}"))
            })?;
            eprint!(".");
            rows.push(("wasm-host pool", len, b, s));
            if args.pool_only {
                continue;
            }
            let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
            let s = measure(args.seconds, b, || {
                native
                    .embed(&refs)
                    .map(|_| ())
                    .map_err(|e| anyhow::anyhow!("{e}"))
            })?;
            eprint!(".");
            rows.push(("tract native", len, b, s));
        }
    }

    if args.pool_only {
        for (engine, len, b, s) in &rows {
            println!(
                "{engine} {len} batch {b}: {:.1} texts/s, p50 {:.1} ms",
                s.texts_per_s, s.p50_ms
            );
        }
        return Ok(());
    }

    // (c) onnxruntime, same file, one thread.
    let cases = std::env::temp_dir().join(format!("embed-bench-cases-{}.json", std::process::id()));
    std::fs::write(
        &cases,
        serde_json::to_vec(&serde_json::json!({
            "short": short, "long": long, "batches": args.batches, "max_tokens": info.max_tokens
        }))?,
    )?;
    let script = wasm_host::config::crate_dir().join("bench/ort_bench.py");
    let out = std::process::Command::new(&args.python)
        .arg(&script)
        .arg(&model_path)
        .arg(&tok_path)
        .arg(&cases)
        .arg("1")
        .arg(args.seconds.to_string())
        .output()
        .with_context(|| format!("running {} {}", args.python.display(), script.display()))?;
    let _ = std::fs::remove_file(&cases);
    if !out.status.success() {
        bail!(
            "ort_bench.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let ort: Value = serde_json::from_slice(&out.stdout)?;
    for r in ort["results"].as_array().context("ort results")? {
        let len = if r["length"] == "short" {
            "short"
        } else {
            "long"
        };
        rows.push((
            "onnxruntime",
            len,
            r["batch"].as_u64().unwrap_or(0) as usize,
            Stat {
                calls: r["calls"].as_u64().unwrap_or(0) as usize,
                texts_per_s: r["texts_per_s"].as_f64().unwrap_or(0.0),
                p50_ms: r["p50_ms"].as_f64().unwrap_or(0.0),
                p95_ms: r["p95_ms"].as_f64().unwrap_or(0.0),
            },
        ));
    }
    eprintln!();

    println!(
        "\n{:<16} {:<6} {:>5} {:>6} {:>10} {:>10} {:>10}",
        "engine", "length", "batch", "calls", "texts/s", "p50 ms", "p95 ms"
    );
    for (engine, len, b, s) in &rows {
        println!(
            "{engine:<16} {len:<6} {b:>5} {:>6} {:>10.1} {:>10.2} {:>10.2}",
            s.calls, s.texts_per_s, s.p50_ms, s.p95_ms
        );
    }
    println!(
        "\nratio per core, texts/s: wasm-host pool / onnxruntime (and tract native / onnxruntime)"
    );
    for (len, _) in [("short", 0), ("long", 0)] {
        for &b in &args.batches {
            let get = |e: &str| {
                rows.iter()
                    .find(|(en, l, bb, _)| *en == e && *l == len && *bb == b)
                    .map_or(f64::NAN, |r| r.3.texts_per_s)
            };
            let ort = get("onnxruntime");
            println!(
                "  {len:<5} batch {b:>2}: {:.2}  ({:.2})",
                get("wasm-host pool") / ort,
                get("tract native") / ort
            );
        }
    }

    // Instance start from the InstancePre (fresh store + CoW instance).
    let mut inst: Vec<f64> = (0..500)
        .map(|_| pool.time_instantiation().map(|d| d.as_secs_f64() * 1e6))
        .collect::<anyhow::Result<_>>()?;
    inst.sort_by(f64::total_cmp);
    println!(
        "\ninstance start from InstancePre (store + instance, 500 runs): p50 {:.1} µs, p95 {:.1} µs",
        inst[inst.len() / 2],
        inst[inst.len() * 95 / 100]
    );
    println!(
        "pool start in this process: {:.3} s (compiled artifact from cache: {})",
        pool.load.seconds, pool.load.compiled_cached
    );
    drop(pool);

    let bin = std::env::current_exe()?
        .parent()
        .context("exe dir")?
        .join("wasm-host");
    if bin.is_file() {
        let d = cold_start(&bin, &settings, &settings.cache_dir)?;
        println!(
            "cold start, process start → first answer (warm disk cache): {:.0} ms",
            d.as_secs_f64() * 1e3
        );
        if args.cold_cache {
            let empty =
                std::env::temp_dir().join(format!("embed-bench-cache-{}", std::process::id()));
            let d = cold_start(&bin, &settings, &empty)?;
            let _ = std::fs::remove_dir_all(&empty);
            println!(
                "cold start with an empty cache (wizer snapshot + compile): {:.1} s",
                d.as_secs_f64()
            );
        }
    } else {
        println!(
            "cold start: {} not built (cargo build -p wasm-host --release)",
            bin.display()
        );
    }
    std::io::stdout().flush()?;
    Ok(())
}
