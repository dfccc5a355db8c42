//! Shared by the auth integration tests: a harness that can issue tokens,
//! request helpers, and a software authenticator that produces real
//! WebAuthn bytes (P-256 key, `none` attestation, ES256 assertions).
#![allow(dead_code)]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use edge_api::config::{Argon2Params, JwtSigner};
use edge_api::http::{Request, Response};
use serde_json::{Value, json};

use crate::common::{self, Harness, random_uuid};

/// The harness with a signing key (the harness's own test key, already a
/// verification key) and cheap argon2 parameters: hashing cost is measured
/// by `auth-bench`, not here.
pub async fn harness() -> Harness {
    let mut h = Harness::new().await;
    h.cfg.auth.signer = Some(JwtSigner {
        kid: "test-1".into(),
        key: common::test_key(),
    });
    h.cfg.auth.argon2 = Argon2Params {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };
    h
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}", &random_uuid().simple().to_string()[..12])
}

pub const PASSWORD: &str = "correct horse battery staple";

pub async fn send(
    h: &Harness,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (Response, Value) {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let res = h
        .raw(Request {
            method: method.into(),
            path: path.into(),
            query: query.into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body,
        })
        .await;
    let v = serde_json::from_slice(&res.body).unwrap_or(Value::Null);
    (res, v)
}

pub async fn post(
    h: &Harness,
    path: &str,
    body: Value,
    headers: &[(&str, &str)],
) -> (Response, Value) {
    let mut hs = vec![("content-type", "application/json")];
    hs.extend_from_slice(headers);
    send(h, "POST", path, &hs, serde_json::to_vec(&body).unwrap()).await
}

/// Registers a fresh account; returns (username, email, id).
pub async fn register(h: &Harness) -> (String, String, String) {
    let username = unique("u");
    let email = format!("{username}@example.com");
    let (res, v) = post(
        h,
        "/api/v1/auth/register",
        json!({"email": email, "username": username, "password": PASSWORD}),
        &[],
    )
    .await;
    assert_eq!(res.status, 200, "{v}");
    (username, email, v["id"].as_str().unwrap().to_string())
}

pub async fn login(h: &Harness, username: &str, password: &str, ip: &str) -> (Response, Value) {
    post(
        h,
        "/api/v1/auth/login",
        json!({"username": username, "password": password}),
        &[("x-forwarded-for", ip)],
    )
    .await
}

/// The decoded header and claims of a JWT (no verification).
pub fn decode(jwt: &str) -> (Value, Value) {
    let mut parts = jwt.split('.');
    let mut part =
        || serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap()).unwrap();
    (part(), part())
}

pub async fn get_with(h: &Harness, path: &str, token: &str) -> (Response, Value) {
    let auth = format!("Bearer {token}");
    send(h, "GET", path, &[("authorization", &auth)], Vec::new()).await
}

pub fn ip() -> String {
    let b = random_uuid().into_bytes();
    format!("198.18.{}.{}", b[0], b[1])
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn unb64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).expect("base64url")
}

pub const ORIGIN: &str = "http://localhost:8787";
pub const RP_ID: &str = "localhost";

pub use soft_authenticator::SoftAuthenticator;

/// A software passkey for the harness's relying party.
pub fn passkey() -> SoftAuthenticator {
    SoftAuthenticator::new(ORIGIN, RP_ID)
}

/// The WebAuthn user handle of an account id (its UUID bytes).
pub fn handle_of(user_id: &str) -> Vec<u8> {
    uuid::Uuid::parse_str(user_id)
        .expect("uuid")
        .as_bytes()
        .to_vec()
}

/// POST with a bearer token.
pub async fn post_as(h: &Harness, path: &str, token: &str, body: Value) -> (Response, Value) {
    let auth = format!("Bearer {token}");
    post(h, path, body, &[("authorization", &auth)]).await
}

/// Registers an account, signs in with the password and registers a soft
/// passkey with that (not yet MFA-gated) token. Returns (username, id,
/// authenticator).
pub async fn account_with_passkey(h: &Harness) -> (String, String, SoftAuthenticator) {
    let (username, _, id) = register(h).await;
    let (_, pair) = login(h, &username, PASSWORD, &ip()).await;
    let token = pair["access_token"].as_str().expect("token").to_string();
    let (res, options) =
        post_as(h, "/api/v1/auth/webauthn/register/begin", &token, json!({})).await;
    assert_eq!(res.status, 200, "{options}");
    let mut auth = passkey();
    let credential = auth.create(&options);
    let (res, v) = post_as(
        h,
        "/api/v1/auth/webauthn/register/complete",
        &token,
        credential,
    )
    .await;
    assert_eq!(res.status, 201, "{v}");
    (username, id, auth)
}
