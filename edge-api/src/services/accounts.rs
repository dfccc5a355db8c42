//! Accounts: registration (validation, argon2id hashing) and password
//! sign-in with failed-attempt throttling per account name and per client.
//!
//! Sign-in never tells an unknown account from a wrong password: both get
//! `invalid_credentials`, both run one argon2id computation with the
//! configured cost, and both count against the same throttle keys.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::todo,
    clippy::indexing_slicing
)]

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use serde::{Deserialize, Serialize};

use crate::app::Ctx;
use crate::config::{Argon2Params, Lockout};
use crate::errors::{ApiError, ErrorCode};
use crate::http::Request;
use crate::repositories::users::{Account, Taken, Users};
use crate::services::memories::rfc3339;
use crate::services::tokens::{self, Session, TokenPair, random_bytes};

/// The 5,000 most common passwords of at least 12 characters, lower-cased
/// (provenance in the file's neighbour `common-passwords.md`).
const COMMON_PASSWORDS: &str = include_str!("common-passwords.txt");

pub const MIN_PASSWORD_CHARS: usize = 12;
pub const MAX_PASSWORD_BYTES: usize = 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    pub email: String,
    pub username: String,
    pub password: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Registered {
    pub id: String,
    pub email: String,
    pub username: String,
    /// RFC 3339, UTC, microseconds (as memories render theirs).
    pub created_at: String,
}

fn invalid(code: ErrorCode, msg: &str) -> ApiError {
    ApiError::new(code, msg)
}

/// Lower-cases and checks an email address: one `@`, a non-empty local
/// part of at most 64 bytes, a dotted domain of letters, digits and
/// hyphens, at most 254 bytes in all, nothing invisible.
pub fn normalize_email(raw: &str) -> Result<String, ApiError> {
    let bad = || {
        invalid(
            ErrorCode::InvalidEmail,
            "email must look like name@example.com",
        )
    };
    let email = raw.to_lowercase();
    if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let (local, domain) = email.split_once('@').ok_or_else(bad)?;
    if local.is_empty()
        || local.len() > 64
        || domain.contains('@')
        || local.contains(['<', '>', '(', ')', '[', ']', ',', ';', ':', '\\', '"'])
    {
        return Err(bad());
    }
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_alphanumeric() || c == '-')
    };
    if labels.len() < 2 || !labels.iter().all(label_ok) {
        return Err(bad());
    }
    Ok(email)
}

/// Lower-cases and checks a username: 3..=32 of `a-z 0-9 _ . -`.
pub fn normalize_username(raw: &str) -> Result<String, ApiError> {
    let u = raw.to_ascii_lowercase();
    let ok = (3..=32).contains(&u.len())
        && u.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
    if ok {
        Ok(u)
    } else {
        Err(invalid(
            ErrorCode::InvalidUsername,
            "username must be 3 to 32 characters from a-z, 0-9, '_', '.', '-'",
        ))
    }
}

pub fn is_common_password(password: &str) -> bool {
    let lower = password.to_lowercase();
    COMMON_PASSWORDS.lines().any(|l| l == lower)
}

pub fn check_password(password: &str, email: &str, username: &str) -> Result<(), ApiError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(invalid(
            ErrorCode::WeakPassword,
            "password must be at least 12 characters",
        ));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(invalid(
            ErrorCode::WeakPassword,
            "password must be at most 1024 bytes",
        ));
    }
    let lower = password.to_lowercase();
    if is_common_password(password) || lower == email || lower == username {
        return Err(invalid(
            ErrorCode::WeakPassword,
            "this password is too common; choose another",
        ));
    }
    Ok(())
}

