//! A software WebAuthn passkey: a P-256 key, a random credential id and a
//! signature counter, which answers the API's ceremony options with the
//! bytes a browser and an authenticator would send.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub struct SoftAuthenticator {
    pub key: p256::ecdsa::SigningKey,
    pub credential_id: Vec<u8>,
    pub counter: u32,
    /// Set the UV flag (the user verified with PIN or biometrics).
    pub uv: bool,
    /// The page's origin the browser reports in clientDataJSON.
    pub origin: String,
    /// The relying party id the authenticator scopes the credential to.
    pub rp_id: String,
}

impl SoftAuthenticator {
    pub fn new(origin: &str, rp_id: &str) -> Self {
        use rand_core::{OsRng, RngCore};
        let mut id = vec![0u8; 32];
        OsRng.fill_bytes(&mut id);
        Self {
            key: p256::ecdsa::SigningKey::random(&mut OsRng),
            credential_id: id,
            counter: 0,
            uv: true,
            origin: origin.into(),
            rp_id: rp_id.into(),
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
            assert_eq!(rp, self.rp_id, "the options name another relying party");
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
