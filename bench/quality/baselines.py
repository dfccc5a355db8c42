"""The two reference retrievers the harness compares the API against, run
in the same process on the same stored texts:

- BM25 from `bm25s` (Lucene's BM25 variant, k1 = 1.5, b = 0.75, English
  stop words, Snowball English stemmer from PyStemmer);
- exact cosine over onnxruntime embeddings of the same model file the pool
  serves (model-fp32.onnx), tokenised as embed-wasm does (Hugging Face
  `tokenizers`, truncation to 256 tokens, mean pooling over the attention
  mask, L2-normalised).

Document embeddings are cached on disk by model digest and content hash, so
a second run costs only the queries.
"""

import hashlib
import json
import os

import numpy as np

# Truncation when a manifest names none (all-MiniLM-L6-v2: 256 tokens).
MAX_TOKENS = 256


class Bm25:
    def __init__(self, texts):
        import bm25s
        import Stemmer

        self._bm25s = bm25s
        self._stemmer = Stemmer.Stemmer("english")
        tokens = bm25s.tokenize(texts, stopwords="en", stemmer=self._stemmer, show_progress=False)
        self._index = bm25s.BM25(k1=1.5, b=0.75, method="lucene")
        self._index.index(tokens, show_progress=False)
        self._n = len(texts)

    def search(self, queries, k):
        """Top-k document positions per query, best first (no zero scores)."""
        tokens = self._bm25s.tokenize(queries, stopwords="en", stemmer=self._stemmer, show_progress=False)
        k = min(k, self._n)
        docs, scores = self._index.retrieve(tokens, k=k, show_progress=False, n_threads=0)
        return [[int(d) for d, s in zip(row, srow) if s > 0] for row, srow in zip(docs, scores)]


class OnnxEmbedder:
    def __init__(self, model_dir, manifest_path, cache_dir):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        manifest = json.load(open(manifest_path))
        variant = manifest["variants"][manifest["default_variant"]]
        self.model_file = os.path.join(model_dir, variant["file"])
        self.model_id = variant["model_id"]
        self.dim = manifest["dim"]
        digest = next(f["sha256"] for f in manifest["files"] if f["name"] == variant["file"])
        self.digest = digest
        self.tok = Tokenizer.from_file(os.path.join(model_dir, manifest["tokenizer"]))
        self.tok.enable_truncation(max_length=manifest.get("max_tokens", MAX_TOKENS))
        self.tok.no_padding()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, (os.cpu_count() or 2))
        self.sess = ort.InferenceSession(self.model_file, opts, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.sess.get_inputs()}
        self.cache_path = os.path.join(cache_dir, f"embeddings-{digest[:16]}.npz")
        self._cache = {}
        if os.path.exists(self.cache_path):
            with np.load(self.cache_path) as z:
                self._cache = dict(zip(z["keys"].tolist(), z["vecs"]))

    def _run(self, texts):
        encs = self.tok.encode_batch(texts)
        width = max(len(e.ids) for e in encs)
        ids = np.zeros((len(encs), width), dtype=np.int64)
        mask = np.zeros((len(encs), width), dtype=np.int64)
        for i, e in enumerate(encs):
            ids[i, : len(e.ids)] = e.ids
            mask[i, : len(e.ids)] = 1
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        hidden = self.sess.run(None, feed)[0]
        m = mask[:, :, None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)

    def embed(self, texts, log=None, batch=32):
        keys = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
        todo = sorted({k: t for k, t in zip(keys, texts) if k not in self._cache}.items(), key=lambda kv: len(kv[1]))
        for start in range(0, len(todo), batch):
            chunk = todo[start : start + batch]
            vecs = self._run([t for _, t in chunk])
            for (k, _), v in zip(chunk, vecs):
                self._cache[k] = v.astype(np.float32)
            if log and (start // batch) % 20 == 0:
                log(f"onnxruntime: {start + len(chunk)}/{len(todo)} new embeddings")
        return np.stack([self._cache[k] for k in keys]) if keys else np.zeros((0, self.dim), np.float32)

    def save(self):
        os.makedirs(os.path.dirname(self.cache_path), exist_ok=True)
        keys = list(self._cache)
        tmp = self.cache_path + ".tmp.npz"
        np.savez(tmp, keys=np.array(keys), vecs=np.stack([self._cache[k] for k in keys]))
        os.replace(tmp, self.cache_path)


def exact_cosine(doc_vecs, query_vecs, k):
    """Top-k document positions per query by exact cosine (vectors are unit length)."""
    sims = query_vecs @ doc_vecs.T
    k = min(k, doc_vecs.shape[0])
    top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    out = []
    for row, idx in zip(sims, top):
        order = sorted(idx.tolist(), key=lambda j: (-row[j], j))
        out.append(order)
    return out
