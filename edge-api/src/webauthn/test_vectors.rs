//! Test-only access to the shared WebAuthn vectors
//! (`/work/shared/data/webauthn/vectors.json`, overridable with
//! `MEMSHADOW_WEBAUTHN_VECTORS`): real responses from the py_webauthn and
//! SimpleWebAuthn test suites, read at run time, never copied into the repo.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use super::response::base64url_decode;

pub const DEFAULT_PATH: &str = "/work/shared/data/webauthn/vectors.json";

/// The vector with `vector_id == id`.
pub fn vector(id: u64) -> serde_json::Value {
    let path =
        std::env::var("MEMSHADOW_WEBAUTHN_VECTORS").unwrap_or_else(|_| DEFAULT_PATH.to_owned());
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let all: Vec<serde_json::Value> =
        serde_json::from_str(&text).expect("vectors.json is a JSON array");
    all.into_iter()
        .find(|v| v["vector_id"].as_u64() == Some(id))
        .unwrap_or_else(|| panic!("vector {id} not in {path}"))
}

/// A base64url field of a vector, decoded.
pub fn bytes(v: &serde_json::Value, pointer: &str) -> Vec<u8> {
    base64url_decode(
        v.pointer(pointer)
            .and_then(|s| s.as_str())
            .unwrap_or_else(|| panic!("no {pointer}")),
    )
    .unwrap_or_else(|| panic!("{pointer} is not base64url"))
}
