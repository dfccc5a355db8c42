//! Passkey ceremonies end to end through the core router, the real
//! verifier and the real Postgres, with a software authenticator: options,
//! registration, management, sign-in (username-first and discoverable),
//! single-use and expiring challenges, counter rollback, ownership, MFA
//! after a password, and risk-driven step-up. Run with `--features native`.
#![cfg(feature = "native")]

mod auth_support;
mod common;

use auth_support::*;
use common::schema::Documented;
use common::{Harness, code};
use edge_api::ports::Clock;
use serde_json::{Value, json};

async fn full_token(h: &Harness, username: &str) -> String {
    let (_, pair) = login(h, username, PASSWORD, &ip()).await;
    pair["access_token"].as_str().unwrap().to_string()
}

async fn begin_auth(h: &Harness, username: Option<&str>) -> Value {
    let body = match username {
        Some(u) => json!({"username": u}),
        None => json!({}),
    };
    let (res, v) = post(h, "/api/v1/auth/webauthn/authenticate/begin", body, &[]).await;
    assert_eq!(res.status, 200, "{v}");
    v
}

async fn complete_auth(
    h: &Harness,
    options: &Value,
    credential: Value,
    bearer: Option<&str>,
) -> (u16, Value) {
    let body = json!({"credential": credential, "state": options["state"]});
    let (res, v) = match bearer {
        Some(t) => post_as(h, "/api/v1/auth/webauthn/authenticate/complete", t, body).await,
        None => post(h, "/api/v1/auth/webauthn/authenticate/complete", body, &[]).await,
    };
    (res.status, v)
}

fn reason(v: &Value) -> &str {
    v["error"]["reason"].as_str().unwrap_or("<no reason>")
}

