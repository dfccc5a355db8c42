//! Development token minting with a local ES256 key.
//!
//! ```text
//! mint-token generate [--out DIR] [--force]   write DIR/private.pem + DIR/jwks.json
//! mint-token jwks     [--keys DIR]            print the public key set
//! mint-token token    [--keys DIR] [--sub UUID] [--ttl SECONDS] [--iss ISSUER] [--aud AUDIENCE]
//! ```
//! `jwks.json` is the value for `MEMSHADOW_JWT_PUBLIC_KEYS`; `token` prints a
//! bearer token for `sub` (a random user when omitted). DIR defaults to
//! `$MEMSHADOW_DATA/dev-keys`, else `.data/dev-keys`. `generate` keeps an
//! existing key unless `--force`. Real token issuance is a later issue: this
//! key must never be trusted outside a dev stack.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use jwt_compact::alg::Es256;
use jwt_compact::{AlgorithmExt, Claims, Header};
use p256::ecdsa::SigningKey;
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rand_core::{OsRng, RngCore};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const USAGE: &str = "usage:
  mint-token generate [--out DIR] [--force]
  mint-token jwks     [--keys DIR]
  mint-token token    [--keys DIR] [--sub UUID] [--ttl SECONDS] [--iss ISSUER] [--aud AUDIENCE]";

fn die(msg: &str) -> ! {
    eprintln!("mint-token: {msg}");
    std::process::exit(2)
}

fn default_dir() -> PathBuf {
    let data = std::env::var("MEMSHADOW_DATA").unwrap_or_else(|_| ".data".into());
    PathBuf::from(data).join("dev-keys")
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The public JWK of `key`, with a kid derived from the public key, so a
/// new dev key changes the kid and stale tokens fail with `unknown_key`.
fn public_jwk(key: &SigningKey) -> Value {
    let point = key.verifying_key().to_encoded_point(false);
    let x = point.x().map(|c| c.to_vec()).unwrap_or_default();
    let y = point.y().map(|c| c.to_vec()).unwrap_or_default();
    let kid = format!(
        "dev-{}",
        &hex::encode(Sha256::digest([x.as_slice(), y.as_slice()].concat()))[..12]
    );
    json!({"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid, "x": b64(&x), "y": b64(&y)})
}

fn generate(dir: &Path, force: bool) {
    let pem_path = dir.join("private.pem");
    let jwks_path = dir.join("jwks.json");
    if pem_path.exists() && !force {
        // Keep the key, but make sure the JWKS matches it.
        let key = load(dir);
        write(
            &jwks_path,
            &json!({"keys": [public_jwk(&key)]}).to_string(),
            0o644,
        );
        eprintln!("mint-token: keeping the dev key in {}", dir.display());
        return;
    }
    std::fs::create_dir_all(dir)
        .unwrap_or_else(|e| die(&format!("cannot create {}: {e}", dir.display())));
    let key = SigningKey::random(&mut OsRng);
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .unwrap_or_else(|e| die(&format!("cannot encode the key: {e}")));
    write(&pem_path, &pem, 0o600);
    write(
        &jwks_path,
        &json!({"keys": [public_jwk(&key)]}).to_string(),
        0o644,
    );
    eprintln!(
        "mint-token: wrote {} and {}",
        pem_path.display(),
        jwks_path.display()
    );
}

fn write(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text)
        .unwrap_or_else(|e| die(&format!("cannot write {}: {e}", path.display())));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
    }
    #[cfg(not(unix))]
    let _ = mode;
}

fn load(dir: &Path) -> SigningKey {
    let path = dir.join("private.pem");
    let pem = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        die(&format!(
            "no dev key at {} ({e}); run `mint-token generate`",
            path.display()
        ))
    });
    SigningKey::from_pkcs8_pem(&pem)
        .unwrap_or_else(|_| die("private.pem is not a PKCS#8 P-256 key"))
}

fn random_uuid() -> String {
    let mut b = [0u8; 16];
    OsRng.fill_bytes(&mut b);
    uuid::Builder::from_random_bytes(b).into_uuid().to_string()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let cmd = args.next().unwrap_or_else(|| die(USAGE));
    let mut dir = default_dir();
    let mut force = false;
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
            "--out" | "--keys" => dir = PathBuf::from(val()),
            "--force" => force = true,
            "--sub" => sub = Some(val()),
            "--ttl" => ttl = val().parse().unwrap_or_else(|_| die("--ttl takes seconds")),
            "--iss" => iss = val(),
            "--aud" => aud = val(),
            other => die(&format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    match cmd.as_str() {
        "generate" => generate(&dir, force),
        "jwks" => println!("{}", json!({"keys": [public_jwk(&load(&dir))]})),
        "token" => {
            let key = load(&dir);
            let sub = sub.unwrap_or_else(random_uuid);
            if uuid::Uuid::parse_str(&sub).is_err() {
                die("--sub must be a UUID");
            }
            let now_s = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            let now = DateTime::<Utc>::from_timestamp(now_s, 0)
                .unwrap_or_else(|| die("clock out of range"));
            let mut claims = Claims::new(json!({"sub": sub, "iss": iss, "aud": aud}));
            claims.issued_at = Some(now);
            claims.not_before = Some(now);
            claims.expiration = Some(now + Duration::seconds(ttl));
            let jwk = public_jwk(&key);
            let header = Header::empty()
                .with_key_id(jwk["kid"].as_str().unwrap_or_default())
                .with_token_type("JWT");
            let token = Es256
                .token(&header, &claims, &key)
                .unwrap_or_else(|e| die(&format!("signing failed: {e}")));
            println!("{token}");
        }
        "-h" | "--help" | "help" => println!("{USAGE}"),
        other => die(&format!("unknown command {other:?}\n{USAGE}")),
    }
}
