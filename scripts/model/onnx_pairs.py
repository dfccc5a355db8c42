"""Find and replace the in-graph weight dequantisation (Cast int8 -> Mul scale) of an ONNX.

Shared by build_fp32_onnx.py (swap in fp32 originals) and fold_int8_onnx.py
(swap in the dequantised values), so both variants keep the same graph.
"""

import sys
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper


@dataclass
class Pair:
    cast: onnx.NodeProto
    mul: onnx.NodeProto
    q_name: str
    scale_name: str
    out: str
    q: np.ndarray
    scale: np.ndarray


def dequantised_pairs(model):
    """Every Cast(int8 initialiser) whose only consumer is a Mul by an initialiser."""
    inits = {t.name: t for t in model.graph.initializer}
    consumers = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    pairs = []
    for node in model.graph.node:
        if node.op_type != "Cast" or node.input[0] not in inits:
            continue
        q_init = inits[node.input[0]]
        if q_init.data_type != onnx.TensorProto.INT8:
            continue
        users = consumers.get(node.output[0], [])
        if len(users) != 1 or users[0].op_type != "Mul":
            sys.exit(f"onnx_pairs: Cast of {q_init.name} is not followed by exactly one Mul")
        mul = users[0]
        scale_name = [n for n in mul.input if n != node.output[0]][0]
        if scale_name not in inits:
            sys.exit(f"onnx_pairs: scale {scale_name} is not an initialiser")
        scale = numpy_helper.to_array(inits[scale_name])
        if scale.dtype != np.float32:
            sys.exit(f"onnx_pairs: scale {scale_name} is {scale.dtype}, not float32")
        pairs.append(
            Pair(node, mul, q_init.name, scale_name, mul.output[0],
                 numpy_helper.to_array(q_init), scale)
        )
    if not pairs:
        sys.exit("onnx_pairs: no Cast+Mul dequantisation found; wrong input file?")
    return pairs


def replace_pairs(model, pairs, replacements):
    """Drop each pair's nodes and int8/scale initialisers; add `replacements[out]` as f32.

    The new initialiser takes the Mul's output name, so downstream nodes are
    untouched. Order follows the graph, which keeps the output deterministic.
    """
    drop_nodes = {id(p.cast) for p in pairs} | {id(p.mul) for p in pairs}
    drop_inits = {p.q_name for p in pairs} | {p.scale_name for p in pairs}
    kept_nodes = [n for n in model.graph.node if id(n) not in drop_nodes]
    kept_inits = [t for t in model.graph.initializer if t.name not in drop_inits]
    still_used = {name for n in kept_nodes for name in n.input}
    if drop_inits & still_used:
        sys.exit(f"onnx_pairs: initialisers still used elsewhere: {sorted(drop_inits & still_used)}")
    new_inits = [
        numpy_helper.from_array(np.ascontiguousarray(replacements[p.out], dtype=np.float32), p.out)
        for p in pairs
    ]
    del model.graph.node[:]
    model.graph.node.extend(kept_nodes)
    del model.graph.initializer[:]
    model.graph.initializer.extend(new_inits + kept_inits)
