//! Accounts and tokens through the core router against the real Postgres:
//! registration, password sign-in (JSON and OAuth2 form), throttling,
//! token claims, refresh rotation and reuse detection, logout, JWKS and
//! refused tokens. Run with `--features native`.
#![cfg(feature = "native")]

mod auth_support;
mod common;

use auth_support::*;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Harness, code, random_uuid};
use edge_api::http::Response;
use edge_api::ports::Clock;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

#[tokio::test]
async fn register_validates_and_refuses_duplicates() {
    let h = harness().await;
    let name = unique("Reg_");
    let email = format!("{name}@Example.org");
    let reg = |email: String, username: String, password: &str| {
        let body = json!({"email": email, "username": username, "password": password});
        let h = &h;
        async move {
            let (res, v) = post(h, "/api/v1/auth/register", body, &[]).await;
            (res.status, v)
        }
    };
    let (s, v) = reg(email.clone(), name.clone(), PASSWORD).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["username"], name.to_lowercase());
    assert_eq!(v["email"], email.to_lowercase());
    assert!(uuid::Uuid::parse_str(v["id"].as_str().unwrap()).is_ok());
    assert!(v["created_at"].is_string(), "{v}");
    assert_eq!(v.as_object().unwrap().len(), 4, "no hash or extras: {v}");

    let (s, v) = reg(email.to_uppercase(), unique("other"), PASSWORD).await;
    assert_eq!((s, code(&v)), (409, "email_taken"));
    let (s, v) = reg(format!("x{email}"), name.to_uppercase(), PASSWORD).await;
    assert_eq!((s, code(&v)), (409, "username_taken"));

    for (email, username, password, expected) in [
        ("nope".to_string(), unique("a"), PASSWORD, "invalid_email"),
        (
            format!("{}@example.com", unique("b")),
            "ab".into(),
            PASSWORD,
            "invalid_username",
        ),
        (
            format!("{}@example.com", unique("c")),
            "bad name".into(),
            PASSWORD,
            "invalid_username",
        ),
        (
            format!("{}@example.com", unique("d")),
            unique("d"),
            "short",
            "weak_password",
        ),
        (
            format!("{}@example.com", unique("e")),
            unique("e"),
            "1qaz2wsx3edc",
            "weak_password",
        ),
    ] {
        let (s, v) = reg(email, username, password).await;
        assert_eq!((s, code(&v)), (422, expected), "{v}");
    }
    let (res, v) = post(
        &h,
        "/api/v1/auth/register",
        json!({"email": "a@b.co", "username": "abc", "password": PASSWORD, "admin": true}),
        &[],
    )
    .await;
    assert_eq!((res.status, code(&v)), (422, "unknown_field"));
}

#[tokio::test]
async fn login_with_json_and_oauth2_form_issues_es256_tokens() {
    let h = harness().await;
    let (username, email, id) = register(&h).await;
    let client = ip();

    let (res, v) = login(&h, &username, PASSWORD, &client).await;
    assert_eq!(res.status, 200, "{v}");
    assert_eq!(v["token_type"], "bearer");
    assert_eq!(v["expires_in"], 900);
    assert_eq!(v["mfa_required"], false);
    assert_eq!(v["refresh_token"].as_str().unwrap().len(), 43);
    let access = v["access_token"].as_str().unwrap();
    let (header, claims) = decode(access);
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["kid"], "test-1");
    assert_eq!(claims["iss"], "memshadow");
    assert_eq!(claims["aud"], "memshadow-api");
    assert_eq!(claims["sub"], id);
    assert_eq!(claims["amr"], json!(["pwd"]));
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
    assert_eq!(claims["iat"].as_i64().unwrap(), h.clock.now_millis() / 1000);
    assert!(claims["jti"].as_str().unwrap().len() >= 16);
    assert!(claims.get("mfa_pending").is_none());
    // The token works on the memory API.
    let (res, v) = get_with(&h, "/api/v1/memory", access).await;
    assert_eq!(res.status, 200, "{v}");

    // OAuth2 password form, signing in with the email in another case.
    let form = format!(
        "grant_type=password&username={}&password={}&scope=",
        email.to_uppercase().replace('@', "%40"),
        PASSWORD.replace(' ', "+")
    );
    let (res, v) = send(
        &h,
        "POST",
        "/api/v1/auth/login",
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("x-forwarded-for", &client),
        ],
        form.into_bytes(),
    )
    .await;
    assert_eq!(res.status, 200, "{v}");
    let (_, claims2) = decode(v["access_token"].as_str().unwrap());
    assert_eq!(claims2["sub"], id);
    assert_ne!(claims2["jti"], claims["jti"]);
    assert_ne!(
        claims2["sid"], claims["sid"],
        "each sign-in is a new session"
    );

    let (res, v) = send(
        &h,
        "POST",
        "/api/v1/auth/login",
        &[("content-type", "application/x-www-form-urlencoded")],
        b"grant_type=client_credentials&username=a&password=b".to_vec(),
    )
    .await;
    assert_eq!((res.status, code(&v)), (422, "invalid_field"));
}

