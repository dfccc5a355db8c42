//! Request → handler: the route table, path matching, authentication of
//! `/api/v1` routes, and 404/405 answers.
//!
//! [`ROUTES`] is the single list of endpoints; a test checks it against
//! `schema/openapi.json` so the document cannot drift from the code.

use uuid::Uuid;

use crate::app::Ctx;
use crate::console;
use crate::errors::{ApiError, ErrorCode};
use crate::handlers::{admin, auth as auth_handlers, health, memory, openapi, webauthn};
use crate::http::{Request, Response};
use crate::services::auth::{self, Caller};

/// What a route does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Health,
    Ready,
    OpenApi,
    Console,
    Ingest,
    Batch,
    Retrieve,
    Export,
    List,
    DeleteMany,
    Get,
    Patch,
    Delete,
    Jwks,
    Register,
    Login,
    Refresh,
    Logout,
    Telemetry,
    Risk,
    PasskeyRegisterBegin,
    PasskeyRegisterComplete,
    PasskeyList,
    PasskeyRename,
    PasskeyDelete,
    PasskeyAuthenticateBegin,
    PasskeyAuthenticateComplete,
    AdminBackups,
}

impl Endpoint {
    /// Destructive or bulk actions that a suspicious session must confirm
    /// with a fresh passkey assertion.
    fn needs_step_up(self) -> bool {
        matches!(self, Self::Export | Self::DeleteMany)
    }
}

pub struct RouteDef {
    pub method: &'static str,
    /// Path pattern; `{id}` matches one segment.
    pub path: &'static str,
    pub endpoint: Endpoint,
    /// Whether a bearer token is required.
    pub auth: bool,
}

const fn r(method: &'static str, path: &'static str, endpoint: Endpoint, auth: bool) -> RouteDef {
    RouteDef {
        method,
        path,
        endpoint,
        auth,
    }
}

pub const ROUTES: &[RouteDef] = &[
    r("GET", "/health", Endpoint::Health, false),
    r("GET", "/ready", Endpoint::Ready, false),
    r("GET", "/openapi.json", Endpoint::OpenApi, false),
    r("GET", "/console", Endpoint::Console, false),
    r("GET", "/console/console.js", Endpoint::Console, false),
    r("GET", "/console/console.css", Endpoint::Console, false),
    r("POST", "/api/v1/memory/ingest", Endpoint::Ingest, true),
    r("POST", "/api/v1/memory/batch", Endpoint::Batch, true),
    r("POST", "/api/v1/memory/retrieve", Endpoint::Retrieve, true),
    r("GET", "/api/v1/memory/export", Endpoint::Export, true),
    r("GET", "/api/v1/memory", Endpoint::List, true),
    r("DELETE", "/api/v1/memory", Endpoint::DeleteMany, true),
    r("GET", "/api/v1/memory/{id}", Endpoint::Get, true),
    r("PATCH", "/api/v1/memory/{id}", Endpoint::Patch, true),
    r("DELETE", "/api/v1/memory/{id}", Endpoint::Delete, true),
    r("GET", "/.well-known/jwks.json", Endpoint::Jwks, false),
    r("POST", "/api/v1/auth/register", Endpoint::Register, false),
    r("POST", "/api/v1/auth/login", Endpoint::Login, false),
    r("POST", "/api/v1/auth/refresh", Endpoint::Refresh, false),
    r("POST", "/api/v1/auth/logout", Endpoint::Logout, false),
    r("POST", "/api/v1/auth/telemetry", Endpoint::Telemetry, true),
    r("GET", "/api/v1/auth/risk", Endpoint::Risk, true),
    r(
        "POST",
        "/api/v1/auth/webauthn/register/begin",
        Endpoint::PasskeyRegisterBegin,
        true,
    ),
    r(
        "POST",
        "/api/v1/auth/webauthn/register/complete",
        Endpoint::PasskeyRegisterComplete,
        true,
    ),
    r(
        "GET",
        "/api/v1/auth/webauthn/credentials",
        Endpoint::PasskeyList,
        true,
    ),
    r(
        "PATCH",
        "/api/v1/auth/webauthn/credentials/{id}",
        Endpoint::PasskeyRename,
        true,
    ),
    r(
        "DELETE",
        "/api/v1/auth/webauthn/credentials/{id}",
        Endpoint::PasskeyDelete,
        true,
    ),
    // Public: the complete step reads an optional bearer token itself.
    r(
        "POST",
        "/api/v1/auth/webauthn/authenticate/begin",
        Endpoint::PasskeyAuthenticateBegin,
        false,
    ),
    r(
        "POST",
        "/api/v1/auth/webauthn/authenticate/complete",
        Endpoint::PasskeyAuthenticateComplete,
        false,
    ),
    r("GET", "/api/v1/admin/backups", Endpoint::AdminBackups, true),
];