#[tokio::test]
async fn registration_options_ceremony_and_management() {
    let h = harness().await;
    let (username, _, id) = register(&h).await;
    let token = full_token(&h, &username).await;

    let (res, options) = post_as(
        &h,
        "/api/v1/auth/webauthn/register/begin",
        &token,
        json!({}),
    )
    .await;
    assert_eq!(res.status, 200, "{options}");
    let pk = &options["publicKey"];
    assert_eq!(unb64(pk["challenge"].as_str().unwrap()).len(), 32);
    assert!(!pk["challenge"].as_str().unwrap().contains('='));
    assert_eq!(pk["rp"], json!({"id": "localhost", "name": "MEMSHADOW"}));
    assert_eq!(unb64(pk["user"]["id"].as_str().unwrap()), handle_of(&id));
    assert_eq!(pk["user"]["name"], username.as_str());
    assert_eq!(pk["user"]["displayName"], username.as_str());
    let algs: Vec<i64> = pk["pubKeyCredParams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert_eq!(p["type"], "public-key");
            p["alg"].as_i64().unwrap()
        })
        .collect();
    assert_eq!(algs, vec![-7, -8, -257]);
    assert_eq!(pk["excludeCredentials"], json!([]));
    assert_eq!(pk["authenticatorSelection"]["residentKey"], "preferred");
    assert_eq!(
        pk["authenticatorSelection"]["userVerification"],
        "preferred"
    );
    assert_eq!(pk["timeout"], 300000);
    assert_eq!(pk["attestation"], "none");
    assert!(uuid::Uuid::parse_str(options["state"].as_str().unwrap()).is_ok());

    let mut auth = passkey();
    let mut credential = auth.create(&options);
    credential["name"] = json!("  Laptop  ");
    let (res, cred) = post_as(
        &h,
        "/api/v1/auth/webauthn/register/complete",
        &token,
        credential,
    )
    .await;
    assert_eq!(res.status, 201, "{cred}");
    assert_eq!(cred["credential_id"], b64(&auth.credential_id).as_str());
    assert_eq!(cred["name"], "Laptop");
    assert_eq!(cred["alg"], -7);
    assert_eq!(cred["sign_count"], 0);
    assert_eq!(cred["aaguid"], "00000000-0000-0000-0000-000000000000");
    assert_eq!(cred["transports"], json!(["internal", "hybrid"]));
    assert_eq!(cred["backup_eligible"], false);
    assert_eq!(cred["last_used_at"], Value::Null);
    let cred_id = cred["id"].as_str().unwrap().to_string();

    // excludeCredentials now names it; registering it again is a conflict.
    let (_, options) = post_as(
        &h,
        "/api/v1/auth/webauthn/register/begin",
        &token,
        json!({}),
    )
    .await;
    assert_eq!(
        options["publicKey"]["excludeCredentials"],
        json!([{"type": "public-key", "id": b64(&auth.credential_id), "transports": ["internal", "hybrid"]}])
    );
    let again = auth.create(&options);
    let (res, v) = post_as(&h, "/api/v1/auth/webauthn/register/complete", &token, again).await;
    assert_eq!((res.status, code(&v)), (409, "credential_exists"));

    // A second passkey (a second later) gets a default name.
    h.advance(1000);
    let (_, options) = post_as(
        &h,
        "/api/v1/auth/webauthn/register/begin",
        &token,
        json!({}),
    )
    .await;
    let mut second = passkey();
    let (res, v) = post_as(
        &h,
        "/api/v1/auth/webauthn/register/complete",
        &token,
        second.create(&options),
    )
    .await;
    assert_eq!((res.status, v["name"].as_str()), (201, Some("Passkey 2")));

    let (res, list) = get_with(&h, "/api/v1/auth/webauthn/credentials", &token).await;
    assert_eq!(res.status, 200);
    assert_eq!(list["credentials"].as_array().unwrap().len(), 2);
    assert_eq!(list["credentials"][0]["id"], cred_id.as_str());

    // Rename and delete: own passkeys only.
    let (other, _, _) = register(&h).await;
    let other_token = full_token(&h, &other).await;
    let path = format!("/api/v1/auth/webauthn/credentials/{cred_id}");
    let auth_hdr = format!("Bearer {token}");
    let other_hdr = format!("Bearer {other_token}");
    let patch = |hdr: String, body: Value| {
        let h = &h;
        let path = path.clone();
        async move {
            send(
                h,
                "PATCH",
                &path,
                &[
                    ("authorization", &hdr),
                    ("content-type", "application/json"),
                ],
                serde_json::to_vec(&body).unwrap(),
            )
            .await
        }
    };
    let (res, v) = patch(auth_hdr.clone(), json!({"name": "Work laptop"})).await;
    assert_eq!((res.status, v["name"].as_str()), (200, Some("Work laptop")));
    let (res, v) = patch(other_hdr.clone(), json!({"name": "mine now"})).await;
    assert_eq!((res.status, code(&v)), (404, "credential_not_found"));
    let (res, v) = patch(auth_hdr.clone(), json!({"name": ""})).await;
    assert_eq!((res.status, code(&v)), (422, "invalid_field"));
    let (res, v) = send(
        &h,
        "DELETE",
        &path,
        &[("authorization", &other_hdr)],
        vec![],
    )
    .await;
    assert_eq!((res.status, code(&v)), (404, "credential_not_found"));
    let (res, _) = send(&h, "DELETE", &path, &[("authorization", &auth_hdr)], vec![]).await;
    assert_eq!(res.status, 204);
    let (res, v) = send(
        &h,
        "DELETE",
        "/api/v1/auth/webauthn/credentials/nope",
        &[("authorization", &auth_hdr)],
        vec![],
    )
    .await;
    assert_eq!((res.status, code(&v)), (400, "invalid_parameter"));
    let (_, list) = get_with(&h, "/api/v1/auth/webauthn/credentials", &token).await;
    assert_eq!(list["credentials"].as_array().unwrap().len(), 1);

    // A token for a user without an account cannot register passkeys.
    let ghost = h.token(common::random_uuid());
    let (res, v) = post_as(
        &h,
        "/api/v1/auth/webauthn/register/begin",
        &ghost,
        json!({}),
    )
    .await;
    assert_eq!((res.status, code(&v)), (404, "account_not_found"));
}

