"""Generate embed-wasm/tests/golden/embeddings.json: reference vectors from onnxruntime.

For each text: Python `tokenizers` (truncation 256, no padding), one
onnxruntime run per text (batch 1, so no padding is involved), then
sentence-transformers' pooling: mean over the attention mask, L2-normalised.
Vectors are produced for both prepared variants (model-fp32.onnx and
model-int8.onnx from scripts/model/prepare.sh); the file records each
model's sha256 so the Rust test can refuse a mismatched model.

Usage: golden_embeddings.py MODEL_DIR OUT_JSON [MAX_LENGTH [VARIANT ...]]

Defaults: 256 tokens and the variants fp32 and int8 (all-MiniLM-L6-v2);
all-mpnet-base-v2 is `384 fp32`.
"""

import hashlib
import json
import os
import sys

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

MAX_LENGTH = 256

TEXTS = [
    "",
    "   ",
    "hello",
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "The user prefers dark mode and uses vim keybindings.",
    "Remind me to call Alice on Tuesday at 3pm about the Q3 budget.",
    "My daughter's birthday is on March 14th; she wants a telescope.",
    "I am allergic to peanuts and shellfish.",
    "Project Falcon ships on 2026-12-01; the blocker is the payment integration.",
    "The Wi-Fi password at the office is taped under the router.",
    "Favourite books: Dune, The Left Hand of Darkness, Piranesi.",
    "A man is eating food.",
    "A man is riding a white horse on an enclosed ground.",
    "A monkey is playing drums.",
    "Two men pushed carts through the woods.",
    "Café crème brûlée à la carte, naïve façade.",
    "Москва — столица России.",
    "مرحبا بالعالم، كيف حالك؟",
    "你好，世界！我爱北京天安门。",
    "日本語のテキスト、ひらがなとカタカナ。",
    "한국어 텍스트 안녕하세요",
    "Tiếng Việt có dấu: Hà Nội",
    "emoji 😀😃😄 🎉 👍🏽 ❤️ 👨‍👩‍👧‍👦",
    "control\u0000chars\u0001here\u0007",
    "!!!???...,,,;;;:::",
    "1234567890 3.14159 -42 1e-10 0x1F",
    "https://example.com/path?query=1&other=two#fragment",
    "fn main() { println!(\"Hello, {}!\", name); }",
    "def f(x):\n    return x ** 2  # square",
    "SELECT * FROM memories WHERE user_id = $1 ORDER BY created_at DESC;",
    "<div class=\"note\">&amp; remember the milk</div>",
    "[CLS] [SEP] [MASK] literal special tokens",
    "supercalifragilisticexpialidocious",
    "a" * 150,
    "The meeting was moved. " * 5,
    "Neural networks learn representations from data. " * 40,
    " ".join(str(i) for i in range(300)),
    "word " * 400,
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "The mitochondria is the powerhouse of the cell.",
    "Interest rates rose by 25 basis points in the last quarter.",
    "She sells seashells by the seashore.",
    "To be, or not to be, that is the question.",
    "git rebase -i HEAD~3 && git push --force-with-lease",
    "ERROR 2026-11-24T03:12:55Z connection refused (os error 111)",
    "The patient reported mild headaches after the second dose.",
    "Paris is the capital of France.",
    "Berlin is the capital of Germany.",
    "I don't like spinach, but I love kale smoothies.",
    "Meeting notes: discuss roadmap, hiring plan, and budget for Q1.",
    "The train to Lyon leaves from platform 7 at 08:42.",
    "    leading and trailing whitespace    ",
    "UPPERCASE TEXT SHOULD EMBED LIKE LOWERCASE TEXT",
    "uppercase text should embed like lowercase text",
    "Ελληνικά: Αθήνα, Θεσσαλονίκη",
]


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def embed(session, tok, text):
    enc = tok.encode(text)
    ids = np.array([enc.ids], dtype=np.int64)
    mask = np.array([enc.attention_mask], dtype=np.int64)
    feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    names = {i.name for i in session.get_inputs()}
    hidden = session.run(None, {k: v for k, v in feeds.items() if k in names})[0]  # [1, seq, dim]
    m = mask[..., None].astype(np.float32)
    pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
    vec = pooled[0] / max(float(np.linalg.norm(pooled[0])), 1e-12)
    return len(enc.ids), vec.astype(np.float32)


def main():
    model_dir, out_path = sys.argv[1:3]
    max_length = int(sys.argv[3]) if len(sys.argv) > 3 else MAX_LENGTH
    variants = sys.argv[4:] or ["fp32", "int8"]
    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    models = {}
    token_counts = None
    for variant in variants:
        path = os.path.join(model_dir, f"model-{variant}.onnx")
        session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        results = [embed(session, tok, t) for t in TEXTS]
        counts = [n for n, _ in results]
        if token_counts is not None and counts != token_counts:
            sys.exit("token counts differ between variants")
        token_counts = counts
        models[variant] = {
            "file": f"model-{variant}.onnx",
            "sha256": sha256(path),
            # 8 significant digits round-trip float32 closely enough that the
            # stored vectors' own error is far below the tested tolerance.
            "vectors": [[float(f"{x:.8g}") for x in v] for _, v in results],
        }
    if "int8" in models:
        fp32 = np.array(models["fp32"]["vectors"])
        int8 = np.array(models["int8"]["vectors"])
        cos = (fp32 * int8).sum(axis=1)
        print(f"golden_embeddings: int8 vs fp32 (onnxruntime) cosine min {cos.min():.6f} mean {cos.mean():.6f}")
    doc = {
        "generator": "scripts/model/golden_embeddings.py",
        "onnxruntime_version": ort.__version__,
        "tokenizer_json_sha256": sha256(os.path.join(model_dir, "tokenizer.json")),
        "truncation": max_length,
        "pooling": "mean over attention mask, L2-normalised",
        "texts": TEXTS,
        "token_counts": token_counts,
        "models": models,
    }
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print(f"golden_embeddings: {len(TEXTS)} texts -> {out_path}")


if __name__ == "__main__":
    main()
