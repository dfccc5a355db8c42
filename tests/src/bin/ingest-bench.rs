//! Ingest-to-searchable benchmark against a running stack (`scripts/start.sh`
//! or `scripts/stack.sh up`): prints, from one run,
//!
//! 1. the pool's raw throughput on the very texts imported (direct
//!    `POST /v1/embeddings`, batches of 32, two requests in flight);
//! 2. for each size N: the time from the first `POST /memory/batch` (batches
//!    of 100) to the last memory `ready`, with no manual trigger (the
//!    Worker's queue consumer and the stack's timer do the work), and its
//!    throughput as a share of the pool's raw throughput. Progress is read
//!    from Postgres (one indexed count per second as the superuser), not
//!    through the API: listing 10,000 memories every poll took enough of
//!    the 2 cores to slow the pipeline it measured. Once all are ready, one
//!    listing through the API confirms it;
//! 3. the time from a single ingest to the memory being found by retrieve;
//! 4. for the raw run and each import, where the machine's CPU went (the
//!    pool, Postgres, workerd, node; read from /proc) and the pool's CPU
//!    per text: why the pipeline reaches the share of raw that it does.
//!
//! It asserts nothing; with `--write PATH` it replaces the
//! `## Ingest to searchable` section of that Markdown file (BENCHMARKS.md).
//!
//! ```sh
//! cargo run --release -p memshadow-e2e --bin ingest-bench -- --sizes 1000,10000 --write BENCHMARKS.md
//! ```

use std::time::{Duration, Instant};

use memshadow_e2e::cpu::{self, CpuSample};
use memshadow_e2e::database::{admin_url, run_sql};
use memshadow_e2e::{Client, api_url, embedding_statuses, pool_url, synthetic_memory};
use serde_json::{Value, json};

const SECTION: &str = "## Ingest to searchable";

struct Args {
    sizes: Vec<usize>,
    write: Option<String>,
}

fn args() -> Args {
    let mut a = Args {
        sizes: vec![1000],
        write: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--sizes" => {
                a.sizes = it
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .filter_map(|s| s.trim().parse().ok())
                    .collect();
            }
            "--write" => a.write = it.next(),
            other => {
                eprintln!(
                    "usage: ingest-bench [--sizes 1000,10000] [--write BENCHMARKS.md] (got {other:?})"
                );
                std::process::exit(2);
            }
        }
    }
    a
}

/// Texts per second the pool embeds `texts` at, called directly.
fn pool_throughput(texts: &[String]) -> f64 {
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .expect("client");
    let url = format!("{}/v1/embeddings", pool_url());
    let chunks: Vec<&[String]> = texts.chunks(32).collect();
    let started = Instant::now();
    std::thread::scope(|s| {
        for lane in 0..2 {
            let (http, url, chunks) = (&http, &url, &chunks);
            s.spawn(move || {
                for chunk in chunks.iter().skip(lane).step_by(2) {
                    let r = http
                        .post(url)
                        .json(&json!({"input": chunk, "truncate": true}))
                        .send()
                        .expect("pool reachable");
                    assert!(r.status().is_success(), "pool answered {}", r.status());
                }
            });
        }
    });
    texts.len() as f64 / started.elapsed().as_secs_f64()
}

