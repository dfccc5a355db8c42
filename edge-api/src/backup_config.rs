//! Configuration of the scheduled SDAP backup (`services::backup`). Only
//! public keys of the restore identities reach the API; the signing key is
//! a secret. Both absent: backups are off.

use crate::config::ConfigError;

/// Comma-separated age X25519 recipients (`age1…`) the chunks are
/// encrypted to. Public; a config variable.
pub const BACKUP_RECIPIENTS: &str = "MEMSHADOW_BACKUP_RECIPIENTS";
/// The Ed25519 key that signs manifests: base64 of its 32-byte seed
/// (`sdap keygen` writes one). A secret.
pub const BACKUP_SIGNING_KEY: &str = "MEMSHADOW_BACKUP_SIGNING_KEY";
/// Rows per chunk [500].
pub const BACKUP_ROWS_PER_CHUNK: &str = "MEMSHADOW_BACKUP_ROWS_PER_CHUNK";
/// Chunks one invocation writes before it saves its place and stops [200];
/// the next scheduled invocation resumes.
pub const BACKUP_MAX_CHUNKS_PER_RUN: &str = "MEMSHADOW_BACKUP_MAX_CHUNKS_PER_RUN";

#[derive(Clone)]
pub struct BackupConfig {
    /// Validated `age1…` strings.
    pub recipients: Vec<String>,
    /// Validated base64 seed. Never printed.
    pub signing_key: String,
    pub rows_per_chunk: usize,
    pub max_chunks_per_run: usize,
}

impl std::fmt::Debug for BackupConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupConfig")
            .field("recipients", &self.recipients)
            .field("rows_per_chunk", &self.rows_per_chunk)
            .field("max_chunks_per_run", &self.max_chunks_per_run)
            .finish_non_exhaustive()
    }
}

fn err(variable: &'static str, reason: &str) -> ConfigError {
    ConfigError {
        variable,
        reason: reason.to_string(),
    }
}

fn count(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: usize,
    max: usize,
) -> Result<usize, ConfigError> {
    match get(name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| err(name, &format!("must be a whole number from 1 to {max}"))),
    }
}

/// Reads the backup settings (`get` returns None for absent or empty).
pub fn from_lookup(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<Option<BackupConfig>, ConfigError> {
    let recipients = get(BACKUP_RECIPIENTS);
    let signing_key = get(BACKUP_SIGNING_KEY);
    let (recipients, signing_key) = match (recipients, signing_key) {
        (None, None) => return Ok(None),
        (Some(_), None) => {
            return Err(err(
                BACKUP_SIGNING_KEY,
                "required when MEMSHADOW_BACKUP_RECIPIENTS is set",
            ));
        }
        (None, Some(_)) => {
            return Err(err(
                BACKUP_RECIPIENTS,
                "required when MEMSHADOW_BACKUP_SIGNING_KEY is set",
            ));
        }
        (Some(r), Some(k)) => (r, k),
    };
    let recipients: Vec<String> = recipients
        .split(',')
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
        .collect();
    if recipients.is_empty()
        || recipients
            .iter()
            .any(|r| sdap::age::Recipient::parse(r).is_err())
    {
        return Err(err(
            BACKUP_RECIPIENTS,
            "must be a comma-separated list of age X25519 recipients (age1…)",
        ));
    }
    let signing_key = signing_key.trim().to_string();
    if sdap::manifest::ManifestSigner::parse(&signing_key).is_err() {
        return Err(err(
            BACKUP_SIGNING_KEY,
            "must be base64 of a 32-byte Ed25519 seed",
        ));
    }
    Ok(Some(BackupConfig {
        recipients,
        signing_key,
        rows_per_chunk: count(get, BACKUP_ROWS_PER_CHUNK, 500, 10_000)?,
        max_chunks_per_run: count(get, BACKUP_MAX_CHUNKS_PER_RUN, 200, 100_000)?,
    }))
}
