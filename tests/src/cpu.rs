//! Where the machine's CPU time goes during a benchmark phase, read from
//! Linux's /proc: the embedding pool (the `wasm-host` process listening on
//! the pool's address), Postgres (every `postgres` process, and through the
//! postmaster's reaped children the backends that have exited), workerd,
//! node (wrangler dev) and the rest. Counts clock ticks, so a phase of a few
//! seconds is only roughly split; benchmarks use it for phases of minutes.

use std::collections::BTreeMap;

/// Cumulative CPU ticks per part, and the machine's busy and total ticks.
#[derive(Debug, Clone, Default)]
pub struct CpuSample {
    pub parts: BTreeMap<&'static str, u64>,
    pub machine_busy: u64,
    pub machine_total: u64,
}

/// The parts a sample distinguishes, in print order.
pub const PARTS: [&str; 4] = ["pool", "postgres", "workerd", "node"];

fn part_of(comm: &str, cmdline: &str, pool_listen: &str) -> Option<&'static str> {
    match comm {
        "wasm-host" if cmdline.split('\0').any(|a| a == pool_listen) => Some("pool"),
        "postgres" => Some("postgres"),
        "workerd" => Some("workerd"),
        "node" => Some("node"),
        _ => None,
    }
}

/// `pool_listen`: the pool's `host:port` as given to `--listen`.
pub fn sample(pool_listen: &str) -> CpuSample {
    let mut s = CpuSample::default();
    if let Ok(stat) = std::fs::read_to_string("/proc/stat") {
        let ticks: Vec<u64> = stat
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal
        s.machine_total = ticks.iter().take(8).sum();
        s.machine_busy = s.machine_total - ticks.get(3).unwrap_or(&0) - ticks.get(4).unwrap_or(&0);
    }
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return s;
    };
    for p in procs.flatten() {
        let dir = p.path();
        let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else {
            continue;
        };
        // comm is in parentheses and may hold spaces; fields follow ")".
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        let cmdline = std::fs::read_to_string(dir.join("cmdline")).unwrap_or_default();
        let Some(part) = part_of(comm, &cmdline, pool_listen) else {
            continue;
        };
        // Fields 14-17 (utime stime cutime cstime) are 12-15 after ")".
        let ticks: u64 = stat[close + 1..]
            .split_whitespace()
            .skip(11)
            .take(4)
            .filter_map(|v| v.parse::<u64>().ok())
            .sum();
        *s.parts.entry(part).or_insert(0) += ticks;
    }
    s
}

/// Each part's share of the machine's CPU time between two samples, in
/// percent, with "other" (the rest of the busy time) and "idle".
pub fn shares(a: &CpuSample, b: &CpuSample) -> Vec<(&'static str, f64)> {
    let total = b.machine_total.saturating_sub(a.machine_total).max(1) as f64;
    let mut out = Vec::new();
    let mut known = 0u64;
    for part in PARTS {
        let d = b
            .parts
            .get(part)
            .unwrap_or(&0)
            .saturating_sub(*a.parts.get(part).unwrap_or(&0));
        known += d;
        out.push((part, 100.0 * d as f64 / total));
    }
    let busy = b.machine_busy.saturating_sub(a.machine_busy);
    out.push(("other", 100.0 * busy.saturating_sub(known) as f64 / total));
    out.push(("idle", 100.0 * (total - busy as f64).max(0.0) / total));
    out
}

/// Seconds of CPU the part used between two samples.
pub fn part_seconds(a: &CpuSample, b: &CpuSample, part: &str) -> f64 {
    let ticks = b
        .parts
        .get(part)
        .unwrap_or(&0)
        .saturating_sub(*a.parts.get(part).unwrap_or(&0));
    ticks as f64 / clock_ticks_per_second()
}

/// USER_HZ: 100 on every Linux architecture this project runs on.
fn clock_ticks_per_second() -> f64 {
    100.0
}

/// "pool 82 %, postgres 8 %, …" for a report line.
pub fn describe(shares: &[(&'static str, f64)]) -> String {
    shares
        .iter()
        .map(|(part, pct)| format!("{part} {pct:.0} %"))
        .collect::<Vec<_>>()
        .join(", ")
}
