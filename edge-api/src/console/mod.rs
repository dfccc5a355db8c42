//! The browser console at `/console`: one static page (HTML, script and
//! stylesheet compiled in) that calls the same-origin JSON API to register,
//! sign in with a password or a passkey, and add, search and delete memories.
//!
//! The page carries no inline script or style, so its Content-Security-Policy
//! allows only this origin's files, and `form-action 'none'` keeps a form
//! from ever submitting (a password in a URL) should the script not load.

use sha2::{Digest, Sha256};

use crate::errors::{ApiError, ErrorCode};
use crate::http::{Request, Response};

const HTML: &str = include_str!("console.html");
const SCRIPT: &str = include_str!("console.js");
const STYLE: &str = include_str!("console.css");

/// Sent with every console file; a browser applies it to the page.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'; \
    require-trusted-types-for 'script'; trusted-types 'none'";

/// The console's files by path: body and content type.
fn asset(path: &str) -> Option<(&'static str, &'static str)> {
    match path {
        "/console" => Some((HTML, "text/html; charset=utf-8")),
        "/console/console.js" => Some((SCRIPT, "text/javascript; charset=utf-8")),
        "/console/console.css" => Some((STYLE, "text/css; charset=utf-8")),
        _ => None,
    }
}

/// A strong validator for one file: the first 128 bits of its SHA-256.
fn etag(body: &str) -> String {
    let digest = Sha256::digest(body.as_bytes());
    format!("\"{}\"", hex::encode(&digest[..16]))
}

/// Whether `If-None-Match` already names this version (`*` or a list).
fn not_modified(req: &Request, tag: &str) -> bool {
    req.header("if-none-match").is_some_and(|v| {
        v.split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == "*" || t == tag)
    })
}

