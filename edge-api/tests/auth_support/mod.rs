//! Shared by the auth integration tests: a harness that can issue tokens,
//! request helpers, and a software authenticator that produces real
//! WebAuthn bytes (P-256 key, `none` attestation, ES256 assertions).
#![allow(dead_code)]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use edge_api::config::{Argon2Params, JwtSigner};
use edge_api::http::{Request, Response};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

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

/// A software passkey: a P-256 key, a random credential id and a counter.
/// It builds the exact bytes a browser and authenticator would send.
pub struct SoftAuthenticator {
    pub key: p256::ecdsa::SigningKey,
    pub credential_id: Vec<u8>,
    pub counter: u32,
    /// Set the UV flag (the user verified with PIN or biometrics).
    pub uv: bool,
    pub origin: String,
    pub rp_id: String,
}

impl Default for SoftAuthenticator {
    fn default() -> Self {
        Self::new()
    }
}

impl SoftAuthenticator {
    pub fn new() -> Self {
        use rand_core::{OsRng, RngCore};
        let mut id = vec![0u8; 32];
        OsRng.fill_bytes(&mut id);
        Self {
            key: p256::ecdsa::SigningKey::random(&mut OsRng),
            credential_id: id,
            counter: 0,
            uv: true,
            origin: ORIGIN.into(),
            rp_id: RP_ID.into(),
        }
    }

    fn client_data(&self, kind: &str, challenge: &str) -> Vec<u8> {
        json!({"type": kind, "challenge": challenge, "origin": self.origin, "crossOrigin": false})
            .to_string()
            .into_bytes()
    }

    fn flags(&self, attested: bool) -> u8 {
        let mut f = 0x01; // UP
        if self.uv {
            f |= 0x04;
        }
        if attested {
            f |= 0x40;
        }
        f
    }

    pub fn cose_key(&self) -> Vec<u8> {
        use coset::CborSerializable;
        use coset::iana;
        let p = self.key.verifying_key().to_encoded_point(false);
        coset::CoseKeyBuilder::new_ec2_pub_key(
            iana::EllipticCurve::P_256,
            p.x().expect("x").to_vec(),
            p.y().expect("y").to_vec(),
        )
        .algorithm(iana::Algorithm::ES256)
        .build()
        .to_vec()
        .expect("cose")
    }

    /// `navigator.credentials.create()` for `options` (the begin answer):
    /// a RegistrationResponseJSON with `state` added.
    pub fn create(&mut self, options: &Value) -> Value {
        let pk = &options["publicKey"];
        if let Some(rp) = pk["rp"]["id"].as_str() {
            assert_eq!(rp, self.rp_id);
        }
        let challenge = pk["challenge"].as_str().expect("challenge");
        let client_data = self.client_data("webauthn.create", challenge);
        let mut auth_data = Sha256::digest(self.rp_id.as_bytes()).to_vec();
        auth_data.push(self.flags(true));
        auth_data.extend(self.counter.to_be_bytes());
        auth_data.extend([0u8; 16]); // AAGUID: none
        auth_data.extend((self.credential_id.len() as u16).to_be_bytes());
        auth_data.extend(&self.credential_id);
        auth_data.extend(self.cose_key());
        let object = ciborium::Value::Map(vec![
            (
                ciborium::Value::Text("fmt".into()),
                ciborium::Value::Text("none".into()),
            ),
            (
                ciborium::Value::Text("attStmt".into()),
                ciborium::Value::Map(vec![]),
            ),
            (
                ciborium::Value::Text("authData".into()),
                ciborium::Value::Bytes(auth_data),
            ),
        ]);
        let mut att = Vec::new();
        ciborium::into_writer(&object, &mut att).expect("cbor");
        json!({
            "id": b64(&self.credential_id),
            "rawId": b64(&self.credential_id),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": b64(&client_data),
                "attestationObject": b64(&att),
                "transports": ["internal", "hybrid"],
            },
            "state": options["state"],
        })
    }

    /// `navigator.credentials.get()`: an AuthenticationResponseJSON signed
    /// over authData ‖ sha256(clientDataJSON), counter incremented.
    pub fn get(&mut self, options: &Value, user_handle: Option<&[u8]>) -> Value {
        use p256::ecdsa::signature::Signer;
        let challenge = options["publicKey"]["challenge"]
            .as_str()
            .expect("challenge");
        self.counter += 1;
        let client_data = self.client_data("webauthn.get", challenge);
        let mut auth_data = Sha256::digest(self.rp_id.as_bytes()).to_vec();
        auth_data.push(self.flags(false));
        auth_data.extend(self.counter.to_be_bytes());
        let mut signed = auth_data.clone();
        signed.extend(Sha256::digest(&client_data));
        let sig: p256::ecdsa::Signature = self.key.sign(&signed);
        let mut response = json!({
            "clientDataJSON": b64(&client_data),
            "authenticatorData": b64(&auth_data),
            "signature": b64(sig.to_der().as_bytes()),
        });
        if let Some(h) = user_handle {
            response["userHandle"] = json!(b64(h));
        }
        json!({
            "id": b64(&self.credential_id),
            "rawId": b64(&self.credential_id),
            "type": "public-key",
            "clientExtensionResults": {},
            "response": response,
        })
    }
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
    let mut auth = SoftAuthenticator::new();
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
