//! HTTP handlers for `/api/v1/auth/webauthn/…`: passkey registration,
//! management and sign-in.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::Ctx;
use crate::errors::ApiError;
use crate::http::{Request, Response};
use crate::json::{self, response};
use crate::services::auth::{self, Caller};
use crate::services::passkeys::{self, AuthenticateComplete};

pub async fn register_begin(ctx: &Ctx<'_>, caller: &Caller) -> Result<Response, ApiError> {
    Ok(response(200, &passkeys::register_begin(ctx, caller).await?))
}

pub async fn register_complete(
    ctx: &Ctx<'_>,
    caller: &Caller,
    req: &Request,
) -> Result<Response, ApiError> {
    let body: Value = json::parse_body(req)?;
    let cred = passkeys::register_complete(ctx, caller, body).await?;
    Ok(response(201, &cred))
}

pub async fn list(ctx: &Ctx<'_>, caller: &Caller) -> Result<Response, ApiError> {
    let creds = passkeys::list(ctx, caller).await?;
    Ok(response(200, &json!({ "credentials": creds })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rename {
    name: String,
}

pub async fn rename(
    ctx: &Ctx<'_>,
    caller: &Caller,
    id: Option<&str>,
    req: &Request,
) -> Result<Response, ApiError> {
    let body: Rename = json::parse_body(req)?;
    let cred = passkeys::rename(ctx, caller, id, &body.name).await?;
    Ok(response(200, &cred))
}

pub async fn delete(
    ctx: &Ctx<'_>,
    caller: &Caller,
    id: Option<&str>,
) -> Result<Response, ApiError> {
    passkeys::delete(ctx, caller, id).await?;
    Ok(Response {
        status: 204,
        headers: vec![("cache-control".into(), "no-store".into())],
        body: Vec::new(),
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Begin {
    #[serde(default)]
    username: Option<String>,
}

pub async fn authenticate_begin(ctx: &Ctx<'_>, req: &Request) -> Result<Response, ApiError> {
    // The body is optional: none means a discoverable passkey.
    let body: Begin = if req.body.iter().all(u8::is_ascii_whitespace) {
        Begin::default()
    } else {
        json::parse_body(req)?
    };
    let options = passkeys::authenticate_begin(ctx, body.username.as_deref()).await?;
    Ok(response(200, &options))
}

/// A bearer token is optional here: sent, it must be valid (an MFA-pending
/// one is fine: this is where it is completed).
pub async fn authenticate_complete(ctx: &Ctx<'_>, req: &Request) -> Result<Response, ApiError> {
    let bearer = match req.header("authorization") {
        Some(_) => Some(auth::authenticate(ctx.cfg, req, ctx.now_ms)?),
        None => None,
    };
    let body: AuthenticateComplete = json::parse_body(req)?;
    let pair = passkeys::authenticate_complete(ctx, body, bearer).await?;
    Ok(response(200, &pair))
}
