//! Token issuance: ES256 access tokens (JWT) and opaque refresh tokens that
//! rotate on every use, grouped in families so a replayed token revokes
//! its whole session. Also the public key set (`/.well-known/jwks.json`).
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::todo,
    clippy::indexing_slicing
)]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use jwt_compact::alg::Es256;
use jwt_compact::{AlgorithmExt, Claims, Header};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::app::Ctx;
use crate::config::Config;
use crate::errors::{ApiError, ErrorCode};
use crate::repositories::refresh_tokens::{RefreshTokens, StoredSession, TokenState};
use crate::services::memories::rfc3339;

/// `n` bytes from the platform's CSPRNG (OS, or crypto.getRandomValues on
/// Workers). A failure is an infrastructure fault, never a weaker fallback.
#[cfg(feature = "rng")]
pub fn random_bytes<const N: usize>() -> Result<[u8; N], ApiError> {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b).map_err(|e| ApiError::internal(format!("getrandom: {e}")))?;
    Ok(b)
}

/// Without the `rng` feature there is no randomness source: refuse.
#[cfg(not(feature = "rng"))]
pub fn random_bytes<const N: usize>() -> Result<[u8; N], ApiError> {
    Err(ApiError::internal(
        "built without the rng feature: no randomness source",
    ))
}

/// A random version-4 UUID.
pub fn random_uuid() -> Result<Uuid, ApiError> {
    Ok(uuid::Builder::from_random_bytes(random_bytes::<16>()?).into_uuid())
}

pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// How a session was authenticated; carried by its access and refresh tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user_id: Uuid,
    pub amr: Vec<String>,
    pub mfa_pending: bool,
    /// Unix seconds of the last passkey assertion.
    pub hwk_at: Option<i64>,
}

/// The answer of every sign-in endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct TokenPair {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub refresh_token: String,
    /// True when the account has a passkey and this was a password sign-in:
    /// the token is refused by memory endpoints until a passkey assertion.
    pub mfa_required: bool,
}

fn misconfigured() -> ApiError {
    ApiError {
        detail: Some("MEMSHADOW_JWT_SIGNING_KEY is not set: tokens cannot be issued".into()),
        ..ApiError::new(
            ErrorCode::Misconfigured,
            "the service is misconfigured; an operator has been told",
        )
    }
}

/// Signs an access token for `session` in family `sid`.
pub fn access_token(
    cfg: &Config,
    now_ms: i64,
    session: &Session,
    sid: &Uuid,
) -> Result<String, ApiError> {
    let signer = cfg.auth.signer.as_ref().ok_or_else(misconfigured)?;
    let now = DateTime::<Utc>::from_timestamp(now_ms.div_euclid(1000), 0)
        .ok_or_else(|| ApiError::internal("clock out of range"))?;
    let mut custom = serde_json::Map::new();
    custom.insert("iss".into(), json!(cfg.jwt_issuer));
    custom.insert("aud".into(), json!(cfg.jwt_audience));
    custom.insert("sub".into(), json!(session.user_id.to_string()));
    custom.insert("jti".into(), json!(b64url(&random_bytes::<16>()?)));
    custom.insert("sid".into(), json!(sid.to_string()));
    custom.insert("amr".into(), json!(session.amr));
    if session.mfa_pending {
        custom.insert("mfa_pending".into(), json!(true));
    }
    if let Some(t) = session.hwk_at {
        custom.insert("hwk_at".into(), json!(t));
    }
    let mut claims = Claims::new(Value::Object(custom));
    claims.issued_at = Some(now);
    claims.expiration = Some(now + Duration::seconds(cfg.auth.access_ttl_s));
    let header = Header::empty()
        .with_key_id(signer.kid.clone())
        .with_token_type("JWT");
    Es256
        .token(&header, &claims, &signer.key)
        .map_err(|e| ApiError::internal(format!("signing failed: {e}")))
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Issues an access token and a fresh refresh token in family `family`.
async fn issue(ctx: &Ctx<'_>, session: &Session, family: Uuid) -> Result<TokenPair, ApiError> {
    let access = access_token(ctx.cfg, ctx.now_ms, session, &family)?;
    let refresh = b64url(&random_bytes::<32>()?);
    RefreshTokens { sql: ctx.p.sql }
        .insert(
            &token_hash(&refresh),
            &StoredSession {
                family_id: family,
                user_id: session.user_id,
                amr: session.amr.clone(),
                mfa_pending: session.mfa_pending,
                hwk_at: session.hwk_at,
            },
            &rfc3339(ctx.now_ms),
            &rfc3339(ctx.now_ms + ctx.cfg.auth.refresh_ttl_s * 1000),
        )
        .await?;
    Ok(TokenPair {
        access_token: access,
        token_type: "bearer",
        expires_in: ctx.cfg.auth.access_ttl_s,
        refresh_token: refresh,
        mfa_required: session.mfa_pending,
    })
}

/// Starts a new session (a new refresh-token family).
pub async fn start_session(ctx: &Ctx<'_>, session: &Session) -> Result<TokenPair, ApiError> {
    // Checked before anything is stored, so a misconfigured service leaves
    // no orphan refresh token behind.
    ctx.cfg.auth.signer.as_ref().ok_or_else(misconfigured)?;
    issue(ctx, session, random_uuid()?).await
}

fn invalid_refresh() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidRefreshToken,
        "the refresh token is unknown, expired or revoked; sign in again",
    )
}

