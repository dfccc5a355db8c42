"""Retrieval metrics for the quality harness: BEIR's nDCG@k and recall@k
(binary relevance, as pytrec_eval computes them) and LoCoMo's evidence
recall@k, plus LoCoMo's lenient evidence-id parser.

Pure functions over plain lists and dicts, unit-tested in test_metrics.py
with a hand-computed example.
"""

import math
import re

# "D12:3": session 12, turn 3.
_EVIDENCE_ID = re.compile(r"^D(\d+):(\d+)$")


def ndcg_at_k(ranked, relevant, k):
    """nDCG@k with binary gains, as BEIR (pytrec_eval `ndcg_cut`) computes it.

    `ranked`: document ids best first (duplicates after the first are
    ignored). `relevant`: the set of relevant ids. DCG = sum over ranks
    i = 1..k of rel_i / log2(i + 1); the ideal DCG puts every relevant
    document first. A query with no relevant document scores 0.
    """
    if not relevant:
        return 0.0
    dcg = 0.0
    for i, doc in enumerate(_dedup(ranked)[:k], start=1):
        if doc in relevant:
            dcg += 1.0 / math.log2(i + 1)
    ideal = sum(1.0 / math.log2(i + 1) for i in range(1, min(len(relevant), k) + 1))
    return dcg / ideal


def recall_at_k(ranked, relevant, k):
    """Share of the relevant ids found in the top k (pytrec_eval `recall_k`)."""
    if not relevant:
        return 0.0
    top = set(_dedup(ranked)[:k])
    return len(top & set(relevant)) / len(relevant)


def _dedup(ranked):
    seen = set()
    out = []
    for doc in ranked:
        if doc not in seen:
            seen.add(doc)
            out.append(doc)
    return out


def parse_evidence(raw, known_ids):
    """LoCoMo evidence ids, parsed leniently.

    Each entry may hold several ids ("D8:6; D9:17"); leading zeros are
    dropped ("D30:05" -> "D30:5"). Returns (ids, skipped): `ids` are the
    distinct well-formed ids that exist in the conversation (`known_ids`),
    in order; `skipped` lists each token that was malformed ("D") or names
    no turn of the conversation, so the harness can count them.
    """
    ids = []
    skipped = []
    for entry in raw or []:
        for token in re.split(r"[;,\s]+", str(entry).strip()):
            if not token:
                continue
            m = _EVIDENCE_ID.match(token)
            if not m:
                skipped.append(token)
                continue
            norm = f"D{int(m.group(1))}:{int(m.group(2))}"
            if norm not in known_ids:
                skipped.append(token)
            elif norm not in ids:
                ids.append(norm)
    return ids, skipped


def evidence_recall_at_k(ranked_turn_sets, evidence, k):
    """LoCoMo recall@k: share of a question's evidence turns among the turns
    of the top k memories retrieved.

    `ranked_turn_sets`: for each retrieved memory, best first, the set of
    turn ids it holds (one, or several when identical turns were stored
    once). `evidence`: the question's usable evidence ids (non-empty).
    """
    found = set()
    for turns in ranked_turn_sets[:k]:
        found |= set(turns)
    return len(found & set(evidence)) / len(evidence)


def mean(values):
    values = list(values)
    return sum(values) / len(values) if values else float("nan")
