//! Fuzzes bearer-token verification (`edge_api::services::auth::verify_token`).
//! First byte even: the rest is the token text, so the JWT parser, header and
//! base64/JSON handling see arbitrary input. Odd: the rest is the claims JSON,
//! signed here with a throwaway P-256 key the config trusts, so claims parsing
//! and the exp/nbf/iat/iss/aud/sub checks see arbitrary input too.
#![no_main]

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use edge_api::config::{Config, JWT_AUDIENCE, JWT_ISSUER, JWT_PUBLIC_KEYS};
use edge_api::services::auth::verify_token;
use libfuzzer_sys::fuzz_target;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};

/// The public half of private key 1 (the P-256 generator): a fuzzing key only.
const JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"fuzz","alg":"ES256","use":"sig",
    "x":"axfR8uEsQkf4vOblY6RA8ncDfYEt6zOg9KE5RdiYwpY","y":"T-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU"}]}"#;
const HEADER: &str = r#"{"alg":"ES256","typ":"JWT","kid":"fuzz"}"#;
/// 2026-01-01T00:00:00Z.
const NOW_MILLIS: i64 = 1_767_225_600_000;

fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        Config::from_lookup(|name| match name {
            n if n == JWT_PUBLIC_KEYS => Some(JWKS.to_owned()),
            n if n == JWT_ISSUER => Some("https://issuer.fuzz".to_owned()),
            n if n == JWT_AUDIENCE => Some("memshadow".to_owned()),
            _ => None,
        })
        .expect("fuzz config is valid")
    })
}

fn signing_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut scalar = [0u8; 32];
        scalar[31] = 1;
        SigningKey::from_slice(&scalar).expect("1 is a valid scalar")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        if let Ok(token) = std::str::from_utf8(rest) {
            let _ = verify_token(config(), token, NOW_MILLIS);
        }
        return;
    }
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(HEADER),
        URL_SAFE_NO_PAD.encode(rest)
    );
    let signature: Signature = signing_key().sign(signing_input.as_bytes());
    let token = format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature.to_bytes())
    );
    let _ = verify_token(config(), &token, NOW_MILLIS);
});
