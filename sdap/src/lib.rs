//! SDAP: MEMSHADOW's backup format. Rows of the API's tables in chunks
//! (NDJSON, zlib, encrypted with age to X25519 recipients), described by a
//! manifest signed with Ed25519. Written by the API's scheduled export
//! (edge-api, on Wasm) and read by the `sdap` restore tool (feature `cli`).
//!
//! The default build has no std-only dependencies, so it compiles for
//! wasm32-unknown-unknown (Workers) and wasm32-wasip2 (Spin).

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::todo,
    clippy::unimplemented,
    clippy::unreachable
)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod age;
pub mod backup;
mod bech32;
pub mod chunk;
pub mod error;
pub mod manifest;
pub mod tables;

pub use error::{ChunkRef, Error};
