"""Chooses the text branch's budget on the development data (issue 10 and
11): the retrieve statement's text branch, exact and within a grid of
budgets, scored on SciFact (nDCG@10) and LoCoMo (recall@10 of evidence
turns, per category).

The budget (edge-api/src/repositories/retrieval.rs, `TextBudget`): the
user's most recent memories that BM25's corpus statistics are estimated
over (`--idf-sample`), the memories taken per query lexeme
(`--rows-per-term`) and the rarest lexemes that find candidates
(`--max-terms`). With every bound past the user's memories the branch is
exact BM25, the reference row of the table.

The data goes straight into a database of its own with COPY (text only:
the text branch needs no vectors), one user per collection as the
quality harness stores it, created_at advancing per batch of 100 as batch
ingest stamps it; the statement runs through `retrieve-bench --texts`, the
repository's own code as the application role.

Usage (scripts/bench-text-branch.sh runs it): tune_text_branch.py --data
DIR --bin-dir DIR --admin-url URL --app-url URL --out JSON [--benchmarks
BENCHMARKS.md]
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from benchmarks_md import publish, replace_section, run_facts  # noqa: E402
from datasets import load_locomo, load_scifact  # noqa: E402
from metrics import evidence_recall_at_k, mean, ndcg_at_k  # noqa: E402

SECTION = "## The text branch at scale"
DB = "memshadow_text_branch"
EXACT = 10**9
# (idf sample, rows per term, max terms); the first is what the API uses.
GRID = [
    (1000, 200, 8),
    (500, 200, 8),
    (2000, 200, 8),
    (1000, 100, 8),
    (1000, 500, 8),
    (1000, 200, 6),
    (1000, 200, 12),
]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="../shared/data")
    p.add_argument("--bin-dir", required=True, help="where migrate and retrieve-bench are")
    p.add_argument("--admin-url", required=True, help="superuser URL of any database on the server")
    p.add_argument("--app-url", required=True, help="application role URL of any database on the server")
    p.add_argument("--out", required=True, help="result JSON")
    p.add_argument("--benchmarks", help="BENCHMARKS.md to update")
    p.add_argument("--command", default="", help="the command line to record")
    p.add_argument("--rewrite", action="store_true", help="only rewrite the section from --out's saved result")
    return p.parse_args()


def with_db(url, db):
    return url[: url.rfind("/")] + "/" + db


def load(args, colls):
    """A fresh database holding every collection; ids per (collection, doc)."""
    import psycopg

    with psycopg.connect(args.admin_url, autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        c.execute(f"CREATE DATABASE {DB}")
    subprocess.run([os.path.join(args.bin_dir, "migrate"), with_db(args.admin_url, DB)], check=True)
    users, ids = {}, {}
    with psycopg.connect(with_db(args.admin_url, DB), autocommit=True) as c:
        for coll in colls:
            users[coll.name] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"memshadow-text-branch/{coll.name}"))
            with c.cursor().copy("COPY memories (id, user_id, content, content_hash, created_at) FROM STDIN") as cp:
                for i, d in enumerate(coll.docs):
                    ids[(coll.name, i)] = str(uuid.uuid4())
                    cp.write_row((ids[(coll.name, i)], users[coll.name], d.content,
                                  hashlib.sha256(d.content.encode()).hexdigest(), "2026-01-01T00:00:00Z"))
            c.execute(
                "UPDATE memories m SET created_at = m.created_at + make_interval(secs => x.batch) "
                "FROM (SELECT id, (row_number() OVER (ORDER BY id) - 1) / 100 AS batch "
                "      FROM memories WHERE user_id = %s) x WHERE m.id = x.id",
                (users[coll.name],),
            )
        c.execute("VACUUM ANALYZE memories")
    return users, ids


def rank(args, user, questions, budget):
    """Text-branch rankings (memory ids, best first) and the mean time per question."""
    cmd = [os.path.join(args.bin_dir, "retrieve-bench"), "--user", user, "--texts", "--limit", "100",
           "--idf-sample", str(budget[0]), "--rows-per-term", str(budget[1]), "--max-terms", str(budget[2])]
    lines = "".join(" ".join(q.text.split()) + "\n" for q in questions)
    out = subprocess.run(cmd, input=lines, capture_output=True, text=True, check=True,
                         env={**os.environ, "DATABASE_URL": with_db(args.app_url, DB)})
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    return [r["ids"] for r in rows], mean([r["ms"] for r in rows])


def score(args, colls, users, source_of, budget):
    sci, loc, ms = [], {}, []
    for coll in colls:
        ranked, t = rank(args, users[coll.name], coll.questions, budget)
        ms.append(t)
        for q, ids in zip(coll.questions, ranked):
            turns = [source_of[i] for i in ids]
            if coll.name == "scifact":
                sci.append(ndcg_at_k([t[0] for t in turns], set(q.relevant), 10))
            else:
                loc.setdefault(q.category, []).append(evidence_recall_at_k(turns, q.relevant, 10))
    every = [x for v in loc.values() for x in v]
    return {
        "idf_sample": budget[0], "rows_per_term": budget[1], "max_terms": budget[2],
        "scifact_ndcg10": round(mean(sci), 4),
        "locomo_recall10": round(mean(every), 4),
        "locomo_by_category": {k: round(mean(v), 4) for k, v in sorted(loc.items())},
        "mean_ms": round(mean(ms), 1),
    }


def write_benchmarks(path, result):
    cats = sorted(result["runs"][0]["locomo_by_category"])
    head = "| budget (idf sample / rows per term / max terms) | SciFact nDCG@10 | LoCoMo R@10 | " + \
        " | ".join(cats) + " |"
    rows = [head, "|" + " --- |" * (3 + len(cats))]
    for r in result["runs"]:
        name = "exact BM25 (no bounds)" if r["idf_sample"] == EXACT else \
            f"{r['idf_sample']} / {r['rows_per_term']} / {r['max_terms']}"
        if (r["idf_sample"], r["rows_per_term"], r["max_terms"]) == tuple(GRID[0]):
            name = f"**{name} (the API's)**"
        rows.append(f"| {name} | {r['scifact_ndcg10']:.4f} | {r['locomo_recall10']:.3f} | " +
                    " | ".join(f"{r['locomo_by_category'][c]:.3f}" for c in cats) + " |")
    f = result["facts"]
    body = [
        SECTION,
        "",
        f"`{f['command']}`, run {f['date']} on {f['machine']} (commit {f['commit']}): the retrieve "
        "statement's text branch alone (`retrieve-bench --texts`, as the application role) over all of "
        "SciFact (one user, its 809 judged train queries) and LoCoMo's dev conversations (one user "
        "each), exact and within each budget. Development data only; the budget the API uses was chosen "
        "from this table. The point of the bounds is cost, not quality: a question's cost no longer grows "
        "with the user's memories (times at 100,000 memories: \"Vector search at scale: before and after "
        "migration 0009\"; the mean time per question at these sizes is in bench/quality/text-branch.json).",
        "",
        *rows,
        "",
    ]
    replace_section(path, SECTION, "\n".join(body))


def main():
    import psycopg

    args = parse_args()
    if args.rewrite:
        write_benchmarks(args.benchmarks, json.load(open(args.out)))
        return
    colls = [load_scifact(args.data)] + load_locomo(args.data)
    started = time.time()
    users, ids = load(args, colls)
    source_of = {ids[(c.name, i)]: d.source_ids for c in colls for i, d in enumerate(c.docs)}
    runs = []
    for budget in [(EXACT, EXACT, EXACT)] + GRID:
        r = score(args, colls, users, source_of, budget)
        print(json.dumps(r), flush=True)
        runs.append(r)
    with psycopg.connect(args.admin_url, autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    result = {"facts": run_facts(args.command), "seconds": round(time.time() - started), "runs": runs}
    publish(result, args.out, args.benchmarks, write_benchmarks)


if __name__ == "__main__":
    main()
