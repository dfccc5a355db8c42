//! Configuration of the scheduled SDAP backup (`services::backup`). Only
//! public keys of the restore identities reach the API; the signing key is
//! a secret. Both absent: backups are off. Retention and the outcome
//! webhook are read here too.

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
/// Retention: the newest backup of each of the last N days that have one
/// are kept [7] …
pub const BACKUP_KEEP_DAILY: &str = "MEMSHADOW_BACKUP_KEEP_DAILY";
/// … and of each of the last M ISO weeks that have one [4] (0: none).
pub const BACKUP_KEEP_WEEKLY: &str = "MEMSHADOW_BACKUP_KEEP_WEEKLY";
/// Optional http(s) URL POSTed the outcome of every finished backup run.
/// Treated as a secret (such URLs often carry a token): never logged.
pub const BACKUP_WEBHOOK_URL: &str = "MEMSHADOW_BACKUP_WEBHOOK_URL";

#[derive(Clone)]
pub struct BackupConfig {
    /// Validated `age1…` strings.
    pub recipients: Vec<String>,
    /// Validated base64 seed. Never printed.
    pub signing_key: String,
    pub rows_per_chunk: usize,
    pub max_chunks_per_run: usize,
    /// Days (newest backup of each) that retention keeps; at least 1, so
    /// the newest verified backup is never deleted.
    pub keep_daily: usize,
    /// ISO weeks (newest backup of each) that retention keeps.
    pub keep_weekly: usize,
    /// Where outcomes are POSTed; None: no webhook. Never printed.
    pub webhook_url: Option<String>,
}

impl std::fmt::Debug for BackupConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupConfig")
            .field("recipients", &self.recipients)
            .field("rows_per_chunk", &self.rows_per_chunk)
            .field("max_chunks_per_run", &self.max_chunks_per_run)
            .field("keep_daily", &self.keep_daily)
            .field("keep_weekly", &self.keep_weekly)
            .field("webhook", &self.webhook_url.is_some())
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
    (min, max): (usize, usize),
) -> Result<usize, ConfigError> {
    match get(name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| err(name, &format!("must be a whole number from {min} to {max}"))),
    }
}

/// An absolute http(s) URL without spaces, or None when unset.
fn webhook_url(get: &impl Fn(&str) -> Option<String>) -> Result<Option<String>, ConfigError> {
    let Some(url) = get(BACKUP_WEBHOOK_URL) else {
        return Ok(None);
    };
    let url = url.trim();
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(r) if !r.is_empty() && !r.starts_with('/') && !url.contains(char::is_whitespace) => {
            Ok(Some(url.to_string()))
        }
        _ => Err(err(
            BACKUP_WEBHOOK_URL,
            "must be an http:// or https:// URL",
        )),
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
        rows_per_chunk: count(get, BACKUP_ROWS_PER_CHUNK, 500, (1, 10_000))?,
        max_chunks_per_run: count(get, BACKUP_MAX_CHUNKS_PER_RUN, 200, (1, 100_000))?,
        keep_daily: count(get, BACKUP_KEEP_DAILY, 7, (1, 3650))?,
        keep_weekly: count(get, BACKUP_KEEP_WEEKLY, 4, (0, 520))?,
        webhook_url: webhook_url(get)?,
    }))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    use base64::Engine as _;

    /// Fixed bytes: these tests need a valid key, not a secret one.
    struct Fixed;
    impl rand_core::RngCore for Fixed {
        fn next_u32(&mut self) -> u32 {
            7
        }
        fn next_u64(&mut self) -> u64 {
            7
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            dest.fill(7);
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
            dest.fill(7);
            Ok(())
        }
    }
    impl rand_core::CryptoRng for Fixed {}

    /// A valid recipient and signing key (backups on), as variables; also
    /// used by the Spin manifest check, which needs every backup setting read.
    pub(crate) fn valid_keys() -> Vec<(String, String)> {
        let identity = sdap::age::Identity::generate(&mut Fixed).unwrap();
        let seed = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        vec![
            (BACKUP_RECIPIENTS.into(), identity.recipient().to_bech32()),
            (BACKUP_SIGNING_KEY.into(), seed),
        ]
    }

    fn read(extra: &[(&str, &str)]) -> Result<Option<BackupConfig>, ConfigError> {
        let mut vars = valid_keys();
        vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        from_lookup(&|name: &str| {
            vars.iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn retention_and_webhook_defaults_and_bounds() {
        let c = read(&[]).unwrap().unwrap();
        assert_eq!((c.keep_daily, c.keep_weekly, c.webhook_url), (7, 4, None));
        let c = read(&[(BACKUP_KEEP_DAILY, "1"), (BACKUP_KEEP_WEEKLY, "0")])
            .unwrap()
            .unwrap();
        assert_eq!((c.keep_daily, c.keep_weekly), (1, 0));
        for (name, bad) in [
            (BACKUP_KEEP_DAILY, "0"),
            (BACKUP_KEEP_DAILY, "x"),
            (BACKUP_KEEP_WEEKLY, "-1"),
            (BACKUP_KEEP_WEEKLY, "521"),
        ] {
            assert_eq!(read(&[(name, bad)]).unwrap_err().variable, name, "{bad}");
        }
        let c = read(&[(BACKUP_WEBHOOK_URL, " https://hooks.example/t0k3n ")])
            .unwrap()
            .unwrap();
        assert_eq!(
            c.webhook_url.as_deref(),
            Some("https://hooks.example/t0k3n")
        );
        assert!(!format!("{c:?}").contains("t0k3n"), "Debug hides the URL");
        for bad in [
            "ftp://x",
            "https://",
            "http:///p",
            "https://a b",
            "hooks.example",
        ] {
            let e = read(&[(BACKUP_WEBHOOK_URL, bad)]).unwrap_err();
            assert_eq!(e.variable, BACKUP_WEBHOOK_URL, "{bad}");
        }
    }
}
