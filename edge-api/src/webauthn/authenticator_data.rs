//! Authenticator data (WebAuthn §6.1): a bounds-checked parser and the flag
//! and RP ID checks run on it during both ceremonies.
//!
//! Layout: rpIdHash (32) ‖ flags (1) ‖ signCount (4, big-endian) ‖
//! [attested credential data if AT: aaguid (16) ‖ credIdLen (2) ‖ credId ‖
//! COSE_Key] ‖ [extensions CBOR map if ED]. The parser consumes exactly the
//! input: bytes left over are an error, so what was signed is what was parsed.

use sha2::{Digest, Sha256};

use super::errors::{Result, WebauthnError};

/// Longest credential id WebAuthn allows (§5.8.3 / §6.5.1).
pub const MAX_CREDENTIAL_ID_LEN: usize = 1023;

/// Deepest CBOR nesting accepted in a COSE key or extension map.
const CBOR_RECURSION_LIMIT: usize = 16;

/// The flags byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flags(pub u8);

impl Flags {
    pub const UP: u8 = 0x01;
    pub const UV: u8 = 0x04;
    pub const BE: u8 = 0x08;
    pub const BS: u8 = 0x10;
    pub const AT: u8 = 0x40;
    pub const ED: u8 = 0x80;

    pub const fn user_present(self) -> bool {
        self.0 & Self::UP != 0
    }
    pub const fn user_verified(self) -> bool {
        self.0 & Self::UV != 0
    }
    pub const fn backup_eligible(self) -> bool {
        self.0 & Self::BE != 0
    }
    pub const fn backup_state(self) -> bool {
        self.0 & Self::BS != 0
    }
    pub const fn attested_credential_data(self) -> bool {
        self.0 & Self::AT != 0
    }
    pub const fn extension_data(self) -> bool {
        self.0 & Self::ED != 0
    }
}

/// Attested credential data (§6.5.1), present at registration.
#[derive(Debug, Clone)]
pub struct AttestedCredentialData {
    pub aaguid: [u8; 16],
    pub credential_id: Vec<u8>,
    /// The COSE_Key exactly as the authenticator encoded it (what we store).
    pub public_key_cose: Vec<u8>,
    /// The same key as CBOR; it is checked to be a COSE key of an accepted
    /// algorithm by [`super::cose::CredentialPublicKey::from_cbor_value`].
    pub public_key: ciborium::Value,
}

/// Parsed authenticator data.
#[derive(Debug, Clone)]
pub struct AuthenticatorData {
    pub rp_id_hash: [u8; 32],
    pub flags: Flags,
    pub sign_count: u32,
    pub attested_credential: Option<AttestedCredentialData>,
    /// The extension outputs map, if ED is set. Not interpreted.
    pub extensions: Option<ciborium::Value>,
}

/// A cursor over untrusted bytes; every read is bounds-checked.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.rest.len() < n {
            return Err(WebauthnError::MalformedAuthenticatorData);
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        self.take(N)?
            .try_into()
            .map_err(|_| WebauthnError::MalformedAuthenticatorData)
    }

    /// Decodes one CBOR data item and returns it with its encoding.
    fn cbor_item(&mut self) -> Result<(ciborium::Value, &'a [u8])> {
        let start = self.rest;
        let mut cursor = self.rest;
        let value: ciborium::Value =
            ciborium::de::from_reader_with_recursion_limit(&mut cursor, CBOR_RECURSION_LIMIT)
                .map_err(|_| WebauthnError::MalformedAuthenticatorData)?;
        let used = start.len() - cursor.len();
        self.take(used).map(|encoded| (value, encoded))
    }
}

/// Parses authenticator data; the whole input must be consumed.
pub fn parse_authenticator_data(bytes: &[u8]) -> Result<AuthenticatorData> {
    let mut r = Reader { rest: bytes };
    let rp_id_hash = r.array::<32>()?;
    let [flags] = r.array::<1>()?;
    let flags = Flags(flags);
    let sign_count = u32::from_be_bytes(r.array::<4>()?);

    let attested_credential = if flags.attested_credential_data() {
        Some(parse_attested_credential(&mut r)?)
    } else {
        None
    };

    let extensions = if flags.extension_data() {
        let (value, _) = r.cbor_item()?;
        if !value.is_map() {
            return Err(WebauthnError::MalformedAuthenticatorData);
        }
        Some(value)
    } else {
        None
    };

    if !r.rest.is_empty() {
        // With ED clear the extra bytes are undeclared extension data; with ED
        // set they follow the extension map and are plain garbage.
        return Err(if flags.extension_data() {
            WebauthnError::MalformedAuthenticatorData
        } else {
            WebauthnError::ExtensionDataUnexpected
        });
    }

    Ok(AuthenticatorData {
        rp_id_hash,
        flags,
        sign_count,
        attested_credential,
        extensions,
    })
}

