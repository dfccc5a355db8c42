"""The evaluation data sets as the harness stores and asks them: BEIR
SciFact (title + text per document, the train judgments) and LoCoMo (one
memory per conversation turn, questions with evidence turn ids).

Both are read from the shared data folder at run time (never copied into
the repository). Identical contents within one user are stored once (the
API refuses duplicates), so a document carries the list of source ids it
stands for.
"""

import json
import os
from dataclasses import dataclass, field

from metrics import parse_evidence

LOCOMO_CATEGORIES = {
    1: "multi-hop",
    2: "temporal",
    3: "open-domain",
    4: "single-hop",
    5: "adversarial",
}


@dataclass
class Doc:
    content: str
    metadata: dict
    # Source ids this content stands for (corpus ids or LoCoMo turn ids).
    source_ids: list


@dataclass
class Question:
    qid: str
    text: str
    # SciFact: relevant corpus ids; LoCoMo: usable evidence turn ids.
    relevant: list
    category: str = ""


@dataclass
class Collection:
    """One user's memories and the questions asked of them."""

    name: str
    docs: list
    questions: list
    # LoCoMo bookkeeping: questions left out and evidence tokens skipped.
    skipped: dict = field(default_factory=dict)


def _add(docs, by_content, content, metadata, source_id):
    i = by_content.get(content)
    if i is None:
        by_content[content] = len(docs)
        docs.append(Doc(content, metadata, [source_id]))
    else:
        docs[i].source_ids.append(source_id)


def load_scifact(data_dir, max_docs=None, max_queries=None):
    """SciFact: one collection. With `max_docs`, keeps the judged documents
    of the first `max_queries` judged queries and fills up to `max_docs`
    with the corpus in file order (the smoke run)."""
    base = os.path.join(data_dir, "scifact")
    corpus = [json.loads(line) for line in open(os.path.join(base, "corpus.jsonl"))]
    queries = {}
    for line in open(os.path.join(base, "queries.jsonl")):
        q = json.loads(line)
        queries[q["_id"]] = q["text"]  # `metadata` holds the answers: unused
    qrels = {}
    with open(os.path.join(base, "qrels", "train.tsv")) as f:
        next(f)  # header
        for line in f:
            qid, did, score = line.rstrip("\n").split("\t")
            if int(score) > 0:
                qrels.setdefault(qid, []).append(did)
    judged = sorted(qrels, key=int)
    if max_queries is not None:
        judged = judged[:max_queries]
    if max_docs is not None:
        keep = {d for q in judged for d in qrels[q]}
        for doc in corpus:
            if len(keep) >= max_docs:
                break
            keep.add(doc["_id"])
        corpus = [d for d in corpus if d["_id"] in keep]
    docs, by_content = [], {}
    for d in corpus:
        content = f"{d['title']}\n{d['text']}".strip()
        _add(docs, by_content, content, {"corpus_id": d["_id"]}, d["_id"])
    questions = [Question(q, queries[q], qrels[q]) for q in judged]
    return Collection("scifact", docs, questions)


def _turn_content(turn):
    text = f"{turn['speaker']}: {turn['text']}"
    if turn.get("blip_caption"):
        text += f" [shares a photo: {turn['blip_caption']}]"
    return text


def load_locomo(data_dir, max_turns=None):
    """LoCoMo: one collection per conversation. With `max_turns`, keeps the
    first sessions up to that many turns and the questions whose evidence
    lies entirely inside them (the smoke run)."""
    items = json.load(open(os.path.join(data_dir, "locomo", "locomo_dev.json")))
    out = []
    for item in items:
        conv = item["conversation"]
        sessions = sorted(
            (int(k.split("_")[1]) for k in conv if k.startswith("session_") and isinstance(conv[k], list)),
        )
        docs, by_content, known = [], {}, set()
        for n in sessions:
            date = conv.get(f"session_{n}_date_time", "")
            turns = conv[f"session_{n}"]
            if max_turns is not None and len(known) + len(turns) > max_turns:
                break
            for turn in turns:
                known.add(turn["dia_id"])
                meta = {
                    "conversation": item["sample_id"],
                    "session": n,
                    "session_date": date,
                    "speaker": turn["speaker"],
                    "dia_id": turn["dia_id"],
                }
                _add(docs, by_content, _turn_content(turn), meta, turn["dia_id"])
        questions = []
        no_evidence = 0
        skipped_tokens = []
        for i, qa in enumerate(item["qa"]):
            ids, skipped = parse_evidence(qa.get("evidence"), known)
            if max_turns is not None and (skipped or not ids):
                continue  # the smoke subset asks only what it stored
            skipped_tokens += skipped
            if not ids:
                no_evidence += 1
                continue
            cat = LOCOMO_CATEGORIES.get(qa.get("category"), str(qa.get("category")))
            questions.append(Question(f"{item['sample_id']}#{i}", qa["question"], ids, cat))
        out.append(
            Collection(
                f"locomo/{item['sample_id']}",
                docs,
                questions,
                {"no_usable_evidence": no_evidence, "skipped_evidence_tokens": skipped_tokens},
            )
        )
        if max_turns is not None:
            break
    return out
