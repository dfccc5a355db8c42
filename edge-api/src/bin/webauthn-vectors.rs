//! Runs a file of WebAuthn test vectors through the edge-api verifier and
//! prints one JSON line per case: `{"vector_id", "verdict", "error_code"}`
//! (plus `sign_count` when the verdict is `ok`).
//!
//! Usage: `webauthn-vectors <vectors.json>`. The file is a JSON array in the
//! format of `/work/shared/data/webauthn/vectors.json` (its README describes
//! the fields). Each case's own settings are passed to the verifier:
//! `require_user_verification` (absent: not required), `supported_pub_key_algs`
//! (absent: every algorithm we implement), `allow_cross_origin` (absent:
//! false), `prev_sign_count` (absent: 0) and `x509_validation_time` (absent:
//! certificate validity not checked). `rp_id` and `origin` are the expected
//! RP ID and the single allowed origin. For authentication cases the stored
//! credential is `credential_public_key_b64url` under the response's `rawId`,
//! owned by the response's `userHandle` (or a fixed handle when absent), and
//! that owner is the expected user.
//!
//! Exit status: 0 when every case was evaluated (whatever the verdicts), 2
//! when the file cannot be read or is not a JSON array.

use std::io::Write as _;
use std::process::ExitCode;

use edge_api::webauthn::response::base64url_decode;
use edge_api::webauthn::{
    AuthenticationInput, AuthenticationResponseJson, Policy, RegistrationInput,
    RegistrationResponseJson, StoredCredential, verify_authentication, verify_registration,
};
use serde::Deserialize as _;
use serde_json::{Value, json};

/// Owner used for authentication cases whose response has no `userHandle`.
const DEFAULT_USER_HANDLE: &[u8] = b"webauthn-vectors-user";

/// A case the tool cannot even set up (a broken vector, not a verdict).
struct BadVector(&'static str);

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(path), None) = (args.next(), args.next()) else {
        eprintln!("usage: webauthn-vectors <vectors.json>");
        return ExitCode::from(2);
    };
    let cases: Vec<Value> = match std::fs::read_to_string(&path)
        .map_err(|e| e.to_string())
        .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()))
    {
        Ok(cases) => cases,
        Err(e) => {
            eprintln!("webauthn-vectors: {path}: {e}");
            return ExitCode::from(2);
        }
    };

    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for (index, case) in cases.iter().enumerate() {
        let id = case
            .get("vector_id")
            .cloned()
            .unwrap_or_else(|| json!(index));
        let line = match run_case(case) {
            Ok(Ok(sign_count)) => {
                json!({"vector_id": id, "verdict": "ok", "error_code": null, "sign_count": sign_count})
            }
            Ok(Err(code)) => json!({"vector_id": id, "verdict": "error", "error_code": code}),
            Err(BadVector(why)) => {
                json!({"vector_id": id, "verdict": "error", "error_code": "invalid_vector", "detail": why})
            }
        };
        if writeln!(out, "{line}").is_err() {
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}

fn text<'v>(case: &'v Value, key: &'static str) -> Result<&'v str, BadVector> {
    case.get(key).and_then(Value::as_str).ok_or(BadVector(key))
}

fn b64(case: &Value, key: &'static str) -> Result<Vec<u8>, BadVector> {
    base64url_decode(text(case, key)?).ok_or(BadVector(key))
}

fn policy(case: &Value) -> Result<Policy, BadVector> {
    let mut policy = Policy {
        require_user_verification: case
            .get("require_user_verification")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        allow_cross_origin: case
            .get("allow_cross_origin")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        ..Policy::default()
    };
    if let Some(algs) = case.get("supported_pub_key_algs").and_then(Value::as_array) {
        policy.supported_algs = algs
            .iter()
            .map(|a| a.as_i64().ok_or(BadVector("supported_pub_key_algs")))
            .collect::<Result<_, _>>()?;
    }
    if let Some(time) = case.get("x509_validation_time").and_then(Value::as_str) {
        let parsed = chrono::DateTime::parse_from_rfc3339(time)
            .map_err(|_| BadVector("x509_validation_time"))?;
        policy.certificate_time = Some(parsed.timestamp());
    }
    Ok(policy)
}

/// `Ok(Ok(sign_count))`, `Ok(Err(error_code))`, or a broken vector.
fn run_case(case: &Value) -> Result<Result<u32, &'static str>, BadVector> {
    let policy = policy(case)?;
    let rp_id = text(case, "rp_id")?;
    let allowed_origins = vec![text(case, "origin")?.to_owned()];
    let challenge = b64(case, "challenge_b64url")?;
    let response = case.get("response").ok_or(BadVector("response"))?;

    match text(case, "kind")? {
        "registration" => {
            let Ok(response) = RegistrationResponseJson::deserialize(response) else {
                return Ok(Err("malformed_response"));
            };
            let result = verify_registration(&RegistrationInput {
                response: &response,
                expected_challenge: &challenge,
                rp_id,
                allowed_origins: &allowed_origins,
                policy: &policy,
            });
            Ok(result.map(|c| c.sign_count).map_err(|e| e.code()))
        }
        "authentication" => {
            let Ok(response) = AuthenticationResponseJson::deserialize(response) else {
                return Ok(Err("malformed_response"));
            };
            let public_key = b64(case, "credential_public_key_b64url")?;
            let prev = case
                .get("prev_sign_count")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            let prev = u32::try_from(prev).map_err(|_| BadVector("prev_sign_count"))?;
            let owner = response
                .response
                .user_handle()
                .unwrap_or(DEFAULT_USER_HANDLE)
                .to_vec();
            let result = verify_authentication(&AuthenticationInput {
                response: &response,
                expected_challenge: &challenge,
                rp_id,
                allowed_origins: &allowed_origins,
                policy: &policy,
                stored: StoredCredential {
                    credential_id: &response.raw_id.0,
                    public_key_cose: &public_key,
                    sign_count: prev,
                    user_handle: &owner,
                },
                expected_user_handle: Some(&owner),
            });
            Ok(result.map(|o| o.new_sign_count).map_err(|e| e.code()))
        }
        _ => Err(BadVector("kind")),
    }
}
