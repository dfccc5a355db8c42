//! COSE credential public keys (RFC 9052/9053 via `coset`) turned into
//! verifying keys, and the signature algorithms we accept: ES256 (P-256,
//! DER-encoded ECDSA), EdDSA (Ed25519), RS256 (RSASSA-PKCS1-v1_5 with
//! SHA-256) and PS256 (RSASSA-PSS with SHA-256).
//!
//! A key must carry its `alg` (WebAuthn requires it) and every parameter must
//! agree with it: ES256 ⇔ kty EC2, crv P-256; EdDSA ⇔ kty OKP, crv Ed25519;
//! RS256, PS256 ⇔ kty RSA. Anything else is `unsupported_algorithm` (an algorithm we
//! do not offer) or `cose_key_invalid` (a key that contradicts its algorithm
//! or is not a valid point / modulus).

use coset::iana::{self, EnumI64};
use coset::{AsCborValue, CoseKey, KeyType, Label, RegisteredLabelWithPrivate};

use super::errors::{Result, WebauthnError};

/// A COSE algorithm identifier (IANA "COSE Algorithms" registry).
pub type CoseAlgId = i64;

/// The signature algorithms this verifier implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    /// ECDSA P-256 with SHA-256, COSE -7.
    Es256,
    /// Ed25519, COSE -8.
    EdDsa,
    /// RSASSA-PKCS1-v1_5 with SHA-256, COSE -257.
    Rs256,
    /// RSASSA-PSS with SHA-256 and a 32-byte salt, COSE -37.
    Ps256,
}

impl Alg {
    /// All implemented algorithms, in the default preference order.
    pub const ALL: [Alg; 4] = [Alg::Es256, Alg::EdDsa, Alg::Rs256, Alg::Ps256];

    /// The COSE algorithm id.
    pub const fn cose_id(self) -> CoseAlgId {
        match self {
            Alg::Es256 => -7,
            Alg::EdDsa => -8,
            Alg::Rs256 => -257,
            Alg::Ps256 => -37,
        }
    }

    /// The algorithm for a COSE id, if we implement it.
    pub const fn from_cose_id(id: CoseAlgId) -> Option<Alg> {
        match id {
            -7 => Some(Alg::Es256),
            -8 => Some(Alg::EdDsa),
            -257 => Some(Alg::Rs256),
            -37 => Some(Alg::Ps256),
            _ => None,
        }
    }

    /// The JOSE-style name, for logs and docs.
    pub const fn name(self) -> &'static str {
        match self {
            Alg::Es256 => "ES256",
            Alg::EdDsa => "EdDSA",
            Alg::Rs256 => "RS256",
            Alg::Ps256 => "PS256",
        }
    }
}

/// Deepest CBOR nesting accepted in a COSE key.
const CBOR_RECURSION_LIMIT: usize = 16;

/// Smallest RSA modulus accepted for credential keys.
const RSA_MIN_BITS: usize = 2048;

/// A credential public key ready to verify signatures.
#[derive(Debug, Clone)]
pub enum CredentialPublicKey {
    Es256(p256::ecdsa::VerifyingKey),
    EdDsa(ed25519_dalek::VerifyingKey),
    Rs256(rsa::RsaPublicKey),
    Ps256(rsa::RsaPublicKey),
}

impl CredentialPublicKey {
    /// Parses a COSE_Key from its CBOR bytes (e.g. a stored credential key).
    /// Trailing bytes are refused.
    pub fn from_cose_bytes(bytes: &[u8], supported: &[CoseAlgId]) -> Result<Self> {
        let mut cursor = bytes;
        let value: ciborium::Value =
            ciborium::de::from_reader_with_recursion_limit(&mut cursor, CBOR_RECURSION_LIMIT)
                .map_err(|_| WebauthnError::CoseKeyInvalid)?;
        if !cursor.is_empty() {
            return Err(WebauthnError::CoseKeyInvalid);
        }
        Self::from_cbor_value(value, supported)
    }

    /// Validates a decoded CBOR value as a COSE_Key. An integer `alg` we do
    /// not accept is `unsupported_algorithm` even when `coset` does not know
    /// the algorithm (e.g. ML-DSA, -48), so callers see why the key was refused.
    pub fn from_cbor_value(value: ciborium::Value, supported: &[CoseAlgId]) -> Result<Self> {
        if let Some(alg) = peek_alg(&value)
            && (!supported.contains(&alg) || Alg::from_cose_id(alg).is_none())
        {
            return Err(WebauthnError::UnsupportedAlgorithm);
        }
        let key = CoseKey::from_cbor_value(value).map_err(|_| WebauthnError::CoseKeyInvalid)?;
        Self::from_cose_key(&key, supported)
    }