#[tokio::test]
async fn challenges_are_single_use_bound_and_expire() {
    let h = harness().await;
    let (username, _, id) = register(&h).await;
    let token = full_token(&h, &username).await;
    let begin = || {
        let h = &h;
        let token = token.clone();
        async move {
            post_as(h, "/api/v1/auth/webauthn/register/begin", &token, json!({}))
                .await
                .1
        }
    };
    let complete = |body: Value, t: String| {
        let h = &h;
        async move {
            let (res, v) = post_as(h, "/api/v1/auth/webauthn/register/complete", &t, body).await;
            (res.status, v)
        }
    };

    // Used once: a second complete with the same state is refused.
    let options = begin().await;
    let (s, _) = complete(passkey().create(&options), token.clone()).await;
    assert_eq!(s, 201);
    let (s, v) = complete(passkey().create(&options), token.clone()).await;
    assert_eq!((s, code(&v)), (400, "invalid_challenge"));

    // A failed attempt spends the challenge too.
    let options = begin().await;
    let mut wrong_origin = passkey();
    wrong_origin.origin = "http://127.0.0.1:8787".into();
    let (s, v) = complete(wrong_origin.create(&options), token.clone()).await;
    assert_eq!(
        (s, code(&v), reason(&v)),
        (400, "webauthn_rejected", "origin_not_allowed")
    );
    let (s, v) = complete(passkey().create(&options), token.clone()).await;
    assert_eq!((s, code(&v)), (400, "invalid_challenge"));

    // The response must answer this state's challenge.
    let a = begin().await;
    let b = begin().await;
    let mut mixed = passkey().create(&a);
    mixed["state"] = b["state"].clone();
    let (s, v) = complete(mixed, token.clone()).await;
    assert_eq!((s, reason(&v)), (400, "challenge_mismatch"));

    // Expired after five minutes.
    let options = begin().await;
    h.advance(301_000);
    // (A password sign-in would now need the passkey: a plain token will do.)
    let token = h.token(uuid::Uuid::parse_str(&id).unwrap());
    let (s, v) = complete(passkey().create(&options), token.clone()).await;
    assert_eq!((s, code(&v)), (400, "invalid_challenge"));

    // Bound to the user who began it.
    let options = begin_with(&h, &token).await;
    let (other, _, _) = register(&h).await;
    let other_token = full_token(&h, &other).await;
    let (s, v) = complete(passkey().create(&options), other_token).await;
    assert_eq!((s, code(&v)), (400, "invalid_challenge"));

    // And to its ceremony: a sign-in state does not register.
    let auth_options = begin_auth(&h, Some(&username)).await;
    let (s, v) = complete(passkey().create(&auth_options), token.clone()).await;
    assert_eq!((s, code(&v)), (400, "invalid_challenge"));
    let (s, v) = complete(json!({"id": "x"}), token.clone()).await;
    assert_eq!((s, code(&v)), (422, "invalid_field"));
    let options = begin_with(&h, &token).await;
    let (s, v) = complete(json!({"state": options["state"], "id": 5}), token).await;
    assert_eq!((s, reason(&v)), (400, "malformed_response"));
}

async fn begin_with(h: &Harness, token: &str) -> Value {
    post_as(h, "/api/v1/auth/webauthn/register/begin", token, json!({}))
        .await
        .1
}