/// Serves a console file. `no-cache` with an ETag: browsers keep a copy but
/// revalidate it, so a new deploy is seen at once and an unchanged file
/// costs a 304.
pub fn serve(req: &Request) -> Result<Response, ApiError> {
    let (body, content_type) =
        asset(&req.path).ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no such route"))?;
    let tag = etag(body);
    let fresh = not_modified(req, &tag);
    let headers = [
        ("content-type", content_type),
        ("cache-control", "no-cache"),
        ("etag", &tag),
        ("content-security-policy", CONTENT_SECURITY_POLICY),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
        ("cross-origin-opener-policy", "same-origin"),
    ];
    Ok(Response {
        status: if fresh { 304 } else { 200 },
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body: if fresh {
            Vec::new()
        } else {
            body.as_bytes().to_vec()
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str, if_none_match: Option<&str>) -> Response {
        let mut req = Request {
            method: "GET".into(),
            path: path.into(),
            ..Request::default()
        };
        if let Some(v) = if_none_match {
            req.headers.push(("if-none-match".into(), v.into()));
        }
        serve(&req).expect("a console file")
    }

    #[test]
    fn serves_each_file_with_its_type_and_policy() {
        for (path, ty) in [
            ("/console", "text/html; charset=utf-8"),
            ("/console/console.js", "text/javascript; charset=utf-8"),
            ("/console/console.css", "text/css; charset=utf-8"),
        ] {
            let res = get(path, None);
            assert_eq!(res.status, 200, "{path}");
            assert_eq!(res.header("content-type"), Some(ty), "{path}");
            assert_eq!(
                res.header("content-security-policy"),
                Some(CONTENT_SECURITY_POLICY)
            );
            assert_eq!(res.header("x-content-type-options"), Some("nosniff"));
            assert_eq!(res.header("cache-control"), Some("no-cache"));
            assert!(!res.body.is_empty());
        }
        assert!(
            serve(&Request {
                path: "/console/other.js".into(),
                ..Request::default()
            })
            .is_err()
        );
    }

    #[test]
    fn revalidation_answers_304_only_for_the_current_version() {
        let tag = get("/console", None)
            .header("etag")
            .expect("etag")
            .to_string();
        let hit = get("/console", Some(&format!("\"stale\", {tag}")));
        assert_eq!(hit.status, 304);
        assert!(hit.body.is_empty());
        assert_eq!(hit.header("etag"), Some(tag.as_str()));
        assert_eq!(get("/console", Some(&format!("W/{tag}"))).status, 304);
        assert_eq!(get("/console", Some("\"stale\"")).status, 200);
        // Each file has its own validator.
        assert_ne!(
            get("/console/console.js", None).header("etag"),
            Some(tag.as_str())
        );
    }

    #[test]
    fn policy_allows_nothing_inline_or_foreign() {
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe"));
        assert!(!CONTENT_SECURITY_POLICY.contains("http"));
        assert!(CONTENT_SECURITY_POLICY.starts_with("default-src 'none';"));
    }

    /// The policy forbids inline script and style, so the page must not
    /// need them: no `<script>` without `src`, no `on…=` handler attributes,
    /// no `style` attributes or elements, and nothing from another origin.
    #[test]
    fn page_needs_nothing_the_policy_forbids() {
        let html = HTML.to_ascii_lowercase();
        for (i, _) in html.match_indices("<script") {
            let tag = &html[i..i + html[i..].find('>').expect("tag ends")];
            assert!(tag.contains(" src=\"/console/"), "inline script: {tag}");
        }
        assert!(!html.contains("<style"));
        assert!(!html.contains(" style="));
        assert!(!html.contains("http://") && !html.contains("https://"));
        assert!(!html.contains("//cdn") && !html.contains("src=\"//"));
        let attributes = html
            .split(|c: char| c.is_ascii_whitespace())
            .filter(|w| w.starts_with("on") && w.contains('='));
        assert_eq!(attributes.count(), 0, "inline event handlers");
        // Trusted Types with no policy: the script must not use HTML sinks.
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "eval(",
            "document.write",
        ] {
            assert!(!SCRIPT.contains(sink), "console.js uses {sink}");
        }
        assert!(!SCRIPT.contains("http://") && !SCRIPT.contains("https://"));
        assert!(!STYLE.contains("url("), "the stylesheet loads nothing");
    }

    /// Every API call the script makes names a route the router has, with
    /// that method, so a renamed endpoint breaks this test, not the page.
    #[test]
    fn every_endpoint_the_script_calls_is_routed() {
        let mut calls = 0;
        for (i, _) in SCRIPT.match_indices("call(\"") {
            let rest = &SCRIPT[i + "call(\"".len()..];
            let (method, rest) = rest.split_once('"').expect("method ends");
            let path = rest
                .trim_start_matches([',', ' '])
                .strip_prefix('"')
                .and_then(|p| p.split_once('"'))
                .map(|(p, _)| p)
                .expect("a literal path follows the method");
            let path = path.split('?').next().unwrap_or(path);
            // `"/memory/" + id`: the literal ends where a path parameter goes.
            let path = if path.ends_with('/') {
                format!("/api/v1{path}00000000-0000-0000-0000-000000000000")
            } else {
                format!("/api/v1{path}")
            };
            let (route, _) = crate::router::resolve(method, &path)
                .unwrap_or_else(|e| panic!("{method} {path}: {}", e.code.name()));
            assert_eq!(route.method, method);
            calls += 1;
        }
        assert!(calls >= 12, "found {calls} calls");
    }

    /// Every label points at a control, so screen readers name each field.
    #[test]
    fn every_input_has_a_label() {
        for (i, _) in HTML
            .match_indices("<input")
            .chain(HTML.match_indices("<textarea"))
        {
            let tag = &HTML[i..i + HTML[i..].find('>').expect("tag ends")];
            let id = tag
                .split("id=\"")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .expect("every control has an id");
            assert!(
                HTML.contains(&format!("<label for=\"{id}\">")),
                "no label for #{id}"
            );
        }
    }
}
