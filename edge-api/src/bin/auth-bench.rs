//! Native timings of the sign-in hot paths, for edge-api/AUTH.md:
//! argon2id hash and verify with the configured parameters (and a few
//! alternatives), ES256 WebAuthn assertion verification through the real
//! verifier, and access-token signing and verification.
//!
//! ```text
//! cargo run --release -p edge-api --features native --bin auth-bench [-- ROUNDS]
//! ```
//! Parameters come from the same variables as the service
//! (`MEMSHADOW_ARGON2_MEMORY_KIB`, `_ITERATIONS`, `_PARALLELISM`).

use std::time::Instant;

use coset::CborSerializable;
use coset::iana;
use edge_api::config::{Argon2Params, Config, JwtKey, JwtSigner};
use edge_api::services::accounts::{hash_password, verify_password};
use edge_api::services::tokens::{Session, access_token};
use edge_api::webauthn::{
    self, AuthenticationInput, AuthenticationResponseJson, Policy, StoredCredential,
};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use rand_core::OsRng;
use serde_json::json;
use sha2::{Digest, Sha256};

fn die(msg: &str) -> ! {
    eprintln!("auth-bench: {msg}");
    std::process::exit(2)
}

/// Runs `f` `rounds` times; returns (mean, min) milliseconds.
fn time(rounds: usize, mut f: impl FnMut()) -> (f64, f64) {
    let mut all = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        f();
        all.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let mean = all.iter().sum::<f64>() / rounds as f64;
    let min = all.iter().copied().fold(f64::INFINITY, f64::min);
    (mean, min)
}

fn b64(b: &[u8]) -> String {
    webauthn::response::base64url_encode(b)
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .map(|r| r.parse().unwrap_or_else(|_| die("ROUNDS must be a number")))
        .unwrap_or(10);
    // A throwaway verification key so the configuration parses.
    let key = SigningKey::random(&mut OsRng);
    let point = key.verifying_key().to_encoded_point(false);
    let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "bench",
        "x": b64(point.x().map(|c| c.to_vec()).unwrap_or_default().as_slice()),
        "y": b64(point.y().map(|c| c.to_vec()).unwrap_or_default().as_slice())}]})
    .to_string();
    let mut cfg = Config::from_lookup(|name| match name {
        "MEMSHADOW_JWT_PUBLIC_KEYS" => Some(jwks.clone()),
        other => std::env::var(other).ok(),
    })
    .unwrap_or_else(|e| die(&e.to_string()));

    println!("auth-bench: {rounds} rounds each, native, one thread\n");
    println!("argon2id (PHC hash; verify uses the parameters stored in it)");
    let configured = cfg.auth.argon2;
    let mut sets = vec![configured];
    for alt in [
        Argon2Params {
            memory_kib: 12 * 1024,
            iterations: 3,
            parallelism: 1,
        },
        Argon2Params {
            memory_kib: 46 * 1024,
            iterations: 1,
            parallelism: 1,
        },
        Argon2Params {
            memory_kib: 64 * 1024,
            iterations: 3,
            parallelism: 1,
        },
    ] {
        if alt != configured {
            sets.push(alt);
        }
    }
    for p in sets {
        let label = format!(
            "m={} KiB t={} p={}{}",
            p.memory_kib,
            p.iterations,
            p.parallelism,
            if p == configured { " (configured)" } else { "" }
        );
        let mut hash = String::new();
        let (hm, hmin) = time(rounds, || {
            hash = hash_password(&p, "correct horse battery staple")
                .unwrap_or_else(|e| die(&e.message));
        });
        let (vm, vmin) = time(rounds, || {
            assert!(verify_password(&hash, "correct horse battery staple"));
        });
        println!(
            "  {label:<36} hash {hm:7.2} ms (min {hmin:6.2})   verify {vm:7.2} ms (min {vmin:6.2})"
        );
    }

    // A WebAuthn assertion with a software P-256 authenticator.
    let cred_key = SigningKey::random(&mut OsRng);
    let p = cred_key.verifying_key().to_encoded_point(false);
    let cose = coset::CoseKeyBuilder::new_ec2_pub_key(
        iana::EllipticCurve::P_256,
        p.x().map(|c| c.to_vec()).unwrap_or_default(),
        p.y().map(|c| c.to_vec()).unwrap_or_default(),
    )
    .algorithm(iana::Algorithm::ES256)
    .build()
    .to_vec()
    .unwrap_or_else(|_| die("cose"));
    let challenge = [7u8; 32];
    let cred_id = [9u8; 16];
    let client_data = json!({"type": "webauthn.get", "challenge": b64(&challenge),
        "origin": "http://localhost:8787", "crossOrigin": false})
    .to_string();
    let mut auth_data = Sha256::digest(b"localhost").to_vec();
    auth_data.push(0x05);
    auth_data.extend(1u32.to_be_bytes());
    let mut signed = auth_data.clone();
    signed.extend(Sha256::digest(client_data.as_bytes()));
    let sig: Signature = cred_key.sign(&signed);
    let response: AuthenticationResponseJson = serde_json::from_value(json!({
        "id": b64(&cred_id), "rawId": b64(&cred_id), "type": "public-key",
        "response": {"clientDataJSON": b64(client_data.as_bytes()),
            "authenticatorData": b64(&auth_data), "signature": b64(sig.to_der().as_bytes())}
    }))
    .unwrap_or_else(|_| die("assertion json"));
    let origins = vec!["http://localhost:8787".to_string()];
    let policy = Policy::default();
    let input = AuthenticationInput {
        response: &response,
        expected_challenge: &challenge,
        rp_id: "localhost",
        allowed_origins: &origins,
        policy: &policy,
        stored: StoredCredential {
            credential_id: &cred_id,
            public_key_cose: &cose,
            sign_count: 0,
            user_handle: b"bench-user",
        },
        expected_user_handle: Some(b"bench-user"),
    };
    let n = rounds * 100;
    let (wm, wmin) = time(n, || {
        webauthn::verify_authentication(&input).unwrap_or_else(|e| die(e.code()));
    });
    println!("\nWebAuthn assertion verification, ES256 ({n} rounds)");
    println!("  verify_authentication               {wm:7.3} ms (min {wmin:6.3})");

    // Access tokens.
    cfg.jwt_keys.push(JwtKey {
        kid: "signer".into(),
        key: *key.verifying_key(),
    });
    cfg.auth.signer = Some(JwtSigner {
        kid: "signer".into(),
        key,
    });
    let session = Session {
        user_id: uuid::Uuid::from_u128(1),
        amr: vec!["pwd".into(), "hwk".into(), "mfa".into()],
        mfa_pending: false,
        hwk_at: Some(1_800_000_000),
    };
    let now = 1_800_000_000_000;
    let mut token = String::new();
    let (sm, smin) = time(n, || {
        token = access_token(&cfg, now, &session, &uuid::Uuid::from_u128(2))
            .unwrap_or_else(|e| die(&e.message));
    });
    let (tm, tmin) = time(n, || {
        edge_api::services::auth::verify_token(&cfg, &token, now)
            .unwrap_or_else(|e| die(&e.message));
    });
    println!("\nES256 access tokens ({n} rounds)");
    println!("  sign                                {sm:7.3} ms (min {smin:6.3})");
    println!("  verify                              {tm:7.3} ms (min {tmin:6.3})");
}
