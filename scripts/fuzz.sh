#!/usr/bin/env bash
# Runs every cargo-fuzz target of edge-api/fuzz for a fixed time each.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# SECONDS defaults to 60 per target; TARGETs default to all of them
# (attestation_object, authenticator_data, cose_key, client_data, jwt).
# Installs cargo-fuzz into $MEMSHADOW_TOOLS once (idempotent), seeds each
# corpus from the shared WebAuthn vectors (MEMSHADOW_WEBAUTHN_VECTORS or
# /work/shared/data/webauthn/vectors.json; skipped when absent) and uses the
# nightly toolchain when rustup has one, else the stable compiler with
# RUSTC_BOOTSTRAP=1. FUZZ_SANITIZER (default: address) is passed to
# `cargo fuzz run --sanitizer`. Exits 1 if any target crashes (the reproducer
# is left under edge-api/fuzz/artifacts/<target>/), 2 if a target does not build.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$REPO_ROOT"

SECONDS_PER_TARGET="${1:-60}"
shift || true
ALL_TARGETS=(attestation_object authenticator_data cose_key client_data jwt)
if [ "$#" -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL_TARGETS[@]}"); fi
FUZZ_DIR="$REPO_ROOT/edge-api/fuzz"
VECTORS="${MEMSHADOW_WEBAUTHN_VECTORS:-/work/shared/data/webauthn/vectors.json}"
# Instrumented builds differ from normal ones: keep them in their own target dir.
export CARGO_TARGET_DIR="$MEMSHADOW_CACHE/target-fuzz"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "== installing cargo-fuzz into $MEMSHADOW_TOOLS"
    cargo install --locked --root "$MEMSHADOW_TOOLS" cargo-fuzz
fi

if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    FUZZ=(cargo +nightly fuzz)
else
    # cargo-fuzz passes -Z flags; the stable compiler accepts them when bootstrapped.
    export RUSTC_BOOTSTRAP=1
    FUZZ=(cargo fuzz)
fi

# The fuzz crate is outside the workspace: start from the workspace's lock
# file so it builds against the same dependency versions.
[ -f "$FUZZ_DIR/Cargo.lock" ] || cp Cargo.lock "$FUZZ_DIR/Cargo.lock"

seed_corpus() {
    local python
    python="$(command -v python3 || true)"
    [ -n "$python" ] || { echo "python3 not found: corpora start empty"; return; }
    "$python" - "$VECTORS" "$FUZZ_DIR/corpus" <<'PY'
import base64, hashlib, json, os, sys

vectors_path, corpus = sys.argv[1], sys.argv[2]

def b64(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))

def put(target, data):
    d = os.path.join(corpus, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + hashlib.sha256(data).hexdigest()[:16]), "wb") as f:
        f.write(data)

def auth_data_of(obj):
    # authData is the only byte string following the text key "authData".
    i = obj.find(b"authData") + 8
    head = obj[i]
    if head == 0x58:
        n, i = obj[i + 1], i + 2
    elif head == 0x59:
        n, i = int.from_bytes(obj[i + 1:i + 3], "big"), i + 3
    else:
        return None
    return obj[i:i + n]

if os.path.exists(vectors_path):
    for case in json.load(open(vectors_path)):
        r = case["response"]["response"]
        cdj = b64(r["clientDataJSON"])
        put("client_data", b"\x00" + cdj)
        put("client_data", b"\x01" + cdj)
        if "attestationObject" in r:
            obj = b64(r["attestationObject"])
            put("attestation_object", obj)
            ad = auth_data_of(obj)
            if ad:
                put("authenticator_data", ad)
        if "authenticatorData" in r:
            put("authenticator_data", b64(r["authenticatorData"]))
        for key in ("credential_public_key_b64url", "registered_credential_public_key_b64url"):
            if case.get(key):
                put("cose_key", b64(case[key]))
else:
    print(f"{vectors_path} not found: WebAuthn corpora start empty")

claims = {"iss": "https://issuer.fuzz", "aud": "memshadow", "sub": "7b0c8e0e-6a43-4a57-9a55-3f1f0c6c1e11",
          "iat": 1767225000, "exp": 1767229200, "nbf": 1767225000}
put("jwt", b"\x01" + json.dumps(claims).encode())
put("jwt", b"\x01" + json.dumps(dict(claims, aud=["x", "memshadow"])).encode())
put("jwt", b"\x00eyJhbGciOiJFUzI1NiIsImtpZCI6ImZ1enoifQ.eyJzdWIiOiJ4In0.AAAA")
PY
}

seed_corpus

SANITIZER="${FUZZ_SANITIZER:-address}"
echo "== building fuzz targets (sanitizer: $SANITIZER)"
for target in "${TARGETS[@]}"; do
    "${FUZZ[@]}" build --fuzz-dir "$FUZZ_DIR" --sanitizer "$SANITIZER" "$target" ||
        { echo "fuzz: $target does not build" >&2; exit 2; }
done

failed=()
for target in "${TARGETS[@]}"; do
    echo "== fuzzing $target for ${SECONDS_PER_TARGET}s"
    mkdir -p "$FUZZ_DIR/corpus/$target" "$FUZZ_DIR/artifacts/$target"
    if ! "${FUZZ[@]}" run --fuzz-dir "$FUZZ_DIR" --sanitizer "$SANITIZER" "$target" \
        "$FUZZ_DIR/corpus/$target" -- \
        -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -max_len=16384 \
        -artifact_prefix="$FUZZ_DIR/artifacts/$target/" -print_final_stats=1; then
        failed+=("$target")
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz: crashes in: ${failed[*]} (see edge-api/fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz: ${#TARGETS[@]} target(s), ${SECONDS_PER_TARGET}s each, no crashes"
