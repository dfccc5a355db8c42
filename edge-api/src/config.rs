//! Service configuration: one struct read from named string variables, the
//! same names on every runtime (Worker vars/secrets, Spin variables, env).
//!
//! Parsing fails loudly at start-up (`ConfigError`); the adapter then answers
//! every request 503 `misconfigured` via [`crate::app::handle_misconfigured`],
//! so a bad deploy is visible without leaking which value is wrong.

pub use crate::backup_config::BackupConfig;
pub use crate::jwt_keys::{
    JwtKey, JwtSigner, derived_kid, parse_jwks, parse_signing_jwk, parse_signing_key,
};
use crate::limits::Limits;

pub const JWT_PUBLIC_KEYS: &str = "MEMSHADOW_JWT_PUBLIC_KEYS";
pub const JWT_ISSUER: &str = "MEMSHADOW_JWT_ISSUER";
pub const JWT_AUDIENCE: &str = "MEMSHADOW_JWT_AUDIENCE";
pub const EMBEDDING_URL: &str = "MEMSHADOW_EMBEDDING_URL";
pub const EMBEDDING_MODEL: &str = "MEMSHADOW_EMBEDDING_MODEL";
pub const EMBED_TIMEOUT_MS: &str = "MEMSHADOW_EMBED_TIMEOUT_MS";
pub const EMBED_CACHE_TTL: &str = "MEMSHADOW_EMBED_CACHE_TTL";
pub const EMBED_MAX_ATTEMPTS: &str = "MEMSHADOW_EMBED_MAX_ATTEMPTS";
pub const EMBED_BATCH_SIZE: &str = "MEMSHADOW_EMBED_BATCH_SIZE";
pub const EMBED_JOB_BUDGET_MS: &str = "MEMSHADOW_EMBED_JOB_BUDGET_MS";
pub const EMBED_JOB_CONCURRENCY: &str = "MEMSHADOW_EMBED_JOB_CONCURRENCY";
pub const INLINE_EMBED_MAX_TEXTS: &str = "MEMSHADOW_INLINE_EMBED_MAX_TEXTS";
pub const EMBED_QUEUE_RETRY_DELAY_SECONDS: &str = "MEMSHADOW_EMBED_QUEUE_RETRY_DELAY_SECONDS";
pub const MAX_BODY_BYTES: &str = "MEMSHADOW_MAX_BODY_BYTES";
pub const MAX_CONTENT_BYTES: &str = "MEMSHADOW_MAX_CONTENT_BYTES";
pub const MAX_METADATA_BYTES: &str = "MEMSHADOW_MAX_METADATA_BYTES";
pub const MAX_METADATA_KEYS: &str = "MEMSHADOW_MAX_METADATA_KEYS";
pub const MAX_BATCH_ITEMS: &str = "MEMSHADOW_MAX_BATCH_ITEMS";
/// A private JWK (`kty` EC, `crv` P-256, `d`, `x`, `y`, `kid`): the key that
/// signs access tokens. A secret. Its public half must be in
/// `MEMSHADOW_JWT_PUBLIC_KEYS`. Absent: the API verifies tokens but issues
/// none (sign-in answers 503 `misconfigured`).
pub const JWT_SIGNING_KEY: &str = "MEMSHADOW_JWT_SIGNING_KEY";
pub const ACCESS_TOKEN_TTL: &str = "MEMSHADOW_ACCESS_TOKEN_TTL";
pub const REFRESH_TOKEN_TTL: &str = "MEMSHADOW_REFRESH_TOKEN_TTL";
pub const ARGON2_MEMORY_KIB: &str = "MEMSHADOW_ARGON2_MEMORY_KIB";
pub const ARGON2_ITERATIONS: &str = "MEMSHADOW_ARGON2_ITERATIONS";
pub const ARGON2_PARALLELISM: &str = "MEMSHADOW_ARGON2_PARALLELISM";
/// Failed password sign-ins per account name, and per client, before a lock.
pub const LOCKOUT_ACCOUNT_FAILURES: &str = "MEMSHADOW_LOCKOUT_ACCOUNT_FAILURES";
pub const LOCKOUT_CLIENT_FAILURES: &str = "MEMSHADOW_LOCKOUT_CLIENT_FAILURES";
/// The first lock, seconds (each further failure doubles it, up to 15 min).
pub const LOCKOUT_BASE_SECONDS: &str = "MEMSHADOW_LOCKOUT_BASE_SECONDS";
pub const WEBAUTHN_RP_ID: &str = "MEMSHADOW_WEBAUTHN_RP_ID";
pub const WEBAUTHN_RP_NAME: &str = "MEMSHADOW_WEBAUTHN_RP_NAME";
/// Comma-separated exact origins accepted in clientDataJSON.
pub const WEBAUTHN_ORIGINS: &str = "MEMSHADOW_WEBAUTHN_ORIGINS";
/// `required`, `preferred` (default) or `discouraged`.
pub const WEBAUTHN_USER_VERIFICATION: &str = "MEMSHADOW_WEBAUTHN_USER_VERIFICATION";

