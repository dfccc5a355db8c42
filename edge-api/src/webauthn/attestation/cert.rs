//! Attestation certificates: DER parsing, the leaf requirements of WebAuthn
//! §8.2.1 (packed) and extraction of the leaf's signature-verifying key.
//!
//! No chain building and no revocation: see the trust policy in the parent
//! module. Validity dates are checked only when the caller supplies a time.

use der::asn1::{ObjectIdentifier, OctetString};
use der::{Decode, Encode, Tag, Tagged};
use x509_cert::Certificate;
use x509_cert::certificate::Version;
use x509_cert::ext::pkix::BasicConstraints;

use crate::webauthn::cose::{verify_eddsa, verify_es256, verify_ps256, verify_rs256};
use crate::webauthn::errors::{Result, WebauthnError};

const OID_COUNTRY: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.6");
const OID_ORGANIZATION: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.10");
const OID_ORG_UNIT: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.11");
const OID_COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
const OID_BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");
/// id-fido-gen-ce-aaguid.
const OID_FIDO_AAGUID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.45724.1.1.4");
const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// BasicConstraints `SEQUENCE { BOOLEAN FALSE }`: cA=FALSE written out although
/// DER omits defaults. Chrome's virtual authenticator emits it; it still
/// unambiguously says "not a CA", so it is accepted.
const BASIC_CONSTRAINTS_EXPLICIT_FALSE: [u8; 5] = [0x30, 0x03, 0x01, 0x01, 0x00];

/// The subject public key of an attestation certificate.
#[derive(Debug, Clone)]
pub enum CertKey {
    P256(p256::ecdsa::VerifyingKey),
    Rsa(rsa::RsaPublicKey),
    Ed25519(ed25519_dalek::VerifyingKey),
}

impl CertKey {
    /// The certificate's subject public key (P-256, RSA or Ed25519).
    pub fn from_certificate(cert: &Certificate) -> Result<Self> {
        let spki = &cert.tbs_certificate.subject_public_key_info;
        let key_bytes = spki
            .subject_public_key
            .as_bytes()
            .ok_or(WebauthnError::AttestationInvalid)?;
        let alg = spki.algorithm.oid;
        if alg == OID_EC_PUBLIC_KEY {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
            if curve != Some(OID_P256) {
                return Err(WebauthnError::AttestationInvalid);
            }
            p256::ecdsa::VerifyingKey::from_sec1_bytes(key_bytes)
                .map(Self::P256)
                .map_err(|_| WebauthnError::AttestationInvalid)
        } else if alg == OID_RSA_ENCRYPTION {
            use rsa::pkcs8::DecodePublicKey as _;
            let der = spki
                .to_der()
                .map_err(|_| WebauthnError::AttestationInvalid)?;
            rsa::RsaPublicKey::from_public_key_der(&der)
                .map(Self::Rsa)
                .map_err(|_| WebauthnError::AttestationInvalid)
        } else if alg == OID_ED25519 {
            let bytes: &[u8; 32] = key_bytes
                .try_into()
                .map_err(|_| WebauthnError::AttestationInvalid)?;
            ed25519_dalek::VerifyingKey::from_bytes(bytes)
                .map(Self::Ed25519)
                .map_err(|_| WebauthnError::AttestationInvalid)
        } else {
            Err(WebauthnError::AttestationInvalid)
        }
    }

    /// Verifies an attestation signature made with COSE algorithm `alg`;
    /// the certificate key type must match the algorithm.
    pub fn verify(&self, alg: i64, message: &[u8], signature: &[u8]) -> Result<()> {
        let ok = match (alg, self) {
            (-7, Self::P256(key)) => verify_es256(key, message, signature),
            (-257, Self::Rsa(key)) => verify_rs256(key, message, signature),
            (-37, Self::Rsa(key)) => verify_ps256(key, message, signature),
            (-8, Self::Ed25519(key)) => verify_eddsa(key, message, signature),
            (-7 | -257 | -37 | -8, _) => return Err(WebauthnError::AttestationInvalid),
            _ => return Err(WebauthnError::UnsupportedAlgorithm),
        };
        if ok {
            Ok(())
        } else {
            Err(WebauthnError::AttestationInvalid)
        }
    }
}

