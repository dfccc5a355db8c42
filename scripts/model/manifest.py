"""Check a file against embed-wasm/model-manifest.json (sha256 and size); exit 1 on mismatch.

Usage (MEMSHADOW_MANIFEST picks another manifest, e.g. model-manifest-mpnet.json):
  manifest.py input KEY PATH   check a source file (manifest "inputs"[KEY])
  manifest.py file NAME PATH   check a derived file (manifest "files", by name)
  manifest.py quiet-file NAME PATH   same, but only the exit status (for "is it up to date?")
"""

import hashlib
import json
import os
import sys

MANIFEST = os.environ.get(
    "MEMSHADOW_MANIFEST", os.path.join(os.path.dirname(__file__), "..", "..", "embed-wasm", "model-manifest.json")
)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main():
    mode, key, path = sys.argv[1:4]
    with open(MANIFEST) as f:
        manifest = json.load(f)
    if mode == "input":
        entry = manifest["inputs"][key]
    else:
        entry = next(e for e in manifest["files"] if e["name"] == key)
    quiet = mode == "quiet-file"
    if not os.path.isfile(path):
        if not quiet:
            print(f"MISSING: {path} ({key})", file=sys.stderr)
        sys.exit(1)
    size, digest = os.path.getsize(path), sha256(path)
    if size != entry["size"] or digest != entry["sha256"]:
        if not quiet:
            print(
                f"SHA256 MISMATCH for {key} at {path}:\n"
                f"  expected {entry['sha256']} ({entry['size']} bytes)\n"
                f"  got      {digest} ({size} bytes)\n"
                "The wheel, the pinned Python packages or a script changed; see "
                "embed-wasm/README.md before updating the manifest.",
                file=sys.stderr,
            )
        sys.exit(1)
    if not quiet:
        print(f"ok {key} {digest}")


if __name__ == "__main__":
    main()
