#!/usr/bin/env python3
"""Latency and throughput of the same API requests on each runtime, side by
side: the Worker under wrangler dev and the Spin build under wasm-host serve
(any runtime that serves the API can be named). For the Spin build it also
reports wasm-host's per-request instantiation time (its Server-Timing
header). Prints numbers; asserts nothing.

    scripts/bench-runtimes.py --runtime worker=http://127.0.0.1:8787 \\
                              --runtime spin=http://127.0.0.1:8788 \\
                              [--requests 200] [--concurrency 4]

Each runtime gets its own user (registered through the API, so argon2 runs
once per runtime) and the same memories; then, per scenario, the same
requests run at the given concurrency. Standard library only.
"""

import argparse
import json
import statistics
import threading
import time
import urllib.error
import urllib.request
import uuid

MEMORIES = [
    "Ada prefers green tea in the afternoon",
    "The deploy pipeline runs on Tuesdays and Fridays",
    "Grace's favourite editor is vim with a dark theme",
    "The staging database was moved to eu-west in March",
    "Linus takes his coffee black, no sugar",
    "Quarterly planning happens in the first week of the quarter",
    "The API rate limit for partners is 600 requests per minute",
    "Margaret keeps meeting notes in a shared notebook",
]
QUERIES = ["what does Ada drink?", "when do deploys happen?", "which editor does Grace use?"]


def request(method, url, body=None, headers=None, form=False):
    headers = dict(headers or {})
    data = None
    if body is not None:
        if form:
            data = body.encode()
            headers["content-type"] = "application/x-www-form-urlencoded"
        else:
            data = json.dumps(body).encode()
            headers["content-type"] = "application/json"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=60) as res:
            payload = res.read()
            status, res_headers = res.status, res.headers
    except urllib.error.HTTPError as e:
        payload, status, res_headers = e.read(), e.code, e.headers
    elapsed = time.perf_counter() - started
    return status, payload, res_headers, elapsed


def sign_in(base):
    name = "bench" + uuid.uuid4().hex[:10]
    password = "bench-ostrich-quartz-" + uuid.uuid4().hex[:6]
    status, payload, _, _ = request(
        "POST",
        f"{base}/api/v1/auth/register",
        {"email": f"{name}@example.org", "username": name, "password": password},
    )
    if status != 200:
        raise SystemExit(f"{base}: register answered {status}: {payload[:200]!r}")
    status, payload, _, _ = request(
        "POST", f"{base}/api/v1/auth/login", f"username={name}&password={password}", form=True
    )
    if status != 200:
        raise SystemExit(f"{base}: login answered {status}: {payload[:200]!r}")
    return json.loads(payload)["access_token"]


def instantiate_ms(headers):
    for part in (headers.get("server-timing") or "").split(","):
        name, _, rest = part.strip().partition(";")
        if name == "instantiate" and rest.startswith("dur="):
            return float(rest[4:])
    return None


def run(calls, concurrency):
    """Runs the callables on `concurrency` threads; returns latencies (s),
    instantiation times (ms), statuses and the wall time."""
    lock = threading.Lock()
    queue = list(calls)
    latencies, inst, statuses = [], [], {}

    def worker():
        while True:
            with lock:
                if not queue:
                    return
                call = queue.pop()
            status, _, headers, elapsed = call()
            with lock:
                latencies.append(elapsed)
                statuses[status] = statuses.get(status, 0) + 1
                ms = instantiate_ms(headers)
                if ms is not None:
                    inst.append(ms)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, inst, statuses, time.perf_counter() - started


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))] if values else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runtime", action="append", required=True, metavar="NAME=URL")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=4)
    args = ap.parse_args()
    runtimes = [r.split("=", 1) for r in args.runtime]

    rows = []
    for name, base in runtimes:
        base = base.rstrip("/")
        token = sign_in(base)
        auth = {"authorization": f"Bearer {token}"}
        for text in MEMORIES:
            request("POST", f"{base}/api/v1/memory/ingest", {"content": text}, auth)
        n = args.requests
        scenarios = {
            "GET /health": [lambda: request("GET", f"{base}/health")] * n,
            "GET /api/v1/memory (list)": [
                lambda: request("GET", f"{base}/api/v1/memory?limit=10", headers=auth)
            ]
            * n,
            "POST retrieve (hybrid)": [
                (lambda q=q: request(
                    "POST", f"{base}/api/v1/memory/retrieve?limit=5", {"query": q}, auth
                ))
                for i in range(n)
                for q in [QUERIES[i % len(QUERIES)]]
            ],
        }
        for scenario, calls in scenarios.items():
            lat, inst, statuses, wall = run(calls, args.concurrency)
            rows.append(
                (
                    scenario,
                    name,
                    statistics.median(lat) * 1000,
                    pct(lat, 95) * 1000,
                    len(lat) / wall,
                    statistics.median(inst) if inst else None,
                    pct(inst, 95) if inst else None,
                    statuses,
                )
            )

    print(
        f"{args.requests} requests per scenario, concurrency {args.concurrency}\n"
        "| scenario | runtime | p50 ms | p95 ms | req/s | instantiate p50 ms | instantiate p95 ms | statuses |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- |"
    )
    for scenario, name, p50, p95, rps, i50, i95, statuses in sorted(rows, key=lambda r: r[0]):
        fmt = lambda v: "—" if v is None else f"{v:.3f}"
        print(
            f"| {scenario} | {name} | {p50:.1f} | {p95:.1f} | {rps:.0f} | {fmt(i50)} | {fmt(i95)} | "
            + ", ".join(f"{k}×{v}" for k, v in sorted(statuses.items()))
            + " |"
        )


if __name__ == "__main__":
    main()
