//! Fuzzes a whole registration whose attestation object is the input: CBOR
//! decoding, authenticator data, COSE key, and the none/packed/fido-u2f
//! statement verifiers (x5c DER certificates included). Nothing may panic.
#![no_main]

use edge_api::webauthn::attestation::parse_attestation_object;
use edge_api::webauthn::authenticator_data::parse_authenticator_data;
use edge_api::webauthn::response::{
    AuthenticatorAttestationResponseJson, Base64UrlBytes, base64url_encode,
};
use edge_api::webauthn::{
    Policy, RegistrationInput, RegistrationResponseJson, verify_registration,
};
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

const CLIENT_DATA: &[u8] =
    br#"{"type":"webauthn.create","challenge":"AAECAw","origin":"https://fuzz.example"}"#;

/// RP IDs of the seed vectors: choosing the one whose hash the input carries
/// lets mutated real objects get past the rpIdHash check.
const RP_IDS: &[&str] = &[
    "localhost",
    "dev.dontneeda.pw",
    "dev2.dontneeda.pw",
    "webauthn.io",
    "duo.test",
    "webauthntest.azurewebsites.net",
];

fuzz_target!(|data: &[u8]| {
    let Ok(object) = parse_attestation_object(data) else {
        return;
    };
    let auth_data = parse_authenticator_data(&object.auth_data).ok();
    let raw_id = auth_data
        .as_ref()
        .and_then(|a| a.attested_credential.as_ref())
        .map(|c| c.credential_id.clone())
        .unwrap_or_default();
    let rp_id = RP_IDS
        .iter()
        .find(|rp| object.auth_data.get(..32) == Some(&Sha256::digest(rp.as_bytes())[..]))
        .copied()
        .unwrap_or("localhost");
    let response = RegistrationResponseJson {
        id: base64url_encode(&raw_id),
        raw_id: Base64UrlBytes(raw_id),
        type_: "public-key".into(),
        response: AuthenticatorAttestationResponseJson {
            client_data_json: Base64UrlBytes(CLIENT_DATA.to_vec()),
            attestation_object: Base64UrlBytes(data.to_vec()),
        },
    };
    let policy = Policy {
        require_user_verification: false,
        ..Policy::default()
    };
    let allowed = ["https://fuzz.example".to_owned()];
    let _ = verify_registration(&RegistrationInput {
        response: &response,
        expected_challenge: &[0, 1, 2, 3],
        rp_id,
        allowed_origins: &allowed,
        policy: &policy,
    });
});
