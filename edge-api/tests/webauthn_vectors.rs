//! End-to-end check of the WebAuthn verifier against real responses from the
//! py_webauthn and SimpleWebAuthn test suites, through the `webauthn-vectors`
//! command, plus tampered twins of every passing vector.
//!
//! The vectors are read at run time from `MEMSHADOW_WEBAUTHN_VECTORS` or
//! `/work/shared/data/webauthn/vectors.json` (provenance per case in the file:
//! `source`, `source_commit`, `source_file`, `source_test`); nothing is copied
//! into the repository.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

const DEFAULT_VECTORS: &str = "/work/shared/data/webauthn/vectors.json";

/// The code we require for every case the source suite expects to fail.
const EXPECTED_ERROR_CODES: &[(u64, &str)] = &[
    (0, "unsupported_attestation_format"), // fmt "not_real_fmt"
    (9, "token_binding_invalid"),          // tokenBinding.status "not-supported"
    (16, "signature_invalid"),             // wrong credential public key
    (17, "user_not_verified"),             // UV required, flag clear
    (23, "challenge_mismatch"), // challenge (and origin) differ; challenge is checked first
    (24, "origin_not_allowed"),
    (25, "sign_count_rollback"), // 144 -> 144
    (33, "attestation_invalid"), // x5c id-fido-gen-ce-aaguid != authData AAGUID
    (39, "challenge_mismatch"),
    (40, "origin_not_allowed"),
    (44, "rp_id_hash_mismatch"),
];

/// Cases the source accepts and we refuse on purpose, with the reason.
const POLICY_DIFFERENCES: &[(u64, &str, &str)] = &[
    (
        3,
        "unsupported_algorithm",
        "ML-DSA-44 (COSE -48) credential key: post-quantum algorithm not implemented",
    ),
    (
        21,
        "unsupported_algorithm",
        "ML-DSA-44 (COSE -48) assertion: post-quantum algorithm not implemented",
    ),
    (
        4,
        "unsupported_attestation_format",
        "android-key: only meaningful with Google roots, which we do not check",
    ),
    (
        30,
        "unsupported_attestation_format",
        "android-key: only meaningful with Google roots, which we do not check",
    ),
    (
        43,
        "unsupported_attestation_format",
        "android-key: the source even cleared its roots for this case",
    ),
    (
        5,
        "unsupported_attestation_format",
        "apple: only meaningful with Apple's root, which we do not check",
    ),
    (
        31,
        "unsupported_attestation_format",
        "apple: only meaningful with Apple's root, which we do not check",
    ),
    (
        12,
        "unsupported_attestation_format",
        "tpm: TPM vendor roots and TPM structures are not verified",
    ),
    (
        13,
        "unsupported_attestation_format",
        "tpm: TPM vendor roots and TPM structures are not verified",
    ),
    (
        14,
        "unsupported_attestation_format",
        "tpm: TPM vendor roots and TPM structures are not verified",
    ),
    (
        15,
        "unsupported_attestation_format",
        "tpm: TPM vendor roots and TPM structures are not verified",
    ),
    (
        29,
        "unsupported_attestation_format",
        "tpm: TPM vendor roots and TPM structures are not verified",
    ),
    (
        41,
        "unsupported_attestation_format",
        "tpm: TPM vendor roots and TPM structures are not verified",
    ),
    (
        42,
        "unsupported_attestation_format",
        "tpm (and an RS1/SHA-1 key we would refuse anyway)",
    ),
    (
        35,
        "malformed_response",
        "fixture rawId is the placeholder 'bbb': not canonical base64url, not the credential id",
    ),
    (
        36,
        "malformed_response",
        "fixture rawId is the placeholder 'aaa': not canonical base64url, not the credential id",
    ),
];

/// clientDataJSON members we ignore: renaming one changes the signed hash
/// without tripping any earlier check.
const IGNORED_CLIENT_DATA_MEMBERS: &[&str] = &[
    "\"hashAlgorithm\"",
    "\"clientExtensions\"",
    "\"androidPackageName\"",
    "\"other_keys_can_be_added_here\"",
];

fn vectors_path() -> PathBuf {
    std::env::var_os("MEMSHADOW_WEBAUTHN_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_VECTORS))
}

fn load_vectors() -> Vec<Value> {
    let path = vectors_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).expect("the vectors file is a JSON array")
}

/// What the command printed for one case.
#[derive(Debug, Clone)]
struct Verdict {
    verdict: String,
    error_code: Option<String>,
    sign_count: Option<u64>,
}

