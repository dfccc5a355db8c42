//! Passkey ceremonies over the WebAuthn verifier in `crate::webauthn`:
//! creation and request options with single-use challenges in Postgres,
//! storing verified credentials, and sign-in (alone, or as the second
//! factor after a password, or as a step-up).
//!
//! edge-api/AUTH.md documents the wire shapes and the amr rules.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::todo,
    clippy::indexing_slicing
)]

use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::app::Ctx;
use crate::config::{UserVerification, WebauthnConfig};
use crate::errors::{ApiError, ErrorCode};
use crate::repositories::challenges::{Ceremony, Challenge, Challenges};
use crate::repositories::credentials::{CredentialRow, CredentialView, Credentials, NewCredential};
use crate::repositories::users::{Account, Users};
use crate::services::auth::Caller;
use crate::services::memories::rfc3339;
use crate::services::tokens::{self, Session, TokenPair, b64url, random_bytes};
use crate::webauthn::{
    self, AuthenticationInput, AuthenticationResponseJson, Policy, RegistrationInput,
    RegistrationResponseJson, StoredCredential, WebauthnError,
};

/// The algorithms offered in `pubKeyCredParams`, in preference order.
pub const OFFERED_ALGS: [i64; 3] = [-7, -8, -257];
pub const MAX_NAME_CHARS: usize = 64;
/// Transports are hints; keep what is plausible and short.
const MAX_TRANSPORTS: usize = 8;

/// The user handle (`user.id`) of an account: its UUID's 16 bytes, random
/// and free of personal data.
pub fn user_handle(user: &Uuid) -> [u8; 16] {
    *user.as_bytes()
}

fn policy(w: &WebauthnConfig) -> Policy {
    Policy {
        require_user_verification: w.user_verification == UserVerification::Required,
        supported_algs: OFFERED_ALGS.to_vec(),
        ..Policy::default()
    }
}

fn account_not_found() -> ApiError {
    ApiError::new(
        ErrorCode::AccountNotFound,
        "the token's subject has no account",
    )
}

fn invalid_challenge() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidChallenge,
        "the challenge (state) is unknown, expired or already used; begin again",
    )
}

fn rejected(code: ErrorCode, reason: &str, msg: &str) -> ApiError {
    ApiError::new(code, msg).with_extra(json!({ "reason": reason }))
}

fn webauthn_rejected(e: WebauthnError) -> ApiError {
    rejected(
        ErrorCode::WebauthnRejected,
        e.code(),
        "the passkey registration was refused",
    )
}

fn passkey_rejected(reason: &str) -> ApiError {
    rejected(
        ErrorCode::PasskeyRejected,
        reason,
        "the passkey sign-in was refused",
    )
}

async fn issue_challenge(
    ctx: &Ctx<'_>,
    ceremony: Ceremony,
    user: Option<&Uuid>,
) -> Result<([u8; 32], Uuid), ApiError> {
    let bytes = random_bytes::<32>()?;
    let ttl_ms = ctx.cfg.auth.webauthn.challenge_ttl_s * 1000;
    let id = Challenges { sql: ctx.p.sql }
        .insert(
            &bytes,
            ceremony,
            user,
            &rfc3339(ctx.now_ms),
            &rfc3339(ctx.now_ms + ttl_ms),
        )
        .await?;
    Ok((bytes, id))
}

async fn consume(ctx: &Ctx<'_>, state: &str, ceremony: Ceremony) -> Result<Challenge, ApiError> {
    let id = Uuid::parse_str(state.trim()).map_err(|_| invalid_challenge())?;
    Challenges { sql: ctx.p.sql }
        .consume(&id, ceremony, &rfc3339(ctx.now_ms))
        .await?
        .ok_or_else(invalid_challenge)
}

fn descriptor(c: &CredentialRow) -> Value {
    json!({
        "type": "public-key",
        "id": b64url(&c.credential_id),
        "transports": c.transports,
    })
}

