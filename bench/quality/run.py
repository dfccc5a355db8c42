"""Retrieval quality harness: loads BEIR SciFact and LoCoMo through the real
MEMSHADOW API, waits until every memory is embedded, asks every question
through /api/v1/memory/retrieve in each mode (hybrid, vector, text), and
scores the answers beside two baselines computed in the same run on the same
texts (BM25 from bm25s; exact cosine over onnxruntime embeddings of the
model file the pool serves). Prints the tables and the targets of issue 11,
writes a JSON result and, for the full run, the "Retrieval quality" section
of BENCHMARKS.md.

Run through scripts/quality.sh (it sets the paths and ports); see the
README's "Retrieval quality" section.
"""

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from api import Api, ApiError  # noqa: E402
from baselines import Bm25, OnnxEmbedder, exact_cosine  # noqa: E402
from benchmarks_md import replace_section  # noqa: E402
from datasets import LOCOMO_CATEGORIES, load_locomo, load_scifact  # noqa: E402
from metrics import evidence_recall_at_k, mean, ndcg_at_k, recall_at_k  # noqa: E402
from tune_fusion import grid  # noqa: E402

MODES = ["hybrid", "vector", "text"]
# Results asked of every system: recall@100, and deep enough branch
# rankings for tune_fusion.py (the API's largest page).
DEPTH = 100
# Issue 11's targets.
NDCG_MARGIN = 0.02
VECTOR_PARITY = 0.005
# Users are derived from this namespace so a later run finds (and reuses)
# what an earlier one stored.
USER_NAMESPACE = uuid.UUID("5b0c7a7e-3f1e-4a4b-9d0e-6d656d736861")

QUALITY_SECTION = "## Retrieval quality"


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="a few hundred documents (CI)")
    p.add_argument("--api", default=os.environ.get("MEMSHADOW_API_URL", "http://127.0.0.1:8787"))
    p.add_argument("--pool", default=os.environ.get("MEMSHADOW_POOL_URL", "http://127.0.0.1:8790"))
    p.add_argument("--data", required=True, help="the shared data folder (scifact/, locomo/)")
    p.add_argument("--mint-token", required=True, help="path of the mint-token binary")
    p.add_argument("--keys", required=True, help="the stack's dev key folder")
    p.add_argument("--model-dir", required=True)
    p.add_argument("--manifest", required=True, help="embed-wasm/model-manifest.json")
    p.add_argument(
        "--other-model",
        nargs=2,
        action="append",
        default=[],
        metavar=("MODEL_DIR", "MANIFEST"),
        help="also score exact cosine over this model's onnxruntime embeddings (e.g. all-mpnet-base-v2)",
    )
    p.add_argument(
        "--baselines-only",
        action="store_true",
        help="score BM25 and the models' exact cosine only; no stack needed",
    )
    p.add_argument("--cache", required=True, help="folder for cached baseline embeddings")
    p.add_argument("--out", required=True, help="JSON result file")
    p.add_argument("--rankings", help="also write every system's rankings here (JSON, for fusion tuning)")
    p.add_argument("--benchmarks", help="BENCHMARKS.md to update (its Retrieval quality section)")
    p.add_argument("--explain", help="explain-retrieve binary: print the retrieve statement's plan")
    p.add_argument("--command", default="", help="the command line to record in BENCHMARKS.md")
    p.add_argument("--no-drive", action="store_true", help="do not run /__scheduled; wait for the stack's own timer")
    p.add_argument("--threads", type=int, default=4, help="concurrent retrieve requests")
    p.add_argument("--cleanup", action="store_true", help="delete the harness users' memories at the end")
    p.add_argument("--check", action="store_true", help="fail unless the smoke checks hold (CI)")
    return p.parse_args()


def user_for(prefix, name):
    return str(uuid.uuid5(USER_NAMESPACE, f"{prefix}/{name}"))


