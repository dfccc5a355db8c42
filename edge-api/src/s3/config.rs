//! Where backups go when they go to an S3-compatible store (the Spin
//! adapter's backup store; the Worker writes to its R2 binding instead):
//! endpoint, bucket, region and the access key, read by name like every
//! other setting. No endpoint: no S3 store (the adapter keeps its default).
//! An endpoint without bucket or key, or a bucket or key without an
//! endpoint, is a configuration error, never a silent fallback.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::config::ConfigError;

/// `http(s)://host[:port]` of the S3 API; objects are addressed path-style,
/// `{endpoint}/{bucket}/{key}`, which every S3-compatible server accepts.
pub const ENDPOINT: &str = "MEMSHADOW_BACKUP_S3_ENDPOINT";
pub const BUCKET: &str = "MEMSHADOW_BACKUP_S3_BUCKET";
/// The region signatures are scoped to [us-east-1]; many S3-compatible
/// servers accept any (R2 wants `auto`).
pub const REGION: &str = "MEMSHADOW_BACKUP_S3_REGION";
pub const ACCESS_KEY_ID: &str = "MEMSHADOW_BACKUP_S3_ACCESS_KEY_ID";
/// A secret.
pub const SECRET_ACCESS_KEY: &str = "MEMSHADOW_BACKUP_S3_SECRET_ACCESS_KEY";

/// Every variable above, for adapters that fetch variables before parsing.
pub const VARIABLES: [&str; 5] = [ENDPOINT, BUCKET, REGION, ACCESS_KEY_ID, SECRET_ACCESS_KEY];

pub const DEFAULT_REGION: &str = "us-east-1";

#[derive(Clone, PartialEq, Eq)]
pub struct S3Config {
    /// `scheme://host[:port]`, the scheme's default port left out.
    pub origin: String,
    /// `host[:port]` as the `Host` header carries it (and as it is signed).
    pub host: String,
    pub bucket: String,
    pub region: String,
    pub access_key_id: String,
    /// Never printed.
    pub secret_access_key: String,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("origin", &self.origin)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

fn err(variable: &'static str, reason: &str) -> ConfigError {
    ConfigError {
        variable,
        reason: reason.to_string(),
    }
}

impl S3Config {
    /// `Ok(None)`: no S3 store configured.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, ConfigError> {
        let value = |name: &str| {
            get(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let Some(endpoint) = value(ENDPOINT) else {
            for name in [BUCKET, ACCESS_KEY_ID, SECRET_ACCESS_KEY] {
                if value(name).is_some() {
                    return Err(err(ENDPOINT, &format!("required when {name} is set")));
                }
            }
            return Ok(None);
        };
        let (origin, host) = parse_endpoint(&endpoint)?;
        let bucket = value(BUCKET).ok_or_else(|| err(BUCKET, "required with an S3 endpoint"))?;
        if !valid_bucket(&bucket) {
            return Err(err(
                BUCKET,
                "must be 1 to 255 of the characters a-z A-Z 0-9 . - _",
            ));
        }
        let region = value(REGION).unwrap_or_else(|| DEFAULT_REGION.to_string());
        if !region
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(err(
                REGION,
                "must be letters, digits, - and _ (e.g. us-east-1)",
            ));
        }
        let access_key_id = value(ACCESS_KEY_ID)
            .ok_or_else(|| err(ACCESS_KEY_ID, "required with an S3 endpoint"))?;
        // It goes into the Credential= part of a header: visible ASCII only.
        if !access_key_id
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b',')
        {
            return Err(err(ACCESS_KEY_ID, "must be visible ASCII without / or ,"));
        }
        let secret_access_key = value(SECRET_ACCESS_KEY)
            .ok_or_else(|| err(SECRET_ACCESS_KEY, "required with an S3 endpoint"))?;
        Ok(Some(Self {
            origin,
            host,
            bucket,
            region,
            access_key_id,
            secret_access_key,
        }))
    }
}

/// `(origin, host)` of an endpoint such as `https://s3.example.com` or
/// `http://127.0.0.1:9000/`.
fn parse_endpoint(endpoint: &str) -> Result<(String, String), ConfigError> {
    let shape = "must be http(s)://host[:port] with no path, query or credentials";
    let (scheme, rest) = endpoint
        .split_once("://")
        .ok_or_else(|| err(ENDPOINT, shape))?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => "80",
        "https" => "443",
        _ => return Err(err(ENDPOINT, shape)),
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest).to_ascii_lowercase();
    let allowed =
        |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']');
    if authority.is_empty() || !authority.bytes().all(allowed) {
        return Err(err(ENDPOINT, shape));
    }
    // A port follows the last ':' outside an IPv6 literal's brackets.
    let after_brackets = authority
        .rsplit_once(']')
        .map_or(authority.as_str(), |(_, r)| r);
    let host = match after_brackets.rsplit_once(':') {
        Some((_, port)) => {
            if port.parse::<u16>().ok().filter(|p| *p > 0).is_none() {
                return Err(err(ENDPOINT, "has an invalid port"));
            }
            if port == default_port {
                authority
                    .strip_suffix(&format!(":{port}"))
                    .unwrap_or(&authority)
                    .to_string()
            } else {
                authority.clone()
            }
        }
        None => authority.clone(),
    };
    if host.starts_with(':') {
        return Err(err(ENDPOINT, shape));
    }
    Ok((format!("{scheme}://{host}"), host))
}