/// Refresh tokens are 32 random bytes in unpadded base64url (43 chars);
/// anything else is refused without a database round trip.
fn well_formed(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Spends `token` and issues its successor in the same family. A token used
/// twice revokes the family (`refresh_token_reused`).
pub async fn refresh(ctx: &Ctx<'_>, token: &str) -> Result<TokenPair, ApiError> {
    if !well_formed(token) {
        return Err(invalid_refresh());
    }
    ctx.cfg.auth.signer.as_ref().ok_or_else(misconfigured)?;
    let repo = RefreshTokens { sql: ctx.p.sql };
    let hash = token_hash(token);
    let now = rfc3339(ctx.now_ms);
    match repo.spend(&hash, &now).await? {
        Some(stored) => {
            let session = Session {
                user_id: stored.user_id,
                amr: stored.amr,
                mfa_pending: stored.mfa_pending,
                hwk_at: stored.hwk_at,
            };
            issue(ctx, &session, stored.family_id).await
        }
        None => match repo.state(&hash).await? {
            TokenState::Spent(family) => {
                let revoked = repo.revoke_family(&family, &now).await?;
                ctx.log(&format!(
                    "refresh token reused: family {family} revoked ({revoked} live tokens)"
                ));
                Err(ApiError::new(
                    ErrorCode::RefreshTokenReused,
                    "this refresh token was already used; the session is revoked, sign in again",
                ))
            }
            TokenState::Dead(_) | TokenState::Unknown => Err(invalid_refresh()),
        },
    }
}

/// Revokes the family of `token` (whatever its state). Unknown tokens are
/// ignored: logout is idempotent.
pub async fn logout(ctx: &Ctx<'_>, token: &str) -> Result<(), ApiError> {
    if !well_formed(token) {
        return Ok(());
    }
    let repo = RefreshTokens { sql: ctx.p.sql };
    match repo.state(&token_hash(token)).await? {
        TokenState::Spent(family) | TokenState::Dead(family) => {
            repo.revoke_family(&family, &rfc3339(ctx.now_ms)).await?;
        }
        TokenState::Unknown => {}
    }
    Ok(())
}

/// Revokes a session by its id (the `sid` claim).
pub async fn revoke_session(ctx: &Ctx<'_>, sid: &Uuid) -> Result<(), ApiError> {
    RefreshTokens { sql: ctx.p.sql }
        .revoke_family(sid, &rfc3339(ctx.now_ms))
        .await?;
    Ok(())
}

/// The verification keys as a public JWKS.
pub fn jwks(cfg: &Config) -> Value {
    let keys: Vec<Value> = cfg
        .jwt_keys
        .iter()
        .map(|k| {
            let p = k.key.to_encoded_point(false);
            json!({
                "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": k.kid,
                "x": b64url(&p.x().map(|c| c.to_vec()).unwrap_or_default()),
                "y": b64url(&p.y().map(|c| c.to_vec()).unwrap_or_default()),
            })
        })
        .collect();
    json!({ "keys": keys })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::config::{JwtKey, JwtSigner};
    use p256::ecdsa::SigningKey;

    fn cfg() -> Config {
        let mut c = Config::from_lookup(crate::config::tests::lookup(&[(
            crate::config::JWT_PUBLIC_KEYS,
            crate::config::tests::TEST_JWKS,
        )]))
        .unwrap();
        let mut b = [0u8; 32];
        b[31] = 9;
        let key = SigningKey::from_slice(&b).unwrap();
        c.jwt_keys.push(JwtKey {
            kid: "s9".into(),
            key: *key.verifying_key(),
        });
        c.auth.signer = Some(JwtSigner {
            kid: "s9".into(),
            key,
        });
        c
    }

    #[test]
    fn issued_tokens_verify_and_carry_the_session() {
        let c = cfg();
        let now = 1_800_000_000_000;
        let user = Uuid::from_u128(7);
        let sid = Uuid::from_u128(9);
        let s = Session {
            user_id: user,
            amr: vec!["pwd".into()],
            mfa_pending: true,
            hwk_at: Some(1_799_999_000),
        };
        let t = access_token(&c, now, &s, &sid).unwrap();
        let caller = crate::services::auth::verify_token(&c, &t, now).unwrap();
        assert_eq!(caller.user_id, user);
        assert_eq!(caller.amr, vec!["pwd".to_string()]);
        assert!(caller.mfa_pending);
        assert_eq!(caller.hwk_at, Some(1_799_999_000));
        assert_eq!(caller.sid, Some(sid));
        // 15 minutes later (plus leeway) it has expired.
        let e = crate::services::auth::verify_token(&c, &t, now + 931_000).unwrap_err();
        assert_eq!(e.code, ErrorCode::TokenExpired);
    }

    #[test]
    fn no_signer_is_misconfigured() {
        let mut c = cfg();
        c.auth.signer = None;
        let s = Session {
            user_id: Uuid::from_u128(1),
            amr: vec![],
            mfa_pending: false,
            hwk_at: None,
        };
        let e = access_token(&c, 0, &s, &Uuid::from_u128(2)).unwrap_err();
        assert_eq!(e.code, ErrorCode::Misconfigured);
    }

    #[test]
    fn refresh_token_shape() {
        assert!(well_formed(&b64url(&[7u8; 32])));
        assert!(!well_formed("short"));
        assert!(!well_formed(&format!("{}=", b64url(&[7u8; 32]))));
    }

    #[test]
    fn jwks_lists_public_keys_only() {
        let j = jwks(&cfg());
        assert_eq!(j["keys"].as_array().unwrap().len(), 2);
        assert_eq!(j["keys"][1]["kid"], "s9");
        assert!(j["keys"][1].get("d").is_none());
        // The published document parses as a verification key set.
        crate::config::parse_jwks(&j.to_string()).unwrap();
    }
}