def load(api, coll, user, model_id):
    """Stores the collection for `user`, reusing an earlier run's rows when
    they are exactly the same texts embedded by `model_id` (the reference
    model, which the API must embed with); returns memory id -> doc
    position."""
    existing = api.list_all(user)
    want = {d.content for d in coll.docs}
    have = {m["content"] for m in existing}
    other_model = {m["embedding_model"] for m in existing} - {model_id, None}
    if existing and (have != want or other_model):
        why = f"embedded by {', '.join(sorted(other_model))}" if other_model else "from another run"
        log(f"{coll.name}: {len(existing)} stale memories {why}; deleting them")
        api.delete_all(user)
    elif existing:
        log(f"{coll.name}: reusing {len(existing)} memories stored by an earlier run")
    started = time.time()
    ids = api.ingest(user, coll.docs)
    log(f"{coll.name}: {len(ids)} memories ingested in {time.time() - started:.1f}s")
    return {mid: i for i, mid in enumerate(ids)}


def api_rankings(api, user, coll, depth, modes, threads):
    """{mode: [[doc position, ...] per question]}; a mode the API refuses is absent."""
    out = {}
    for mode in modes:
        req_mode = None if mode == "hybrid" else mode

        def ask(q):
            return api.retrieve(user, q.text, depth, req_mode)

        if not coll.questions:
            out[mode] = []
            continue
        try:
            ask(coll.questions[0])
        except ApiError as e:
            log(f"{coll.name}: mode {mode} unavailable: {e}")
            continue
        with ThreadPoolExecutor(threads) as ex:
            answers = list(ex.map(ask, coll.questions))
        modes_seen = {m for _, m in answers}
        if modes_seen != {mode}:
            log(f"{coll.name}: asked for {mode}, the API answered {sorted(map(str, modes_seen))}")
        out[mode] = [[coll.id_to_doc[i] for i in ids if i in coll.id_to_doc] for ids, _ in answers]
    return out


def baseline_rankings(coll, embedders, depth):
    """BM25, and exact cosine per model: "onnx" for the model the pool
    serves, "onnx:<model id>" for each other model."""
    texts = [d.content for d in coll.docs]
    questions = [q.text for q in coll.questions]
    out = {"bm25": Bm25(texts).search(questions, depth)}
    for name, embedder in embedders.items():
        doc_vecs = embedder.embed(texts, log)
        q_vecs = embedder.embed(questions)
        out[name] = exact_cosine(doc_vecs, q_vecs, depth)
        embedder.save()
    return out


def score_scifact(coll, ranking):
    per = {"ndcg@10": [], "recall@10": [], "recall@100": []}
    for q, docs in zip(coll.questions, ranking):
        ranked = [sid for d in docs for sid in coll.docs[d].source_ids]
        rel = set(q.relevant)
        per["ndcg@10"].append(ndcg_at_k(ranked, rel, 10))
        per["recall@10"].append(recall_at_k(ranked, rel, 10))
        per["recall@100"].append(recall_at_k(ranked, rel, 100))
    return {k: mean(v) for k, v in per.items()}


def score_locomo(colls, rankings_per_coll):
    """recall@5/10/20 per category (and over all questions)."""
    per = {}
    for coll, ranking in zip(colls, rankings_per_coll):
        for q, docs in zip(coll.questions, ranking):
            turn_sets = [set(coll.docs[d].source_ids) for d in docs]
            for cat in (q.category, "all"):
                bucket = per.setdefault(cat, {"n": 0, "recall@5": [], "recall@10": [], "recall@20": []})
                for k in (5, 10, 20):
                    bucket[f"recall@{k}"].append(evidence_recall_at_k(turn_sets, q.relevant, k))
    out = {}
    for cat, b in per.items():
        out[cat] = {"n": len(b["recall@5"])} | {k: mean(v) for k, v in b.items() if k != "n"}
    return out