fn hasher(p: &Argon2Params) -> Result<Argon2<'static>, ApiError> {
    let params = Params::new(p.memory_kib, p.iterations, p.parallelism, None)
        .map_err(|e| ApiError::internal(format!("argon2 parameters: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// A PHC-format argon2id hash with a fresh 16-byte salt.
pub fn hash_password(p: &Argon2Params, password: &str) -> Result<String, ApiError> {
    let salt = SaltString::encode_b64(&random_bytes::<16>()?)
        .map_err(|e| ApiError::internal(format!("salt: {e}")))?;
    hasher(p)?
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ApiError::internal(format!("argon2: {e}")))
}

/// Verifies with the parameters stored in the hash itself.
pub fn verify_password(hash: &str, password: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Whether `hash` was made with other parameters (or another algorithm)
/// than `p`: such a hash is replaced after the next successful sign-in.
pub fn needs_rehash(hash: &str, p: &Argon2Params) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return true;
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return true;
    };
    parsed.algorithm.as_str() != "argon2id"
        || params.m_cost() != p.memory_kib
        || params.t_cost() != p.iterations
        || params.p_cost() != p.parallelism
}

/// Spends the same work as a verification with the configured parameters,
/// for sign-ins to accounts that do not exist.
pub fn dummy_verify(p: &Argon2Params, password: &str) {
    let mut out = [0u8; 32];
    if let Ok(h) = hasher(p) {
        let _ = h.hash_password_into(password.as_bytes(), b"memshadow-no-such-user", &mut out);
    }
}

pub async fn register(ctx: &Ctx<'_>, req: RegisterRequest) -> Result<Registered, ApiError> {
    let email = normalize_email(&req.email)?;
    let username = normalize_username(&req.username)?;
    check_password(&req.password, &email, &username)?;
    let hash = hash_password(&ctx.cfg.auth.argon2, &req.password)?;
    let created_at = rfc3339(ctx.now_ms);
    match (Users { sql: ctx.p.sql })
        .insert(&email, &username, &hash, &created_at)
        .await?
    {
        Ok(id) => Ok(Registered {
            id: id.to_string(),
            email,
            username,
            created_at,
        }),
        Err(Taken::Email) => Err(ApiError::new(
            ErrorCode::EmailTaken,
            "an account with this email already exists",
        )),
        Err(Taken::Username) => Err(ApiError::new(
            ErrorCode::UsernameTaken,
            "this username is taken",
        )),
    }
}

/// The client a sign-in comes from: `cf-connecting-ip` (set by Cloudflare,
/// not forgeable behind it), else the first `x-forwarded-for` entry, else
/// `unknown` (all such clients share one throttle).
pub fn client_key(req: &Request) -> String {
    let ip = req
        .header("cf-connecting-ip")
        .or_else(|| {
            req.header("x-forwarded-for")
                .and_then(|v| v.split(',').next())
        })
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .unwrap_or("unknown");
    format!("client:{}", crate::json::truncate(ip, 64))
}

/// The lock earned by the `failures`-th failure: none below the threshold,
/// then `base`, doubling with each further failure, capped.
pub fn lock_seconds(l: &Lockout, failures: u32, max_failures: u32) -> Option<i64> {
    if failures < max_failures {
        return None;
    }
    let doublings = (failures - max_failures).min(30);
    Some(
        l.base_delay_s
            .saturating_mul(1i64 << doublings)
            .min(l.max_delay_s),
    )
}

fn too_many(retry_after_s: i64) -> ApiError {
    ApiError::new(
        ErrorCode::TooManyAttempts,
        format!("too many failed sign-ins; retry in {retry_after_s} s"),
    )
    .with_header("retry-after", retry_after_s.to_string())
}

fn invalid_credentials() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidCredentials,
        "the username or password is wrong",
    )
}

