//! HTTP handlers for `/api/v1/auth/…` (accounts, tokens, telemetry, risk)
//! and `/.well-known/jwks.json`.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde::Deserialize;
use serde_json::json;

use crate::app::Ctx;
use crate::errors::{ApiError, ErrorCode};
use crate::http::{Request, Response};
use crate::json::{self, response};
use crate::router::parse_query;
use crate::services::accounts::{self, RegisterRequest};
use crate::services::auth::Caller;
use crate::services::{risk, tokens};

pub async fn register(ctx: &Ctx<'_>, req: &Request) -> Result<Response, ApiError> {
    let body: RegisterRequest = json::parse_body(req)?;
    let out = accounts::register(ctx, body).await?;
    Ok(response(200, &out))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginJson {
    username: String,
    password: String,
}

fn is_form(req: &Request) -> bool {
    req.header("content-type").is_some_and(|ct| {
        ct.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .eq_ignore_ascii_case("application/x-www-form-urlencoded")
    })
}

/// Reads `username` and `password` from an OAuth2 password-grant form
/// (`grant_type`, `scope`, `client_id`, `client_secret` are accepted and
/// ignored, except that a `grant_type` must be `password`) or from JSON.
fn credentials(req: &Request) -> Result<(String, String), ApiError> {
    if !is_form(req) {
        let b: LoginJson = json::parse_body(req)?;
        return Ok((b.username, b.password));
    }
    let text = std::str::from_utf8(&req.body)
        .map_err(|_| ApiError::new(ErrorCode::InvalidField, "the form is not UTF-8"))?;
    let (mut user, mut pass) = (None, None);
    for (k, v) in parse_query(text)? {
        match k.as_str() {
            "username" => user = Some(v),
            "password" => pass = Some(v),
            "grant_type" if v != "password" => {
                return Err(ApiError::new(
                    ErrorCode::InvalidField,
                    "grant_type must be password",
                ));
            }
            "grant_type" | "scope" | "client_id" | "client_secret" => {}
            other => {
                return Err(ApiError::new(
                    ErrorCode::UnknownField,
                    format!("unknown field {:?}", json::truncate(other, 64)),
                ));
            }
        }
    }
    match (user, pass) {
        (Some(u), Some(p)) => Ok((u, p)),
        _ => Err(ApiError::new(
            ErrorCode::InvalidField,
            "username and password are required",
        )),
    }
}

pub async fn login(ctx: &Ctx<'_>, req: &Request) -> Result<Response, ApiError> {
    let (username, password) = credentials(req)?;
    let pair = accounts::login(ctx, &username, &password, &accounts::client_key(req)).await?;
    Ok(response(200, &pair))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    refresh_token: String,
}

pub async fn refresh(ctx: &Ctx<'_>, req: &Request) -> Result<Response, ApiError> {
    let body: RefreshBody = json::parse_body(req)?;
    let pair = tokens::refresh(ctx, &body.refresh_token).await?;
    Ok(response(200, &pair))
}

pub async fn logout(ctx: &Ctx<'_>, req: &Request) -> Result<Response, ApiError> {
    let body: RefreshBody = json::parse_body(req)?;
    tokens::logout(ctx, &body.refresh_token).await?;
    Ok(Response {
        status: 204,
        headers: vec![("cache-control".into(), "no-store".into())],
        body: Vec::new(),
    })
}

pub fn jwks(ctx: &Ctx<'_>) -> Response {
    let mut res = response(200, &tokens::jwks(ctx.cfg));
    // Public and slow-changing; caches may keep it for five minutes.
    res.headers.retain(|(k, _)| k != "cache-control");
    res.headers
        .push(("cache-control".into(), "public, max-age=300".into()));
    res
}

pub async fn telemetry(
    ctx: &Ctx<'_>,
    caller: &Caller,
    req: &Request,
) -> Result<Response, ApiError> {
    let body: risk::TelemetryRequest = json::parse_body(req)?;
    let recorded = risk::record(ctx, &caller.user_id, body).await?;
    Ok(response(200, &json!({ "recorded": recorded })))
}

pub async fn risk(ctx: &Ctx<'_>, caller: &Caller, req: &Request) -> Result<Response, ApiError> {
    let mut session = None;
    for (k, v) in parse_query(&req.query)? {
        match k.as_str() {
            "session_id" => session = Some(v),
            other => {
                return Err(ApiError::new(
                    ErrorCode::InvalidParameter,
                    format!("unknown query parameter {:?}", json::truncate(other, 64)),
                ));
            }
        }
    }
    let report = risk::assess(ctx, &caller.user_id, session.as_deref()).await?;
    Ok(response(200, &report))
}