def smoke_checks(result, rankings, colls):
    """What the CI smoke run asserts: every mode answered as asked and
    returned results for every question; our vector mode ranks like the
    onnxruntime reference (same model file: the Wasm path is faithful); and
    hybrid is no worse than the better of its own two branches by more than
    a small margin on these few questions. Returns the failures."""
    failures = []
    for c in colls:
        for mode in MODES:
            if mode not in rankings[c.name]:
                failures.append(f"{c.name}: mode {mode} missing")
            elif mode != "text" and not all(rankings[c.name][mode]):
                # Text mode may rightly find nothing (a question of stop words).
                failures.append(f"{c.name}: mode {mode} returned no results for some question")
    sf = result["scifact"]["systems"]
    if {"vector", "onnx", "hybrid", "text"} <= sf.keys():
        d = abs(sf["vector"]["ndcg@10"] - sf["onnx"]["ndcg@10"])
        if d > 0.02:
            failures.append(f"SciFact vector mode nDCG@10 {sf['vector']['ndcg@10']:.4f} is {d:.4f} from onnxruntime's")
        best_branch = max(sf["vector"]["ndcg@10"], sf["text"]["ndcg@10"])
        if sf["hybrid"]["ndcg@10"] < best_branch - 0.05:
            failures.append(f"SciFact hybrid nDCG@10 {sf['hybrid']['ndcg@10']:.4f} far below its best branch {best_branch:.4f}")
    lc = result["locomo"]["systems"]
    if {"vector", "hybrid", "text"} <= lc.keys():
        h = lc["hybrid"]["all"]["recall@10"]
        best_branch = max(lc["vector"]["all"]["recall@10"], lc["text"]["all"]["recall@10"])
        if h < best_branch - 0.05:
            failures.append(f"LoCoMo hybrid recall@10 {h:.4f} far below its best branch {best_branch:.4f}")
    return failures


def fmt(x):
    return "—" if x is None else f"{x:.4f}"


def targets(result):
    """Issue 11's targets: met or missed, and by how much."""
    lines = []
    sf = result["scifact"]["systems"]
    if "hybrid" in sf:
        best_name = max(("bm25", "onnx"), key=lambda s: sf[s]["ndcg@10"])
        need = sf[best_name]["ndcg@10"] + NDCG_MARGIN
        got = sf["hybrid"]["ndcg@10"]
        lines.append(
            (got >= need, f"SciFact nDCG@10 hybrid {got:.4f} ≥ {best_name} {sf[best_name]['ndcg@10']:.4f} + {NDCG_MARGIN}"
             + ("" if got >= need else f": missed by {need - got:.4f}"))
        )
    if "vector" in sf:
        d = sf["vector"]["ndcg@10"] - sf["onnx"]["ndcg@10"]
        lines.append(
            (abs(d) <= VECTOR_PARITY, f"SciFact nDCG@10 vector mode {sf['vector']['ndcg@10']:.4f} within {VECTOR_PARITY} of onnxruntime {sf['onnx']['ndcg@10']:.4f} (Δ {d:+.4f})"
             + ("" if abs(d) <= VECTOR_PARITY else f": missed by {abs(d) - VECTOR_PARITY:.4f}"))
        )
    lc = result["locomo"]["systems"]
    if "hybrid" in lc:
        for cat in [c for c in LOCOMO_CATEGORIES.values() if c in lc["hybrid"]]:
            h = lc["hybrid"][cat]["recall@10"]
            best = max(lc["bm25"][cat]["recall@10"], lc["onnx"][cat]["recall@10"])
            ok = h > best
            lines.append(
                (ok, f"LoCoMo {cat} recall@10 hybrid {h:.4f} > max(bm25, onnx) {best:.4f}"
                 + ("" if ok else f": missed by {best - h:.4f}"))
            )
    return [{"met": ok, "text": t} for ok, t in lines]


SYSTEM_LABELS = {
    "hybrid": "MEMSHADOW hybrid",
    "vector": "MEMSHADOW vector mode",
    "text": "MEMSHADOW text mode",
    "bm25": "BM25 (bm25s)",
    "onnx": "exact cosine, onnxruntime",
}


def label(system, result):
    if system.startswith("onnx:"):
        return f"exact cosine, onnxruntime, {system[5:]}"
    if system == "onnx":
        return f"{SYSTEM_LABELS[system]}, {result['model']['id']}"
    return SYSTEM_LABELS[system]


