//! Sentence embeddings for MEMSHADOW: all-MiniLM-L6-v2 (384-d) with tract-onnx.
//!
//! One crate, two builds:
//! - natively it is an rlib ([`Embedder`]) used by tests and by wasm-host's
//!   benchmark;
//! - for `wasm32-wasip1` (+simd128) it is a reactor module implementing the
//!   guest ABI in `ABI.md` (see [`abi`]), which wasm-host pools.
//!
//! Pipeline: [`tokenizer`] (BERT WordPiece, ids equal to Python `tokenizers`)
//! → [`model`] (tract plan, mean pooling over the attention mask, L2 norm).

// Any input must come back as an error, never a panic (a panic in the guest
// is a trap that costs the host an instance).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod abi;
pub mod model;
pub mod tokenizer;

pub use model::{Embedder, Embeddings};
pub use tokenizer::{Encoding, Tokenizer};

/// Embedding dimension of all-MiniLM-L6-v2.
pub const DIM: usize = 384;

/// Truncation length in tokens, [CLS] and [SEP] included. 256 is
/// sentence-transformers' `max_seq_length` for this model (the length it was
/// trained with); tokenizer.json's own 128 would silently drop the second
/// half of medium-length memories. See README.md.
pub const MAX_TOKENS: usize = 256;

/// Everything that can go wrong, by stage.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// tokenizer.json is unreadable or not a BERT WordPiece tokenizer.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The ONNX file could not be parsed or optimised.
    #[error("model load: {0}")]
    ModelLoad(String),
    /// tract failed while running the model.
    #[error("inference: {0}")]
    Inference(String),
}
