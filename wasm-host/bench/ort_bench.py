"""onnxruntime baseline for wasm-host's embed-bench.

Runs the same model file, tokenizer and texts as the Rust side, on a fixed
number of threads, and prints one JSON object with texts/s and latency
percentiles per (length class, batch size). Tokenisation, mean pooling and
L2 normalisation are inside the timed region, as they are for embed-wasm.

Usage: ort_bench.py MODEL TOKENIZER CASES_JSON THREADS MIN_SECONDS
CASES_JSON: {"short": [texts...], "long": [texts...], "batches": [1, 8, 32],
             "max_tokens": 256}
"""

import json
import sys
import time

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer


def main() -> None:
    model, tok_path, cases_path, threads, min_seconds = sys.argv[1:6]
    threads, min_seconds = int(threads), float(min_seconds)
    cases = json.load(open(cases_path))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    tok = Tokenizer.from_file(tok_path)
    tok.enable_truncation(cases["max_tokens"])
    tok.enable_padding()

    def embed(texts):
        enc = tok.encode_batch(texts)
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        out = session.run(None, {n: feed[n] for n in names})[0]
        m = mask[:, :, None].astype(np.float32)
        pooled = (out * m).sum(1) / np.clip(m.sum(1), 1e-9, None)
        return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)

    results = []
    for length in ("short", "long"):
        pool = cases[length]
        for batch in cases["batches"]:
            texts = [pool[i % len(pool)] for i in range(batch)]
            embed(texts)  # warm-up: first-run allocations
            lat = []
            start = time.perf_counter()
            while (time.perf_counter() - start < min_seconds or len(lat) < 3) and len(lat) < 200:
                t0 = time.perf_counter()
                embed(texts)
                lat.append(time.perf_counter() - t0)
            lat.sort()
            total = sum(lat)
            results.append({
                "length": length,
                "batch": batch,
                "calls": len(lat),
                "texts_per_s": batch * len(lat) / total,
                "p50_ms": 1e3 * lat[len(lat) // 2],
                "p95_ms": 1e3 * lat[min(len(lat) - 1, int(len(lat) * 0.95))],
            })
    print(json.dumps({"onnxruntime": ort.__version__, "threads": threads, "results": results}))


if __name__ == "__main__":
    main()