def tables(result):
    out = []
    sf = result["scifact"]
    out.append(f"SciFact ({sf['docs']} documents, {sf['questions']} judged queries, train qrels)\n")
    out.append("| system | nDCG@10 | recall@10 | recall@100 |")
    out.append("| --- | --- | --- | --- |")
    for s, v in sf["systems"].items():
        out.append(f"| {label(s, result)} | {fmt(v['ndcg@10'])} | {fmt(v['recall@10'])} | {fmt(v['recall@100'])} |")
    lc = result["locomo"]
    out.append(
        f"\nLoCoMo ({lc['docs']} turns in {lc['conversations']} conversations, {lc['questions']} questions; "
        f"{lc['no_usable_evidence']} without usable evidence left out; "
        f"{len(lc['skipped_evidence_tokens'])} evidence ids skipped: {', '.join(lc['skipped_evidence_tokens']) or 'none'})\n"
    )
    cats = [c for c in list(LOCOMO_CATEGORIES.values()) + ["all"] if c in next(iter(lc["systems"].values()))]
    first = next(iter(lc["systems"].values()))
    out.append("| system | " + " | ".join(f"{c} (n={first[c]['n']}) R@5 / R@10 / R@20" for c in cats) + " |")
    out.append("| --- | " + " | ".join("---" for _ in cats) + " |")
    for s, v in lc["systems"].items():
        cells = [f"{v[c]['recall@5']:.3f} / **{v[c]['recall@10']:.3f}** / {v[c]['recall@20']:.3f}" for c in cats]
        out.append(f"| {label(s, result)} | " + " | ".join(cells) + " |")
    out.append("\nTargets (issue 11):\n")
    for t in result["targets"]:
        out.append(f"- {'met' if t['met'] else '**missed**'}: {t['text']}")
    return "\n".join(out)


def explain(args, api, user, query, model_id):
    """The retrieve statement's plan for one real query, as the app role,
    with the query embedded by the pool's `model_id` (the API's model)."""
    if not args.explain or not os.path.exists(args.explain):
        return None
    vec = api.embed(args.pool, [query], model_id)[0]
    vec_text = "[" + ",".join(f"{x:.7g}" for x in vec) + "]"
    out = subprocess.run(
        [args.explain, "--user", user, "--query", query, "--vector", vec_text, "--model", model_id],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        log(f"explain-retrieve failed: {out.stderr.strip()}")
        return None
    return out.stdout.rstrip()


def write_benchmarks(path, result, plan, tuning):
    sf, lc = result["scifact"], result["locomo"]
    body = [
        QUALITY_SECTION,
        "",
        "Measured by the quality harness (`bench/quality/`, issue 11): both data sets loaded "
        "through the real API (batch ingest), embedded by the real pool, every question asked "
        "through `/api/v1/memory/retrieve`; the baselines run in the same process on the same texts. "
        "All of `../shared/data` is development data (SciFact train judgments, LoCoMo's dev "
        "conversations): the fusion parameters were chosen on it, and the held-out test splits "
        "were not used for anything here.",
        "",
        f"Run: {result['date']} on {result['machine']}, commit {result['commit']}; "
        f"embedding wait {sf['embed_seconds'] + lc['embed_seconds']:.0f} s, whole run {result['seconds']:.0f} s.",
        "",
        "```sh",
        result["command"],
        "```",
        "",
        tables(result),
        "",
    ]
    if tuning:
        src = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "edge-api", "src", "repositories", "retrieval.rs")).read()
        k = re.search(r"pub const RRF_K: u32 = (\d+);", src)
        depth = re.search(r"pub const FUSION_DEPTH: usize = (\d+);", src)
        chosen = f"k = {k.group(1)}, depth {depth.group(1)}" if k and depth else "see retrieval.rs"
        body += [
            "### How the fusion parameters were chosen",
            "",
            "`bench/quality/tune_fusion.py` replays reciprocal-rank fusion over this run's own "
            "branch rankings (the API's `vector` and `text` modes, 100 deep) for a grid of k and "
            "per-branch depth; the API uses the values in `edge-api/src/repositories/retrieval.rs` "
            "(`RRF_K`, `FUSION_DEPTH`), chosen from this table on the development data.",
            "",
            *tuning,
            "",
            f"In use: {chosen} (a cell within a few thousandths of the best on both data sets "
            "is preferred to an extreme k; the reasons are in retrieval.rs).",
            "",
        ]
    if plan:
        body += [
            "Plan of the retrieve statement for one SciFact query (as `memshadow_app`, row-level "
            "security on; `EXPLAIN (ANALYZE, BUFFERS)`):",
            "",
            "```text",
            plan,
            "```",
            "",
        ]
    replace_section(path, QUALITY_SECTION, "\n".join(body))


