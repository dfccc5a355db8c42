//! Service configuration: one struct read from named string variables, the
//! same names on every runtime (Worker vars/secrets, Spin variables, env).
//!
//! Parsing fails loudly at start-up (`ConfigError`); the adapter then answers
//! every request 503 `misconfigured` via [`crate::app::handle_misconfigured`],
//! so a bad deploy is visible without leaking which value is wrong.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::VerifyingKey;
use serde::Deserialize;

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
pub const MAX_BODY_BYTES: &str = "MEMSHADOW_MAX_BODY_BYTES";
pub const MAX_CONTENT_BYTES: &str = "MEMSHADOW_MAX_CONTENT_BYTES";
pub const MAX_METADATA_BYTES: &str = "MEMSHADOW_MAX_METADATA_BYTES";
pub const MAX_METADATA_KEYS: &str = "MEMSHADOW_MAX_METADATA_KEYS";
pub const MAX_BATCH_ITEMS: &str = "MEMSHADOW_MAX_BATCH_ITEMS";

/// Dimension of all-MiniLM-L6-v2 vectors; the `vector(384)` column fixes it.
pub const EMBEDDING_DIM: usize = 384;

/// One configured token-verification key.
#[derive(Debug, Clone)]
pub struct JwtKey {
    pub kid: String,
    pub key: VerifyingKey,
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
    pub embedding_model: String,
    pub embed_timeout_ms: u64,
    /// Seconds a cached embedding lives in KV.
    pub embed_cache_ttl: u64,
    /// After this many failed attempts a pending row becomes `failed`.
    pub embed_max_attempts: u32,
    /// Rows embedded per call to the pool by the scheduled job.
    pub embed_batch_size: usize,
    pub limits: Limits,
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

fn err(variable: &'static str, reason: impl Into<String>) -> ConfigError {
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

        Ok(Config {
            jwt_keys,
            jwt_issuer: get(JWT_ISSUER).unwrap_or_else(|| "memshadow".into()),
            jwt_audience: get(JWT_AUDIENCE).unwrap_or_else(|| "memshadow-api".into()),
            jwt_leeway_seconds: 30,
            embedding_url,
            embedding_model: get(EMBEDDING_MODEL).unwrap_or_else(|| "all-MiniLM-L6-v2".into()),
            embed_timeout_ms: num(&get, EMBED_TIMEOUT_MS, 3000, 1, 600_000)?,
            embed_cache_ttl: num(&get, EMBED_CACHE_TTL, 7 * 24 * 3600, 60, 365 * 24 * 3600)?,
            embed_max_attempts: num(&get, EMBED_MAX_ATTEMPTS, 8, 1, 100)?,
            embed_batch_size: num(&get, EMBED_BATCH_SIZE, 32, 1, 256)?,
            limits,
        })
    }
}

fn num<T: std::str::FromStr + PartialOrd + std::fmt::Display>(
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

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default, rename = "use")]
    use_: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
    /// A private part in a public-key set is an operator mistake worth
    /// refusing: the document is configured as a (non-secret) variable.
    #[serde(default)]
    d: Option<String>,
}

/// Parses a JWKS of EC P-256 keys. Every key needs a unique `kid`.
pub fn parse_jwks(doc: &str) -> Result<Vec<JwtKey>, String> {
    let jwks: Jwks = serde_json::from_str(doc).map_err(|e| format!("not a JWKS document: {e}"))?;
    if jwks.keys.is_empty() {
        return Err("the key set is empty".into());
    }
    let mut out: Vec<JwtKey> = Vec::new();
    for (i, k) in jwks.keys.into_iter().enumerate() {
        let kid = k
            .kid
            .filter(|s| !s.is_empty())
            .ok_or(format!("key {i}: kid is required"))?;
        if k.kty != "EC" || k.crv.as_deref() != Some("P-256") {
            return Err(format!(
                "key {kid:?}: only kty EC with crv P-256 is supported"
            ));
        }
        if k.alg.as_deref().is_some_and(|a| a != "ES256")
            || k.use_.as_deref().is_some_and(|u| u != "sig")
        {
            return Err(format!("key {kid:?}: alg must be ES256 and use sig"));
        }
        if k.d.is_some() {
            return Err(format!(
                "key {kid:?}: contains a private key (d); configure public keys only"
            ));
        }
        let coord = |c: Option<String>, n: &str| -> Result<Vec<u8>, String> {
            let raw = URL_SAFE_NO_PAD
                .decode(c.unwrap_or_default().trim_end_matches('='))
                .map_err(|_| format!("key {kid:?}: {n} is not base64url"))?;
            if raw.len() != 32 {
                return Err(format!("key {kid:?}: {n} must be 32 bytes"));
            }
            Ok(raw)
        };
        let mut sec1 = vec![4u8];
        sec1.extend(coord(k.x, "x")?);
        sec1.extend(coord(k.y, "y")?);
        let key = VerifyingKey::from_sec1_bytes(&sec1)
            .map_err(|_| format!("key {kid:?}: not a point on P-256"))?;
        if out.iter().any(|o| o.kid == kid) {
            return Err(format!("key {kid:?}: duplicate kid"));
        }
        out.push(JwtKey { kid, key });
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
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
        assert_eq!(c.embed_timeout_ms, 3000);
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
