"""Retrieve under load (issue 10): the real Worker under wrangler dev against
the design documents' own stack (peer.py: FastAPI + asyncpg + pgvector +
onnxruntime), the same memories in the same Postgres, driven by wrk at 1, 10
and 50 concurrent clients. Prints throughput, p50/p95/p99 and errors per
system and level, the ratios at 10 clients, and where one request's time
goes (query embedding by the pool, the retrieve statement, the rest).

Both systems get the same N memories of one heavy user (bench/scale's data:
real SciFact/LoCoMo embeddings replicated with noise), loaded with COPY.
Every request asks a different question text, so neither a query-embedding
cache nor Postgres's plan of one query can answer twice.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "scale"))
sys.path.insert(0, os.path.join(HERE, "..", "quality"))
from baselines import OnnxEmbedder  # noqa: E402
from benchmarks_md import publish, replace_section, run_facts  # noqa: E402
from data import corpus, generate, load, log, pgvec, psql_connect, settle, with_db  # noqa: E402

SECTION = "## Retrieve under load"  # + the size, one section per size
PEER_DB = "memshadow_peer"
ALL_USERS = "retrieve, every user"
VECTOR_MODE = "retrieve, vector mode"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--memories", type=int, default=10000)
    p.add_argument("--clients", default="1,10,50")
    p.add_argument("--duration", type=int, default=20, help="seconds per level")
    p.add_argument("--api-url", required=True)
    p.add_argument("--peer-port", type=int, default=18799)
    p.add_argument("--mint-token", required=True)
    p.add_argument("--keys", required=True)
    p.add_argument("--retrieve-bench", required=True, help="path of the retrieve-bench binary")
    p.add_argument("--explain-retrieve", required=True, help="path of the explain-retrieve binary")
    p.add_argument("--admin-url", required=True, help="superuser URL of the stack's database")
    p.add_argument("--app-url", required=True, help="application role URL of the stack's database")
    p.add_argument("--data", required=True)
    p.add_argument("--model-dir", required=True)
    p.add_argument("--manifest", required=True)
    p.add_argument("--cache", required=True)
    p.add_argument("--out-dir", required=True, help="where results-<memories>.json goes")
    p.add_argument("--benchmarks")
    p.add_argument("--command", default="")
    return p.parse_args()


def seed_stack(args, model, ids, users, contents, rows):
    """The generated users' rows in the stack's database, replacing any an
    earlier run left (the HNSW index is rebuilt, as bench/scale does)."""
    with psql_connect(args.admin_url) as c:
        c.execute("DELETE FROM memories WHERE user_id = ANY(%s::uuid[])", (sorted(set(users)),))
    return load(args.admin_url, model, ids, users, contents, rows)


def seed_peer(args, ids, users, contents, rows):
    with psql_connect(args.admin_url) as c:
        if not c.execute("SELECT 1 FROM pg_database WHERE datname = %s", (PEER_DB,)).fetchone():
            c.execute(f"CREATE DATABASE {PEER_DB}")
    url = with_db(args.admin_url, PEER_DB)
    with psql_connect(url) as c:
        c.execute("CREATE EXTENSION IF NOT EXISTS vector")
        c.execute("DROP TABLE IF EXISTS peer_memories")
    return url


def remove_seeded(args, users):
    """Leaves the stack's database as the run found it: the generated users'
    memories (and their access counts) go, and so does the peer's database."""
    with psql_connect(args.admin_url) as c:
        c.execute("DELETE FROM memories WHERE user_id = ANY(%s::uuid[])", (sorted(set(users)),))
        c.execute(f"DROP DATABASE IF EXISTS {PEER_DB} WITH (FORCE)")


def fill_peer(url, ids, users, contents, rows):
    """After peer.py created its table: the same rows, its HNSW index
    rebuilt after the COPY as bench/scale does for ours (inserting a million
    rows one by one into the graph would take hours)."""
    with psql_connect(url) as c:
        indexdef = c.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'peer_memories_hnsw'").fetchone()[0]
        c.execute("DROP INDEX peer_memories_hnsw")
        with c.cursor() as cur, cur.copy("COPY peer_memories (id, user_id, content, embedding) FROM STDIN") as cp:
            for i in range(len(ids)):
                cp.write_row((ids[i], users[i], contents[i], pgvec(rows[i])))
        c.execute("ANALYZE peer_memories")
        c.execute("SET maintenance_work_mem = '4GB'")
        c.execute(indexdef)
    settle(url, "peer_memories")