/// S3's own rule is stricter (3–63 lower-case characters); S3-compatible
/// servers differ, so only what keeps the path unambiguous is enforced.
fn valid_bucket(bucket: &str) -> bool {
    (1..=255).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;

    pub fn valid_keys() -> Vec<(String, String)> {
        [
            (ENDPOINT, "http://127.0.0.1:9000/"),
            (BUCKET, "memshadow-backups"),
            (ACCESS_KEY_ID, "AKIAEXAMPLE"),
            (SECRET_ACCESS_KEY, "secret/key+value"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn parse(pairs: &[(String, String)]) -> Result<Option<S3Config>, ConfigError> {
        S3Config::from_lookup(|name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
    }

    fn with(name: &str, value: &str) -> Vec<(String, String)> {
        let mut pairs: Vec<(String, String)> = valid_keys()
            .into_iter()
            .filter(|(k, _)| k != name)
            .collect();
        pairs.push((name.to_string(), value.to_string()));
        pairs
    }

    #[test]
    fn nothing_set_is_no_store() {
        assert_eq!(parse(&[]).unwrap(), None);
        // A region alone names no store.
        let region = [(REGION.to_string(), "eu-west-1".to_string())];
        assert_eq!(parse(&region).unwrap(), None);
    }

    #[test]
    fn a_full_configuration_parses_with_the_default_region() {
        let cfg = parse(&valid_keys()).unwrap().unwrap();
        assert_eq!(cfg.origin, "http://127.0.0.1:9000");
        assert_eq!(cfg.host, "127.0.0.1:9000");
        assert_eq!(cfg.region, DEFAULT_REGION);
        assert!(
            !format!("{cfg:?}").contains("secret/key"),
            "Debug hides the secret"
        );
        let cfg = parse(&with(REGION, "auto")).unwrap().unwrap();
        assert_eq!(cfg.region, "auto");
    }

    #[test]
    fn the_default_port_is_left_out_of_the_signed_host() {
        let cfg = parse(&with(ENDPOINT, "HTTPS://S3.Example.com:443"))
            .unwrap()
            .unwrap();
        assert_eq!(
            (cfg.origin.as_str(), cfg.host.as_str()),
            ("https://s3.example.com", "s3.example.com")
        );
        let cfg = parse(&with(ENDPOINT, "http://[::1]:9000"))
            .unwrap()
            .unwrap();
        assert_eq!(cfg.host, "[::1]:9000");
    }

    #[test]
    fn bad_endpoints_are_refused() {
        for bad in [
            "s3.example.com",
            "ftp://s3.example.com",
            "https://",
            "https://s3.example.com/bucket",
            "https://user:pw@s3.example.com",
            "https://s3.example.com?x=1",
            "https://s3.example.com:0",
            "https://s3.example.com:99999",
            "https://:9000",
        ] {
            let e = parse(&with(ENDPOINT, bad)).unwrap_err();
            assert_eq!(e.variable, ENDPOINT, "{bad}");
        }
    }

    #[test]
    fn a_partial_configuration_names_what_is_missing() {
        for name in [BUCKET, ACCESS_KEY_ID, SECRET_ACCESS_KEY] {
            let pairs: Vec<_> = valid_keys()
                .into_iter()
                .filter(|(k, _)| k != name)
                .collect();
            assert_eq!(parse(&pairs).unwrap_err().variable, name);
        }
        let no_endpoint: Vec<_> = valid_keys()
            .into_iter()
            .filter(|(k, _)| k != ENDPOINT)
            .collect();
        assert_eq!(parse(&no_endpoint).unwrap_err().variable, ENDPOINT);
        assert_eq!(parse(&with(BUCKET, "a/b")).unwrap_err().variable, BUCKET);
        assert_eq!(
            parse(&with(REGION, "us east")).unwrap_err().variable,
            REGION
        );
        assert_eq!(
            parse(&with(ACCESS_KEY_ID, "AK/IA")).unwrap_err().variable,
            ACCESS_KEY_ID
        );
    }
}