#[tokio::test]
async fn unknown_account_and_wrong_password_look_the_same() {
    let h = harness().await;
    let (username, _, _) = register(&h).await;
    let client = ip();
    let (r1, v1) = login(&h, &username, "wrong password entirely", &client).await;
    let (r2, v2) = login(&h, &unique("ghost"), "wrong password entirely", &client).await;
    assert_eq!((r1.status, code(&v1)), (401, "invalid_credentials"));
    assert_eq!((r2.status, code(&v2)), (401, "invalid_credentials"));
    assert_eq!(v1["error"]["message"], v2["error"]["message"]);
}

#[tokio::test]
async fn failed_logins_lock_the_account_with_doubling_delays() {
    let h = harness().await;
    let (username, _, _) = register(&h).await;
    // Each attempt from a new client: this is the per-account limit.
    for i in 0..5 {
        let (res, v) = login(&h, &username, "wrong password entirely", &ip()).await;
        assert_eq!(
            (res.status, code(&v)),
            (401, "invalid_credentials"),
            "attempt {i}"
        );
    }
    // Locked: even the right password is refused, without running argon2.
    let (res, v) = login(&h, &username, PASSWORD, &ip()).await;
    assert_eq!((res.status, code(&v)), (429, "too_many_attempts"));
    assert_eq!(res.header("retry-after"), Some("30"));
    h.advance(10_000);
    let (res, _) = login(&h, &username, PASSWORD, &ip()).await;
    assert_eq!(res.header("retry-after"), Some("20"));
    // After the lock, one more failure locks for twice as long.
    h.advance(21_000);
    let (res, v) = login(&h, &username, "wrong password entirely", &ip()).await;
    assert_eq!((res.status, code(&v)), (401, "invalid_credentials"));
    let (res, _) = login(&h, &username, PASSWORD, &ip()).await;
    assert_eq!(res.status, 429);
    assert_eq!(res.header("retry-after"), Some("60"));
    // Once it expires, the right password works and clears the count.
    h.advance(61_000);
    let (res, v) = login(&h, &username, PASSWORD, &ip()).await;
    assert_eq!(res.status, 200, "{v}");
    let (res, _) = login(&h, &username, "wrong password entirely", &ip()).await;
    assert_eq!(res.status, 401);
    let (res, _) = login(&h, &username, PASSWORD, &ip()).await;
    assert_eq!(res.status, 200, "one failure after a success does not lock");
}