/// Matches `path` against `pattern`; returns the `{id}` segment if any, and
/// how many segments were parameters (fewer = more specific).
fn matches<'p>(pattern: &str, path: &'p str) -> Option<(Option<&'p str>, usize)> {
    let mut pat = pattern.split('/');
    let mut seg = path.split('/');
    let mut id = None;
    let mut params = 0;
    loop {
        match (pat.next(), seg.next()) {
            (None, None) => return Some((id, params)),
            (Some("{id}"), Some(s)) if !s.is_empty() => {
                id = Some(s);
                params += 1;
            }
            (Some(p), Some(s)) if p == s => {}
            _ => return None,
        }
    }
}

/// Finds the route for a request: the most specific path match (so
/// `/memory/export` is never taken for `/memory/{id}`), then the method.
pub fn resolve<'r>(
    method: &str,
    path: &'r str,
) -> Result<(&'static RouteDef, Option<&'r str>), ApiError> {
    let candidates: Vec<(&'static RouteDef, Option<&'r str>, usize)> = ROUTES
        .iter()
        .filter_map(|d| matches(d.path, path).map(|(id, n)| (d, id, n)))
        .collect();
    let Some(best) = candidates.iter().map(|c| c.2).min() else {
        return Err(ApiError::new(ErrorCode::NotFound, "no such route"));
    };
    let same_path: Vec<_> = candidates.into_iter().filter(|c| c.2 == best).collect();
    if let Some((d, id, _)) = same_path
        .iter()
        .find(|c| c.0.method.eq_ignore_ascii_case(method))
    {
        return Ok((d, *id));
    }
    let allow: Vec<&str> = same_path.iter().map(|c| c.0.method).collect();
    Err(ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("use one of: {}", allow.join(", ")),
    )
    .with_header("allow", allow.join(", ")))
}

/// Parses a path id as a UUID (400 `invalid_parameter` otherwise).
pub fn path_uuid(raw: Option<&str>) -> Result<Uuid, ApiError> {
    raw.and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidParameter, "the memory id must be a UUID"))
}

/// The core router: a pure function of request → response (given ports).
pub async fn route(ctx: &Ctx<'_>, req: &Request) -> Result<Response, ApiError> {
    let (def, id) = resolve(&req.method, &req.path)?;
    let caller: Option<Caller> = if def.auth {
        Some(auth::authenticate(ctx.cfg, req, ctx.now_ms)?)
    } else {
        None
    };
    if let Some(c) = &caller {
        // A password sign-in to an account with a passkey proves one factor
        // only: such a token may do nothing but complete the passkey step
        // (which is a public route reading the token itself).
        if c.mfa_pending {
            return Err(ApiError::new(
                ErrorCode::MfaRequired,
                "this account has a passkey: complete /api/v1/auth/webauthn/authenticate with this token first",
            ));
        }
        if def.endpoint.needs_step_up() {
            crate::services::risk::require_step_up(ctx, c).await?;
        }
    }
    let user = || {
        caller
            .as_ref()
            .map(|c| c.user_id)
            .ok_or_else(|| ApiError::internal("route without caller"))
    };
    let who = || {
        caller
            .as_ref()
            .ok_or_else(|| ApiError::internal("route without caller"))
    };
    match def.endpoint {
        Endpoint::Health => Ok(health::health()),
        Endpoint::Ready => health::ready(ctx).await,
        Endpoint::OpenApi => Ok(openapi::document()),
        Endpoint::Console => console::serve(req),
        Endpoint::Ingest => memory::ingest(ctx, user()?, req).await,
        Endpoint::Batch => memory::batch(ctx, user()?, req).await,
        Endpoint::Retrieve => memory::retrieve(ctx, user()?, req).await,
        Endpoint::Export => memory::export(ctx, user()?, req).await,
        Endpoint::List => memory::list(ctx, user()?, req).await,
        Endpoint::DeleteMany => memory::delete_many(ctx, user()?, req).await,
        Endpoint::Get => memory::get(ctx, user()?, path_uuid(id)?).await,
        Endpoint::Patch => memory::patch(ctx, user()?, path_uuid(id)?, req).await,
        Endpoint::Delete => memory::delete(ctx, user()?, path_uuid(id)?).await,
        Endpoint::Jwks => Ok(auth_handlers::jwks(ctx)),
        Endpoint::Register => auth_handlers::register(ctx, req).await,
        Endpoint::Login => auth_handlers::login(ctx, req).await,
        Endpoint::Refresh => auth_handlers::refresh(ctx, req).await,
        Endpoint::Logout => auth_handlers::logout(ctx, req).await,
        Endpoint::Telemetry => auth_handlers::telemetry(ctx, who()?, req).await,
        Endpoint::Risk => auth_handlers::risk(ctx, who()?, req).await,
        Endpoint::PasskeyRegisterBegin => webauthn::register_begin(ctx, who()?).await,
        Endpoint::PasskeyRegisterComplete => webauthn::register_complete(ctx, who()?, req).await,
        Endpoint::PasskeyList => webauthn::list(ctx, who()?).await,
        Endpoint::PasskeyRename => webauthn::rename(ctx, who()?, id, req).await,
        Endpoint::PasskeyDelete => webauthn::delete(ctx, who()?, id).await,
        Endpoint::PasskeyAuthenticateBegin => webauthn::authenticate_begin(ctx, req).await,
        Endpoint::PasskeyAuthenticateComplete => webauthn::authenticate_complete(ctx, req).await,
        Endpoint::AdminBackups => admin::backups(ctx, who()?, req).await,
    }
}