#[tokio::test]
async fn passkey_sign_in_username_first_and_discoverable() {
    let h = harness().await;
    let (username, id, mut auth) = account_with_passkey(&h).await;

    let options = begin_auth(&h, Some(&username.to_uppercase())).await;
    let pk = &options["publicKey"];
    assert_eq!(unb64(pk["challenge"].as_str().unwrap()).len(), 32);
    assert_eq!(pk["rpId"], "localhost");
    assert_eq!(pk["userVerification"], "preferred");
    assert_eq!(
        pk["allowCredentials"][0]["id"],
        b64(&auth.credential_id).as_str()
    );
    let (s, pair) = complete_auth(&h, &options, auth.get(&options, None), None).await;
    assert_eq!(s, 200, "{pair}");
    assert_eq!(pair["mfa_required"], false);
    let (_, claims) = decode(pair["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], id.as_str());
    assert_eq!(claims["amr"], json!(["hwk", "user"]));
    assert_eq!(claims["hwk_at"].as_i64(), Some(h.clock.now_millis() / 1000));
    assert!(claims.get("mfa_pending").is_none());
    let (res, _) = get_with(&h, "/api/v1/memory", pair["access_token"].as_str().unwrap()).await;
    assert_eq!(res.status, 200);

    // The stored counter moved and last use is recorded.
    let token = pair["access_token"].as_str().unwrap();
    let (_, list) = get_with(&h, "/api/v1/auth/webauthn/credentials", token).await;
    assert_eq!(list["credentials"][0]["sign_count"], 1);
    assert!(list["credentials"][0]["last_used_at"].is_string());

    // Discoverable: no username, empty allowCredentials, the user handle decides.
    let options = begin_auth(&h, None).await;
    assert_eq!(options["publicKey"]["allowCredentials"], json!([]));
    let handle = handle_of(&id);
    let (s, pair) = complete_auth(&h, &options, auth.get(&options, Some(&handle)), None).await;
    assert_eq!(s, 200, "{pair}");
    let options = begin_auth(&h, None).await;
    let (s, v) = complete_auth(&h, &options, auth.get(&options, None), None).await;
    assert_eq!((s, reason(&v)), (401, "user_handle_missing"));
    let options = begin_auth(&h, None).await;
    let (s, v) = complete_auth(&h, &options, auth.get(&options, Some(&[7u8; 16])), None).await;
    assert_eq!((s, reason(&v)), (401, "credential_not_owned"));

    // Without user verification the token says so.
    auth.uv = false;
    let options = begin_auth(&h, Some(&username)).await;
    let (s, pair) = complete_auth(&h, &options, auth.get(&options, None), None).await;
    assert_eq!(s, 200);
    assert_eq!(
        decode(pair["access_token"].as_str().unwrap()).1["amr"],
        json!(["hwk"])
    );

    // An unknown username looks like a user without passkeys.
    let options = begin_auth(&h, Some("nobody-here-at-all")).await;
    assert_eq!(options["publicKey"]["allowCredentials"], json!([]));

    // A sign-in challenge is single use too.
    let options = begin_auth(&h, Some(&username)).await;
    let (s, _) = complete_auth(&h, &options, auth.get(&options, None), None).await;
    assert_eq!(s, 200);
    let (s, v) = complete_auth(&h, &options, auth.get(&options, None), None).await;
    assert_eq!((s, code(&v)), (400, "invalid_challenge"));
    // … and expires.
    let options = begin_auth(&h, Some(&username)).await;
    h.advance(301_000);
    let (s, v) = complete_auth(&h, &options, auth.get(&options, None), None).await;
    assert_eq!((s, code(&v)), (400, "invalid_challenge"));
}

#[tokio::test]
async fn counter_rollback_and_ownership_are_refused() {
    let h = harness().await;
    let (alice, _, mut a_key) = account_with_passkey(&h).await;
    let (_, _, mut b_key) = account_with_passkey(&h).await;

    let options = begin_auth(&h, Some(&alice)).await;
    let (s, _) = complete_auth(&h, &options, a_key.get(&options, None), None).await;
    assert_eq!(s, 200);
    // A clone replays the same counter value.
    a_key.counter -= 1;
    let options = begin_auth(&h, Some(&alice)).await;
    let (s, v) = complete_auth(&h, &options, a_key.get(&options, None), None).await;
    assert_eq!(
        (s, code(&v), reason(&v)),
        (401, "passkey_rejected", "sign_count_rollback")
    );
    // The counter was not moved by the refused attempt: the real key goes on.
    let options = begin_auth(&h, Some(&alice)).await;
    let (s, _) = complete_auth(&h, &options, a_key.get(&options, None), None).await;
    assert_eq!(s, 200);

    // Bob's passkey cannot sign in to Alice's account.
    let options = begin_auth(&h, Some(&alice)).await;
    let (s, v) = complete_auth(&h, &options, b_key.get(&options, None), None).await;
    assert_eq!((s, reason(&v)), (401, "credential_not_owned"));
    // An unregistered passkey.
    let options = begin_auth(&h, Some(&alice)).await;
    let (s, v) = complete_auth(&h, &options, passkey().get(&options, None), None).await;
    assert_eq!((s, reason(&v)), (401, "unknown_credential"));
    // A forged signature.
    let options = begin_auth(&h, Some(&alice)).await;
    let mut forged = a_key.get(&options, None);
    let sig = unb64(forged["response"]["signature"].as_str().unwrap());
    let mut sig2 = sig.clone();
    let n = sig2.len();
    sig2[n - 1] ^= 1;
    forged["response"]["signature"] = json!(b64(&sig2));
    let (s, v) = complete_auth(&h, &options, forged, None).await;
    assert_eq!((s, reason(&v)), (401, "signature_invalid"));
    // Another origin.
    a_key.origin = "https://evil.example".into();
    let options = begin_auth(&h, Some(&alice)).await;
    let (s, v) = complete_auth(&h, &options, a_key.get(&options, None), None).await;
    assert_eq!((s, reason(&v)), (401, "origin_not_allowed"));
}

#[tokio::test]
async fn a_passkey_account_needs_both_factors() {
    let h = harness().await;
    let (username, id, mut auth) = account_with_passkey(&h).await;

    let (res, pair) = login(&h, &username, PASSWORD, &ip()).await;
    assert_eq!(res.status, 200);
    assert_eq!(pair["mfa_required"], true);
    let pending = pair["access_token"].as_str().unwrap().to_string();
    let (_, claims) = decode(&pending);
    assert_eq!(claims["amr"], json!(["pwd"]));
    assert_eq!(claims["mfa_pending"], true);
    for path in [
        "/api/v1/memory",
        "/api/v1/memory/export",
        "/api/v1/auth/webauthn/credentials",
    ] {
        let (res, v) = get_with(&h, path, &pending).await;
        assert_eq!((res.status, code(&v)), (403, "mfa_required"), "{path}");
    }
    let (res, v) = post_as(
        &h,
        "/api/v1/auth/webauthn/register/begin",
        &pending,
        json!({}),
    )
    .await;
    assert_eq!(
        (res.status, code(&v)),
        (403, "mfa_required"),
        "no new passkey on one factor"
    );
    // Refreshing a pending session stays pending.
    let (_, refreshed) = post(
        &h,
        "/api/v1/auth/refresh",
        json!({"refresh_token": pair["refresh_token"]}),
        &[],
    )
    .await;
    assert_eq!(refreshed["mfa_required"], true);
    let pending_refresh = refreshed["refresh_token"].as_str().unwrap().to_string();

    // Another user's passkey does not complete this sign-in.
    let (_, _, mut other) = account_with_passkey(&h).await;
    let options = begin_auth(&h, None).await;
    let (s, v) = complete_auth(&h, &options, other.get(&options, None), Some(&pending)).await;
    assert_eq!((s, reason(&v)), (401, "credential_not_owned"));

    // The user's own passkey, with the pending token: full tokens.
    let options = begin_auth(&h, Some(&username)).await;
    let (s, full) = complete_auth(&h, &options, auth.get(&options, None), Some(&pending)).await;
    assert_eq!(s, 200, "{full}");
    assert_eq!(full["mfa_required"], false);
    let token = full["access_token"].as_str().unwrap();
    let (_, claims) = decode(token);
    assert_eq!(claims["sub"], id.as_str());
    assert_eq!(claims["amr"], json!(["pwd", "hwk", "mfa"]));
    assert!(claims.get("mfa_pending").is_none());
    let (res, _) = get_with(&h, "/api/v1/memory", token).await;
    assert_eq!(res.status, 200);
    // The pending session is gone; the new one refreshes with its amr.
    let (res, v) = post(
        &h,
        "/api/v1/auth/refresh",
        json!({"refresh_token": pending_refresh}),
        &[],
    )
    .await;
    assert_eq!((res.status, code(&v)), (401, "invalid_refresh_token"));
    let (res, again) = post(
        &h,
        "/api/v1/auth/refresh",
        json!({"refresh_token": full["refresh_token"]}),
        &[],
    )
    .await;
    assert_eq!(res.status, 200);
    let (_, c2) = decode(again["access_token"].as_str().unwrap());
    assert_eq!(c2["amr"], json!(["pwd", "hwk", "mfa"]));
    assert_eq!(c2["hwk_at"], claims["hwk_at"]);

    // A bad bearer token on complete is refused as such.
    let options = begin_auth(&h, Some(&username)).await;
    let (s, v) = complete_auth(&h, &options, auth.get(&options, None), Some("garbage")).await;
    assert_eq!((s, code(&v)), (401, "invalid_token"));
}

/// Telemetry events for one session: `n` commands `gap_s` apart ending at
/// `end_ms`, typed at `speed` chars/s, `words` words each.
fn events(
    end_ms: i64,
    n: usize,
    gap_s: i64,
    speed: f64,
    words: usize,
    errors: usize,
) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let at = end_ms - (n - 1 - i) as i64 * gap_s * 1000;
            let at = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(at)
                .unwrap()
                .to_rfc3339();
            json!({
                "command": vec!["word"; words].join(" "),
                "typing_speed": speed + (i % 3) as f64 * 0.4,
                "error": i < errors,
                "at": at,
            })
        })
        .collect()
}

