//! The model manifest (embed-wasm/model-manifest.json) and the verified model
//! directory the guest sees as `/model`.
//!
//! The guest always opens `/model/model.onnx`, while the model directory holds
//! one file per variant; so start-up stages the chosen variant under the cache
//! directory (hard link, else copy) and hashes the staged bytes: what is hashed
//! is exactly what the guest reads.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read model manifest {path}: {message}")]
    Manifest { path: PathBuf, message: String },
    #[error("model variant {0:?} is not in the manifest (known: {1})")]
    UnknownVariant(String, String),
    #[error("file {0} is listed by no entry in the manifest's `files`")]
    Unlisted(String),
    #[error(
        "model_mismatch: {path} has sha256 {actual}, the manifest pins {expected}; \
         rebuild it with scripts/model/prepare.sh or point --model-dir at the right files"
    )]
    Mismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("cannot read {path}: {source} (run scripts/model/prepare.sh to fetch the model)")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub model_id: String,
    pub dim: usize,
    pub max_tokens: usize,
    /// The most texts one guest call may hold, below the pool's
    /// `max_batch`, for a model whose calls would otherwise outlast the
    /// per-call deadline (README, "More than one model").
    #[serde(default)]
    pub max_batch: Option<usize>,
    pub default_variant: String,
    pub variants: BTreeMap<String, Variant>,
    pub tokenizer: String,
    pub files: Vec<FileEntry>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Variant {
    pub file: String,
    pub model_id: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FileEntry {
    pub name: String,
    pub sha256: String,
}

impl Manifest {
    pub fn load(path: &Path) -> Result<Manifest, ModelError> {
        let err = |message: String| ModelError::Manifest {
            path: path.to_owned(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        serde_json::from_str(&text).map_err(|e| err(e.to_string()))
    }

    fn pinned_sha(&self, name: &str) -> Result<&str, ModelError> {
        self.files
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.sha256.as_str())
            .ok_or_else(|| ModelError::Unlisted(name.to_owned()))
    }
}

/// The model as served: identity and the verified files.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    /// Model id answered in responses and checked on fallback answers.
    pub id: String,
    pub variant: String,
    pub dim: usize,
    pub max_tokens: usize,
    /// The manifest's cap on texts per guest call, if any.
    pub max_batch: Option<usize>,
    /// Directory with exactly `model.onnx` and `tokenizer.json`, preopened as `/model`.
    pub staged_dir: PathBuf,
    pub model_sha256: String,
    pub tokenizer_sha256: String,
}

pub fn sha256_file(path: &Path) -> Result<String, ModelError> {
    let io = |source| ModelError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

fn check(path: &Path, expected: &str) -> Result<String, ModelError> {
    let actual = sha256_file(path)?;
    if actual.eq_ignore_ascii_case(expected) {
        Ok(actual)
    } else {
        Err(ModelError::Mismatch {
            path: path.to_owned(),
            expected: expected.to_owned(),
            actual,
        })
    }
}

/// A name beside `path` that no other writer uses (process id and a
/// counter), for a file written completely before it is renamed into place.
pub(crate) fn temp_sibling(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    path.with_extension(format!(
        "tmp-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Makes `dst` hold `src`'s bytes: a hard link (a copy across file systems)
/// under a unique temporary name, then an atomic rename, so that concurrent
/// starts sharing a cache never see a missing or half-written file.
fn stage_file(src: &Path, dst: &Path) -> Result<(), ModelError> {
    use std::os::unix::fs::MetadataExt;

    let io = |source| ModelError::Io {
        path: dst.to_owned(),
        source,
    };
    let src_meta = std::fs::metadata(src).map_err(|source| ModelError::Io {
        path: src.to_owned(),
        source,
    })?;
    if let Ok(m) = std::fs::metadata(dst)
        && m.dev() == src_meta.dev()
        && m.ino() == src_meta.ino()
    {
        return Ok(());
    }
    let tmp = temp_sibling(dst);
    if std::fs::hard_link(src, &tmp).is_err() {
        std::fs::copy(src, &tmp).map_err(io)?;
    }
    std::fs::rename(&tmp, dst).map_err(io)
}

/// Verifies the chosen variant and the tokenizer against the manifest and
/// stages them under `cache_dir` as `model.onnx` + `tokenizer.json`.
pub fn prepare(
    manifest: &Manifest,
    variant: Option<&str>,
    model_dir: &Path,
    cache_dir: &Path,
) -> Result<ModelInfo, ModelError> {
    let variant_name = variant.unwrap_or(&manifest.default_variant);
    let variant = manifest.variants.get(variant_name).ok_or_else(|| {
        ModelError::UnknownVariant(
            variant_name.to_owned(),
            manifest
                .variants
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
        )
    })?;
    let model_src = model_dir.join(&variant.file);
    let tok_src = model_dir.join(&manifest.tokenizer);
    let model_pin = manifest.pinned_sha(&variant.file)?;
    let tok_pin = manifest.pinned_sha(&manifest.tokenizer)?;

    // Keyed by the pinned hash so that two variants never share a directory
    // and a stale staging from an older model is never reused.
    let staged_dir = cache_dir
        .join("model")
        .join(&model_pin[..16.min(model_pin.len())]);
    std::fs::create_dir_all(&staged_dir).map_err(|source| ModelError::Io {
        path: staged_dir.clone(),
        source,
    })?;
    let staged_model = staged_dir.join("model.onnx");
    let staged_tok = staged_dir.join("tokenizer.json");
    stage_file(&model_src, &staged_model)?;
    stage_file(&tok_src, &staged_tok)?;
    let model_sha256 = check(&staged_model, model_pin)?;
    let tokenizer_sha256 = check(&staged_tok, tok_pin)?;
    Ok(ModelInfo {
        id: variant.model_id.clone(),
        variant: variant_name.to_owned(),
        dim: manifest.dim,
        max_tokens: manifest.max_tokens,
        max_batch: manifest.max_batch,
        staged_dir,
        model_sha256,
        tokenizer_sha256,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(model_sha: &str, tok_sha: &str) -> Manifest {
        serde_json::from_value(serde_json::json!({
            "model_id": "m", "dim": 4, "max_tokens": 8, "default_variant": "fp32",
            "variants": {"fp32": {"file": "m.onnx", "model_id": "m"}},
            "tokenizer": "tokenizer.json",
            "files": [
                {"name": "m.onnx", "sha256": model_sha},
                {"name": "tokenizer.json", "sha256": tok_sha}
            ]
        }))
        .expect("manifest")
    }

    fn sha(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("wasm-host-model-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir
    }

    #[test]
    fn accepts_pinned_files_and_stages_them() {
        let dir = scratch("ok");
        std::fs::write(dir.join("m.onnx"), b"model").expect("write");
        std::fs::write(dir.join("tokenizer.json"), b"tok").expect("write");
        let m = manifest(&sha(b"model"), &sha(b"tok"));
        let info = prepare(&m, None, &dir, &dir.join("cache")).expect("valid");
        assert_eq!(info.id, "m");
        assert_eq!(
            std::fs::read(info.staged_dir.join("model.onnx")).expect("staged"),
            b"model"
        );
    }

    #[test]
    fn refuses_a_tampered_model() {
        let dir = scratch("bad");
        std::fs::write(dir.join("m.onnx"), b"modeL").expect("write");
        std::fs::write(dir.join("tokenizer.json"), b"tok").expect("write");
        let m = manifest(&sha(b"model"), &sha(b"tok"));
        let err = prepare(&m, None, &dir, &dir.join("cache")).expect_err("must refuse");
        assert!(matches!(err, ModelError::Mismatch { .. }), "{err}");
        assert!(err.to_string().starts_with("model_mismatch"));
    }

    #[test]
    fn unknown_variant_is_an_error() {
        let dir = scratch("variant");
        let m = manifest("00", "00");
        let err = prepare(&m, Some("fp64"), &dir, &dir.join("cache")).expect_err("unknown");
        assert!(matches!(err, ModelError::UnknownVariant(..)));
    }
}
