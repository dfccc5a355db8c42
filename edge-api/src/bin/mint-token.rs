//! Development token minting: keeps an ES256 dev key in a file (created on
//! first use) and prints its public JWKS and/or a signed token.
//!
//! ```text
//! mint-token [jwks|token|both] [--key FILE] [--sub UUID] [--ttl SECONDS]
//!            [--iss ISSUER] [--aud AUDIENCE]
//! ```
//! `jwks` prints the public key set (the value for MEMSHADOW_JWT_PUBLIC_KEYS),
//! `token` prints a bearer token, `both` (default) prints
//! `{"jwks":…,"token":…,"sub":…}`. The key file defaults to
//! `$MEMSHADOW_DEV_JWT_KEY`, else `$MEMSHADOW_DATA/dev-jwt-key.json`, else
//! `.data/dev-jwt-key.json`. Real token issuance is a later issue; this key
//! must never be configured outside a dev stack.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use jwt_compact::alg::Es256;
use jwt_compact::{AlgorithmExt, Claims, Header};
use p256::ecdsa::SigningKey;
use rand_core::{OsRng, RngCore};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

fn die(msg: &str) -> ! {
    eprintln!("mint-token: {msg}");
    std::process::exit(2)
}

fn default_key_path() -> PathBuf {
    if let Ok(p) = std::env::var("MEMSHADOW_DEV_JWT_KEY") {
        return PathBuf::from(p);
    }
    let data = std::env::var("MEMSHADOW_DATA").unwrap_or_else(|_| ".data".into());
    PathBuf::from(data).join("dev-jwt-key.json")
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Loads the key file, or creates it (mode 0600) with a fresh key.
fn load_or_create(path: &PathBuf) -> SigningKey {
    if let Ok(text) = std::fs::read_to_string(path) {
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| die("key file is not JSON"));
        let d = v["d"]
            .as_str()
            .unwrap_or_else(|| die("key file has no \"d\""));
        let raw = URL_SAFE_NO_PAD
            .decode(d)
            .unwrap_or_else(|_| die("key file \"d\" is not base64url"));
        return SigningKey::from_slice(&raw)
            .unwrap_or_else(|_| die("key file \"d\" is not a P-256 scalar"));
    }
    let key = SigningKey::random(&mut OsRng);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .unwrap_or_else(|e| die(&format!("cannot create {}: {e}", dir.display())));
    }
    let mut jwk = public_jwk(&key);
    jwk["d"] = json!(b64(&key.to_bytes()));
    std::fs::write(path, serde_json::to_vec_pretty(&jwk).unwrap_or_default())
        .unwrap_or_else(|e| die(&format!("cannot write {}: {e}", path.display())));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
    eprintln!("mint-token: created dev key {}", path.display());
    key
}

fn public_jwk(key: &SigningKey) -> Value {
    let point = key.verifying_key().to_encoded_point(false);
    let (x, y) = (point.x().map(|c| c.to_vec()), point.y().map(|c| c.to_vec()));
    let (x, y) = (x.unwrap_or_default(), y.unwrap_or_default());
    // A stable kid derived from the public key, so rotating the dev key
    // changes it and stale tokens fail with `unknown_key`, not a signature error.
    let kid = format!(
        "dev-{}",
        &hex::encode(Sha256::digest([x.as_slice(), y.as_slice()].concat()))[..12]
    );
    json!({"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid, "x": b64(&x), "y": b64(&y)})
}

fn random_uuid() -> String {
    let mut b = [0u8; 16];
    OsRng.fill_bytes(&mut b);
    uuid::Builder::from_random_bytes(b).into_uuid().to_string()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut mode = "both".to_string();
    let mut key_path = default_key_path();
    let mut sub = None;
    let mut ttl: i64 = 3600;
    let mut iss = "memshadow".to_string();
    let mut aud = "memshadow-api".to_string();
    while let Some(a) = args.next() {
        let mut val = || {
            args.next()
                .unwrap_or_else(|| die(&format!("{a} needs a value")))
        };
        match a.as_str() {
            "jwks" | "token" | "both" => mode = a.clone(),
            "--key" => key_path = PathBuf::from(val()),
            "--sub" => sub = Some(val()),
            "--ttl" => ttl = val().parse().unwrap_or_else(|_| die("--ttl takes seconds")),
            "--iss" => iss = val(),
            "--aud" => aud = val(),
            "-h" | "--help" => {
                println!(
                    "usage: mint-token [jwks|token|both] [--key FILE] [--sub UUID] [--ttl SECONDS] [--iss ISSUER] [--aud AUDIENCE]"
                );
                return;
            }
            other => die(&format!("unknown argument {other:?} (try --help)")),
        }
    }
    let key = load_or_create(&key_path);
    let jwk = public_jwk(&key);
    let jwks = json!({ "keys": [jwk.clone()] });
    if mode == "jwks" {
        println!("{jwks}");
        return;
    }
    let sub = sub.unwrap_or_else(random_uuid);
    if uuid::Uuid::parse_str(&sub).is_err() {
        die("--sub must be a UUID");
    }
    let now_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let now =
        DateTime::<Utc>::from_timestamp(now_s, 0).unwrap_or_else(|| die("clock out of range"));
    let mut claims = Claims::new(json!({"sub": sub, "iss": iss, "aud": aud}));
    claims.issued_at = Some(now);
    claims.not_before = Some(now);
    claims.expiration = Some(now + Duration::seconds(ttl));
    let kid = jwk["kid"].as_str().unwrap_or_default();
    let header = Header::empty().with_key_id(kid).with_token_type("JWT");
    let token = Es256
        .token(&header, &claims, &key)
        .unwrap_or_else(|e| die(&format!("signing failed: {e}")));
    match mode.as_str() {
        "token" => println!("{token}"),
        _ => println!("{}", json!({"jwks": jwks, "token": token, "sub": sub})),
    }
}