async fn account(ctx: &Ctx<'_>, user: &Uuid) -> Result<Account, ApiError> {
    Users { sql: ctx.p.sql }
        .find_by_id(user)
        .await?
        .ok_or_else(account_not_found)
}

/// `PublicKeyCredentialCreationOptions` for the signed-in user.
pub async fn register_begin(ctx: &Ctx<'_>, caller: &Caller) -> Result<Value, ApiError> {
    let w = &ctx.cfg.auth.webauthn;
    let acct = account(ctx, &caller.user_id).await?;
    let existing = Credentials { sql: ctx.p.sql }.list(&acct.id, false).await?;
    let (challenge, state) = issue_challenge(ctx, Ceremony::Register, Some(&acct.id)).await?;
    let params: Vec<Value> = OFFERED_ALGS
        .iter()
        .map(|a| json!({"type": "public-key", "alg": a}))
        .collect();
    Ok(json!({
        "publicKey": {
            "challenge": b64url(&challenge),
            "rp": {"id": w.rp_id, "name": w.rp_name},
            "user": {
                "id": b64url(&user_handle(&acct.id)),
                "name": acct.username,
                "displayName": acct.username,
            },
            "pubKeyCredParams": params,
            "excludeCredentials": existing.iter().map(descriptor).collect::<Vec<_>>(),
            "authenticatorSelection": {
                "residentKey": "preferred",
                "requireResidentKey": false,
                "userVerification": w.user_verification.as_str(),
            },
            "timeout": w.timeout_ms,
            "attestation": "none",
        },
        "state": state.to_string(),
    }))
}

fn clean_name(raw: &str) -> Result<String, ApiError> {
    let name = raw.trim();
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(ApiError::new(
            ErrorCode::InvalidField,
            "name must be 1 to 64 characters without control characters",
        ));
    }
    Ok(name.to_string())
}

/// Verifies a `RegistrationResponseJSON` (plus top-level `state` and
/// optional `name`) and stores the credential.
pub async fn register_complete(
    ctx: &Ctx<'_>,
    caller: &Caller,
    body: Value,
) -> Result<CredentialView, ApiError> {
    let field = |m: &str| ApiError::new(ErrorCode::InvalidField, m);
    let obj = body
        .as_object()
        .ok_or_else(|| field("the body must be a PublicKeyCredential JSON object"))?;
    let state = obj
        .get("state")
        .and_then(Value::as_str)
        .ok_or_else(|| field("state (from register/begin) is required"))?;
    let name = match obj.get("name") {
        None | Some(Value::Null) => None,
        Some(Value::String(n)) => Some(clean_name(n)?),
        Some(_) => return Err(field("name must be a string")),
    };
    let transports: Vec<String> = obj
        .get("response")
        .and_then(|r| r.get("transports"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .filter(|t| t.len() <= 32 && t.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'))
                .take(MAX_TRANSPORTS)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();

    // Consume first: a challenge is spent by any attempt, good or bad.
    let challenge = consume(ctx, state, Ceremony::Register).await?;
    if challenge.user_id != Some(caller.user_id) {
        return Err(invalid_challenge());
    }
    let response: RegistrationResponseJson = serde_json::from_value(body.clone())
        .map_err(|_| webauthn_rejected(WebauthnError::MalformedResponse))?;
    let w = &ctx.cfg.auth.webauthn;
    let cred = webauthn::verify_registration(&RegistrationInput {
        response: &response,
        expected_challenge: &challenge.bytes,
        rp_id: &w.rp_id,
        allowed_origins: &w.origins,
        policy: &policy(w),
    })
    .map_err(webauthn_rejected)?;

    let repo = Credentials { sql: ctx.p.sql };
    let name = match name {
        Some(n) => n,
        None => {
            let n = repo.list(&caller.user_id, false).await?.len() + 1;
            format!("Passkey {n}")
        }
    };
    let stored = repo
        .insert(
            &NewCredential {
                user_id: &caller.user_id,
                credential_id: &cred.credential_id,
                public_key: &cred.public_key_cose,
                alg: cred.alg.cose_id(),
                sign_count: cred.sign_count,
                aaguid: &cred.aaguid,
                backup_eligible: cred.backup_eligible,
                backup_state: cred.backup_state,
                transports: &transports,
                name: &name,
            },
            &rfc3339(ctx.now_ms),
        )
        .await?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::CredentialExists,
                "this passkey is already registered",
            )
        })?;
    Ok(stored.view())
}