/// Seconds from the first batch request to the last memory ready.
fn pipeline(n: usize, salt: &str) -> f64 {
    let (client, user) = Client::new_user();
    let texts: Vec<String> = (0..n)
        .map(|i| format!("{} {salt}", synthetic_memory(i)))
        .collect();
    let started = Instant::now();
    for chunk in texts.chunks(100) {
        let items: Vec<Value> = chunk.iter().map(|t| json!({"content": t})).collect();
        client
            .post("/api/v1/memory/batch", &json!({"items": items}))
            .expect(200);
    }
    let posted = started.elapsed().as_secs_f64();
    let count_ready = format!(
        "SELECT count(*) FROM memories WHERE user_id = '{user}' AND embedding_status = 'ready'"
    );
    let mut last_report = Instant::now();
    loop {
        let ready: usize = run_sql(&admin_url(), &count_ready)[0][0]
            .as_deref()
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        if ready == n {
            break;
        }
        if last_report.elapsed() >= Duration::from_secs(10) {
            eprintln!(
                "  {:>6.1}s  {ready}/{n} ready",
                started.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let total = started.elapsed().as_secs_f64();
    let counts = embedding_statuses(&client);
    assert_eq!(
        counts.get("ready").copied(),
        Some(n),
        "the API lists {counts:?}"
    );
    eprintln!("  posted in {posted:.1}s, all ready after {total:.1}s");
    total
}

/// Where the CPU went during one phase that embedded `texts` texts.
struct CpuUse {
    pool_share: f64,
    pool_ms_per_text: f64,
    /// Every other part's share, for a report line.
    others: String,
}

impl CpuUse {
    fn between(a: &CpuSample, b: &CpuSample, texts: usize) -> Self {
        let shares = cpu::shares(a, b);
        Self {
            pool_share: shares.first().map_or(0.0, |(_, pct)| *pct),
            pool_ms_per_text: 1e3 * cpu::part_seconds(a, b, "pool") / texts.max(1) as f64,
            others: cpu::describe(&shares[1..]),
        }
    }

    fn line(&self) -> String {
        format!(
            "pool {:.0} % of the machine, {:.1} ms of CPU per text; {}",
            self.pool_share, self.pool_ms_per_text, self.others
        )
    }
}

/// Milliseconds from one ingest to the memory found by retrieve.
fn single_ingest_ms() -> f64 {
    let (client, _) = Client::new_user();
    let content = "The recycling goes out on the first Thursday of each month.";
    let started = Instant::now();
    let reply = client.post("/api/v1/memory/ingest", &json!({"content": content}));
    assert!(reply.status < 300, "ingest answered {}", reply.text);
    loop {
        let found = client
            .post(
                "/api/v1/memory/retrieve?limit=3",
                &json!({"query": "when is the bin collection for bottles and paper?"}),
            )
            .expect(200);
        let ready = embedding_statuses(&client).get("ready").copied() == Some(1);
        if ready && found.text.contains(content) {
            return started.elapsed().as_secs_f64() * 1e3;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn main() {
    let a = args();
    let largest = a.sizes.iter().copied().max().unwrap_or(1000);
    let salt = format!("{:x}", std::process::id());
    let texts: Vec<String> = (0..largest.min(2000))
        .map(|i| format!("{} {salt}", synthetic_memory(i)))
        .collect();
    eprintln!(
        "pool raw throughput on {} of the imported texts…",
        texts.len()
    );
    let listen = pool_url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let before = cpu::sample(&listen);
    let raw = pool_throughput(&texts);
    let raw_cpu = CpuUse::between(&before, &cpu::sample(&listen), texts.len());
    println!("pool raw throughput: {raw:.1} texts/s ({})", pool_url());
    println!("  CPU: {}", raw_cpu.line());
    let mut rows = Vec::new();
    for &n in &a.sizes {
        eprintln!("importing {n} memories through {} …", api_url());
        let before = cpu::sample(&listen);
        let secs = pipeline(n, &format!("{salt}-{n}"));
        let used = CpuUse::between(&before, &cpu::sample(&listen), n);
        let rate = n as f64 / secs;
        println!(
            "{n} memories: first batch → last searchable {secs:.1} s, {rate:.1} memories/s = {:.0} % of the pool's raw throughput",
            100.0 * rate / raw
        );
        println!("  CPU: {}", used.line());
        rows.push((n, secs, rate, used));
    }
    let single = single_ingest_ms();
    println!("single ingest → found by retrieve: {single:.0} ms");

    if let Some(path) = a.write {
        let mut table = String::new();
        table.push_str(&format!(
            "| pool alone (raw) | | {raw:.1} | 100 % | {:.0} % | {:.1} | {} |\n",
            raw_cpu.pool_share, raw_cpu.pool_ms_per_text, raw_cpu.others
        ));
        for (n, secs, rate, used) in &rows {
            table.push_str(&format!(
                "| {n} | {secs:.1} | {rate:.1} | {:.0} % | {:.0} % | {:.1} | {} |\n",
                100.0 * rate / raw,
                used.pool_share,
                used.pool_ms_per_text,
                used.others
            ));
        }
        let section = format!(
            "{SECTION}\n\n\
             `cargo run --release -p memshadow-e2e --bin ingest-bench -- --sizes {sizes} --write BENCHMARKS.md`, \
             run {date} against the local stack (`scripts/stack.sh up`: Worker under wrangler dev, \
             wasm-host pool, Postgres) on {cpus} cores. Memories are imported with `POST /memory/batch` \
             in batches of 100; nothing triggers embedding by hand (the Worker's queue consumer and \
             the stack's timer, scripts/scheduler.sh, do); progress is counted in Postgres, not listed \
             through the API, which would take CPU from the pipeline. The pool's raw throughput is measured on \
             the same texts, sent directly to `/v1/embeddings` in batches of 32, two in flight.\n\n\
             Pool raw throughput: **{raw:.1} texts/s**. Single ingest → found by retrieve: **{single:.0} ms**.\n\n\
             The CPU columns come from /proc: the pool's share of the machine's CPU time during \
             the phase, its CPU milliseconds per text embedded, and the other parts' shares.\n\n\
             | memories | first batch → last searchable (s) | memories/s | share of pool raw | pool's CPU share | pool CPU ms/text | other parts |\n\
             | --- | --- | --- | --- | --- | --- | --- |\n{table}",
            sizes = a
                .sizes
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(","),
            date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
            cpus = std::thread::available_parallelism().map_or(0, |n| n.get()),
        );
        let old = std::fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmarks\n".into());
        let new = replace_section(&old, &section);
        std::fs::write(&path, new).expect("write the benchmarks file");
        eprintln!("wrote {SECTION:?} in {path}");
    }
}

/// `doc` with its `## Ingest to searchable` section (up to the next `## `)
/// replaced by `section`, or with `section` appended.
fn replace_section(doc: &str, section: &str) -> String {
    match doc.find(SECTION) {
        Some(start) => {
            let rest = &doc[start + SECTION.len()..];
            let end = rest
                .find("\n## ")
                .map_or(doc.len(), |i| start + SECTION.len() + i + 1);
            format!("{}{}\n{}", &doc[..start], section, &doc[end..])
        }
        None => format!(
            "{}\n{}",
            doc.trim_end_matches('\n').to_string() + "\n",
            section
        ),
    }
}