/// argon2id cost parameters for new password hashes (stored hashes carry
/// their own, so changing these never locks anyone out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

/// Failed-login throttling (edge-api/AUTH.md, "Lockout").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lockout {
    /// Failures per account name before it is locked.
    pub account_max_failures: u32,
    /// Failures per client address before it is locked.
    pub client_max_failures: u32,
    /// The first lock, seconds; each further failure doubles it.
    pub base_delay_s: i64,
    pub max_delay_s: i64,
    /// A failure older than this no longer counts, seconds.
    pub window_s: i64,
}

/// WebAuthn `userVerification`, and whether the UV flag is then required.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserVerification {
    Required,
    Preferred,
    Discouraged,
}

impl UserVerification {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Required => "required",
            Self::Preferred => "preferred",
            Self::Discouraged => "discouraged",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebauthnConfig {
    pub rp_id: String,
    pub rp_name: String,
    pub origins: Vec<String>,
    pub user_verification: UserVerification,
    /// The `timeout` hint sent to the browser, milliseconds.
    pub timeout_ms: u64,
    /// How long an issued challenge may be used, seconds.
    pub challenge_ttl_s: i64,
}

/// Behavioural risk scoring (edge-api/AUTH.md, "Risk").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RiskConfig {
    /// A baseline needs this many events …
    pub min_events: usize,
    /// … spread over this many sessions (other than the one scored).
    pub min_sessions: usize,
    /// Score from which a session is suspicious (with enough confidence).
    pub suspicious_score: f64,
    pub min_confidence: f64,
    /// How recent a passkey assertion must be for a step-up, seconds.
    pub step_up_window_s: i64,
}

#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub signer: Option<JwtSigner>,
    pub access_ttl_s: i64,
    pub refresh_ttl_s: i64,
    pub argon2: Argon2Params,
    pub lockout: Lockout,
    pub webauthn: WebauthnConfig,
    pub risk: RiskConfig,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub jwt_keys: Vec<JwtKey>,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    /// Allowed clock skew for exp/nbf/iat, seconds.
    pub jwt_leeway_seconds: i64,
    /// Base URL of the embedding pool, without a trailing slash.
    pub embedding_url: String,
    /// The model that embeds memories and queries (the pool's id for it);
    /// rows keep the id of the model that embedded them.
    pub embedding_model: String,
    /// Its vectors' dimension: the pool's answers are checked against it,
    /// and retrieval searches the vectors of this dimension.
    pub embedding_dim: usize,
    /// What one text adds to a background pool call's budget, ms (the
    /// model's in [`crate::embedding_config::KNOWN_MODELS`]; MiniLM's for
    /// another).
    pub embed_call_ms_per_text: u64,
    pub embed_timeout_ms: u64,
    /// Seconds a cached embedding lives in KV.
    pub embed_cache_ttl: u64,
    /// After this many failed attempts a pending row becomes `failed`.
    pub embed_max_attempts: u32,
    /// Rows embedded per call to the pool by the scheduled job.
    pub embed_batch_size: usize,
    /// Wall-clock milliseconds one scheduled run may spend embedding before
    /// it leaves the rest to the next run (a cron invocation may run for
    /// minutes; it waits on the pool, so its CPU time stays small).
    pub embed_job_budget_ms: u64,
    /// Batches the scheduled job keeps in flight at once, so every pool
    /// instance stays busy while vectors are written back.
    pub embed_job_concurrency: usize,
    /// The most new texts a batch ingest embeds inline; a larger batch is
    /// stored pending and embedded in the background. A batch the pool
    /// cannot embed within the inline budget only times out, and the pool
    /// computes it anyway: work thrown away while the background job embeds
    /// the same texts again (measured: the pipeline reached 60 % of the
    /// pool's raw throughput with inline attempts on batches of 100).
    pub inline_embed_max_texts: usize,
    /// Seconds a queue message waits before it is retried after an outage
    /// (Cloudflare Queues; after `max_retries` it goes to the dead-letter
    /// queue). Long enough for a pool restart; tests shorten it.
    pub embed_queue_retry_delay_seconds: u32,
    pub limits: Limits,
    pub auth: AuthConfig,
    /// The scheduled SDAP backup; None when not configured.
    pub backup: Option<BackupConfig>,
    /// Users who may call the operator endpoints (`MEMSHADOW_ADMIN_USER_IDS`).
    pub admin_user_ids: Vec<uuid::Uuid>,
}