    /// Validates a decoded COSE_Key: its `alg` must be in `supported` and
    /// implemented, and its parameters must form a valid key of that kind.
    pub fn from_cose_key(key: &CoseKey, supported: &[CoseAlgId]) -> Result<Self> {
        let alg_id = match &key.alg {
            Some(RegisteredLabelWithPrivate::Assigned(a)) => a.to_i64(),
            Some(RegisteredLabelWithPrivate::PrivateUse(a)) => *a,
            // WebAuthn §6.5.1.1: the credential public key MUST contain alg.
            Some(RegisteredLabelWithPrivate::Text(_)) | None => {
                return Err(WebauthnError::CoseKeyInvalid);
            }
        };
        if !supported.contains(&alg_id) {
            return Err(WebauthnError::UnsupportedAlgorithm);
        }
        let alg = Alg::from_cose_id(alg_id).ok_or(WebauthnError::UnsupportedAlgorithm)?;
        match alg {
            Alg::Es256 => es256_key(key).map(Self::Es256),
            Alg::EdDsa => eddsa_key(key).map(Self::EdDsa),
            Alg::Rs256 => rsa_key(key).map(Self::Rs256),
            Alg::Ps256 => rsa_key(key).map(Self::Ps256),
        }
    }

    /// The algorithm this key verifies.
    pub fn alg(&self) -> Alg {
        match self {
            Self::Es256(_) => Alg::Es256,
            Self::EdDsa(_) => Alg::EdDsa,
            Self::Rs256(_) => Alg::Rs256,
            Self::Ps256(_) => Alg::Ps256,
        }
    }

    /// Verifies `signature` over `message` (the algorithm hashes the message
    /// itself). Any failure, including an undecodable signature, is
    /// `signature_invalid`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<()> {
        let ok = match self {
            Self::Es256(key) => verify_es256(key, message, signature),
            Self::EdDsa(key) => verify_eddsa(key, message, signature),
            Self::Rs256(key) => verify_rs256(key, message, signature),
            Self::Ps256(key) => verify_ps256(key, message, signature),
        };
        if ok {
            Ok(())
        } else {
            Err(WebauthnError::SignatureInvalid)
        }
    }

    /// The uncompressed SEC1 point `0x04 ‖ x ‖ y` of a P-256 key (FIDO U2F).
    pub fn p256_uncompressed_point(&self) -> Option<Vec<u8>> {
        match self {
            Self::Es256(key) => Some(key.to_encoded_point(false).as_bytes().to_vec()),
            _ => None,
        }
    }
}

/// ECDSA P-256/SHA-256 over a DER signature (what authenticators emit).
/// High-S signatures are accepted: authenticators are not required to
/// normalise and WebAuthn has no malleability concern (the challenge is fresh).
pub fn verify_es256(key: &p256::ecdsa::VerifyingKey, message: &[u8], der_signature: &[u8]) -> bool {
    use p256::ecdsa::signature::Verifier as _;
    match p256::ecdsa::DerSignature::try_from(der_signature) {
        Ok(sig) => key.verify(message, &sig).is_ok(),
        Err(_) => false,
    }
}

/// Ed25519 with the strict checks (canonical S, no small-order keys).
pub fn verify_eddsa(key: &ed25519_dalek::VerifyingKey, message: &[u8], signature: &[u8]) -> bool {
    match ed25519_dalek::Signature::from_slice(signature) {
        Ok(sig) => key.verify_strict(message, &sig).is_ok(),
        Err(_) => false,
    }
}

/// RSASSA-PKCS1-v1_5 with SHA-256.
pub fn verify_rs256(key: &rsa::RsaPublicKey, message: &[u8], signature: &[u8]) -> bool {
    use rsa::signature::Verifier as _;
    let verifier = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(key.clone());
    match rsa::pkcs1v15::Signature::try_from(signature) {
        Ok(sig) => verifier.verify(message, &sig).is_ok(),
        Err(_) => false,
    }
}

