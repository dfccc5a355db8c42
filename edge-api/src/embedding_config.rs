//! Which embedding model a deployment uses (`MEMSHADOW_EMBEDDING_MODEL`),
//! its vectors' dimension and what its pool calls may take.

use crate::config::{ConfigError, EMBEDDING_MODEL, err, num};

/// Needed only for a model not in [`KNOWN_MODELS`].
pub const EMBEDDING_DIMENSIONS: &str = "MEMSHADOW_EMBEDDING_DIMENSIONS";

/// A model a deployment can name without describing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownModel {
    pub id: &'static str,
    pub dim: usize,
    /// What one text adds to a background pool call's budget, ms.
    pub call_ms_per_text: u64,
}

/// The models scripts/setup.sh prepares for the pool. Migration 0010 gives
/// each of their dimensions its own HNSW index; vectors of another
/// dimension are stored and searched exactly, without an index. mpnet's
/// per-text budget is MiniLM's times their measured cost: one core of the
/// pool embeds 5.6 of MiniLM's 128-token texts per second and 0.8 of
/// mpnet's (wasm-host embed-bench, BENCHMARKS.md "Embedding models
/// compared").
pub const KNOWN_MODELS: &[KnownModel] = &[MINILM, MPNET];
const MINILM: KnownModel = KnownModel {
    id: "all-MiniLM-L6-v2",
    dim: 384,
    call_ms_per_text: 1_000,
};
const MPNET: KnownModel = KnownModel {
    id: "all-mpnet-base-v2",
    dim: 768,
    call_ms_per_text: 7_000,
};
/// The model a deployment uses when it names none.
pub const DEFAULT_EMBEDDING_MODEL: &str = MINILM.id;
/// pgvector's HNSW indexes vectors of at most this many dimensions.
const MAX_EMBEDDING_DIMENSIONS: usize = 2000;

/// The model a deployment configured, as its settings need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddingChoice {
    /// The pool's id for the model.
    pub model: String,
    /// Its vectors' dimension.
    pub dim: usize,
    /// What one text adds to a background pool call's budget, ms.
    pub call_ms_per_text: u64,
}

/// The deployment's model: from [`KNOWN_MODELS`], or for any other model
/// its given dimension and MiniLM's budget. A given dimension must match a
/// known model's.
pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<EmbeddingChoice, ConfigError> {
    let model = get(EMBEDDING_MODEL).map_or_else(
        || DEFAULT_EMBEDDING_MODEL.to_string(),
        |m| m.trim().to_string(),
    );
    let known = KNOWN_MODELS.iter().find(|k| k.id == model);
    let given = get(EMBEDDING_DIMENSIONS)
        .map(|_| num(get, EMBEDDING_DIMENSIONS, 0, 1, MAX_EMBEDDING_DIMENSIONS))
        .transpose()?;
    match (known, given) {
        (Some(k), Some(g)) if k.dim != g => Err(err(
            EMBEDDING_DIMENSIONS,
            format!("{model} has {} dimensions", k.dim),
        )),
        (Some(k), _) => Ok(EmbeddingChoice {
            dim: k.dim,
            call_ms_per_text: k.call_ms_per_text,
            model,
        }),
        (None, Some(dim)) => Ok(EmbeddingChoice {
            model,
            dim,
            call_ms_per_text: MINILM.call_ms_per_text,
        }),
        (None, None) => Err(err(
            EMBEDDING_DIMENSIONS,
            format!("required for a model other than {}", known_model_names()),
        )),
    }
}

fn known_model_names() -> String {
    KNOWN_MODELS
        .iter()
        .map(|k| k.id)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{TEST_JWKS, lookup};
    use crate::config::{Config, JWT_PUBLIC_KEYS};

    #[test]
    fn the_model_decides_the_dimension() {
        let with = |pairs: &[(&str, &str)]| {
            let mut all = vec![(JWT_PUBLIC_KEYS, TEST_JWKS)];
            all.extend_from_slice(pairs);
            Config::from_lookup(lookup(&all))
        };
        let c = with(&[(EMBEDDING_MODEL, "all-mpnet-base-v2")]).expect("known model");
        assert_eq!(
            (c.embedding_model.as_str(), c.embedding_dim),
            ("all-mpnet-base-v2", 768)
        );
        assert_eq!(c.embed_call_ms_per_text, 7_000);
        let c = with(&[
            (EMBEDDING_MODEL, "bge-small-en-v1.5"),
            (EMBEDDING_DIMENSIONS, "384"),
        ])
        .expect("another model with its dimension");
        assert_eq!(c.embedding_dim, 384);
        for (pairs, variable) in [
            (
                vec![(EMBEDDING_MODEL, "bge-small-en-v1.5")],
                EMBEDDING_DIMENSIONS,
            ),
            (
                vec![
                    (EMBEDDING_MODEL, "all-mpnet-base-v2"),
                    (EMBEDDING_DIMENSIONS, "384"),
                ],
                EMBEDDING_DIMENSIONS,
            ),
            (vec![(EMBEDDING_DIMENSIONS, "4096")], EMBEDDING_DIMENSIONS),
        ] {
            let e = with(&pairs).expect_err("refused");
            assert_eq!(e.variable, variable, "{pairs:?}: {e}");
        }
    }
}