/// What is wrong with the configuration. `Display` names the variable, never
/// its value (values can be secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: &'static str,
    pub reason: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.variable, self.reason)
    }
}

impl std::error::Error for ConfigError {}

pub(crate) fn err(variable: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        reason: reason.into(),
    }
}

impl Config {
    /// Reads every variable through `get` (absent or empty → default).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let keys_doc = get(JWT_PUBLIC_KEYS)
            .ok_or_else(|| err(JWT_PUBLIC_KEYS, "required (a JWKS JSON document)"))?;
        let jwt_keys = parse_jwks(&keys_doc).map_err(|reason| err(JWT_PUBLIC_KEYS, reason))?;

        let embedding_url = get(EMBEDDING_URL).unwrap_or_else(|| "http://127.0.0.1:8790".into());
        let embedding_url = embedding_url.trim().trim_end_matches('/').to_string();
        if !(embedding_url.starts_with("http://") || embedding_url.starts_with("https://")) {
            return Err(err(EMBEDDING_URL, "must be an http:// or https:// URL"));
        }

        let d = Limits::default();
        let limits = Limits {
            max_body_bytes: num(
                &get,
                MAX_BODY_BYTES,
                d.max_body_bytes,
                1024,
                64 * 1024 * 1024,
            )?,
            max_content_bytes: num(&get, MAX_CONTENT_BYTES, d.max_content_bytes, 1, 1024 * 1024)?,
            max_metadata_bytes: num(
                &get,
                MAX_METADATA_BYTES,
                d.max_metadata_bytes,
                2,
                1024 * 1024,
            )?,
            max_metadata_keys: num(&get, MAX_METADATA_KEYS, d.max_metadata_keys, 0, 10_000)?,
            max_batch_items: num(&get, MAX_BATCH_ITEMS, d.max_batch_items, 1, 1000)?,
            ..d
        };

        let embedding = crate::embedding_config::from_lookup(&get)?;
        let auth = auth_config(&get, &jwt_keys)?;
        Ok(Config {
            auth,
            backup: crate::backup_config::from_lookup(&get)?,
            admin_user_ids: crate::admin_config::from_lookup(&get)?,
            jwt_keys,
            jwt_issuer: get(JWT_ISSUER).unwrap_or_else(|| "memshadow".into()),
            jwt_audience: get(JWT_AUDIENCE).unwrap_or_else(|| "memshadow-api".into()),
            jwt_leeway_seconds: 30,
            embedding_url,
            embedding_model: embedding.model,
            embedding_dim: embedding.dim,
            embed_call_ms_per_text: embedding.call_ms_per_text,
            embed_timeout_ms: num(&get, EMBED_TIMEOUT_MS, 3000, 1, 600_000)?,
            embed_cache_ttl: num(&get, EMBED_CACHE_TTL, 7 * 24 * 3600, 60, 365 * 24 * 3600)?,
            embed_max_attempts: num(&get, EMBED_MAX_ATTEMPTS, 8, 1, 100)?,
            embed_batch_size: num(&get, EMBED_BATCH_SIZE, 32, 1, 256)?,
            embed_job_budget_ms: num(&get, EMBED_JOB_BUDGET_MS, 240_000, 1_000, 900_000)?,
            embed_job_concurrency: num(&get, EMBED_JOB_CONCURRENCY, 2, 1, 16)?,
            inline_embed_max_texts: num(&get, INLINE_EMBED_MAX_TEXTS, 32, 0, 1000)?,
            // Cloudflare Queues accept delays up to 12 hours.
            embed_queue_retry_delay_seconds: num(
                &get,
                EMBED_QUEUE_RETRY_DELAY_SECONDS,
                30,
                0,
                43_200,
            )?,
            limits,
        })
    }
}