/// The integer `alg` (label 3) of a CBOR map, if there is exactly one.
fn peek_alg(value: &ciborium::Value) -> Option<i64> {
    let mut algs = value
        .as_map()?
        .iter()
        .filter(|(k, _)| k.as_integer() == Some(3.into()))
        .map(|(_, v)| v.as_integer().and_then(|i| i64::try_from(i).ok()));
    match (algs.next(), algs.next()) {
        (Some(alg), None) => alg,
        _ => None,
    }
}

/// RSASSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt (RFC 8230 §2).
pub fn verify_ps256(key: &rsa::RsaPublicKey, message: &[u8], signature: &[u8]) -> bool {
    use rsa::signature::Verifier as _;
    let verifier = rsa::pss::VerifyingKey::<sha2::Sha256>::new(key.clone());
    match rsa::pss::Signature::try_from(signature) {
        Ok(sig) => verifier.verify(message, &sig).is_ok(),
        Err(_) => false,
    }
}

fn param(key: &CoseKey, label: i64) -> Option<&ciborium::Value> {
    key.params
        .iter()
        .find(|(l, _)| *l == Label::Int(label))
        .map(|(_, v)| v)
}

fn param_bytes(key: &CoseKey, label: i64) -> Result<&[u8]> {
    match param(key, label) {
        Some(ciborium::Value::Bytes(b)) => Ok(b.as_slice()),
        _ => Err(WebauthnError::CoseKeyInvalid),
    }
}

fn param_int(key: &CoseKey, label: i64) -> Result<i64> {
    match param(key, label) {
        Some(ciborium::Value::Integer(i)) => {
            i64::try_from(*i).map_err(|_| WebauthnError::CoseKeyInvalid)
        }
        _ => Err(WebauthnError::CoseKeyInvalid),
    }
}

fn es256_key(key: &CoseKey) -> Result<p256::ecdsa::VerifyingKey> {
    if key.kty != KeyType::Assigned(iana::KeyType::EC2) {
        return Err(WebauthnError::CoseKeyInvalid);
    }
    if param_int(key, iana::Ec2KeyParameter::Crv.to_i64())? != iana::EllipticCurve::P_256.to_i64() {
        return Err(WebauthnError::CoseKeyInvalid);
    }
    let x = param_bytes(key, iana::Ec2KeyParameter::X.to_i64())?;
    // Compressed points (y as a bool) are not used by authenticators; refuse them.
    let y = param_bytes(key, iana::Ec2KeyParameter::Y.to_i64())?;
    if x.len() != 32 || y.len() != 32 {
        return Err(WebauthnError::CoseKeyInvalid);
    }
    let mut sec1 = Vec::with_capacity(65);
    sec1.push(0x04);
    sec1.extend_from_slice(x);
    sec1.extend_from_slice(y);
    // from_sec1_bytes rejects points not on the curve and the identity.
    p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).map_err(|_| WebauthnError::CoseKeyInvalid)
}

fn eddsa_key(key: &CoseKey) -> Result<ed25519_dalek::VerifyingKey> {
    if key.kty != KeyType::Assigned(iana::KeyType::OKP) {
        return Err(WebauthnError::CoseKeyInvalid);
    }
    if param_int(key, iana::OkpKeyParameter::Crv.to_i64())? != iana::EllipticCurve::Ed25519.to_i64()
    {
        return Err(WebauthnError::CoseKeyInvalid);
    }
    let x = param_bytes(key, iana::OkpKeyParameter::X.to_i64())?;
    let bytes: &[u8; 32] = x.try_into().map_err(|_| WebauthnError::CoseKeyInvalid)?;
    let vk = ed25519_dalek::VerifyingKey::from_bytes(bytes)
        .map_err(|_| WebauthnError::CoseKeyInvalid)?;
    if vk.is_weak() {
        return Err(WebauthnError::CoseKeyInvalid);
    }
    Ok(vk)
}

