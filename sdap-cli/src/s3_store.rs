//! A backup store in an S3-compatible bucket, `s3://BUCKET`: the bucket the
//! API's scheduled backups write to, read (and written, by `export`) in
//! place. Requests are built and signed (SigV4, path-style) by the API's
//! own runtime-neutral [`edge_api::s3`]; this file only sends them, as the
//! Spin adapter's `S3Blob` does. Endpoint, region and access key come from
//! the variables the API reads (`MEMSHADOW_BACKUP_S3_*`); the bucket comes
//! from the URL.
//!
//! Errors name the operation, the object key, the HTTP status and S3's
//! error code; never the secret, the signature or a response body.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use edge_api::s3::{self, S3Config, S3Request, config as vars};
use sdap::Error;
use sdap::backup::{self, ObjectSource};

/// One call's limit: chunks are a few MiB at most.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// ListObjectsV2 pages at most (1000 keys each): a store that keeps
/// answering "truncated" must not loop forever.
const MAX_LIST_PAGES: usize = 10_000;

pub struct S3Store {
    config: S3Config,
    client: reqwest::blocking::Client,
}

/// The bucket of `s3://BUCKET` (a trailing `/` allowed); `None` when
/// `location` is not an `s3://` URL.
pub fn bucket_of(location: &str) -> Option<Result<&str, String>> {
    let rest = location.strip_prefix("s3://")?;
    let bucket = rest.strip_suffix('/').unwrap_or(rest);
    Some(if bucket.is_empty() || bucket.contains('/') {
        Err(format!(
            "{location}: expected s3://BUCKET (backups are kept at the bucket's root, under backups/)"
        ))
    } else {
        Ok(bucket)
    })
}

impl S3Store {
    /// The store for `bucket`, configured from the environment.
    pub fn from_env(bucket: &str) -> Result<Self, String> {
        Self::from_lookup(bucket, |name| std::env::var(name).ok())
    }