fn auth_config(
    get: &impl Fn(&str) -> Option<String>,
    jwt_keys: &[JwtKey],
) -> Result<AuthConfig, ConfigError> {
    let signer = match get(JWT_SIGNING_KEY) {
        None => None,
        Some(doc) => {
            let signer = parse_signing_key(&doc).map_err(|r| err(JWT_SIGNING_KEY, r))?;
            let published = jwt_keys
                .iter()
                .any(|k| k.kid == signer.kid && k.key == *signer.key.verifying_key());
            if !published {
                return Err(err(
                    JWT_SIGNING_KEY,
                    format!(
                        "its public half (kid {:?}) must be in {JWT_PUBLIC_KEYS}",
                        signer.kid
                    ),
                ));
            }
            Some(signer)
        }
    };
    let origins: Vec<String> = get(WEBAUTHN_ORIGINS)
        .unwrap_or_else(|| "http://localhost:8787".into())
        .split(',')
        .map(|o| o.trim().trim_end_matches('/').to_string())
        .filter(|o| !o.is_empty())
        .collect();
    if origins.is_empty()
        || origins
            .iter()
            .any(|o| !(o.starts_with("http://") || o.starts_with("https://")))
    {
        return Err(err(
            WEBAUTHN_ORIGINS,
            "must be a comma-separated list of http(s) origins",
        ));
    }
    let rp_id = get(WEBAUTHN_RP_ID)
        .unwrap_or_else(|| "localhost".into())
        .trim()
        .to_ascii_lowercase();
    if rp_id.contains(['/', ':', ' ']) {
        return Err(err(WEBAUTHN_RP_ID, "must be a bare domain, e.g. localhost"));
    }
    let user_verification = match get(WEBAUTHN_USER_VERIFICATION).as_deref().map(str::trim) {
        None | Some("preferred") => UserVerification::Preferred,
        Some("required") => UserVerification::Required,
        Some("discouraged") => UserVerification::Discouraged,
        Some(_) => {
            return Err(err(
                WEBAUTHN_USER_VERIFICATION,
                "must be required, preferred or discouraged",
            ));
        }
    };
    Ok(AuthConfig {
        signer,
        access_ttl_s: num(get, ACCESS_TOKEN_TTL, 900, 60, 24 * 3600)?,
        refresh_ttl_s: num(get, REFRESH_TOKEN_TTL, 30 * 24 * 3600, 300, 365 * 24 * 3600)?,
        argon2: Argon2Params {
            memory_kib: num(get, ARGON2_MEMORY_KIB, 19 * 1024, 8, 1024 * 1024)?,
            iterations: num(get, ARGON2_ITERATIONS, 2, 1, 100)?,
            parallelism: num(get, ARGON2_PARALLELISM, 1, 1, 16)?,
        },
        lockout: Lockout {
            account_max_failures: num(get, LOCKOUT_ACCOUNT_FAILURES, 5, 1, 1000)?,
            client_max_failures: num(get, LOCKOUT_CLIENT_FAILURES, 20, 1, 100_000)?,
            base_delay_s: num(get, LOCKOUT_BASE_SECONDS, 30, 1, 15 * 60)?,
            max_delay_s: 15 * 60,
            window_s: 3600,
        },
        webauthn: WebauthnConfig {
            rp_id,
            rp_name: get(WEBAUTHN_RP_NAME).unwrap_or_else(|| "MEMSHADOW".into()),
            origins,
            user_verification,
            timeout_ms: 300_000,
            challenge_ttl_s: 300,
        },
        risk: RiskConfig {
            min_events: 20,
            min_sessions: 3,
            suspicious_score: 0.6,
            min_confidence: 0.5,
            step_up_window_s: 300,
        },
    })
}