fn rsa_key(key: &CoseKey) -> Result<rsa::RsaPublicKey> {
    if key.kty != KeyType::Assigned(iana::KeyType::RSA) {
        return Err(WebauthnError::CoseKeyInvalid);
    }
    let n = param_bytes(key, iana::RsaKeyParameter::N.to_i64())?;
    let e = param_bytes(key, iana::RsaKeyParameter::E.to_i64())?;
    let n = rsa::BigUint::from_bytes_be(n);
    let e = rsa::BigUint::from_bytes_be(e);
    if n.bits() < RSA_MIN_BITS {
        return Err(WebauthnError::CoseKeyInvalid);
    }
    // new() enforces the 4096-bit maximum and a sane exponent.
    rsa::RsaPublicKey::new(n, e).map_err(|_| WebauthnError::CoseKeyInvalid)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use super::*;
    use crate::webauthn::response::base64url_decode;
    use coset::{CborSerializable, CoseKeyBuilder};

    const ALL: [CoseAlgId; 4] = [-7, -8, -257, -37];

    /// Credential keys from py_webauthn's authentication tests (vectors 18 and 16/20 in
    /// /work/shared/data/webauthn/vectors.json).
    const EC2_KEY: &str = "pQECAyYgASFYIIeDTe-gN8A-zQclHoRnGFWN8ehM1b7yAsa8I8KIvmplIlgg4nFGT5px8o6gpPZZhO01wdy9crDSA_Ngtkx0vGpvPHI";
    const RSA_KEY: &str = "pAEDAzkBACBZAQDfV20epzvQP-HtcdDpX-cGzdOxy73WQEvsU7Dnr9UWJophEfpngouvgnRLXaEUn_d8HGkp_HIx8rrpkx4BVs6X_B6ZjhLlezjIdJbLbVeb92BaEsmNn1HW2N9Xj2QM8cH-yx28_vCjf82ahQ9gyAr552Bn96G22n8jqFRQKdVpO-f-bvpvaP3IQ9F5LCX7CUaxptgbog1SFO6FI6ob5SlVVB00lVXsaYg8cIDZxCkkENkGiFPgwEaZ7995SCbiyCpUJbMqToLMgojPkAhWeyktu7TlK6UBWdJMHc3FPAIs0lH_2_2hKS-mGI1uZAFVAfW1X-mzKL0czUm2P1UlUox7IUMBAAE";

    #[test]
    fn real_keys_parse() {
        let ec = CredentialPublicKey::from_cose_bytes(&base64url_decode(EC2_KEY).unwrap(), &ALL)
            .unwrap();
        assert_eq!(ec.alg(), Alg::Es256);
        let rsa = CredentialPublicKey::from_cose_bytes(&base64url_decode(RSA_KEY).unwrap(), &ALL)
            .unwrap();
        assert_eq!(rsa.alg(), Alg::Rs256);
    }

    #[test]
    fn policy_restricts_algorithms() {
        let ec = base64url_decode(EC2_KEY).unwrap();
        assert_eq!(
            CredentialPublicKey::from_cose_bytes(&ec, &[-8, -257]).err(),
            Some(WebauthnError::UnsupportedAlgorithm)
        );
    }

    #[test]
    fn trailing_bytes_and_garbage_refused() {
        let mut ec = base64url_decode(EC2_KEY).unwrap();
        ec.push(0);
        assert_eq!(
            CredentialPublicKey::from_cose_bytes(&ec, &ALL).err(),
            Some(WebauthnError::CoseKeyInvalid)
        );
        assert_eq!(
            CredentialPublicKey::from_cose_bytes(&[0xa0], &ALL).err(),
            Some(WebauthnError::CoseKeyInvalid)
        );
        assert_eq!(
            CredentialPublicKey::from_cose_bytes(&[0xff], &ALL).err(),
            Some(WebauthnError::CoseKeyInvalid)
        );
    }

    fn ec2(x: Vec<u8>, y: Vec<u8>, alg: iana::Algorithm) -> CoseKey {
        CoseKeyBuilder::new_ec2_pub_key(iana::EllipticCurve::P_256, x, y)
            .algorithm(alg)
            .build()
    }

    #[test]
    fn ec2_key_checks() {
        let real = CoseKey::from_slice(&base64url_decode(EC2_KEY).unwrap()).unwrap();
        let x = param_bytes(&real, -2).unwrap().to_vec();
        let y = param_bytes(&real, -3).unwrap().to_vec();
        assert!(
            CredentialPublicKey::from_cose_key(
                &ec2(x.clone(), y.clone(), iana::Algorithm::ES256),
                &ALL
            )
            .is_ok()
        );
        // Point off the curve.
        let mut bad_y = y.clone();
        bad_y[31] ^= 1;
        assert_eq!(
            CredentialPublicKey::from_cose_key(
                &ec2(x.clone(), bad_y, iana::Algorithm::ES256),
                &ALL
            )
            .err(),
            Some(WebauthnError::CoseKeyInvalid)
        );
        // Short coordinate.
        assert_eq!(
            CredentialPublicKey::from_cose_key(
                &ec2(x[1..].to_vec(), y.clone(), iana::Algorithm::ES256),
                &ALL
            )
            .err(),
            Some(WebauthnError::CoseKeyInvalid)
        );
        // alg contradicts kty.
        assert_eq!(
            CredentialPublicKey::from_cose_key(
                &ec2(x.clone(), y.clone(), iana::Algorithm::EdDSA),
                &ALL
            )
            .err(),
            Some(WebauthnError::CoseKeyInvalid)
        );
        // alg we do not implement (ES384).
        assert_eq!(
            CredentialPublicKey::from_cose_key(
                &ec2(x.clone(), y.clone(), iana::Algorithm::ES384),
                &[-35]
            )
            .err(),
            Some(WebauthnError::UnsupportedAlgorithm)
        );
        // alg missing.
        let no_alg = CoseKeyBuilder::new_ec2_pub_key(iana::EllipticCurve::P_256, x, y).build();
        assert_eq!(
            CredentialPublicKey::from_cose_key(&no_alg, &ALL).err(),
            Some(WebauthnError::CoseKeyInvalid)
        );
    }

    #[test]
    fn okp_key_checks() {
        let okp = |x: Vec<u8>, crv| {
            CoseKeyBuilder::new_okp_key()
                .param(-1, ciborium::Value::from(crv as i64))
                .param(-2, ciborium::Value::Bytes(x))
                .algorithm(iana::Algorithm::EdDSA)
                .build()
        };
        // RFC 8032 test 1 public key.
        let pk = hex::decode("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
            .unwrap();
        assert!(CredentialPublicKey::from_cose_key(&okp(pk.clone(), 6), &ALL).is_ok());
        assert_eq!(
            CredentialPublicKey::from_cose_key(&okp(pk.clone(), 4), &ALL).err(),
            Some(WebauthnError::CoseKeyInvalid)
        );
        assert_eq!(
            CredentialPublicKey::from_cose_key(&okp(pk[..31].to_vec(), 6), &ALL).err(),
            Some(WebauthnError::CoseKeyInvalid)
        );
        // The identity point is a small-order (weak) key.
        let mut identity = vec![0u8; 32];
        identity[0] = 1;
        assert_eq!(
            CredentialPublicKey::from_cose_key(&okp(identity, 6), &ALL).err(),
            Some(WebauthnError::CoseKeyInvalid)
        );
    }

    #[test]
    fn rsa_key_checks() {
        let rsa = |n: Vec<u8>| {
            CoseKeyBuilder::new()
                .param(-1, ciborium::Value::Bytes(n))
                .param(-2, ciborium::Value::Bytes(vec![1, 0, 1]))
                .algorithm(iana::Algorithm::RS256)
                .build()
        };
        let rsa_kty = |n| {
            let mut k = rsa(n);
            k.kty = KeyType::Assigned(iana::KeyType::RSA);
            k
        };
        let real = CoseKey::from_slice(&base64url_decode(RSA_KEY).unwrap()).unwrap();
        let n = param_bytes(&real, -1).unwrap().to_vec();
        assert!(CredentialPublicKey::from_cose_key(&rsa_kty(n.clone()), &ALL).is_ok());
        assert_eq!(
            CredentialPublicKey::from_cose_key(&rsa_kty(n[..128].to_vec()), &ALL).err(),
            Some(WebauthnError::CoseKeyInvalid)
        );
        assert_eq!(
            CredentialPublicKey::from_cose_key(&rsa(n), &ALL).err(),
            Some(WebauthnError::CoseKeyInvalid)
        );
    }

    #[test]
    fn garbage_signatures_are_invalid_not_panics() {
        let ec = CredentialPublicKey::from_cose_bytes(&base64url_decode(EC2_KEY).unwrap(), &ALL)
            .unwrap();
        let rsa = CredentialPublicKey::from_cose_bytes(&base64url_decode(RSA_KEY).unwrap(), &ALL)
            .unwrap();
        for key in [ec, rsa] {
            for sig in [&[][..], &[0x30, 0x00], &[0u8; 256], &[0xffu8; 512]] {
                assert_eq!(
                    key.verify(b"msg", sig),
                    Err(WebauthnError::SignatureInvalid)
                );
            }
        }
    }
}
