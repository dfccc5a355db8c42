"""Fold the int8 graph's weight dequantisation into f32 initialisers (model-int8.onnx).

tract will not constant-fold the 30522x384 word-embedding dequantisation (it is
over its fold budget), so on the original file it re-dequantises on every run
(about 4x slower). Doing the same arithmetic here (float32(q) * scale, exactly
what the graph computes) gives the int8 model's values at fp32 speed. The
weights keep their int8 precision; only the file is larger.

Usage: fold_int8_onnx.py INT8_ONNX OUT_ONNX
"""

import sys

import numpy as np
import onnx

from onnx_pairs import dequantised_pairs, replace_pairs


def main():
    int8_path, out_path = sys.argv[1:3]
    model = onnx.load(int8_path)
    pairs = dequantised_pairs(model)
    print(f"fold_int8_onnx: folding {len(pairs)} dequantised weights")
    replacements = {p.out: p.q.astype(np.float32) * p.scale for p in pairs}
    replace_pairs(model, pairs, replacements)
    model.producer_name = "memshadow scripts/model/fold_int8_onnx.py"
    model.producer_version = "1"
    onnx.checker.check_model(model, full_check=False)
    onnx.save(model, out_path)


if __name__ == "__main__":
    main()
