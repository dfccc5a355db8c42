//! Sentence embeddings for MEMSHADOW with tract-onnx: all-MiniLM-L6-v2
//! (384-d, the default) and all-mpnet-base-v2 (768-d); any BERT-family
//! ONNX graph with a WordPiece `tokenizer.json` and mean pooling.
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

pub use model::{Embedder, Embeddings, ModelFiles};
pub use tokenizer::{Encoding, Tokenizer};

/// all-MiniLM-L6-v2's truncation length in tokens, [CLS] and [SEP]
/// included: the guest's default when the host names none. 256 is
/// sentence-transformers' `max_seq_length` for this model (the length it was
/// trained with); tokenizer.json's own 128 would silently drop the second
/// half of medium-length memories. See README.md.
pub const DEFAULT_MAX_TOKENS: usize = 256;

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