async fn telemetry(h: &Harness, token: &str, session: &str, evs: Vec<Value>) {
    let (res, v) = post_as(
        h,
        "/api/v1/auth/telemetry",
        token,
        json!({"session_id": session, "events": evs}),
    )
    .await;
    assert_eq!(res.status, 200, "{v}");
}

#[tokio::test]
async fn suspicious_sessions_need_a_fresh_passkey_for_bulk_actions() {
    let h = harness().await;
    let (username, _, mut auth) = account_with_passkey(&h).await;
    let options = begin_auth(&h, Some(&username)).await;
    let (_, pair) = complete_auth(&h, &options, auth.get(&options, None), None).await;
    let refresh_token = pair["refresh_token"].as_str().unwrap().to_string();
    let token = pair["access_token"].as_str().unwrap().to_string();
    let now = h.clock.now_millis();

    // No baseline yet: nothing is suspicious.
    let (res, risk) = get_with(&h, "/api/v1/auth/risk", &token).await;
    assert_eq!(res.status, 200, "{risk}");
    assert_eq!(risk["suspicious"], false);
    assert_eq!(risk["baseline_samples"], 0);
    assert_eq!(risk["session_id"], Value::Null);

    // Three ordinary sessions: a command every 15 s at ~5 chars/s.
    for (k, speed) in [(3, 5.0), (2, 5.6), (1, 4.7)] {
        let end = now - k * 3_600_000;
        telemetry(
            &h,
            &token,
            &format!("day-{k}"),
            events(end, 8, 15, speed, 3, 1),
        )
        .await;
    }
    // An ordinary current session is not suspicious.
    telemetry(&h, &token, "calm", events(now - 60_000, 8, 15, 5.1, 3, 1)).await;
    let (_, risk) = get_with(&h, "/api/v1/auth/risk", &token).await;
    assert_eq!(risk["session_id"], "calm");
    assert_eq!(risk["baseline_samples"], 24);
    assert_eq!(risk["baseline_sessions"], 3);
    assert_eq!(risk["suspicious"], false, "{risk}");
    assert_eq!(risk["confidence"], 1.0);
    for f in [
        "command_velocity",
        "typing_speed",
        "error_rate",
        "command_complexity",
    ] {
        assert!(risk["features"][f].is_number(), "{f}");
        assert!(risk["baseline"][f]["mean"].is_number(), "{f}");
    }

    // Six minutes on, the sign-in's passkey assertion is no longer fresh,
    // and a scripted burst arrives: 12 long commands a second apart.
    h.advance(6 * 60_000);
    let (_, pair) = post(
        &h,
        "/api/v1/auth/refresh",
        json!({"refresh_token": refresh_token}),
        &[],
    )
    .await;
    let token = pair["access_token"].as_str().unwrap().to_string();
    telemetry(
        &h,
        &token,
        "burst",
        events(h.clock.now_millis(), 12, 1, 45.0, 14, 0),
    )
    .await;
    let (_, risk) = get_with(&h, "/api/v1/auth/risk", &token).await;
    assert_eq!(risk["session_id"], "burst");
    assert_eq!(risk["suspicious"], true, "{risk}");
    assert!(risk["score"].as_f64().unwrap() > 0.6);
    let (_, calm) = get_with(&h, "/api/v1/auth/risk?session_id=calm", &token).await;
    assert_eq!(calm["suspicious"], false);

    // Bulk and destructive actions now need a step-up; ordinary ones do not.
    let del = |t: String| {
        let h = &h;
        async move {
            let hdr = format!("Bearer {t}");
            send(
                h,
                "DELETE",
                "/api/v1/memory?tag=x",
                &[("authorization", &hdr)],
                vec![],
            )
            .await
        }
    };
    let (res, v) = del(token.clone()).await;
    assert_eq!((res.status, code(&v)), (403, "step_up_required"), "{v}");
    let (res, v) = get_with(&h, "/api/v1/memory/export", &token).await;
    assert_eq!((res.status, code(&v)), (403, "step_up_required"));
    let (res, _) = get_with(&h, "/api/v1/memory", &token).await;
    assert_eq!(res.status, 200);

    // A passkey assertion presented with the current token steps up.
    let options = begin_auth(&h, Some(&username)).await;
    let (s, fresh) = complete_auth(&h, &options, auth.get(&options, None), Some(&token)).await;
    assert_eq!(s, 200, "{fresh}");
    let fresh = fresh["access_token"].as_str().unwrap().to_string();
    assert_eq!(decode(&fresh).1["amr"], json!(["hwk", "user"]));
    let (res, v) = del(fresh.clone()).await;
    assert_eq!(res.status, 200, "{v}");
    let (res, _) = get_with(&h, "/api/v1/memory/export", &fresh).await;
    assert_eq!(res.status, 200);
    // Five minutes later the step-up has lapsed again.
    h.advance(301_000);
    let mut claims = decode(&fresh).1;
    for k in ["iat", "exp", "nbf"] {
        claims.as_object_mut().unwrap().remove(k);
    }
    let fresh = h.token_with(claims, 600);
    let (res, v) = del(fresh).await;
    assert_eq!((res.status, code(&v)), (403, "step_up_required"));
}

