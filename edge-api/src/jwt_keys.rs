//! The token keys in the configuration: the JWKS of P-256 public keys that
//! access tokens may be signed with, and the private key the API signs its
//! own tokens with (a JWK, or mint-token's PKCS#8 PEM).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::{SigningKey, VerifyingKey};
use serde::Deserialize;

/// One configured token-verification key.
#[derive(Debug, Clone)]
pub struct JwtKey {
    pub kid: String,
    pub key: VerifyingKey,
}

/// The access-token signing key. `Debug` never prints the private part.
#[derive(Clone)]
pub struct JwtSigner {
    pub kid: String,
    pub key: SigningKey,
}

impl std::fmt::Debug for JwtSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtSigner")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct PrivateJwk {
    kty: String,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    d: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
}

/// Parses the signing key: a private P-256 JWK with a `kid`, or a PKCS#8
/// PEM (`mint-token`'s `private.pem`; newlines may be written as `\n`),
/// whose kid is derived from the public key exactly as `mint-token` does.
pub fn parse_signing_key(doc: &str) -> Result<JwtSigner, String> {
    let doc = doc.trim();
    if doc.starts_with('{') {
        return parse_signing_jwk(doc);
    }
    use base64::engine::general_purpose::STANDARD;
    use p256::pkcs8::DecodePrivateKey;
    let body: String = doc
        .replace("\\n", "\n")
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("-----"))
        .collect();
    if !doc.starts_with("-----BEGIN PRIVATE KEY-----") {
        return Err("must be a private JWK (JSON) or a PKCS#8 PEM".into());
    }
    let der = STANDARD
        .decode(body.as_bytes())
        .map_err(|_| "the PEM body is not base64".to_string())?;
    let key = SigningKey::from_pkcs8_der(&der)
        .map_err(|_| "the PEM is not a PKCS#8 P-256 private key".to_string())?;
    Ok(JwtSigner {
        kid: derived_kid(key.verifying_key()),
        key,
    })
}

/// `dev-` + the first 12 hex digits of sha256(x ‖ y): mint-token's kid.
pub fn derived_kid(key: &VerifyingKey) -> String {
    use sha2::{Digest, Sha256};
    let point = key.to_encoded_point(false);
    let mut h = Sha256::new();
    h.update(point.x().map(|c| c.to_vec()).unwrap_or_default());
    h.update(point.y().map(|c| c.to_vec()).unwrap_or_default());
    let hex = hex::encode(h.finalize());
    format!("dev-{}", hex.get(..12).unwrap_or_default())
}

/// A private P-256 JWK; `x`/`y`, when present, must match `d`.
pub fn parse_signing_jwk(doc: &str) -> Result<JwtSigner, String> {
    let jwk: PrivateJwk =
        serde_json::from_str(doc).map_err(|_| "not a JWK JSON object".to_string())?;
    if jwk.kty != "EC" || jwk.crv.as_deref() != Some("P-256") {
        return Err("only kty EC with crv P-256 is supported".into());
    }
    let kid = jwk.kid.filter(|k| !k.is_empty()).ok_or("kid is required")?;
    let b64 = |v: Option<String>, n: &str| -> Result<Vec<u8>, String> {
        URL_SAFE_NO_PAD
            .decode(v.unwrap_or_default().trim_end_matches('='))
            .map_err(|_| format!("{n} is not base64url"))
    };
    let d = b64(jwk.d, "d")?;
    let key = SigningKey::from_slice(&d).map_err(|_| "d is not a P-256 private key".to_string())?;
    if jwk.x.is_some() || jwk.y.is_some() {
        let point = key.verifying_key().to_encoded_point(false);
        let x = point.x().map(|c| c.to_vec()).unwrap_or_default();
        let y = point.y().map(|c| c.to_vec()).unwrap_or_default();
        if b64(jwk.x, "x")? != x || b64(jwk.y, "y")? != y {
            return Err("x and y do not belong to d".into());
        }
    }
    Ok(JwtSigner { kid, key })
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default, rename = "use")]
    use_: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
    /// A private part in a public-key set is an operator mistake worth
    /// refusing: the document is configured as a (non-secret) variable.
    #[serde(default)]
    d: Option<String>,
}

/// Parses a JWKS of EC P-256 keys. Every key needs a unique `kid`.
pub fn parse_jwks(doc: &str) -> Result<Vec<JwtKey>, String> {
    let jwks: Jwks = serde_json::from_str(doc).map_err(|e| format!("not a JWKS document: {e}"))?;
    if jwks.keys.is_empty() {
        return Err("the key set is empty".into());
    }
    let mut out: Vec<JwtKey> = Vec::new();
    for (i, k) in jwks.keys.into_iter().enumerate() {
        let kid = k
            .kid
            .filter(|s| !s.is_empty())
            .ok_or(format!("key {i}: kid is required"))?;
        if k.kty != "EC" || k.crv.as_deref() != Some("P-256") {
            return Err(format!(
                "key {kid:?}: only kty EC with crv P-256 is supported"
            ));
        }
        if k.alg.as_deref().is_some_and(|a| a != "ES256")
            || k.use_.as_deref().is_some_and(|u| u != "sig")
        {
            return Err(format!("key {kid:?}: alg must be ES256 and use sig"));
        }
        if k.d.is_some() {
            return Err(format!(
                "key {kid:?}: contains a private key (d); configure public keys only"
            ));
        }
        let coord = |c: Option<String>, n: &str| -> Result<Vec<u8>, String> {
            let raw = URL_SAFE_NO_PAD
                .decode(c.unwrap_or_default().trim_end_matches('='))
                .map_err(|_| format!("key {kid:?}: {n} is not base64url"))?;
            if raw.len() != 32 {
                return Err(format!("key {kid:?}: {n} must be 32 bytes"));
            }
            Ok(raw)
        };
        let mut sec1 = vec![4u8];
        sec1.extend(coord(k.x, "x")?);
        sec1.extend(coord(k.y, "y")?);
        let key = VerifyingKey::from_sec1_bytes(&sec1)
            .map_err(|_| format!("key {kid:?}: not a point on P-256"))?;
        if out.iter().any(|o| o.kid == kid) {
            return Err(format!("key {kid:?}: duplicate kid"));
        }
        out.push(JwtKey { kid, key });
    }
    Ok(out)
}
