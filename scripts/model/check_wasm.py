"""Check a built embed-wasm module against ABI.md and the golden embeddings, under wasmtime.

Independent of wasm-host: verifies the export list and signatures, runs the
reactor life cycle (_initialize, ms_init with /model preopened) and embeds
the golden texts through ms_alloc/ms_embed, comparing with onnxruntime's
vectors. Also exercises the error statuses and reports guest memory.

Usage: check_wasm.py MODULE.wasm MODEL_DIR VARIANT(fp32|int8) GOLDEN_EMBEDDINGS_JSON
"""

import json
import os
import shutil
import struct
import sys
import tempfile
import time

import numpy as np
from wasmtime import Engine, FuncType, Linker, Module, Store, ValType, WasiConfig

I32 = ValType.i32()
EXPECTED_EXPORTS = {
    "_initialize": ([], []),
    "ms_abi_version": ([], [I32]),
    "ms_init": ([], [I32]),
    "ms_alloc": ([I32], [I32]),
    "ms_embed": ([I32, I32], [I32]),
    "ms_dim": ([], [I32]),
    "ms_max_tokens": ([], [I32]),
}


def fail(msg):
    sys.exit(f"check_wasm: FAIL: {msg}")


def check_exports(module):
    exports = {e.name: e.type for e in module.exports}
    if "memory" not in exports:
        fail("no exported memory")
    for name, (params, results) in EXPECTED_EXPORTS.items():
        ty = exports.get(name)
        if not isinstance(ty, FuncType):
            fail(f"missing function export {name}")
        if [str(p) for p in ty.params] != [str(p) for p in params] or [
            str(r) for r in ty.results
        ] != [str(r) for r in results]:
            fail(f"{name} has signature {ty.params} -> {ty.results}")
    print(f"check_wasm: exports ok ({', '.join(sorted(exports))})")


def request(texts):
    out = struct.pack("<I", len(texts))
    for t in texts:
        b = t.encode("utf-8") if isinstance(t, str) else t
        out += struct.pack("<I", len(b)) + b
    return out


class Guest:
    def __init__(self, engine, module, model_dir):
        self.store = Store(engine)
        wasi = WasiConfig()
        wasi.inherit_stderr()
        wasi.preopen_dir(model_dir, "/model")
        self.store.set_wasi(wasi)
        linker = Linker(engine)
        linker.define_wasi()
        self.x = linker.instantiate(self.store, module).exports(self.store)
        self.mem = self.x["memory"]

    def call(self, name, *args):
        return self.x[name](self.store, *args)

    def u32(self, at):
        return struct.unpack("<I", self.mem.read(self.store, at, at + 4))[0]

    def embed_raw(self, payload):
        ptr = self.call("ms_alloc", len(payload))
        if ptr == 0:
            fail("ms_alloc returned 0")
        self.mem.write(self.store, payload, ptr)
        return self.call("ms_embed", ptr, len(payload))

    def result(self, at):
        status = self.u32(at)
        if status != 0:
            n = self.u32(at + 4)
            return status, self.mem.read(self.store, at + 8, at + 8 + n).decode()
        count, dim = self.u32(at + 4), self.u32(at + 8)
        counts = struct.unpack(f"<{count}I", self.mem.read(self.store, at + 12, at + 12 + 4 * count))
        start = at + 12 + 4 * count
        raw = self.mem.read(self.store, start, start + 4 * count * dim)
        return 0, (list(counts), np.frombuffer(raw, dtype="<f4").reshape(count, dim))


def main():
    wasm, model_dir, variant, golden_path = sys.argv[1:5]
    engine = Engine()
    module = Module.from_file(engine, wasm)
    check_exports(module)
    with open(golden_path, encoding="utf-8") as f:
        golden = json.load(f)

    # The host preopens the chosen variant as model.onnx; hard links keep
    # the check inside one preopened directory without copying 90 MB.
    with tempfile.TemporaryDirectory(dir=model_dir, prefix=".wasm-check.") as tmp:
        os.link(os.path.join(model_dir, f"model-{variant}.onnx"), os.path.join(tmp, "model.onnx"))
        shutil.copy(os.path.join(model_dir, "tokenizer.json"), os.path.join(tmp, "tokenizer.json"))

        g = Guest(engine, module, tmp)
        g.call("_initialize")
        if g.call("ms_abi_version") != 1:
            fail("ms_abi_version != 1")
        if g.call("ms_dim") != 0:
            fail("ms_dim before ms_init should be 0")
        status, msg = g.result(g.embed_raw(request(["x"])))
        if status != 3:
            fail(f"embed before init gave status {status}, expected 3")
        t0 = time.perf_counter()
        rc = g.call("ms_init")
        init_s = time.perf_counter() - t0
        if rc != 0:
            fail(f"ms_init returned {rc}")
        mem_mib = g.mem.data_len(g.store) / 2**20
        print(f"check_wasm: ms_init {init_s:.2f} s, guest memory after init {mem_mib:.0f} MiB")
        if g.call("ms_dim") != 384 or g.call("ms_max_tokens") != 256:
            fail("ms_dim/ms_max_tokens")

        texts = golden["texts"]
        t0 = time.perf_counter()
        status, res = g.result(g.embed_raw(request(texts)))
        embed_s = time.perf_counter() - t0
        if status != 0:
            fail(f"ms_embed status {status}: {res}")
        counts, vecs = res
        if counts != golden["token_counts"]:
            fail("token counts differ from Python's")
        want = np.array(golden["models"][variant]["vectors"], dtype=np.float32)
        cos = (vecs * want).sum(axis=1) / np.linalg.norm(vecs, axis=1) / np.linalg.norm(want, axis=1)
        print(
            f"check_wasm: {len(texts)} golden texts in {embed_s:.2f} s, "
            f"min cosine vs onnxruntime {variant} {cos.min():.7f}"
        )
        if cos.min() < 0.999:
            fail(f"cosine {cos.min()} < 0.999 for {texts[int(cos.argmin())]!r}")

        for name, payload, want_status in [
            ("bad framing", request(["abc"])[:-1], 1),
            ("trailing bytes", request(["abc"]) + b"\0", 1),
            ("invalid utf-8", request([b"\xff\xfe"]), 2),
        ]:
            status, msg = g.result(g.embed_raw(payload))
            if status != want_status:
                fail(f"{name}: status {status}, expected {want_status}")
        # (ptr, len) outside the ms_alloc buffer must be refused, not read.
        status, _ = g.result(g.call("ms_embed", 8, 16))
        if status != 1:
            fail(f"foreign pointer: status {status}, expected 1")
        status, res = g.result(g.embed_raw(request(["still works after errors"])))
        if status != 0 or res[1].shape != (1, 384):
            fail("instance unusable after error statuses")

        # 32 short texts, repeated: the steady-state throughput in the guest.
        batch = request([f"memory number {i}: the user likes tea" for i in range(32)])
        t0 = time.perf_counter()
        for _ in range(3):
            g.embed_raw(batch)
        rate = 96 / (time.perf_counter() - t0)
        print(f"check_wasm: {rate:.0f} short texts/s (batch 32, one instance, one core)")
    # A directory without the model: ms_init must report, not trap.
    with tempfile.TemporaryDirectory() as empty:
        g = Guest(engine, module, empty)
        g.call("_initialize")
        rc = g.call("ms_init")
        if rc != 5:
            fail(f"ms_init without files returned {rc}, expected 5")
    print("check_wasm: OK")


if __name__ == "__main__":
    main()