fn parse_attested_credential(r: &mut Reader<'_>) -> Result<AttestedCredentialData> {
    let aaguid = r.array::<16>()?;
    let id_len = usize::from(u16::from_be_bytes(r.array::<2>()?));
    if id_len > MAX_CREDENTIAL_ID_LEN {
        return Err(WebauthnError::CredentialIdTooLong);
    }
    let credential_id = r.take(id_len)?.to_vec();
    let (public_key, encoded) = r.cbor_item()?;
    if !public_key.is_map() {
        return Err(WebauthnError::CoseKeyInvalid);
    }
    Ok(AttestedCredentialData {
        aaguid,
        credential_id,
        public_key_cose: encoded.to_vec(),
        public_key,
    })
}

/// §7.1 step 13 / §7.2 step 15: rpIdHash is SHA-256 of the RP ID.
pub fn check_rp_id_hash(auth_data: &AuthenticatorData, rp_id: &str) -> Result<()> {
    let expected: [u8; 32] = Sha256::digest(rp_id.as_bytes()).into();
    if auth_data.rp_id_hash == expected {
        Ok(())
    } else {
        Err(WebauthnError::RpIdHashMismatch)
    }
}

/// §7.1 step 14 / §7.2 step 16: UP must be set (we never run conditional-create).
pub fn check_user_present(auth_data: &AuthenticatorData) -> Result<()> {
    if auth_data.flags.user_present() {
        Ok(())
    } else {
        Err(WebauthnError::UserNotPresent)
    }
}

/// §7.1 step 15 / §7.2 step 17: UV must be set when the policy requires it.
pub fn check_user_verified(auth_data: &AuthenticatorData, required: bool) -> Result<()> {
    if !required || auth_data.flags.user_verified() {
        Ok(())
    } else {
        Err(WebauthnError::UserNotVerified)
    }
}

/// §7.1 step 16–17 / §6.1.3: a credential that is not backup eligible cannot
/// be backed up (BS without BE).
pub fn check_backup_flags(auth_data: &AuthenticatorData) -> Result<()> {
    if auth_data.flags.backup_state() && !auth_data.flags.backup_eligible() {
        Err(WebauthnError::BackupStateInconsistent)
    } else {
        Ok(())
    }
}

/// Registration needs attested credential data (AT set and present).
pub fn require_attested_credential(
    auth_data: &AuthenticatorData,
) -> Result<&AttestedCredentialData> {
    auth_data
        .attested_credential
        .as_ref()
        .ok_or(WebauthnError::AttestedCredentialMissing)
}