/// Parses one DER certificate.
pub fn parse_certificate(der: &[u8]) -> Result<Certificate> {
    Certificate::from_der(der).map_err(|_| WebauthnError::AttestationInvalid)
}

/// Checks notBefore ≤ `now` ≤ notAfter (Unix seconds).
pub fn check_validity(cert: &Certificate, now: i64) -> Result<()> {
    let validity = &cert.tbs_certificate.validity;
    let secs = |t: &x509_cert::time::Time| {
        i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
    };
    if now < secs(&validity.not_before) || now > secs(&validity.not_after) {
        return Err(WebauthnError::AttestationInvalid);
    }
    Ok(())
}

fn attribute_text(cert: &Certificate, oid: ObjectIdentifier) -> Option<String> {
    cert.tbs_certificate
        .subject
        .0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .find(|atv| atv.oid == oid)
        .and_then(|atv| match atv.value.tag() {
            Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::TeletexString => {
                core::str::from_utf8(atv.value.value())
                    .ok()
                    .map(str::to_owned)
            }
            _ => None,
        })
}

fn find_extension(cert: &Certificate, oid: ObjectIdentifier) -> Option<&x509_cert::ext::Extension> {
    cert.tbs_certificate
        .extensions
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|e| e.extn_id == oid)
}

/// §8.2.1 packed attestation certificate requirements, as far as they can be
/// checked without trust anchors: X.509 v3; subject C (two letters), O, OU =
/// "Authenticator Attestation", CN present; BasicConstraints cA = FALSE; and
/// the id-fido-gen-ce-aaguid extension, when present, is non-critical and
/// equals the AAGUID in authenticator data.
pub fn check_packed_leaf(cert: &Certificate, aaguid: &[u8; 16]) -> Result<()> {
    if cert.tbs_certificate.version != Version::V3 {
        return Err(WebauthnError::AttestationInvalid);
    }
    let country = attribute_text(cert, OID_COUNTRY).ok_or(WebauthnError::AttestationInvalid)?;
    if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(WebauthnError::AttestationInvalid);
    }
    let non_empty = |oid| attribute_text(cert, oid).is_some_and(|s| !s.is_empty());
    if !non_empty(OID_ORGANIZATION) || !non_empty(OID_COMMON_NAME) {
        return Err(WebauthnError::AttestationInvalid);
    }
    if attribute_text(cert, OID_ORG_UNIT).as_deref() != Some("Authenticator Attestation") {
        return Err(WebauthnError::AttestationInvalid);
    }
    let constraints =
        find_extension(cert, OID_BASIC_CONSTRAINTS).ok_or(WebauthnError::AttestationInvalid)?;
    let raw = constraints.extn_value.as_bytes();
    let is_ca = match BasicConstraints::from_der(raw) {
        Ok(bc) => bc.ca,
        Err(_) if raw == BASIC_CONSTRAINTS_EXPLICIT_FALSE => false,
        Err(_) => return Err(WebauthnError::AttestationInvalid),
    };
    if is_ca {
        return Err(WebauthnError::AttestationInvalid);
    }
    if let Some(ext) = find_extension(cert, OID_FIDO_AAGUID) {
        if ext.critical {
            return Err(WebauthnError::AttestationInvalid);
        }
        let inner = OctetString::from_der(ext.extn_value.as_bytes())
            .map_err(|_| WebauthnError::AttestationInvalid)?;
        if inner.as_bytes() != aaguid {
            return Err(WebauthnError::AttestationInvalid);
        }
    }
    Ok(())
}
