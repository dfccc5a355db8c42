//! Configuration and secrets from Spin variables (`spin:variables@3.0.0`).
//!
//! The core names its settings like `MEMSHADOW_JWT_ISSUER`; Spin variable
//! names are lower-case, so each is read as `memshadow_jwt_issuer` (and set,
//! for example, as `SPIN_VARIABLE_MEMSHADOW_JWT_ISSUER` with Spin's
//! environment provider). A variable the manifest does not declare, or that
//! has no value, reads as unset.

use std::cell::RefCell;
use std::collections::BTreeMap;

use crate::config::{Config, ConfigError};
use crate::s3::{S3Config, config as s3_config};

/// Reads one variable; `None` when undefined, empty or unreadable.
pub async fn get(name: &str) -> Option<String> {
    spin_sdk::variables::get(name.to_ascii_lowercase())
        .await
        .ok()
        .filter(|v| !v.is_empty())
}

/// Parses the configuration. [`Config::from_lookup`] reads synchronously
/// while Spin's variables are async, so the names are discovered by
/// running the parser: each pass records the names it asked for that have
/// not been fetched, those are fetched, and the parser runs again until it
/// asks for nothing new. The list of variables therefore stays in one place
/// (config.rs); a typical configuration needs two or three passes, each a
/// few microseconds.
pub async fn load_config() -> Result<Config, ConfigError> {
    let fetched: RefCell<BTreeMap<String, Option<String>>> = RefCell::new(BTreeMap::new());
    loop {
        let wanted: RefCell<Vec<String>> = RefCell::new(Vec::new());
        let parsed = Config::from_lookup(|name| match fetched.borrow().get(name) {
            Some(value) => value.clone(),
            None => {
                wanted.borrow_mut().push(name.to_string());
                None
            }
        });
        let wanted = wanted.into_inner();
        if wanted.is_empty() {
            return parsed;
        }
        for name in wanted {
            let value = get(&name).await;
            fetched.borrow_mut().insert(name, value);
        }
    }
}

/// The S3 backup store's settings ([`crate::s3::config`]); `Ok(None)` when
/// no endpoint is set.
pub async fn load_s3_config() -> Result<Option<S3Config>, ConfigError> {
    let mut values = BTreeMap::new();
    for name in s3_config::VARIABLES {
        values.insert(name, get(name).await);
    }
    S3Config::from_lookup(|name| values.get(name).cloned().flatten())
}