/// An assertion must not carry attested credential data.
pub fn forbid_attested_credential(auth_data: &AuthenticatorData) -> Result<()> {
    if auth_data.flags.attested_credential_data() {
        Err(WebauthnError::AttestedCredentialUnexpected)
    } else {
        Ok(())
    }
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

    /// Assertion authData of py_webauthn's RSA test (vector 20): flags UP|UV, count 1.
    const ASSERTION: &str = "SZYN5YgOjGh0NBcPZHZgW4_krrmihjLHmVzzuoMdl2MFAAAAAQ";
    /// Registration authData of py_webauthn's `none` test (vector 1): AT, ES256 key.
    const REGISTRATION: &str = "SZYN5YgOjGh0NBcPZHZgW4_krrmihjLHmVzzuoMdl2NFAAAAFwAAAAAAAAAAAAAAAAAAAAAAQPctcQPE5oNRRJk_nO_371mf7qE7qIodzr0eOf6ACvnMB1oQG165dqutoi1U44shGezu5_gkTjmOPeJO0N8a7P-lAQIDJiABIVggSFbUJF-42Ug3pdM8rDRFu_N5oiVEysPDB6n66r_7dZAiWCDUVnB39FlGypL-qAoIO9xWHtJygo2jfDmHl-_eKFRLDA";

    fn sha256(s: &str) -> [u8; 32] {
        Sha256::digest(s.as_bytes()).into()
    }

    #[test]
    fn parses_real_assertion_data() {
        let ad = parse_authenticator_data(&base64url_decode(ASSERTION).unwrap()).unwrap();
        assert_eq!(ad.rp_id_hash, sha256("localhost"));
        assert!(ad.flags.user_present() && ad.flags.user_verified());
        assert_eq!(ad.sign_count, 1);
        assert!(ad.attested_credential.is_none() && ad.extensions.is_none());
        assert!(check_rp_id_hash(&ad, "localhost").is_ok());
        assert_eq!(
            check_rp_id_hash(&ad, "localhost."),
            Err(WebauthnError::RpIdHashMismatch)
        );
        assert!(forbid_attested_credential(&ad).is_ok());
        assert_eq!(
            require_attested_credential(&ad).err(),
            Some(WebauthnError::AttestedCredentialMissing)
        );
    }

    #[test]
    fn parses_real_registration_data() {
        let bytes = base64url_decode(REGISTRATION).unwrap();
        let ad = parse_authenticator_data(&bytes).unwrap();
        let cred = require_attested_credential(&ad).unwrap();
        assert_eq!(cred.credential_id.len(), 64);
        assert_eq!(cred.public_key_cose.len(), 77);
        assert!(bytes.ends_with(&cred.public_key_cose));
        assert_eq!(ad.sign_count, 23);
        assert_eq!(
            forbid_attested_credential(&ad),
            Err(WebauthnError::AttestedCredentialUnexpected)
        );
    }

    #[test]
    fn every_truncation_is_an_error() {
        for data in [ASSERTION, REGISTRATION] {
            let bytes = base64url_decode(data).unwrap();
            for len in 0..bytes.len() {
                assert!(
                    parse_authenticator_data(&bytes[..len]).is_err(),
                    "prefix {len} accepted"
                );
            }
        }
    }

    #[test]
    fn trailing_bytes_depend_on_ed_flag() {
        let mut bytes = base64url_decode(ASSERTION).unwrap();
        bytes.push(0xa0);
        assert_eq!(
            parse_authenticator_data(&bytes).err(),
            Some(WebauthnError::ExtensionDataUnexpected)
        );
        bytes[32] |= Flags::ED;
        let ad = parse_authenticator_data(&bytes).unwrap();
        assert!(ad.extensions.is_some());
        bytes.push(0x00);
        assert_eq!(
            parse_authenticator_data(&bytes).err(),
            Some(WebauthnError::MalformedAuthenticatorData)
        );
        // ED set, extension not a map.
        let mut not_map = base64url_decode(ASSERTION).unwrap();
        not_map[32] |= Flags::ED;
        not_map.push(0x01);
        assert_eq!(
            parse_authenticator_data(&not_map).err(),
            Some(WebauthnError::MalformedAuthenticatorData)
        );
        // ED set, nothing there.
        not_map.pop();
        assert_eq!(
            parse_authenticator_data(&not_map).err(),
            Some(WebauthnError::MalformedAuthenticatorData)
        );
    }

    #[test]
    fn at_flag_without_data_is_malformed() {
        let mut bytes = base64url_decode(ASSERTION).unwrap();
        bytes[32] |= Flags::AT;
        assert_eq!(
            parse_authenticator_data(&bytes).err(),
            Some(WebauthnError::MalformedAuthenticatorData)
        );
    }

    #[test]
    fn credential_id_length_limit() {
        let mut bytes = base64url_decode(ASSERTION).unwrap();
        bytes[32] |= Flags::AT;
        bytes.extend_from_slice(&[0u8; 16]);
        bytes.extend_from_slice(&1024u16.to_be_bytes());
        bytes.extend_from_slice(&[7u8; 1024]);
        assert_eq!(
            parse_authenticator_data(&bytes).err(),
            Some(WebauthnError::CredentialIdTooLong)
        );
    }

    #[test]
    fn non_cose_key_is_invalid() {
        let mut bytes = base64url_decode(ASSERTION).unwrap();
        bytes[32] |= Flags::AT;
        bytes.extend_from_slice(&[0u8; 16]);
        bytes.extend_from_slice(&1u16.to_be_bytes());
        bytes.push(9);
        bytes.push(0x01); // CBOR unsigned 1, not a map
        assert_eq!(
            parse_authenticator_data(&bytes).err(),
            Some(WebauthnError::CoseKeyInvalid)
        );
    }

    #[test]
    fn flag_checks() {
        let mut ad = parse_authenticator_data(&base64url_decode(ASSERTION).unwrap()).unwrap();
        assert!(check_user_present(&ad).is_ok());
        assert!(check_user_verified(&ad, true).is_ok());
        assert!(check_backup_flags(&ad).is_ok());
        ad.flags = Flags(0);
        assert_eq!(check_user_present(&ad), Err(WebauthnError::UserNotPresent));
        assert_eq!(
            check_user_verified(&ad, true),
            Err(WebauthnError::UserNotVerified)
        );
        assert!(check_user_verified(&ad, false).is_ok());
        ad.flags = Flags(Flags::UP | Flags::BS);
        assert_eq!(
            check_backup_flags(&ad),
            Err(WebauthnError::BackupStateInconsistent)
        );
        ad.flags = Flags(Flags::UP | Flags::BS | Flags::BE);
        assert!(check_backup_flags(&ad).is_ok());
        ad.flags = Flags(Flags::UP | Flags::BE);
        assert!(check_backup_flags(&ad).is_ok());
    }
}