/// Password sign-in. `identifier` is a username or an email.
pub async fn login(
    ctx: &Ctx<'_>,
    identifier: &str,
    password: &str,
    client: &str,
) -> Result<TokenPair, ApiError> {
    let name = identifier.trim().to_lowercase();
    let name = crate::json::truncate(&name, 254).to_string();
    let account_key = format!("account:{name}");
    let users = Users { sql: ctx.p.sql };
    let now = rfc3339(ctx.now_ms);
    let keys = [account_key.clone(), client.to_string()];
    if let Some(until) = users.active_lock(&keys, &now).await? {
        return Err(too_many(
            ((until - ctx.now_ms) + 999).div_euclid(1000).max(1),
        ));
    }

    let account: Option<Account> = if name.is_empty() || password.len() > MAX_PASSWORD_BYTES {
        None
    } else {
        users.find_by_name(&name).await?
    };
    let ok = match &account {
        Some(a) => verify_password(&a.password_hash, password),
        None => {
            dummy_verify(&ctx.cfg.auth.argon2, password);
            false
        }
    };
    let Some(account) = account.filter(|_| ok) else {
        let l = &ctx.cfg.auth.lockout;
        for (key, max) in [
            (&account_key, l.account_max_failures),
            (&keys[1], l.client_max_failures),
        ] {
            let failures = users.record_failure(key, &now, l.window_s).await?;
            if let Some(secs) = lock_seconds(l, failures, max) {
                users.lock(key, &rfc3339(ctx.now_ms + secs * 1000)).await?;
            }
        }
        return Err(invalid_credentials());
    };
    users.clear_failures(&account_key).await?;
    if needs_rehash(&account.password_hash, &ctx.cfg.auth.argon2) {
        let new = hash_password(&ctx.cfg.auth.argon2, password)?;
        users
            .rehash(&account.id, &account.password_hash, &new)
            .await?;
    }
    let session = Session {
        user_id: account.id,
        amr: vec!["pwd".into()],
        mfa_pending: account.passkeys > 0,
        hwk_at: None,
    };
    tokens::start_session(ctx, &session).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(
            normalize_email("Ann@Example.COM").unwrap(),
            "ann@example.com"
        );
        assert!(normalize_email("a.b+tag@sub.example.org").is_ok());
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@localhost",
            "a@@example.com",
            "a b@example.com",
            "a@exa mple.com",
            "a@-x.com",
            "a@x..com",
            "<a>@example.com",
        ] {
            assert_eq!(
                normalize_email(bad).map_err(|e| e.code),
                Err(ErrorCode::InvalidEmail),
                "{bad:?}"
            );
        }
        assert!(normalize_email(&format!("{}@example.com", "a".repeat(65))).is_err());
    }

    #[test]
    fn usernames() {
        assert_eq!(normalize_username("Ann_1.x-y").unwrap(), "ann_1.x-y");
        for bad in ["ab", &"a".repeat(33), "ann smith", "ann@x", "änn", ""] {
            assert_eq!(
                normalize_username(bad).map_err(|e| e.code),
                Err(ErrorCode::InvalidUsername),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn passwords() {
        let code = |p: &str| check_password(p, "ann@example.com", "ann").map_err(|e| e.code);
        assert_eq!(code("correct horse battery"), Ok(()));
        assert_eq!(code("short"), Err(ErrorCode::WeakPassword));
        // 11 characters, 22 bytes: length counts characters.
        assert_eq!(code("ééééééééééé"), Err(ErrorCode::WeakPassword));
        assert_eq!(code("ééééééééééée"), Ok(()));
        assert_eq!(code("123qweasdzxc"), Err(ErrorCode::WeakPassword));
        assert_eq!(
            code("1QAZ2WSX3EDC"),
            Err(ErrorCode::WeakPassword),
            "case-blind"
        );
        assert_eq!(code("ANN@example.com"), Err(ErrorCode::WeakPassword));
        assert_eq!(code(&"x".repeat(1025)), Err(ErrorCode::WeakPassword));
        assert_eq!(COMMON_PASSWORDS.lines().count(), 5000);
        assert!(COMMON_PASSWORDS.lines().all(|l| l.chars().count() >= 12));
    }

    #[test]
    fn hashes_verify_with_their_own_parameters() {
        let p = Argon2Params {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        };
        let h = hash_password(&p, "correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{h}");
        assert!(verify_password(&h, "correct horse battery"));
        assert!(!verify_password(&h, "correct horse batterY"));
        assert!(!verify_password("not a hash", "x"));
        // Same password, new salt.
        assert_ne!(h, hash_password(&p, "correct horse battery").unwrap());
        assert!(!needs_rehash(&h, &p));
        assert!(needs_rehash(&h, &Argon2Params { iterations: 2, ..p }));
        assert!(needs_rehash(
            &h,
            &Argon2Params {
                memory_kib: 128,
                ..p
            }
        ));
        assert!(needs_rehash(
            "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            &p
        ));
        assert!(needs_rehash("garbage", &p));
    }

    #[test]
    fn lock_schedule_doubles_and_caps() {
        let l = Lockout {
            account_max_failures: 5,
            client_max_failures: 20,
            base_delay_s: 30,
            max_delay_s: 900,
            window_s: 3600,
        };
        assert_eq!(lock_seconds(&l, 4, 5), None);
        assert_eq!(lock_seconds(&l, 5, 5), Some(30));
        assert_eq!(lock_seconds(&l, 6, 5), Some(60));
        assert_eq!(lock_seconds(&l, 7, 5), Some(120));
        assert_eq!(lock_seconds(&l, 10, 5), Some(900));
        assert_eq!(lock_seconds(&l, u32::MAX, 5), Some(900));
    }

    #[test]
    fn client_keys() {
        let mut r = Request::default();
        assert_eq!(client_key(&r), "client:unknown");
        r.headers
            .push(("x-forwarded-for".into(), " 10.0.0.1, 10.0.0.2".into()));
        assert_eq!(client_key(&r), "client:10.0.0.1");
        r.headers
            .push(("cf-connecting-ip".into(), "192.0.2.7".into()));
        assert_eq!(client_key(&r), "client:192.0.2.7");
    }
}