#[tokio::test]
async fn telemetry_is_validated() {
    let h = harness().await;
    let (username, _, _) = register(&h).await;
    let token = full_token(&h, &username).await;
    let now = h.clock.now_millis();
    let good = events(now, 1, 1, 5.0, 2, 0);
    for body in [
        json!({"session_id": "", "events": good}),
        json!({"session_id": "s", "events": []}),
        json!({"session_id": "s", "events": events(now + 600_000, 1, 1, 5.0, 2, 0)}),
        json!({"session_id": "s", "events": events(now, 1, 1, -1.0, 2, 0)}),
        json!({"session_id": "s", "events": [{"command": "x", "typing_speed": 1, "error": false, "at": "yesterday"}]}),
    ] {
        let (res, v) = post_as(&h, "/api/v1/auth/telemetry", &token, body.clone()).await;
        assert_eq!((res.status, code(&v)), (422, "invalid_field"), "{body}");
    }
    let (res, v) = post_as(
        &h,
        "/api/v1/auth/telemetry",
        &token,
        json!({"session_id": "s", "events": [{"command": "x", "typing_speed": 1, "error": false, "at": "2026-01-01T00:00:00Z", "raw": 1}]}),
    )
    .await;
    assert_eq!((res.status, code(&v)), (422, "unknown_field"));
    let (res, v) = post_as(
        &h,
        "/api/v1/auth/telemetry",
        &token,
        json!({"session_id": "s", "events": good}),
    )
    .await;
    assert_eq!((res.status, v["recorded"].as_i64()), (200, Some(1)));
}

