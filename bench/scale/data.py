"""The benchmarks' data at scale (bench/scale, bench/load): real texts with
their real embeddings, replicated with noise up to any size, and a COPY
loader. See README.md, "The data".
"""

import hashlib
import os
import sys
import time
import uuid

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "quality"))
from datasets import load_locomo, load_scifact  # noqa: E402

HEAVY_SHARE = 0.9
SMALL_USERS = 999
# Norm of the noise added to a copy: cosine to the original ≈ 1/sqrt(1 + p²) ≈ 0.9.
PERTURBATION = 0.484
SEED = 20261130


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def with_db(url, db):
    return url[: url.rfind("/")] + "/" + db


def pgvec(v):
    return "[" + ",".join(f"{x:.7g}" for x in v) + "]"


def corpus(data_dir, n_queries, embedder):
    """The real texts and vectors the rows are made from, and the queries."""
    sci = load_scifact(data_dir)
    convs = load_locomo(data_dir)
    texts = [d.content for d in sci.docs] + [d.content for c in convs for d in c.docs]
    questions = [q.text for q in sci.questions] + [q.text for c in convs for q in c.questions]
    log(f"corpus: {len(texts)} texts, {len(questions)} questions; embedding what the cache lacks")
    vecs = embedder.embed(texts, log=log)
    rng = np.random.default_rng(SEED)
    picked = sorted(rng.choice(len(questions), size=min(n_queries, len(questions)), replace=False))
    qtexts = [questions[i] for i in picked]
    qvecs = embedder.embed(qtexts, log=log)
    embedder.save()
    return texts, vecs.astype(np.float32), qtexts, qvecs.astype(np.float32)


def random_uuid(rng):
    return str(uuid.UUID(bytes=rng.bytes(16), version=4))


def generate(n, texts, vecs):
    """Rows (id, user, content, vector) and the heavy user's row positions."""
    rng = np.random.default_rng(SEED)
    base = len(texts)
    heavy = random_uuid(rng)
    smalls = [random_uuid(rng) for _ in range(SMALL_USERS)]
    out = np.empty((n, vecs.shape[1]), dtype=np.float32)
    users, contents = [], []
    n_heavy = int(n * HEAVY_SHARE)
    for i in range(n):
        src, copy = i % base, i // base
        v = vecs[src]
        if copy:
            noise = rng.standard_normal(v.shape[0]).astype(np.float32)
            v = v + noise * (PERTURBATION / np.linalg.norm(noise))
            v = v / np.linalg.norm(v)
        out[i] = v
        contents.append(texts[src] if copy == 0 else f"{texts[src]} (copy {copy})")
        users.append(heavy if i < n_heavy else smalls[i % SMALL_USERS])
    ids = [random_uuid(rng) for _ in range(n)]
    return ids, users, contents, out, heavy, n_heavy


def psql_connect(url):
    import psycopg

    return psycopg.connect(url, autocommit=True)


def load(url, model, ids, users, contents, vecs):
    """COPY the rows with the HNSW index dropped, then rebuild it: seconds each.
    One transaction: a run stopped midway leaves the table and its index as
    they were, not without the index (the table is locked meanwhile)."""
    # The index of these vectors' dimension (schema migration 0010).
    index = f"memories_embedding_{len(vecs[0])}_hnsw"
    with psql_connect(url) as c, c.transaction():
        indexdef = c.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", (index,)).fetchone()[0]
        c.execute(f"DROP INDEX {index}")
        started = time.monotonic()
        with c.cursor() as cur:
            with cur.copy(
                "COPY memories (id, user_id, content, content_hash, embedding, embedding_model, embedding_status) FROM STDIN"
            ) as cp:
                for i in range(len(ids)):
                    digest = hashlib.sha256(contents[i].encode()).hexdigest()
                    cp.write_row((ids[i], users[i], contents[i], digest, pgvec(vecs[i]), model, "ready"))
        copy_s = time.monotonic() - started
        c.execute("ANALYZE memories")
        started = time.monotonic()
        # The index build is faster with the graph in memory; a deployment
        # building its index after a bulk load would do the same.
        # A million 384-d vectors alone take 1.5 GB; 4 GB keeps their graph
        # in memory at the largest size the bench runs.
        c.execute("SET maintenance_work_mem = '4GB'")
        c.execute(indexdef)
        index_s = time.monotonic() - started
    started = time.monotonic()
    settle(url, "memories")
    return {"copy_s": round(copy_s, 1), "index_s": round(index_s, 1), "vacuum_s": round(time.monotonic() - started, 1),
            "indexdef": indexdef}


def settle(url, table):
    """VACUUM (ANALYZE) after a bulk load, as autovacuum would get to in a
    deployment: it sets the rows' hint bits and the visibility map. Without
    it the first searches after a load set them as they read (seconds per
    statement at 100,000 memories: a cold start, not the steady state)."""
    with psql_connect(url) as c:
        c.execute(f"VACUUM (ANALYZE) {table}")