def start_peer(args, url):
    env = dict(
        os.environ, PEER_DATABASE_URL=url, PEER_MODEL_DIR=args.model_dir,
        PEER_MANIFEST=os.path.abspath(args.manifest), PEER_THREADS=str(os.cpu_count() or 2),
    )
    log_file = open(os.path.join(tempfile.gettempdir(), "memshadow-peer.log"), "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "peer:app", "--app-dir", HERE, "--host", "127.0.0.1",
         "--port", str(args.peer_port), "--log-level", "warning"],
        env=env, stdout=log_file, stderr=subprocess.STDOUT,
    )
    for _ in range(120):
        try:
            post(f"http://127.0.0.1:{args.peer_port}/retrieve", {"query": "ready?"}, {"x-user": "nobody"})
            return proc
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"the peer exited; see {log_file.name}")
            time.sleep(1)
    raise SystemExit("the peer did not answer in 120 s")


def post(url, body, headers):
    req = urllib.request.Request(url, json.dumps(body).encode(), {"content-type": "application/json", **headers})
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.status, r.read()


def mint(args, user):
    """A day-long access token for `user`, signed with the stack's dev key."""
    return subprocess.run(
        [args.mint_token, "token", "--keys", args.keys, "--sub", user, "--ttl", "86400"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()


def headers_file(name, lines):
    """A file of "name: value" request headers, one per user, for post.lua."""
    path = os.path.join(tempfile.gettempdir(), f"memshadow-load-{name}.txt")
    with open(path, "w") as f:
        f.writelines(line + "\n" for line in lines)
    return path


def unembedded_rows(url, table, condition, user):
    """How many of `user`'s rows still wait for their embedding."""
    with psql_connect(url) as c:
        return c.execute(f"SELECT count(*) FROM {table} WHERE user_id::text = %s AND {condition}", (user,)).fetchone()[0]


def check_vector_search(args, token, question):
    """The seeded rows must be what the Worker searches (same model id,
    ready): otherwise the load would measure the text branch alone."""
    _, raw = post(f"{args.api_url}/api/v1/memory/retrieve?limit=10", {"query": question, "mode": "vector"},
                  {"authorization": f"Bearer {token}"})
    if len(json.loads(raw)) < 10:
        raise SystemExit("the Worker's vector search does not find the seeded memories (model id?)")


def wrk(url, headers_file, field, extra, mode, texts_file, clients, seconds, tag):
    """`clients` connections POSTing {field: text, ...extra} for `seconds`,
    each request as the next user of `headers_file`; answers not in `mode`
    (ours falls back to full text when the query is not embedded in time)
    are counted as degraded."""
    env = dict(os.environ, BENCH_BODIES=texts_file, BENCH_HEADERS=headers_file, BENCH_TAG=tag, BENCH_FIELD=field,
               BENCH_EXTRA=extra, BENCH_MODE=mode, BENCH_PATH=url[url.index("/", 8):])
    out = subprocess.run(
        ["wrk", f"-t{min(clients, 2)}", f"-c{clients}", f"-d{seconds}s", "--timeout", "30s",
         "-s", os.path.join(HERE, "post.lua"), url],
        env=env, capture_output=True, text=True, check=True,
    ).stdout
    r = json.loads([line for line in out.splitlines() if line.startswith("{")][-1])
    errors = r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["status_errors"] + r["timeouts"]
    return {
        "clients": clients, "requests": r["requests"], "rps": round(r["requests"] / (r["duration_us"] / 1e6), 1),
        "p50_ms": r["p50_us"] / 1000, "p95_ms": r["p95_us"] / 1000, "p99_ms": r["p99_us"] / 1000, "errors": errors,
        "degraded": r["degraded"],
    }


def server_timing(header):
    """{"embed": ms, "search": ms} from the API's server-timing header."""
    spans = (entry.strip().split(";dur=") for entry in header.split(","))
    return {name: float(ms) for name, ms in spans}


def breakdown(args, user, model, qtexts, qvecs, token, run_tag):
    """Sequential retrieves through the Worker, each split by its own
    server-timing header: query embedding (the pool, over HTTP), the
    retrieve statement (through Hyperdrive's local proxy), and the rest
    (workerd, auth, JSON: the client's total minus both). Medians of each
    part, and the statement alone from a native client for comparison."""
    whole, embed, search, rest = [], [], [], []
    # Each question on one line of its own (retrieve-bench reads lines).
    asked = [" ".join(q.split()) + f" {run_tag}x{i}" for i, q in enumerate(qtexts[:45])]
    for q in asked:
        req = urllib.request.Request(
            f"{args.api_url}/api/v1/memory/retrieve?limit=10", json.dumps({"query": q}).encode(),
            {"content-type": "application/json", "authorization": f"Bearer {token}"})
        started = time.monotonic()
        with urllib.request.urlopen(req, timeout=60) as r:
            r.read()
            spans = server_timing(r.headers["server-timing"])
        ms = (time.monotonic() - started) * 1000
        whole.append(ms)
        embed.append(spans["embed"])
        search.append(spans["search"])
        rest.append(ms - spans["embed"] - spans["search"])
    # The same questions (their text with the tag, their vector) on one
    # native connection: the statement's cost differs from question to
    # question far more than the runtime's share.
    stdin = "".join(f"{q}\t{pgvec(v)}\n" for q, v in zip(asked, qvecs))
    out = subprocess.run(
        [args.retrieve_bench, "--user", user, "--model", model, "--limit", "10", "--texts"],
        input=stdin, capture_output=True, text=True, check=True, env=dict(os.environ, DATABASE_URL=args.app_url),
    ).stdout
    sql = [json.loads(line)["ms"] for line in out.splitlines()]
    med = lambda xs: round(float(np.median(xs[5:])), 1)  # noqa: E731 (the first five warm up)
    return {"retrieve_ms": med(whole), "embed_ms": med(embed), "search_ms": med(search), "rest_ms": med(rest),
            "sql_native_ms": med(sql)}


def save_plans(args, model, heavy, small, question, qvec, small_vec):
    """EXPLAIN (ANALYZE) of the retrieve statement as the application role,
    for the heavy user and a small one, beside the result file: a plan
    change between runs shows in the diff."""
    folder = os.path.join(args.out_dir, "plans")
    os.makedirs(folder, exist_ok=True)
    for who, user, vec in (("heavy", heavy, qvec), ("small", small, small_vec)):
        plan = subprocess.run(
            [args.explain_retrieve, "--user", user, "--query", question, "--vector", pgvec(vec), "--model", model],
            capture_output=True, text=True, check=True, env=dict(os.environ, DATABASE_URL=args.app_url),
        ).stdout
        with open(os.path.join(folder, f"plan-{args.memories}-{who}-user.txt"), "w") as f:
            f.write(plan)


def section(memories):
    return f"{SECTION}: {memories:,} memories"


def text_only(operation, system, level):
    """Ours answers a retrieve from full text alone when its query is not
    embedded in time; the peer has no such fallback, and ingest none."""
    return level.get("degraded", 0) if system == "ours" and operation != "ingest" else "–"


def write_benchmarks(path, r):
    body = [
        section(r["memories"]),
        "",
        f"`{r['command']}`, run {r['date']} on {r['machine']} (commit {r['commit']}), {r['memories']:,} memories "
        f"({r['heavy_memories']:,} of them the one user asked; bench/scale's data, loaded with COPY) in the "
        "stack's Postgres. Ours: `POST /api/v1/memory/retrieve?limit=10` through the Worker under wrangler dev "
        "(JWT auth, query embedded by the wasm-host pool, hybrid retrieve statement; its plans for the heavy user "
        f"and a small one: `bench/load/plans/plan-{r['memories']}-*`). Peer: bench/load/peer.py, "
        "the design documents' stack (FastAPI + asyncpg + pgvector, onnxruntime MiniLM in process, access "
        "time updated in the request, no auth; it searches vectors only) on the same Postgres and cores. wrk, "
        f"{r['duration']} s per level, every request a different question. Ours also in vector mode "
        f"(`\"mode\": \"vector\"`, {VECTOR_MODE}): the like-for-like request. \"Text-only answers\": retrieves "
        "answered 200 from full text alone (`x-retrieval-mode: text`) because the query was not embedded within "
        "the API's embedding timeout; in vector mode that is a 503 `not_ready`, an error. Then the same retrieves spread "
        f"over all {r['users']:,} users, each request the next user ({ALL_USERS}). Then ingest, one new memory per "
        "request (a corpus text with a unique tag) for the heavy user: ours `POST /api/v1/memory/ingest` (stored, "
        "then embedded inline within its budget, else answered `pending` and embedded in the background), the "
        "peer's `POST /memory` (stored, embedded in a background task after the answer).",
        "",
        "| operation | system | clients | req/s | p50 (ms) | p95 (ms) | p99 (ms) | errors | text-only answers |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    rows = [("retrieve", system, r[system]) for system in ("ours", "peer")]
    rows += [(VECTOR_MODE, "ours", r["vector_mode"]["ours"])] if "vector_mode" in r else []
    rows += [(ALL_USERS, system, r["all_users"][system]) for system in ("ours", "peer") if "all_users" in r]
    rows += [("ingest", system, r["ingest"][system]) for system in ("ours", "peer") if "ingest" in r]
    for operation, system, levels in rows:
        for x in levels:
            body.append(f"| {operation} | {system} | {x['clients']} | {x['rps']} | {x['p50_ms']:.0f} | "
                        f"{x['p95_ms']:.0f} | {x['p99_ms']:.0f} | {x['errors']} | {text_only(operation, system, x)} |")
    b = r["breakdown"]
    body += [
        "",
        "One retrieve, 40 sequential requests before the load (after 5 not counted), each split by its own "
        f"`server-timing` header (medians of each part): {b['retrieve_ms']} ms through the Worker; query embedding "
        f"(the pool, over HTTP) {b['embed_ms']} ms; the retrieve statement through Hyperdrive's local proxy {b['search_ms']} ms "
        f"({b['sql_native_ms']} ms from a native client, `retrieve-bench`); the rest (workerd, auth, JSON: the "
        f"client's total minus both) {b['rest_ms']} ms.",
        "",
        "Ingest answers are not alike: when the last ingest level ended, the heavy user's rows still waiting "
        f"for an embedding were {r['unembedded_after_ingest']['ours']:,} of ours and "
        f"{r['unembedded_after_ingest']['peer']:,} of the peer's (its background tasks embed after answering).",
        "",
        "Targets (issue 10, at 10 clients): " + "; ".join(r["targets"]) + ".",
        "",
    ]
    replace_section(path, section(r["memories"]), "\n".join(body))


def targets(ours, peer, ours_other, ours_vector):
    at10 = lambda levels: next((x for x in levels if x["clients"] == 10), levels[-1])  # noqa: E731
    o, p, v = at10(ours), at10(peer), at10(ours_vector)
    ratio = o["rps"] / p["rps"] if p["rps"] else float("inf")
    errors = sum(x["errors"] for x in ours + ours_other)
    return [
        f"throughput ≥ 2× the peer: {ratio:.2f}× ({'met' if ratio >= 2 else f'missed by {2 - ratio:.2f}×'})",
        f"our p99 below the peer's p50: {o['p99_ms']:.0f} vs {p['p50_ms']:.0f} ms "
        f"({'met' if o['p99_ms'] < p['p50_ms'] else 'missed'})",
        f"zero errors (every run of ours): {errors} ({'met' if errors == 0 else 'missed'})",
        f"retrieves of ours answered from full text alone (query not embedded in time): "
        f"{sum(x.get('degraded', 0) for x in ours + ours_other)}",
        f"like for like (ours in vector mode, as the peer searches): {v['rps'] / p['rps']:.2f}× the peer's throughput, "
        f"p99 {v['p99_ms']:.0f} vs its p50 {p['p50_ms']:.0f} ms",
    ]


def main():
    args = parse_args()
    embedder = OnnxEmbedder(args.model_dir, args.manifest, args.cache)
    texts, vecs, qtexts, qvecs = corpus(args.data, 400, embedder)
    model = embedder.model_id
    ids, users, contents, rows, heavy, n_heavy = generate(args.memories, texts, vecs)
    log(f"seeding {args.memories} memories into the stack's database and the peer's")
    seed_stack(args, model, ids, users, contents, rows)
    peer_url = seed_peer(args, ids, users, contents, rows)
    peer = start_peer(args, peer_url)
    try:
        fill_peer(peer_url, ids, users, contents, rows)
        token = mint(args, heavy)
        check_vector_search(args, token, qtexts[0])
        # Before any load: the peer's ingest leaves a backlog of background
        # embeddings that would keep its process busy afterwards.
        # A tag per run: texts never repeat across runs, so the API's
        # query-embedding cache cannot answer one run's with another's.
        run_tag = str(int(time.time()))
        b = breakdown(args, heavy, model, qtexts, qvecs, token, run_tag)
        save_plans(args, model, heavy, users[n_heavy], qtexts[0], qvecs[0], rows[n_heavy])
        log(f"breakdown: {b}")
        questions = os.path.join(tempfile.gettempdir(), "memshadow-load-questions.txt")
        with open(questions, "w") as f:
            f.writelines(json.dumps(q[:300]) + "\n" for q in qtexts)
        memories = os.path.join(tempfile.gettempdir(), "memshadow-load-memories.txt")
        with open(memories, "w") as f:
            f.writelines(json.dumps(t[:300]) + "\n" for t in texts[:2000])
        everyone = sorted(set(users), key=lambda u: u != heavy)
        log(f"minting tokens for {len(everyone)} users")
        ours_one = headers_file("ours-one", [f"authorization: Bearer {token}"])
        peer_one = headers_file("peer-one", [f"x-user: {heavy}"])
        ours_all = headers_file("ours-all", [f"authorization: Bearer {mint(args, u)}" for u in everyone])
        peer_all = headers_file("peer-all", [f"x-user: {u}" for u in everyone])
        ours_retrieve = f"{args.api_url}/api/v1/memory/retrieve?limit=10"
        peer_retrieve = f"http://127.0.0.1:{args.peer_port}/retrieve"
        # (operation, system) -> (url, users, body field, more members, texts).
        # Retrieves first, so the ingests' new rows never change what they
        # search. The peer searches vectors only; ours in vector mode is the
        # like-for-like request, hybrid (the default) what a client gets.
        runs = {
            ("retrieve", "ours"): (ours_retrieve, ours_one, "query", "", "hybrid", questions),
            (VECTOR_MODE, "ours"): (ours_retrieve, ours_one, "query", ',"mode":"vector"', "vector", questions),
            ("retrieve", "peer"): (peer_retrieve, peer_one, "query", "", "", questions),
            (ALL_USERS, "ours"): (ours_retrieve, ours_all, "query", "", "hybrid", questions),
            (ALL_USERS, "peer"): (peer_retrieve, peer_all, "query", "", "", questions),
            ("ingest", "ours"): (f"{args.api_url}/api/v1/memory/ingest", ours_one, "content", "", "", memories),
            ("ingest", "peer"): (f"http://127.0.0.1:{args.peer_port}/memory", peer_one, "content", "", "", memories),
        }
        results = {}
        for (operation, name), (url, users_file, field, extra, mode, texts_file) in runs.items():
            tag = f"{run_tag}{operation.replace(' ', '').replace(',', '')}"
            wrk(url, users_file, field, extra, mode, texts_file, 2, 5, f"{tag}w")  # warm-up, not counted
            results[operation, name] = []
            for c in (int(x) for x in args.clients.split(",")):
                r = wrk(url, users_file, field, extra, mode, texts_file, c, args.duration, f"{tag}{name}{c}")
                log(f"{operation}, {name} at {c} clients: {r}")
                results[operation, name].append(r)
        unembedded = {"ours": unembedded_rows(args.admin_url, "memories", "embedding_status <> 'ready'", heavy),
                      "peer": unembedded_rows(peer_url, "peer_memories", "embedding IS NULL", heavy)}
        log(f"rows not yet embedded when the ingest runs ended: {unembedded}")
    finally:
        peer.terminate()
        try:
            peer.wait(timeout=30)
        except subprocess.TimeoutExpired:  # still busy with its ingest backlog
            peer.kill()
            peer.wait()
        log("removing the seeded memories and the peer's database")
        remove_seeded(args, users)
    result = {
        **run_facts(args.command),
        "memories": args.memories, "heavy_memories": n_heavy, "users": len(set(users)), "duration": args.duration,
        "ours": results["retrieve", "ours"], "peer": results["retrieve", "peer"],
        "vector_mode": {"ours": results[VECTOR_MODE, "ours"]},
        "ingest": {"ours": results["ingest", "ours"], "peer": results["ingest", "peer"]},
        "all_users": {"ours": results[ALL_USERS, "ours"], "peer": results[ALL_USERS, "peer"]},
        "breakdown": b, "unembedded_after_ingest": unembedded,
        "targets": targets(results["retrieve", "ours"], results["retrieve", "peer"],
                           results["ingest", "ours"] + results[ALL_USERS, "ours"] + results[VECTOR_MODE, "ours"],
                           results[VECTOR_MODE, "ours"]),
    }
    out = os.path.join(args.out_dir, f"results-{args.memories}.json")
    publish(result, out, args.benchmarks, write_benchmarks)


if __name__ == "__main__":
    main()
