//! MEMSHADOW wasm-host: the native wasmtime host.
//!
//! It serves the embeddings pool ([`embeddings`], configured through
//! [`config`]) and, as `wasm-host serve`, the Spin build of edge-api
//! ([`spin`]).

pub mod config;
pub mod embeddings;
pub mod spin;