pub async fn list(ctx: &Ctx<'_>, caller: &Caller) -> Result<Vec<CredentialView>, ApiError> {
    Ok(Credentials { sql: ctx.p.sql }
        .list(&caller.user_id, false)
        .await?
        .iter()
        .map(CredentialRow::view)
        .collect())
}

fn credential_not_found() -> ApiError {
    ApiError::new(
        ErrorCode::CredentialNotFound,
        "no passkey with this id belongs to you",
    )
}

fn credential_uuid(raw: Option<&str>) -> Result<Uuid, ApiError> {
    raw.and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidParameter, "the passkey id must be a UUID"))
}

pub async fn rename(
    ctx: &Ctx<'_>,
    caller: &Caller,
    id: Option<&str>,
    name: &str,
) -> Result<CredentialView, ApiError> {
    let id = credential_uuid(id)?;
    let name = clean_name(name)?;
    Credentials { sql: ctx.p.sql }
        .rename(&caller.user_id, &id, &name)
        .await?
        .map(|c| c.view())
        .ok_or_else(credential_not_found)
}

pub async fn delete(ctx: &Ctx<'_>, caller: &Caller, id: Option<&str>) -> Result<(), ApiError> {
    let id = credential_uuid(id)?;
    let repo = Credentials { sql: ctx.p.sql };
    if repo.delete(&caller.user_id, &id).await? {
        Ok(())
    } else {
        Err(credential_not_found())
    }
}