/// Every auth answer a sign-up, sign-in, passkey and risk flow produces is
/// documented in schema/openapi.json, with a body matching its schema.
#[tokio::test]
async fn auth_answers_match_the_openapi_document() {
    let h = harness().await;
    let doc = Documented::new();
    let name = unique("doc");
    let reg =
        json!({"email": format!("{name}@example.com"), "username": name, "password": PASSWORD});
    let (res, _) = post(&h, "/api/v1/auth/register", reg.clone(), &[]).await;
    doc.assert("POST", "/api/v1/auth/register", &res);
    let (res, _) = post(&h, "/api/v1/auth/register", reg, &[]).await;
    doc.assert("POST", "/api/v1/auth/register", &res);
    let (res, _) = post(
        &h,
        "/api/v1/auth/register",
        json!({"email": "x", "username": "abc", "password": PASSWORD}),
        &[],
    )
    .await;
    doc.assert("POST", "/api/v1/auth/register", &res);

    let client = ip();
    let (res, pair) = login(&h, &name, PASSWORD, &client).await;
    doc.assert("POST", "/api/v1/auth/login", &res);
    let token = pair["access_token"].as_str().unwrap().to_string();
    for _ in 0..5 {
        let (res, _) = login(&h, &name, "wrong password entirely", &client).await;
        doc.assert("POST", "/api/v1/auth/login", &res);
    }
    let (res, _) = login(&h, &name, PASSWORD, &client).await;
    assert_eq!(res.status, 429);
    doc.assert("POST", "/api/v1/auth/login", &res);

    let (res, next) = post(
        &h,
        "/api/v1/auth/refresh",
        json!({"refresh_token": pair["refresh_token"]}),
        &[],
    )
    .await;
    doc.assert("POST", "/api/v1/auth/refresh", &res);
    let (res, _) = post(
        &h,
        "/api/v1/auth/refresh",
        json!({"refresh_token": pair["refresh_token"]}),
        &[],
    )
    .await;
    doc.assert("POST", "/api/v1/auth/refresh", &res);
    let (res, _) = post(
        &h,
        "/api/v1/auth/logout",
        json!({"refresh_token": next["refresh_token"]}),
        &[],
    )
    .await;
    doc.assert("POST", "/api/v1/auth/logout", &res);
    let (res, _) = send(&h, "GET", "/.well-known/jwks.json", &[], vec![]).await;
    doc.assert("GET", "/.well-known/jwks.json", &res);

    let (res, options) = post_as(
        &h,
        "/api/v1/auth/webauthn/register/begin",
        &token,
        json!({}),
    )
    .await;
    doc.assert("POST", "/api/v1/auth/webauthn/register/begin", &res);
    let mut auth = passkey();
    let cred = auth.create(&options);
    let (res, stored) = post_as(
        &h,
        "/api/v1/auth/webauthn/register/complete",
        &token,
        cred.clone(),
    )
    .await;
    doc.assert("POST", "/api/v1/auth/webauthn/register/complete", &res);
    let (res, _) = post_as(&h, "/api/v1/auth/webauthn/register/complete", &token, cred).await;
    doc.assert("POST", "/api/v1/auth/webauthn/register/complete", &res);
    let (res, _) = get_with(&h, "/api/v1/auth/webauthn/credentials", &token).await;
    doc.assert("GET", "/api/v1/auth/webauthn/credentials", &res);
    let item = "/api/v1/auth/webauthn/credentials/{id}";
    let path = format!(
        "/api/v1/auth/webauthn/credentials/{}",
        stored["id"].as_str().unwrap()
    );
    let hdr = format!("Bearer {token}");
    let (res, _) = send(
        &h,
        "PATCH",
        &path,
        &[("authorization", &hdr)],
        br#"{"name":"Key"}"#.to_vec(),
    )
    .await;
    doc.assert("PATCH", item, &res);
    let missing = format!(
        "/api/v1/auth/webauthn/credentials/{}",
        common::random_uuid()
    );
    let (res, _) = send(&h, "DELETE", &missing, &[("authorization", &hdr)], vec![]).await;
    doc.assert("DELETE", item, &res);

    let options = begin_auth(&h, Some(&name)).await;
    let (res, _) = post(
        &h,
        "/api/v1/auth/webauthn/authenticate/begin",
        json!({}),
        &[],
    )
    .await;
    doc.assert("POST", "/api/v1/auth/webauthn/authenticate/begin", &res);
    let body = json!({"credential": auth.get(&options, None), "state": options["state"]});
    let (res, signed_in) = post(
        &h,
        "/api/v1/auth/webauthn/authenticate/complete",
        body.clone(),
        &[],
    )
    .await;
    doc.assert("POST", "/api/v1/auth/webauthn/authenticate/complete", &res);
    let (res, _) = post(&h, "/api/v1/auth/webauthn/authenticate/complete", body, &[]).await;
    doc.assert("POST", "/api/v1/auth/webauthn/authenticate/complete", &res);
    let options = begin_auth(&h, Some(&name)).await;
    let body = json!({"credential": passkey().get(&options, None), "state": options["state"]});
    let (res, _) = post(&h, "/api/v1/auth/webauthn/authenticate/complete", body, &[]).await;
    doc.assert("POST", "/api/v1/auth/webauthn/authenticate/complete", &res);

    let full = signed_in["access_token"].as_str().unwrap();
    let now = h.clock.now_millis();
    let (res, _) = post_as(
        &h,
        "/api/v1/auth/telemetry",
        full,
        json!({"session_id": "s", "events": events(now, 3, 5, 5.0, 2, 0)}),
    )
    .await;
    doc.assert("POST", "/api/v1/auth/telemetry", &res);
    let (res, _) = get_with(&h, "/api/v1/auth/risk", full).await;
    doc.assert("GET", "/api/v1/auth/risk", &res);
    let path = format!(
        "/api/v1/auth/webauthn/credentials/{}",
        stored["id"].as_str().unwrap()
    );
    let full_hdr = format!("Bearer {full}");
    let (res, _) = send(&h, "DELETE", &path, &[("authorization", &full_hdr)], vec![]).await;
    doc.assert("DELETE", item, &res);

    // MFA-pending tokens on a memory route: 403 is documented there too.
    let (res, _) = send(&h, "POST", "/api/v1/auth/register", &[], vec![]).await;
    doc.assert("POST", "/api/v1/auth/register", &res);
    let pending = h.token_with(json!({"sub": common::random_uuid().to_string(), "iss": "memshadow", "aud": "memshadow-api", "mfa_pending": true}), 600);
    let (res, _) = get_with(&h, "/api/v1/memory", &pending).await;
    doc.assert("GET", "/api/v1/memory", &res);
}

/// The document checker above does refuse what is not documented.
#[test]
#[should_panic(expected = "undocumented property")]
fn the_document_checker_refuses_undocumented_fields() {
    let res = edge_api::http::Response {
        status: 200,
        headers: vec![("content-type".into(), "application/json".into())],
        body: br#"{"id":"x","email":"e","username":"u","created_at":"t","password_hash":"h"}"#
            .to_vec(),
    };
    Documented::new().assert("POST", "/api/v1/auth/register", &res);
}