    /// The store for `bucket`, every other setting from `get` (by the
    /// API's variable names). A missing endpoint or key is an error.
    pub fn from_lookup(bucket: &str, get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let lookup = |name: &str| {
            if name == vars::BUCKET {
                Some(bucket.to_string())
            } else {
                get(name)
            }
        };
        let required = [vars::ENDPOINT, vars::ACCESS_KEY_ID, vars::SECRET_ACCESS_KEY];
        let unset: Vec<&str> = required
            .into_iter()
            .filter(|name| get(name).is_none_or(|v| v.trim().is_empty()))
            .collect();
        if !unset.is_empty() {
            return Err(format!(
                "s3://{bucket} needs {} ({} optional, default {}); not set: {}",
                required.join(", "),
                vars::REGION,
                vars::DEFAULT_REGION,
                unset.join(", ")
            ));
        }
        let config = match S3Config::from_lookup(lookup) {
            Ok(Some(config)) => config,
            Ok(None) => return Err(format!("s3://{bucket}: {} is not set", vars::ENDPOINT)),
            // The bucket comes from the URL, not from its variable.
            Err(e) if e.variable == vars::BUCKET => {
                return Err(format!("s3://{bucket}: the bucket name {}", e.reason));
            }
            Err(e) => return Err(format!("s3://{bucket}: {e}")),
        };
        // reqwest's blocking client must not be built (nor called) on a
        // thread that runs an async runtime, and `sdap` runs in one.
        let client = off_runtime(|| {
            reqwest::blocking::Client::builder()
                .timeout(CALL_TIMEOUT)
                .connect_timeout(CONNECT_TIMEOUT)
                // A signed request goes where it was signed for, nowhere else.
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| format!("s3: cannot set up the HTTP client: {}", chain(e)))
        })??;
        Ok(Self { config, client })
    }

    pub fn describe(&self) -> String {
        format!("s3://{} at {}", self.config.bucket, self.config.origin)
    }

    /// Sends a signed request and returns the status and body.
    fn send(&self, op: &str, req: S3Request, body: Vec<u8>) -> Result<(u16, Vec<u8>), Error> {
        let fail = |what: String| Error::Store(format!("s3 {op}: {what}"));
        let outcome = off_runtime(|| {
            let method = reqwest::Method::from_bytes(req.method.as_bytes())
                .map_err(|_| "a bad method".to_string())?;
            let mut builder = self.client.request(method, &req.url);
            for (name, value) in &req.headers {
                builder = builder.header(*name, value);
            }
            if !body.is_empty() {
                builder = builder.body(body);
            }
            let reply = builder.send().map_err(chain)?;
            let status = reply.status().as_u16();
            let bytes = reply.bytes().map_err(chain)?;
            Ok::<_, String>((status, bytes.to_vec()))
        });
        outcome.map_err(fail)?.map_err(fail)
    }

    fn now_ms() -> i64 {
        chrono::Utc::now().timestamp_millis()
    }

    fn port(e: edge_api::ports::PortError) -> Error {
        Error::Store(e.detail)
    }

    pub fn put(&self, key: &str, bytes: &[u8]) -> Result<(), Error> {
        let req = self
            .config
            .put_object(key, bytes, Self::now_ms())
            .map_err(Self::port)?;
        let op = format!("put {key}");
        let (status, body) = self.send(&op, req, bytes.to_vec())?;
        if s3::ok(status) {
            Ok(())
        } else {
            Err(Self::port(s3::status_error(&op, status, &body)))
        }
    }

    /// Every key under `prefix` with its size, sorted, following
    /// continuation tokens.
    fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>, Error> {
        let mut objects = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_LIST_PAGES {
            let req = self
                .config
                .list_objects(prefix, token.as_deref(), Self::now_ms())
                .map_err(Self::port)?;
            let (status, body) = self.send("list", req, Vec::new())?;
            if !s3::ok(status) {
                return Err(Self::port(s3::status_error("list", status, &body)));
            }
            let page =
                s3::xml::parse_list(&body).map_err(|e| Error::Store(format!("s3 list: {e}")))?;
            objects.extend(
                page.keys
                    .into_iter()
                    .zip(page.sizes)
                    .filter(|(k, _)| k.starts_with(prefix))
                    .map(|(k, size)| (k, size.unwrap_or(0))),
            );
            match page.next_token {
                Some(next) if token.as_deref() != Some(next.as_str()) => token = Some(next),
                Some(_) => return Err(Error::Store("s3 list: the same page twice".into())),
                None => {
                    objects.sort();
                    return Ok(objects);
                }
            }
        }
        Err(Error::Store(format!(
            "s3 list: more than {MAX_LIST_PAGES} pages"
        )))
    }

    /// Ids of complete backups (those with a manifest), oldest first.
    pub fn backup_ids(&self) -> Result<Vec<String>, Error> {
        let mut ids: Vec<String> = self
            .list(backup::ROOT)?
            .into_iter()
            .filter_map(|(key, _)| {
                let rest = key.strip_prefix(backup::ROOT)?;
                let (id, name) = rest.split_once('/')?;
                (name == backup::MANIFEST && backup::valid_backup_id(id)).then(|| id.to_string())
            })
            .collect();
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    /// Total bytes of a backup's objects (0 when they cannot be listed).
    pub fn backup_size(&self, id: &str) -> u64 {
        self.list(&format!("{}{id}/", backup::ROOT))
            .map(|objects| objects.iter().map(|(_, size)| size).sum())
            .unwrap_or(0)
    }
}

impl ObjectSource for S3Store {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        let req = self
            .config
            .get_object(key, Self::now_ms())
            .map_err(Self::port)?;
        let op = format!("get {key}");
        let (status, body) = self.send(&op, req, Vec::new())?;
        match status {
            // A missing bucket is a fault, not a missing object.
            404 if s3::xml::error_code(&body).as_deref() == Some("NoSuchBucket") => {
                Err(Self::port(s3::status_error(&op, status, &body)))
            }
            404 => Ok(None),
            s if s3::ok(s) => Ok(Some(body)),
            s => Err(Self::port(s3::status_error(&op, s, &body))),
        }
    }
}

/// Runs `f` on a thread of its own, outside the async runtime `sdap` runs
/// in (reqwest's blocking client refuses to run inside one).
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> Result<T, String> {
    std::thread::scope(|s| s.spawn(f).join()).map_err(|_| "the HTTP thread failed".to_string())
}

/// An HTTP error and its causes, without the URL (not a secret, but the
/// caller names the object already).
fn chain(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