/// Decodes an `application/x-www-form-urlencoded` query string. Invalid
/// percent-escapes or UTF-8 are a 400, never a silent mangling.
pub fn parse_query(q: &str) -> Result<Vec<(String, String)>, ApiError> {
    let bad = || {
        ApiError::new(
            ErrorCode::InvalidParameter,
            "the query string is not validly encoded",
        )
    };
    let decode = |s: &str| -> Result<String, ApiError> {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' => {
                    let hex = s.get(i + 1..i + 3).ok_or_else(bad)?;
                    out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
                    i += 2;
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8(out).map_err(|_| bad())
    };
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Ok((decode(k)?, decode(v)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(method: &str, path: &str) -> Result<(Endpoint, Option<String>), &'static str> {
        resolve(method, path)
            .map(|(d, id)| (d.endpoint, id.map(str::to_string)))
            .map_err(|e| e.code.name())
    }

    #[test]
    fn resolves_routes() {
        assert_eq!(ep("GET", "/health"), Ok((Endpoint::Health, None)));
        assert_eq!(
            ep("GET", "/api/v1/memory/export"),
            Ok((Endpoint::Export, None))
        );
        assert_eq!(
            ep("GET", "/api/v1/memory/abc"),
            Ok((Endpoint::Get, Some("abc".into())))
        );
        assert_eq!(
            ep("patch", "/api/v1/memory/abc"),
            Ok((Endpoint::Patch, Some("abc".into())))
        );
        assert_eq!(
            ep("DELETE", "/api/v1/memory"),
            Ok((Endpoint::DeleteMany, None))
        );
        assert_eq!(
            ep("GET", "/api/v1/memory/ingest"),
            Err("method_not_allowed")
        );
        assert_eq!(ep("PUT", "/api/v1/memory/abc"), Err("method_not_allowed"));
        assert_eq!(ep("GET", "/api/v1/memory/"), Err("not_found"));
        assert_eq!(ep("GET", "/api/v1/memory/a/b"), Err("not_found"));
        assert_eq!(ep("GET", "/nope"), Err("not_found"));
    }

    #[test]
    fn method_not_allowed_lists_allow() {
        let e = resolve("PUT", "/api/v1/memory/x").err().expect("405");
        assert_eq!(
            e.headers,
            vec![("allow".to_string(), "GET, PATCH, DELETE".to_string())]
        );
    }

    /// Every route is in `schema/openapi.json` and vice versa, with the
    /// same methods; public routes declare `security: []`.
    #[test]
    fn openapi_document_matches_the_route_table() {
        let doc: serde_json::Value = serde_json::from_str(crate::handlers::openapi::OPENAPI_JSON)
            .expect("openapi.json is JSON");
        let paths = doc["paths"].as_object().expect("paths");
        let mut documented: Vec<(String, String)> = Vec::new();
        for (path, item) in paths {
            for (method, op) in item.as_object().expect("path item") {
                if ["get", "post", "put", "patch", "delete", "head", "options"]
                    .contains(&method.as_str())
                {
                    documented.push((method.to_uppercase(), path.clone()));
                    let public = op.get("security") == Some(&serde_json::json!([]));
                    let def = ROUTES
                        .iter()
                        .find(|d| d.path == path && d.method.eq_ignore_ascii_case(method));
                    if let Some(def) = def {
                        assert_eq!(
                            public, !def.auth,
                            "{method} {path}: security disagrees with the router"
                        );
                    }
                }
            }
        }
        let mut routed: Vec<(String, String)> = ROUTES
            .iter()
            .map(|d| (d.method.to_string(), d.path.to_string()))
            .collect();
        documented.sort();
        routed.sort();
        assert_eq!(documented, routed);
        assert_eq!(doc["openapi"], "3.1.0");
    }

    #[test]
    fn query_decoding() {
        assert_eq!(
            parse_query("a=1&tag=x+y&m=%7B%22k%22%3A1%7D&flag").unwrap(),
            vec![
                ("a".into(), "1".into()),
                ("tag".into(), "x y".into()),
                ("m".into(), "{\"k\":1}".into()),
                ("flag".into(), "".into())
            ]
        );
        assert!(parse_query("a=%zz").is_err());
        assert!(parse_query("a=%ff").is_err());
        assert!(parse_query("a=%4").is_err());
    }
}