#[tokio::test]
async fn failed_logins_lock_the_client_across_accounts() {
    let h = harness().await;
    let (username, _, _) = register(&h).await;
    let client = ip();
    for _ in 0..20 {
        let (res, _) = login(&h, &unique("spray"), "wrong password entirely", &client).await;
        assert_eq!(res.status, 401);
    }
    let (res, v) = login(&h, &username, PASSWORD, &client).await;
    assert_eq!((res.status, code(&v)), (429, "too_many_attempts"));
    // Another client is not affected.
    let (res, _) = login(&h, &username, PASSWORD, &ip()).await;
    assert_eq!(res.status, 200);
    // cf-connecting-ip wins over x-forwarded-for.
    let (res, _) = post(
        &h,
        "/api/v1/auth/login",
        json!({"username": username, "password": PASSWORD}),
        &[("cf-connecting-ip", &client), ("x-forwarded-for", &ip())],
    )
    .await;
    assert_eq!(res.status, 429);
}

async fn refresh(h: &Harness, token: &str) -> (Response, Value) {
    post(
        h,
        "/api/v1/auth/refresh",
        json!({"refresh_token": token}),
        &[],
    )
    .await
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let h = harness().await;
    let (username, _, id) = register(&h).await;
    let (_, first) = login(&h, &username, PASSWORD, &ip()).await;
    let r1 = first["refresh_token"].as_str().unwrap().to_string();
    let (_, c1) = decode(first["access_token"].as_str().unwrap());

    h.advance(60_000);
    let (res, second) = refresh(&h, &r1).await;
    assert_eq!(res.status, 200, "{second}");
    let r2 = second["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(r1, r2);
    let (_, c2) = decode(second["access_token"].as_str().unwrap());
    assert_eq!(c2["sub"], id);
    assert_eq!(c2["sid"], c1["sid"], "same session");
    assert_eq!(c2["amr"], json!(["pwd"]));
    assert!(c2["iat"].as_i64() > c1["iat"].as_i64());

    let (res, third) = refresh(&h, &r2).await;
    assert_eq!(res.status, 200);
    let r3 = third["refresh_token"].as_str().unwrap().to_string();

    // r1 again: a replay. The whole family dies, including the live r3.
    let (res, v) = refresh(&h, &r1).await;
    assert_eq!((res.status, code(&v)), (401, "refresh_token_reused"));
    let (res, v) = refresh(&h, &r3).await;
    assert_eq!((res.status, code(&v)), (401, "invalid_refresh_token"));

    // Other sessions of the same user are untouched.
    let (_, other) = login(&h, &username, PASSWORD, &ip()).await;
    let (res, _) = refresh(&h, other["refresh_token"].as_str().unwrap()).await;
    assert_eq!(res.status, 200);

    for junk in ["", "abc", &"A".repeat(43)] {
        let (res, v) = refresh(&h, junk).await;
        assert_eq!((res.status, code(&v)), (401, "invalid_refresh_token"));
    }
}

#[tokio::test]
async fn refresh_tokens_expire() {
    let h = harness().await;
    let (username, _, _) = register(&h).await;
    let (_, pair) = login(&h, &username, PASSWORD, &ip()).await;
    h.advance(30 * 24 * 3600 * 1000 + 1000);
    let (res, v) = refresh(&h, pair["refresh_token"].as_str().unwrap()).await;
    assert_eq!((res.status, code(&v)), (401, "invalid_refresh_token"));
}

#[tokio::test]
async fn logout_revokes_the_session() {
    let h = harness().await;
    let (username, _, _) = register(&h).await;
    let (_, pair) = login(&h, &username, PASSWORD, &ip()).await;
    let (_, pair2) = refresh(&h, pair["refresh_token"].as_str().unwrap()).await;
    let r2 = pair2["refresh_token"].as_str().unwrap();
    let (res, _) = post(&h, "/api/v1/auth/logout", json!({"refresh_token": r2}), &[]).await;
    assert_eq!(res.status, 204);
    let (res, v) = refresh(&h, r2).await;
    assert_eq!((res.status, code(&v)), (401, "invalid_refresh_token"));
    // Idempotent, and silent about tokens it does not know.
    let (res, _) = post(&h, "/api/v1/auth/logout", json!({"refresh_token": r2}), &[]).await;
    assert_eq!(res.status, 204);
    let (res, _) = post(
        &h,
        "/api/v1/auth/logout",
        json!({"refresh_token": "x"}),
        &[],
    )
    .await;
    assert_eq!(res.status, 204);
}

#[tokio::test]
async fn jwks_serves_the_public_keys() {
    let h = harness().await;
    let (res, v) = send(&h, "GET", "/.well-known/jwks.json", &[], Vec::new()).await;
    assert_eq!(res.status, 200);
    let keys = v["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kid"], "test-1");
    assert_eq!(keys[0]["alg"], "ES256");
    assert!(keys[0].get("d").is_none());
    assert_eq!(
        edge_api::config::parse_jwks(&v.to_string()).unwrap()[0].key,
        *common::test_key().verifying_key()
    );
}

