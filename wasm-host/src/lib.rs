//! MEMSHADOW wasm-host: the native wasmtime host.
//!
//! Today it serves the embeddings pool ([`embeddings`]); the Spin build of
//! edge-api will be served from a sibling `spin` module on its own port, both
//! configured through [`config`].

pub mod config;
pub mod embeddings;
