"""Chooses the reciprocal-rank-fusion parameters on the development data:
replays the fusion of the API's own branch rankings (its "vector" and
"text" modes, as saved by `run.py --rankings`) for a grid of k and
per-branch depth, and prints SciFact nDCG@10 and LoCoMo recall@10 (all
questions, and the worst category's margin over the better baseline).

Replaying is exact: a single-branch mode returns that branch's ranking,
and the fused score is Σ 1/(k + rank) over the branches that ranked the
memory within the depth, ties broken by vector rank then id (as the SQL
does; ids are not in the dump, so ties fall back to the vector order).

Usage: tune_fusion.py RANKINGS_JSON
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from metrics import evidence_recall_at_k, mean, ndcg_at_k  # noqa: E402

KS = [1, 5, 10, 20, 30, 40, 60, 80, 100]
DEPTHS = [10, 20, 30, 50, 100]


def fuse(vec, txt, k, depth, w_text=1.0):
    score = {}
    vr = {}
    for r, d in enumerate(vec[:depth], start=1):
        score[d] = score.get(d, 0.0) + 1.0 / (k + r)
        vr[d] = r
    for r, d in enumerate(txt[:depth], start=1):
        score[d] = score.get(d, 0.0) + w_text / (k + r)
    return sorted(score, key=lambda d: (-score[d], vr.get(d, 10**9), d))


def evaluate(data, k, depth, w_text=1.0, system=None):
    sf = data.get("scifact", {"questions": []})
    nd = []
    for i, q in enumerate(sf["questions"]):
        if system:
            ranked = sf["rankings"][system][i]
        else:
            ranked = fuse(sf["rankings"]["vector"][i], sf["rankings"]["text"][i], k, depth, w_text)
        ids = [s for d in ranked for s in sf["source_ids"][d]]
        nd.append(ndcg_at_k(ids, set(q["relevant"]), 10))
    per_cat = {}
    for name, c in data.items():
        if not name.startswith("locomo/"):
            continue
        for i, q in enumerate(c["questions"]):
            if system:
                ranked = c["rankings"][system][i]
            else:
                ranked = fuse(c["rankings"]["vector"][i], c["rankings"]["text"][i], k, depth, w_text)
            turns = [set(c["source_ids"][d]) for d in ranked]
            r = evidence_recall_at_k(turns, q["relevant"], 10)
            per_cat.setdefault(q["category"], []).append(r)
            per_cat.setdefault("all", []).append(r)
    return mean(nd), {c: mean(v) for c, v in per_cat.items()}


def grid(data):
    """Markdown lines: the baselines and the k × depth grid, then the
    weighted variant at the best cell; and the best (k, depth)."""
    out = []
    base = {s: evaluate(data, 0, 0, system=s) for s in ("bm25", "onnx", "vector", "text")}
    best_base = {c: max(base["bm25"][1][c], base["onnx"][1][c]) for c in base["bm25"][1]}
    sf_target = max(base["bm25"][0], base["onnx"][0]) + 0.02
    out.append(
        f"Targets: SciFact nDCG@10 ≥ {sf_target:.4f} (the better baseline + 0.02); LoCoMo recall@10 above "
        "max(BM25, onnxruntime) in every category (margin of the worst category shown).\n"
    )
    out.append("| k | depth | SciFact nDCG@10 | LoCoMo R@10 (all) | worst category margin |")
    out.append("| --- | --- | --- | --- | --- |")
    rows = []
    for k in KS:
        for depth in DEPTHS:
            nd, lc = evaluate(data, k, depth)
            worst = min((lc[c] - best_base[c], c) for c in lc if c != "all")
            rows.append((k, depth, nd, lc["all"], worst))
            out.append(f"| {k} | {depth} | {nd:.4f} | {lc['all']:.4f} | {worst[0]:+.4f} ({worst[1]}) |")
    best = max(rows, key=lambda r: (r[2] >= sf_target and r[4][0] > 0, r[2] + r[3]))
    out.append(f"\nBest cell (targets first, then nDCG@10 + recall@10): k = {best[0]}, depth {best[1]}.\n")
    out.append(f"Weighted fusion at k = {best[0]}, depth {best[1]} (text branch weight w):\n")
    out.append("| w | SciFact nDCG@10 | LoCoMo R@10 (all) |")
    out.append("| --- | --- | --- |")
    for w in (0.5, 0.75, 1.0, 1.25, 1.5, 2.0):
        nd, lc = evaluate(data, best[0], best[1], w_text=w)
        out.append(f"| {w} | {nd:.4f} | {lc['all']:.4f} |")
    return out, (best[0], best[1])


def main():
    data = json.load(open(sys.argv[1]))
    for s in ("bm25", "onnx", "vector", "text", "hybrid"):
        nd, lc = evaluate(data, 0, 0, system=s)
        print(f"{s:8s} SciFact nDCG@10 {nd:.4f}  LoCoMo R@10 " + " ".join(f"{c} {v:.3f}" for c, v in sorted(lc.items())))
    lines, _ = grid(data)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