pub(crate) fn num<T: std::str::FromStr + PartialOrd + std::fmt::Display>(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
    min: T,
    max: T,
) -> Result<T, ConfigError> {
    let Some(raw) = get(name) else {
        return Ok(default);
    };
    let v: T = raw
        .trim()
        .parse()
        .map_err(|_| err(name, "must be a non-negative integer"))?;
    if v < min || v > max {
        return Err(err(name, format!("must be between {min} and {max}")));
    }
    Ok(v)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use p256::ecdsa::SigningKey;
    use std::collections::HashMap;

    /// A fixed public key (the P-256 generator point, i.e. private key 1):
    /// valid on the curve, useless for signing anything real.
    pub const TEST_JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","alg":"ES256","use":"sig",
        "x":"axfR8uEsQkf4vOblY6RA8ncDfYEt6zOg9KE5RdiYwpY","y":"T-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU"}]}"#;

    pub fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn defaults() {
        let c = Config::from_lookup(lookup(&[(JWT_PUBLIC_KEYS, TEST_JWKS)])).expect("valid");
        assert_eq!(c.jwt_issuer, "memshadow");
        assert_eq!(c.jwt_audience, "memshadow-api");
        assert_eq!(c.embedding_url, "http://127.0.0.1:8790");
        assert_eq!(c.embedding_model, "all-MiniLM-L6-v2");
        assert_eq!(c.embedding_dim, 384);
        assert_eq!(c.embed_timeout_ms, 3000);
        assert_eq!(c.embed_queue_retry_delay_seconds, 30);
        assert_eq!(c.limits, Limits::default());
        assert_eq!(c.jwt_keys[0].kid, "k1");
    }

    #[test]
    fn errors_name_the_variable_not_the_value() {
        let e = Config::from_lookup(lookup(&[])).expect_err("keys required");
        assert_eq!(e.variable, JWT_PUBLIC_KEYS);
        let e = Config::from_lookup(lookup(&[
            (JWT_PUBLIC_KEYS, TEST_JWKS),
            (EMBED_TIMEOUT_MS, "soon"),
        ]))
        .expect_err("bad number");
        assert_eq!(e.variable, EMBED_TIMEOUT_MS);
        assert!(!e.to_string().contains("soon"));
        let e = Config::from_lookup(lookup(&[
            (JWT_PUBLIC_KEYS, TEST_JWKS),
            (EMBEDDING_URL, "ftp://x"),
        ]))
        .expect_err("bad url");
        assert_eq!(e.variable, EMBEDDING_URL);
    }

    /// The JWK of private scalar 1 (its public half is TEST_JWKS's key).
    const SIGNING_JWK: &str = r#"{"kty":"EC","crv":"P-256","kid":"k1","d":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE",
        "x":"axfR8uEsQkf4vOblY6RA8ncDfYEt6zOg9KE5RdiYwpY","y":"T-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU"}"#;

    #[test]
    fn signing_key_must_be_published() {
        let c = Config::from_lookup(lookup(&[
            (JWT_PUBLIC_KEYS, TEST_JWKS),
            (JWT_SIGNING_KEY, SIGNING_JWK),
        ]))
        .expect("valid");
        let signer = c.auth.signer.expect("signer");
        assert_eq!(signer.kid, "k1");
        assert!(!format!("{signer:?}").contains("AAAE"), "Debug hides d");
        // Another kid, or the right kid with another key: refused.
        let other_kid = SIGNING_JWK.replace(r#""kid":"k1""#, r#""kid":"k2""#);
        let e = Config::from_lookup(lookup(&[
            (JWT_PUBLIC_KEYS, TEST_JWKS),
            (JWT_SIGNING_KEY, &other_kid),
        ]))
        .expect_err("unpublished");
        assert_eq!(e.variable, JWT_SIGNING_KEY);
        assert!(!e.to_string().contains("AAAE"));
        let other_key = r#"{"kty":"EC","crv":"P-256","kid":"k1","d":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAI"}"#;
        assert!(
            Config::from_lookup(lookup(&[
                (JWT_PUBLIC_KEYS, TEST_JWKS),
                (JWT_SIGNING_KEY, other_key),
            ]))
            .is_err()
        );
        // x/y that do not belong to d.
        let mismatched = SIGNING_JWK.replace("axfR8uEsQkf4", "bxfR8uEsQkf4");
        assert!(
            parse_signing_key(&mismatched)
                .unwrap_err()
                .contains("x and y")
        );
        assert!(parse_signing_key("not a key").is_err());
    }

    #[test]
    fn signing_key_as_pkcs8_pem() {
        use p256::pkcs8::EncodePrivateKey;
        let mut d = [0u8; 32];
        d[31] = 1;
        let key = SigningKey::from_slice(&d).expect("scalar");
        let pem = key
            .to_pkcs8_pem(p256::pkcs8::LineEnding::LF)
            .expect("pem")
            .to_string();
        let signer = parse_signing_key(&pem).expect("pem parses");
        assert_eq!(signer.key, key);
        assert!(signer.kid.starts_with("dev-") && signer.kid.len() == 16);
        // Escaped newlines (one-line env files) work too.
        let one_line = pem.trim().replace('\n', "\\n");
        assert_eq!(
            parse_signing_key(&one_line).expect("escaped").kid,
            signer.kid
        );
    }

    #[test]
    fn auth_defaults_and_webauthn_settings() {
        let c = Config::from_lookup(lookup(&[(JWT_PUBLIC_KEYS, TEST_JWKS)])).expect("valid");
        assert!(c.auth.signer.is_none());
        assert_eq!(c.auth.access_ttl_s, 900);
        assert_eq!(c.auth.argon2.memory_kib, 19 * 1024);
        assert_eq!(c.auth.webauthn.rp_id, "localhost");
        assert_eq!(c.auth.webauthn.origins, vec!["http://localhost:8787"]);
        assert_eq!(
            c.auth.webauthn.user_verification,
            UserVerification::Preferred
        );
        let c = Config::from_lookup(lookup(&[
            (JWT_PUBLIC_KEYS, TEST_JWKS),
            (
                WEBAUTHN_ORIGINS,
                "https://a.example/, http://localhost:9000",
            ),
            (WEBAUTHN_USER_VERIFICATION, "required"),
        ]))
        .expect("valid");
        assert_eq!(
            c.auth.webauthn.origins,
            vec!["https://a.example", "http://localhost:9000"]
        );
        assert_eq!(
            c.auth.webauthn.user_verification,
            UserVerification::Required
        );
        for (var, bad) in [
            (WEBAUTHN_ORIGINS, "ftp://x"),
            (WEBAUTHN_USER_VERIFICATION, "sometimes"),
            (WEBAUTHN_RP_ID, "https://localhost"),
        ] {
            let e = Config::from_lookup(lookup(&[(JWT_PUBLIC_KEYS, TEST_JWKS), (var, bad)]))
                .expect_err("refused");
            assert_eq!(e.variable, var);
        }
    }

    #[test]
    fn jwks_rejections() {
        assert!(parse_jwks("{}").is_err());
        assert!(parse_jwks(r#"{"keys":[]}"#).is_err());
        let no_kid = TEST_JWKS.replace(r#""kid":"k1","#, "");
        assert!(parse_jwks(&no_kid).unwrap_err().contains("kid"));
        let off_curve = TEST_JWKS.replace("T-NC4v4af5uO5", "T-NC4v4af5uO6");
        assert!(parse_jwks(&off_curve).unwrap_err().contains("not a point"));
        let private = TEST_JWKS.replace(r#""use":"sig","#, r#""use":"sig","d":"AAAA","#);
        assert!(parse_jwks(&private).unwrap_err().contains("private"));
        let rsa = TEST_JWKS.replace(r#""kty":"EC""#, r#""kty":"RSA""#);
        assert!(parse_jwks(&rsa).is_err());
    }
}