#[tokio::test]
async fn no_signing_key_means_no_sign_in() {
    let mut h = harness().await;
    let (username, _, _) = register(&h).await;
    h.cfg.auth.signer = None;
    let (res, v) = login(&h, &username, PASSWORD, &ip()).await;
    assert_eq!((res.status, code(&v)), (503, "misconfigured"));
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |b: u8| k.iter().map(|x| x ^ b).collect::<Vec<u8>>();
    let inner = Sha256::digest([pad(0x36), msg.to_vec()].concat());
    Sha256::digest([pad(0x5c), inner.to_vec()].concat()).to_vec()
}

#[tokio::test]
async fn refused_tokens_get_precise_codes() {
    let h = harness().await;
    let (username, _, _) = register(&h).await;
    let (_, pair) = login(&h, &username, PASSWORD, &ip()).await;
    let good = pair["access_token"].as_str().unwrap().to_string();
    let (_, claims) = decode(&good);
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let status = |token: String| {
        let h = &h;
        async move {
            let (res, v) = get_with(h, "/api/v1/memory", &token).await;
            (res.status, code(&v).to_string())
        }
    };
    let bad = |c: &str| (401u16, c.to_string());

    assert_eq!(status(good.clone()).await.0, 200);
    // alg none, no signature.
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT", "kid": "test-1"})),
        b64(&claims)
    );
    assert_eq!(status(none).await, bad("invalid_token"));
    // HS256 keyed with the public key (the classic algorithm confusion),
    // both as the JWKS document and as the raw SEC1 point.
    let head = b64(&json!({"alg": "HS256", "typ": "JWT", "kid": "test-1"}));
    let signing_input = format!("{head}.{}", b64(&claims));
    let jwks = common::jwks_for(&common::test_key(), "test-1");
    let point = common::test_key()
        .verifying_key()
        .to_encoded_point(false)
        .as_bytes()
        .to_vec();
    for key in [jwks.as_bytes(), point.as_slice()] {
        let sig = URL_SAFE_NO_PAD.encode(hmac_sha256(key, signing_input.as_bytes()));
        assert_eq!(
            status(format!("{signing_input}.{sig}")).await,
            bad("invalid_token")
        );
    }
    // Tampered claims under the original signature.
    let mut forged = claims.clone();
    forged["sub"] = json!(random_uuid().to_string());
    let parts: Vec<&str> = good.split('.').collect();
    assert_eq!(
        status(format!("{}.{}.{}", parts[0], b64(&forged), parts[2])).await,
        bad("invalid_token")
    );
    // Claims the harness signs with the real key.
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = json!({"sub": claims["sub"], "iss": "memshadow", "aud": "memshadow-api"});
        f(&mut c);
        h.token_with(c, 600)
    };
    assert_eq!(
        status(with(&|c| c["iss"] = json!("evil"))).await,
        bad("invalid_issuer")
    );
    assert_eq!(
        status(with(&|c| c["aud"] = json!("other"))).await,
        bad("invalid_audience")
    );
    assert_eq!(
        status(with(
            &|c| c["nbf"] = json!(h.clock.now_millis() / 1000 + 600)
        ))
        .await,
        bad("token_not_yet_valid")
    );
    assert_eq!(
        status(h.token_with(
            json!({"sub": claims["sub"], "iss": "memshadow", "aud": "memshadow-api"}),
            -120
        ))
        .await,
        bad("token_expired")
    );
    // The issued token itself expires after 15 minutes (plus 30 s leeway).
    h.advance(931_000);
    assert_eq!(status(good).await, bad("token_expired"));
}