/// `PublicKeyCredentialRequestOptions`: for a username, its passkeys in
/// `allowCredentials` and the challenge bound to the account; without one
/// (or for an unknown name) an empty list, for a discoverable passkey.
pub async fn authenticate_begin(ctx: &Ctx<'_>, username: Option<&str>) -> Result<Value, ApiError> {
    let w = &ctx.cfg.auth.webauthn;
    let acct = match username.map(|u| u.trim().to_lowercase()) {
        Some(name) if !name.is_empty() => {
            Users { sql: ctx.p.sql }
                .find_by_name(crate::json::truncate(&name, 254))
                .await?
        }
        _ => None,
    };
    // The same statements run for unknown names (the nil id owns nothing),
    // so timing does not tell them apart either.
    let owner = acct.as_ref().map_or(Uuid::nil(), |a| a.id);
    let allow: Vec<Value> = Credentials { sql: ctx.p.sql }
        .list(&owner, true)
        .await?
        .iter()
        .map(descriptor)
        .collect();
    let (challenge, state) =
        issue_challenge(ctx, Ceremony::Authenticate, acct.as_ref().map(|a| &a.id)).await?;
    Ok(json!({
        "publicKey": {
            "challenge": b64url(&challenge),
            "rpId": w.rp_id,
            "allowCredentials": allow,
            "userVerification": w.user_verification.as_str(),
            "timeout": w.timeout_ms,
        },
        "state": state.to_string(),
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthenticateComplete {
    #[serde(default)]
    pub username: Option<String>,
    pub credential: Value,
    pub state: String,
}

/// Verifies an assertion and issues tokens. `bearer` is the caller's token
/// when one was sent (second factor after a password, or a step-up): the
/// passkey must then belong to that user.
pub async fn authenticate_complete(
    ctx: &Ctx<'_>,
    body: AuthenticateComplete,
    bearer: Option<Caller>,
) -> Result<TokenPair, ApiError> {
    let challenge = consume(ctx, &body.state, Ceremony::Authenticate).await?;
    let response: AuthenticationResponseJson = serde_json::from_value(body.credential)
        .map_err(|_| passkey_rejected(WebauthnError::MalformedResponse.code()))?;
    let repo = Credentials { sql: ctx.p.sql };
    let stored = repo
        .find(&response.raw_id.0)
        .await?
        .ok_or_else(|| passkey_rejected("unknown_credential"))?;

    // Who this ceremony is for: the account named at begin, else the
    // bearer's; both present must agree. Neither: discoverable sign-in,
    // where the response's user handle decides.
    let expected = match (challenge.user_id, bearer.as_ref().map(|b| b.user_id)) {
        (Some(a), Some(b)) if a != b => {
            return Err(passkey_rejected(WebauthnError::CredentialNotOwned.code()));
        }
        (Some(a), _) | (None, Some(a)) => Some(user_handle(&a)),
        (None, None) => None,
    };
    let owner_handle = user_handle(&stored.user_id);
    let w = &ctx.cfg.auth.webauthn;
    let outcome = webauthn::verify_authentication(&AuthenticationInput {
        response: &response,
        expected_challenge: &challenge.bytes,
        rp_id: &w.rp_id,
        allowed_origins: &w.origins,
        policy: &policy(w),
        stored: StoredCredential {
            credential_id: &stored.credential_id,
            public_key_cose: &stored.public_key,
            sign_count: stored.sign_count,
            user_handle: &owner_handle,
        },
        expected_user_handle: expected.as_ref().map(|h| h.as_slice()),
    })
    .map_err(|e| passkey_rejected(e.code()))?;
    if !repo
        .update_counter(
            &stored.id,
            stored.sign_count,
            outcome.new_sign_count,
            outcome.backup_state,
            &rfc3339(ctx.now_ms),
        )
        .await?
    {
        // Another assertion moved the counter first: one of them is a clone.
        return Err(passkey_rejected(WebauthnError::SignCountRollback.code()));
    }

    let hwk_at = Some(ctx.now_ms.div_euclid(1000));
    let session = match &bearer {
        Some(b) if b.amr.iter().any(|m| m == "pwd") => Session {
            user_id: stored.user_id,
            amr: vec!["pwd".into(), "hwk".into(), "mfa".into()],
            mfa_pending: false,
            hwk_at,
        },
        _ => {
            let mut amr = vec!["hwk".to_string()];
            if outcome.user_verified {
                amr.push("user".into());
            }
            Session {
                user_id: stored.user_id,
                amr,
                mfa_pending: false,
                hwk_at,
            }
        }
    };
    let pair = tokens::start_session(ctx, &session).await?;
    // The upgraded token replaces the session it came from.
    if let Some(sid) = bearer.as_ref().and_then(|b| b.sid) {
        tokens::revoke_session(ctx, &sid).await?;
    }
    Ok(pair)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(clean_name("  YubiKey 5  ").unwrap(), "YubiKey 5");
        assert!(clean_name("").is_err());
        assert!(clean_name("   ").is_err());
        assert!(clean_name(&"n".repeat(65)).is_err());
        assert!(clean_name("a\nb").is_err());
        assert_eq!(clean_name(&"é".repeat(64)).unwrap().chars().count(), 64);
    }

    #[test]
    fn policy_follows_the_uv_setting() {
        let mut w = WebauthnConfig {
            rp_id: "localhost".into(),
            rp_name: "x".into(),
            origins: vec![],
            user_verification: UserVerification::Preferred,
            timeout_ms: 1,
            challenge_ttl_s: 1,
        };
        assert!(!policy(&w).require_user_verification);
        w.user_verification = UserVerification::Required;
        assert!(policy(&w).require_user_verification);
        assert_eq!(policy(&w).supported_algs, vec![-7, -8, -257]);
    }

    #[test]
    fn handles_are_the_uuid_bytes() {
        let u = Uuid::from_u128(0x0102);
        assert_eq!(user_handle(&u)[15], 2);
        assert_eq!(user_handle(&u).len(), 16);
    }
}