def main():
    args = parse_args()
    t0 = time.time()
    api = Api(args.api, args.mint_token, args.keys)
    prefix = "smoke" if args.smoke else "full"
    if args.smoke:
        scifact = load_scifact(args.data, max_docs=150, max_queries=30)
        locomo = load_locomo(args.data, max_turns=150)
    else:
        scifact = load_scifact(args.data)
        locomo = load_locomo(args.data)
    colls = [scifact] + locomo
    users = {c.name: user_for(prefix, c.name) for c in colls}

    embedder = OnnxEmbedder(args.model_dir, args.manifest, args.cache)
    sf_wait = lc_wait = None
    if not args.baselines_only:
        for c in colls:
            c.id_to_doc = load(api, c, users[c.name], embedder.model_id)
        sf_wait = api.wait_embedded([users[scifact.name]], log, drive=not args.no_drive)
        lc_wait = api.wait_embedded([users[c.name] for c in locomo], log, drive=not args.no_drive)
        # The reference must be the model the API embedded with.
        for c in colls:
            served = {m["embedding_model"] for m in api.list_all(users[c.name])}
            if served != {embedder.model_id}:
                sys.exit(f"{c.name}: the API embedded with {sorted(served)}, the reference is "
                         f"{embedder.model_id} (start the stack with MEMSHADOW_EMBEDDING_MODEL={embedder.model_id})")

    log("baselines: BM25 and onnxruntime exact cosine")
    embedders = {"onnx": embedder}
    for model_dir, manifest in args.other_model:
        other = OnnxEmbedder(model_dir, manifest, args.cache)
        embedders[f"onnx:{other.model_id}"] = other
    rankings = {}
    for c in colls:
        rankings[c.name] = baseline_rankings(c, embedders, DEPTH)
        if not args.baselines_only:
            log(f"{c.name}: asking {len(c.questions)} questions in modes {', '.join(MODES)}")
            rankings[c.name] |= api_rankings(api, users[c.name], c, DEPTH, MODES, args.threads)

    systems = [s for s in MODES + list(embedders) + ["bm25"] if all(s in rankings[c.name] for c in colls)]
    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
        "command": args.command,
        "smoke": args.smoke,
        "model": {"file": os.path.basename(embedder.model_file), "sha256": embedder.digest, "id": embedder.model_id},
        "scifact": {
            "docs": len(scifact.docs),
            "questions": len(scifact.questions),
            "embed_seconds": sf_wait,
            "systems": {s: score_scifact(scifact, rankings[scifact.name][s]) for s in systems},
        },
        "locomo": {
            "docs": sum(len(c.docs) for c in locomo),
            "conversations": len(locomo),
            "questions": sum(len(c.questions) for c in locomo),
            "no_usable_evidence": sum(c.skipped["no_usable_evidence"] for c in locomo),
            "skipped_evidence_tokens": [t for c in locomo for t in c.skipped["skipped_evidence_tokens"]],
            "embed_seconds": lc_wait,
            "systems": {s: score_locomo(locomo, [rankings[c.name][s] for c in locomo]) for s in systems},
        },
    }
    result["targets"] = targets(result)
    plan = None if args.baselines_only else explain(args, api, users[scifact.name], scifact.questions[0].text, embedder.model_id)
    result["explain"] = plan
    result["seconds"] = time.time() - t0

    print()
    print(tables(result))
    if plan:
        print("\nretrieve plan (one SciFact query, as memshadow_app):\n" + plan)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    dump = {
        c.name: {
            "questions": [{"qid": q.qid, "relevant": q.relevant, "category": q.category} for q in c.questions],
            "source_ids": [d.source_ids for d in c.docs],
            "rankings": rankings[c.name],
        }
        for c in colls
    }
    if args.rankings:
        with open(args.rankings, "w") as f:
            json.dump(dump, f)
    tuning = None
    if not args.smoke and {"vector", "text", "bm25", "onnx"} <= set(systems):
        tuning, best = grid(dump)
        result["fusion_grid_best"] = {"k": best[0], "depth": best[1]}
    if args.benchmarks and not args.baselines_only:
        write_benchmarks(args.benchmarks, result, plan, tuning)
        log(f"updated {args.benchmarks}")
    if args.cleanup:
        for u in users.values():
            api.delete_all(u)
    log(f"result in {args.out}; {time.time() - t0:.0f}s")
    if args.check:
        failures = smoke_checks(result, rankings, colls)
        for f in failures:
            log(f"CHECK FAILED: {f}")
        if failures:
            sys.exit(1)
        log("smoke checks passed")
    return result


if __name__ == "__main__":
    main()