fn id_key(id: &Value) -> String {
    match id {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Runs `webauthn-vectors <file>` and indexes its output by vector id.
fn run_command(file: &Path) -> BTreeMap<String, Verdict> {
    let output = Command::new(env!("CARGO_BIN_EXE_webauthn-vectors"))
        .arg(file)
        .output()
        .expect("webauthn-vectors runs");
    assert!(
        output.status.success(),
        "webauthn-vectors failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut verdicts = BTreeMap::new();
    for line in String::from_utf8(output.stdout)
        .expect("UTF-8 output")
        .lines()
    {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON: {line}: {e}"));
        let verdict = Verdict {
            verdict: v["verdict"].as_str().expect("verdict").to_owned(),
            error_code: v["error_code"].as_str().map(str::to_owned),
            sign_count: v["sign_count"].as_u64(),
        };
        assert!(
            matches!(verdict.verdict.as_str(), "ok" | "error"),
            "bad verdict in {line}"
        );
        assert_eq!(
            verdict.verdict == "error",
            verdict.error_code.is_some(),
            "{line}"
        );
        let previous = verdicts.insert(id_key(&v["vector_id"]), verdict);
        assert!(previous.is_none(), "duplicate vector id in {line}");
    }
    verdicts
}

#[test]
fn every_vector_has_the_expected_verdict_or_a_documented_difference() {
    let cases = load_vectors();
    let verdicts = run_command(&vectors_path());
    assert_eq!(verdicts.len(), cases.len(), "one line per case");
    let error_codes: BTreeMap<u64, &str> = EXPECTED_ERROR_CODES.iter().copied().collect();
    let differences: BTreeMap<u64, (&str, &str)> = POLICY_DIFFERENCES
        .iter()
        .map(|(id, c, r)| (*id, (*c, *r)))
        .collect();

    let (mut agreed, mut differed) = (0, 0);
    for case in &cases {
        let id = case["vector_id"].as_u64().expect("numeric vector_id");
        let got = &verdicts[&id.to_string()];
        let expect = case["expect"].as_str().expect("expect");
        if let Some((code, reason)) = differences.get(&id) {
            assert_eq!(
                expect, "ok",
                "vector {id}: policy differences are only listed for cases the source accepts"
            );
            assert_eq!(
                got.error_code.as_deref(),
                Some(*code),
                "vector {id} ({reason})"
            );
            differed += 1;
            continue;
        }
        match expect {
            "ok" => {
                assert_eq!(
                    got.verdict, "ok",
                    "vector {id} ({}) refused: {:?}",
                    case["source_test"], got.error_code
                );
                assert_eq!(
                    got.sign_count,
                    case["authenticator_sign_count"].as_u64(),
                    "vector {id}: sign count"
                );
            }
            "error" => {
                let code = error_codes.get(&id).unwrap_or_else(|| {
                    panic!("vector {id} expects an error: add its code to EXPECTED_ERROR_CODES")
                });
                assert_eq!(
                    got.error_code.as_deref(),
                    Some(*code),
                    "vector {id} ({})",
                    case["expected_error"]
                );
            }
            other => panic!("vector {id}: unknown expect {other:?}"),
        }
        agreed += 1;
    }
    eprintln!(
        "webauthn vectors: {agreed} agree with the source, {differed} documented policy differences"
    );
    for id in error_codes.keys().chain(differences.keys()) {
        assert!(
            verdicts.contains_key(&id.to_string()),
            "listed vector {id} is not in the file"
        );
    }
}

fn b64_decode(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).expect("base64url")
}

fn b64_encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("needle present")
}

/// The `fmt`, `authData` and `attStmt.sig` of an attestation object.
fn attestation_parts(object: &[u8]) -> (String, Vec<u8>, Option<Vec<u8>>) {
    let value: ciborium::Value = ciborium::de::from_reader(object).expect("CBOR");
    let map = value.as_map().expect("map");
    let get = |name: &str| {
        map.iter()
            .find(|(k, _)| k.as_text() == Some(name))
            .map(|(_, v)| v.clone())
            .expect(name)
    };
    let fmt = get("fmt").as_text().expect("fmt").to_owned();
    let auth_data = get("authData").as_bytes().expect("authData").clone();
    let sig = get("attStmt")
        .as_map()
        .expect("attStmt")
        .iter()
        .find(|(k, _)| k.as_text() == Some("sig"))
        .and_then(|(_, v)| v.as_bytes().cloned());
    (fmt, auth_data, sig)
}

/// A copy of `case` whose base64url field at `pointer` has one byte changed.
fn twin(case: &Value, suffix: &str, pointer: &str, edit: impl FnOnce(&mut Vec<u8>)) -> Value {
    let mut copy = case.clone();
    copy["vector_id"] = Value::String(format!("{}-{suffix}", case["vector_id"]));
    let field = copy.pointer_mut(pointer).expect("field");
    let mut bytes = b64_decode(field.as_str().expect("string"));
    let before = bytes.clone();
    edit(&mut bytes);
    assert_eq!(
        before.len(),
        bytes.len(),
        "twins change one byte, not the length"
    );
    assert_eq!(
        before.iter().zip(&bytes).filter(|(a, b)| a != b).count(),
        1,
        "exactly one byte changed"
    );
    *field = Value::String(b64_encode(&bytes));
    copy
}

/// Builds the tampered twins of one passing vector, each with the code it must fail with.
fn twins_of(case: &Value) -> Vec<(Value, &'static str)> {
    let mut twins = Vec::new();
    let registration = case["kind"] == "registration";
    let (signed_by, sig_code, auth_data_pointer, auth_data_offset) = if registration {
        let object = b64_decode(
            case["response"]["response"]["attestationObject"]
                .as_str()
                .expect("attestationObject"),
        );
        let (fmt, auth_data, sig) = attestation_parts(&object);
        if let Some(sig) = &sig {
            let at = find(&object, sig) + sig.len() - 1;
            twins.push((
                twin(case, "sig", "/response/response/attestationObject", |b| {
                    b[at] ^= 0x01
                }),
                "attestation_invalid",
            ));
        }
        // packed signs all of authData; fido-u2f skips flags and counter; none signs nothing.
        let signer = match fmt.as_str() {
            "packed" => Some("all"),
            "fido-u2f" => Some("client_data"),
            _ => None,
        };
        (
            signer,
            "attestation_invalid",
            "/response/response/attestationObject",
            find(&object, &auth_data),
        )
    } else {
        let at = b64_decode(
            case["response"]["response"]["signature"]
                .as_str()
                .expect("signature"),
        )
        .len()
            - 1;
        twins.push((
            twin(case, "sig", "/response/response/signature", |b| {
                b[at] ^= 0x01
            }),
            "signature_invalid",
        ));
        (
            Some("all"),
            "signature_invalid",
            "/response/response/authenticatorData",
            0,
        )
    };

    // authData: rpIdHash[0], the UP flag, the counter's low byte.
    twins.push((
        twin(case, "authdata-rpid", auth_data_pointer, |b| {
            b[auth_data_offset] ^= 0x01
        }),
        "rp_id_hash_mismatch",
    ));
    twins.push((
        twin(case, "authdata-up", auth_data_pointer, |b| {
            b[auth_data_offset + 32] ^= 0x01
        }),
        "user_not_present",
    ));
    if signed_by == Some("all") {
        twins.push((
            twin(case, "authdata-count", auth_data_pointer, |b| {
                b[auth_data_offset + 36] ^= 0x01
            }),
            sig_code,
        ));
    }

    // clientDataJSON: one challenge character, and (where there is one) the
    // name of a member we ignore, which only the signature catches.
    let client_data = b64_decode(
        case["response"]["response"]["clientDataJSON"]
            .as_str()
            .expect("clientDataJSON"),
    );
    let challenge_at = find(&client_data, b"\"challenge\":\"") + 13;
    twins.push((
        twin(
            case,
            "cdj-challenge",
            "/response/response/clientDataJSON",
            |b| b[challenge_at] = if b[challenge_at] == b'A' { b'B' } else { b'A' },
        ),
        "challenge_mismatch",
    ));
    if signed_by.is_some()
        && let Some(member) = IGNORED_CLIENT_DATA_MEMBERS
            .iter()
            .find(|m| client_data.windows(m.len()).any(|w| w == m.as_bytes()))
    {
        let at = find(&client_data, member.as_bytes()) + 1;
        twins.push((
            twin(case, "cdj-hash", "/response/response/clientDataJSON", |b| {
                b[at] = b[at].to_ascii_uppercase()
            }),
            sig_code,
        ));
    }
    twins
}

#[test]
fn tampered_twins_of_passing_vectors_fail_with_the_right_code() {
    let cases = load_vectors();
    let verdicts = run_command(&vectors_path());
    let mut twins = Vec::new();
    let mut expected = BTreeMap::new();
    for case in &cases {
        if verdicts[&id_key(&case["vector_id"])].verdict != "ok" {
            continue;
        }
        for (twin, code) in twins_of(case) {
            expected.insert(id_key(&twin["vector_id"]), code);
            twins.push(twin);
        }
    }
    assert!(twins.len() > 60, "only {} twins generated", twins.len());

    let dir = std::env::temp_dir().join(format!("webauthn-twins-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("twins.json");
    std::fs::write(&file, serde_json::to_vec(&twins).expect("JSON")).expect("write twins");
    let got = run_command(&file);
    std::fs::remove_dir_all(&dir).ok();

    let mut wrong = Vec::new();
    for (id, code) in &expected {
        let verdict = &got[id];
        if verdict.error_code.as_deref() != Some(*code) {
            wrong.push(format!(
                "{id}: expected {code}, got {} {:?}",
                verdict.verdict, verdict.error_code
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "tampered twins not refused as expected:\n{}",
        wrong.join("\n")
    );
    eprintln!(
        "webauthn twins: {} tampered copies refused with the expected code",
        expected.len()
    );
}
