//! Shared helpers for embed-wasm's integration tests: locating and verifying the model files.
//!
//! Missing model files are a failure, not a skip: a green run must mean the
//! parity checks actually ran.

#![allow(dead_code)]

use std::path::PathBuf;

use sha2::{Digest, Sha256};

/// `$MEMSHADOW_MODEL_DIR`, else `$HOME/.cache/memshadow/model` (as scripts/env.sh).
pub fn model_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MEMSHADOW_MODEL_DIR") {
        return PathBuf::from(dir);
    }
    let home =
        std::env::var_os("HOME").expect("HOME is not set and MEMSHADOW_MODEL_DIR is not either");
    PathBuf::from(home).join(".cache/memshadow/model")
}

/// Reads a model file, panicking with the fix when it is absent.
pub fn read_model_file(name: &str) -> Vec<u8> {
    let path = model_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}); run scripts/model/prepare.sh (or set MEMSHADOW_MODEL_DIR)",
            path.display()
        )
    })
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// This crate's folder: cargo sets `CARGO_MANIFEST_DIR` when it runs a test;
/// the compile-time value is a fallback (a binary reused from another
/// checkout through a shared target directory would point there).
pub fn crate_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// A golden file under tests/golden/.
pub fn golden(name: &str) -> serde_json::Value {
    let path = crate_dir().join("tests/golden").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The pinned sha256 of a model file, from model-manifest.json.
pub fn manifest_sha256(name: &str) -> String {
    let path = crate_dir().join("model-manifest.json");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("model-manifest.json"))
            .expect("manifest JSON");
    manifest["files"]
        .as_array()
        .and_then(|files| files.iter().find(|f| f["name"] == name))
        .and_then(|f| f["sha256"].as_str())
        .unwrap_or_else(|| panic!("{name} is not in model-manifest.json"))
        .to_string()
}
