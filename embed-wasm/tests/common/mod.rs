//! Shared helpers for embed-wasm's integration tests: locating and verifying the model files.
//!
//! Missing model files are a failure, not a skip: a green run must mean the
//! parity checks actually ran.

#![allow(dead_code)]

use std::path::PathBuf;

use sha2::{Digest, Sha256};

/// A model the parity tests cover: where its files lie, its pinning
/// manifest, its truncation and its golden files.
#[derive(Debug, Clone, Copy)]
pub struct TestModel {
    /// Folder under the model directory ("" for the default model).
    pub subdir: &'static str,
    pub manifest: &'static str,
    pub max_tokens: usize,
    pub golden_tokens: &'static str,
    pub golden_embeddings: &'static str,
}

pub const MINILM: TestModel = TestModel {
    subdir: "",
    manifest: "model-manifest.json",
    max_tokens: 256,
    golden_tokens: "tokens.json",
    golden_embeddings: "embeddings.json",
};

pub const MPNET: TestModel = TestModel {
    subdir: "all-mpnet-base-v2",
    manifest: "model-manifest-mpnet.json",
    max_tokens: 384,
    golden_tokens: "tokens-mpnet.json",
    golden_embeddings: "embeddings-mpnet.json",
};

impl TestModel {
    /// Reads one of this model's files, panicking with the fix when absent.
    pub fn read(&self, name: &str) -> Vec<u8> {
        read_model_file(&format!("{}/{name}", self.subdir))
    }

    /// The pinned sha256 of one of this model's files.
    pub fn manifest_sha256(&self, name: &str) -> String {
        manifest_sha256(self.manifest, name)
    }
}

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
    let path = model_dir().join(name.trim_start_matches('/'));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}); run scripts/model/prepare.sh and prepare_mpnet.sh \
             (or set MEMSHADOW_MODEL_DIR)",
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

/// The pinned sha256 of a model file, from one of the crate's manifests.
pub fn manifest_sha256(manifest: &str, name: &str) -> String {
    let path = crate_dir().join(manifest);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("model manifest"))
            .expect("manifest JSON");
    manifest["files"]
        .as_array()
        .and_then(|files| files.iter().find(|f| f["name"] == name))
        .and_then(|f| f["sha256"].as_str())
        .unwrap_or_else(|| panic!("{name} is not in the manifest"))
        .to_string()
}