#[tokio::test]
async fn mfa_pending_tokens_are_refused_by_memory_endpoints() {
    let h = harness().await;
    let user = random_uuid();
    let pending = h.token_with(
        json!({"sub": user.to_string(), "iss": "memshadow", "aud": "memshadow-api",
               "amr": ["pwd"], "mfa_pending": true}),
        600,
    );
    for path in ["/api/v1/memory", "/api/v1/auth/risk"] {
        let (res, v) = get_with(&h, path, &pending).await;
        assert_eq!((res.status, code(&v)), (403, "mfa_required"), "{path}");
    }
}

/// The local stack signs with mint-token's dev key: its `private.pem` as
/// MEMSHADOW_JWT_SIGNING_KEY (as is, or on one line with `\n`) and its
/// `jwks.json` as MEMSHADOW_JWT_PUBLIC_KEYS must configure together, with
/// the same kid.
#[test]
fn mint_token_dev_key_is_a_valid_signing_key() {
    let dir = std::env::temp_dir().join(format!("memshadow-devkey-{}", random_uuid()));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mint-token"))
        .args(["generate", "--out"])
        .arg(&dir)
        .output()
        .expect("run mint-token");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pem = std::fs::read_to_string(dir.join("private.pem")).unwrap();
    let jwks = std::fs::read_to_string(dir.join("jwks.json")).unwrap();
    let kid: Value = serde_json::from_str(&jwks).unwrap();
    for signing in [pem.clone(), pem.trim().replace('\n', "\\n")] {
        let cfg = edge_api::config::Config::from_lookup(|name| match name {
            "MEMSHADOW_JWT_PUBLIC_KEYS" => Some(jwks.clone()),
            "MEMSHADOW_JWT_SIGNING_KEY" => Some(signing.clone()),
            _ => None,
        })
        .expect("mint-token's pair configures");
        assert_eq!(
            cfg.auth.signer.unwrap().kid,
            kid["keys"][0]["kid"].as_str().unwrap()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

async fn stored_hash(h: &Harness, username: &str) -> String {
    use edge_api::ports::{Sql, SqlScope};
    let rows = h
        .sql
        .query(
            &SqlScope::System,
            "SELECT password_hash FROM users WHERE username = $1",
            &[Some(username.to_string())],
        )
        .await
        .unwrap();
    rows[0][0].clone().unwrap()
}

/// A hash made with older parameters is replaced by one with the configured
/// parameters on the next successful sign-in, and still verifies.
#[tokio::test]
async fn sign_in_upgrades_old_password_hashes() {
    let mut h = harness().await;
    let (username, _, _) = register(&h).await;
    let before = stored_hash(&h, &username).await;
    assert!(before.contains("$m=64,t=1,p=1$"), "{before}");
    h.cfg.auth.argon2.memory_kib = 128;
    let (res, _) = login(&h, &username, "wrong password entirely", &ip()).await;
    assert_eq!(res.status, 401);
    assert_eq!(
        stored_hash(&h, &username).await,
        before,
        "a failed sign-in changes nothing"
    );
    let (res, _) = login(&h, &username, PASSWORD, &ip()).await;
    assert_eq!(res.status, 200);
    let after = stored_hash(&h, &username).await;
    assert!(after.contains("$m=128,t=1,p=1$"), "{after}");
    let (res, _) = login(&h, &username, PASSWORD, &ip()).await;
    assert_eq!(res.status, 200);
    assert_eq!(
        stored_hash(&h, &username).await,
        after,
        "no rehash when already current"
    );
}
