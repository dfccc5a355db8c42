//! The age file format, version 1 (age-encryption.org/v1), for X25519
//! recipients only: what the backup needs, written from the specification
//! with RustCrypto primitives so it builds for every Wasm target. Tests check
//! it against the `age` crate in both directions.
//!
//! Header: `age-encryption.org/v1`, one `-> X25519 <ephemeral share>` stanza
//! per recipient wrapping a random 16-byte file key, then `--- <HMAC>`.
//! Payload: a 16-byte nonce, then the STREAM construction: 64 KiB chunks
//! sealed with ChaCha20-Poly1305 under a key derived from the file key and
//! the nonce, each chunk's nonce an 11-byte counter and a last-chunk flag.

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand_core::CryptoRngCore;
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::bech32;

const VERSION_LINE: &str = "age-encryption.org/v1";
const X25519_LABEL: &[u8] = b"age-encryption.org/v1/X25519";
const RECIPIENT_HRP: &str = "age";
const IDENTITY_HRP: &str = "age-secret-key-";
const FILE_KEY_LEN: usize = 16;
const STREAM_CHUNK: usize = 64 * 1024;
const TAG_LEN: usize = 16;
/// Our headers hold a handful of stanzas; anything longer is not ours.
const MAX_HEADER_LEN: usize = 64 * 1024;
const STANZA_COLUMNS: usize = 64;

/// Why an age file could not be produced or opened. None of these carry key
/// material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgeError {
    /// The text is not an `age1…` X25519 recipient.
    InvalidRecipient,
    /// The text is not an `AGE-SECRET-KEY-1…` X25519 identity.
    InvalidIdentity,
    /// No recipients were given.
    NoRecipients,
    /// The header is not a well-formed age v1 header.
    MalformedHeader(&'static str),
    /// None of the identities unwraps the file key.
    NoMatchingIdentity,
    /// The header MAC does not verify: the header was altered.
    HeaderMac,
    /// A payload chunk failed authentication or the payload is truncated.
    Payload(&'static str),
    /// The random-number source failed.
    Random,
}

impl core::fmt::Display for AgeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::InvalidRecipient => write!(f, "not an age X25519 recipient (age1…)"),
            Self::InvalidIdentity => write!(f, "not an age X25519 identity (AGE-SECRET-KEY-1…)"),
            Self::NoRecipients => write!(f, "no recipients"),
            Self::MalformedHeader(why) => write!(f, "malformed age header: {why}"),
            Self::NoMatchingIdentity => {
                write!(
                    f,
                    "none of the given identities is a recipient of this file"
                )
            }
            Self::HeaderMac => write!(f, "age header MAC does not verify (header altered)"),
            Self::Payload(why) => write!(f, "age payload rejected: {why}"),
            Self::Random => write!(f, "the random-number source failed"),
        }
    }
}

impl std::error::Error for AgeError {}

/// An X25519 public key: who can read a backup.
#[derive(Clone, PartialEq, Eq)]
pub struct Recipient(PublicKey);

impl Recipient {
    pub fn parse(s: &str) -> Result<Self, AgeError> {
        let (hrp, data) = bech32::decode(s.trim()).ok_or(AgeError::InvalidRecipient)?;
        if hrp != RECIPIENT_HRP || s.trim().bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(AgeError::InvalidRecipient);
        }
        let bytes: [u8; 32] = data.try_into().map_err(|_| AgeError::InvalidRecipient)?;
        Ok(Self(PublicKey::from(bytes)))
    }

    pub fn to_bech32(&self) -> String {
        bech32::encode(RECIPIENT_HRP, self.0.as_bytes())
    }

    /// Lower-case hex sha256 of the raw public key: names the recipient in
    /// a manifest without the manifest carrying keys.
    pub fn fingerprint(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }
}

impl core::fmt::Debug for Recipient {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Recipient({})", self.to_bech32())
    }
}

/// An X25519 private key. Lives only where backups are restored.
#[derive(Clone)]
pub struct Identity(StaticSecret);

impl Identity {
    pub fn parse(s: &str) -> Result<Self, AgeError> {
        let s = s.trim();
        if s.bytes().any(|b| b.is_ascii_lowercase()) {
            return Err(AgeError::InvalidIdentity);
        }
        let (hrp, data) = bech32::decode(s).ok_or(AgeError::InvalidIdentity)?;
        if hrp != IDENTITY_HRP {
            return Err(AgeError::InvalidIdentity);
        }
        let bytes: Zeroizing<[u8; 32]> = Zeroizing::new(
            data.as_slice()
                .try_into()
                .map_err(|_| AgeError::InvalidIdentity)?,
        );
        Ok(Self(StaticSecret::from(*bytes)))
    }

    /// Every identity in an identity file: one per line, `#` comments and
    /// blank lines skipped (the format `age-keygen` writes).
    pub fn parse_file(text: &str) -> Result<Vec<Self>, AgeError> {
        let ids = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(Self::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if ids.is_empty() {
            return Err(AgeError::InvalidIdentity);
        }
        Ok(ids)
    }

    pub fn generate(rng: &mut dyn CryptoRngCore) -> Result<Self, AgeError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rng.try_fill_bytes(bytes.as_mut())
            .map_err(|_| AgeError::Random)?;
        Ok(Self(StaticSecret::from(*bytes)))
    }

    pub fn to_bech32(&self) -> Zeroizing<String> {
        Zeroizing::new(bech32::encode(IDENTITY_HRP, self.0.as_bytes()).to_ascii_uppercase())
    }

    pub fn recipient(&self) -> Recipient {
        Recipient(PublicKey::from(&self.0))
    }
}

fn hkdf(salt: &[u8], ikm: &[u8], info: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut okm = Zeroizing::new([0u8; 32]);
    // 32 bytes is far below HKDF-SHA256's 8160-byte limit: cannot fail.
    let _ = Hkdf::<Sha256>::new(Some(salt), ikm).expand(info, okm.as_mut());
    okm
}

fn aead(key: &[u8; 32]) -> ChaCha20Poly1305 {
    ChaCha20Poly1305::new(&Key::from(*key))
}

fn header_mac(file_key: &[u8], header_up_to_dashes: &[u8]) -> Result<Hmac<Sha256>, AgeError> {
    let key = hkdf(&[], file_key, b"header");
    // HMAC accepts keys of any length; the error arm is unreachable.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.as_ref())
        .map_err(|_| AgeError::MalformedHeader("HMAC key"))?;
    mac.update(header_up_to_dashes);
    Ok(mac)
}

fn stream_nonce(counter: u64, last: bool) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[3..11].copy_from_slice(&counter.to_be_bytes());
    n[11] = u8::from(last);
    n
}

fn push_stanza_body(out: &mut Vec<u8>, body: &[u8]) {
    let b64 = STANDARD_NO_PAD.encode(body);
    let mut rest = b64.as_bytes();
    loop {
        let take = rest.len().min(STANZA_COLUMNS);
        let (line, tail) = rest.split_at(take);
        out.extend_from_slice(line);
        out.push(b'\n');
        rest = tail;
        // A full line means "more follows": end with a short (maybe empty) one.
        if take < STANZA_COLUMNS {
            break;
        }
    }
}

/// Encrypts `plaintext` to every recipient.
pub fn encrypt(
    recipients: &[Recipient],
    plaintext: &[u8],
    rng: &mut dyn CryptoRngCore,
) -> Result<Vec<u8>, AgeError> {
    if recipients.is_empty() {
        return Err(AgeError::NoRecipients);
    }
    let mut file_key = Zeroizing::new([0u8; FILE_KEY_LEN]);
    rng.try_fill_bytes(file_key.as_mut())
        .map_err(|_| AgeError::Random)?;

    let mut out = Vec::with_capacity(plaintext.len() + plaintext.len() / STREAM_CHUNK * 16 + 512);
    out.extend_from_slice(VERSION_LINE.as_bytes());
    out.push(b'\n');
    for r in recipients {
        let eph = Identity::generate(rng)?;
        let share = PublicKey::from(&eph.0);
        let shared = eph.0.diffie_hellman(&r.0);
        if !shared.was_contributory() {
            return Err(AgeError::InvalidRecipient);
        }
        let mut salt = [0u8; 64];
        salt[..32].copy_from_slice(share.as_bytes());
        salt[32..].copy_from_slice(r.0.as_bytes());
        let wrap_key = hkdf(&salt, shared.as_bytes(), X25519_LABEL);
        let body = aead(&wrap_key)
            .encrypt(&Nonce::from([0u8; 12]), &file_key[..])
            .map_err(|_| AgeError::Payload("wrapping the file key failed"))?;
        out.extend_from_slice(b"-> X25519 ");
        out.extend_from_slice(STANDARD_NO_PAD.encode(share.as_bytes()).as_bytes());
        out.push(b'\n');
        push_stanza_body(&mut out, &body);
    }
    out.extend_from_slice(b"---");
    let mac = header_mac(file_key.as_ref(), &out)?.finalize().into_bytes();
    out.push(b' ');
    out.extend_from_slice(STANDARD_NO_PAD.encode(mac).as_bytes());
    out.push(b'\n');

    let mut nonce = [0u8; 16];
    rng.try_fill_bytes(&mut nonce)
        .map_err(|_| AgeError::Random)?;
    out.extend_from_slice(&nonce);
    let payload_key = hkdf(&nonce, file_key.as_ref(), b"payload");
    let cipher = aead(&payload_key);
    let mut chunks: Vec<&[u8]> = plaintext.chunks(STREAM_CHUNK).collect();
    if chunks.is_empty() {
        chunks.push(&[]);
    }
    let last_index = chunks.len() - 1;
    for (i, chunk) in chunks.into_iter().enumerate() {
        let sealed = cipher
            .encrypt(&Nonce::from(stream_nonce(i as u64, i == last_index)), chunk)
            .map_err(|_| AgeError::Payload("sealing a chunk failed"))?;
        out.extend_from_slice(&sealed);
    }
    Ok(out)
}

/// One `-> type args…` stanza of a parsed header.
struct Stanza {
    kind: String,
    args: Vec<String>,
    body: Vec<u8>,
}

struct Header {
    stanzas: Vec<Stanza>,
    /// The header bytes the MAC covers (through `---`).
    mac_input_len: usize,
    mac: Vec<u8>,
    payload_start: usize,
}

/// Reads one `\n`-terminated line starting at `pos` as ASCII text.
fn line_at(data: &[u8], pos: usize) -> Result<(&str, usize), AgeError> {
    let rest = data
        .get(pos..)
        .ok_or(AgeError::MalformedHeader("truncated"))?;
    let end = rest
        .iter()
        .position(|&b| b == b'\n')
        .ok_or(AgeError::MalformedHeader("truncated"))?;
    if pos + end > MAX_HEADER_LEN {
        return Err(AgeError::MalformedHeader("header too long"));
    }
    let line = rest
        .get(..end)
        .and_then(|l| core::str::from_utf8(l).ok())
        .filter(|l| l.bytes().all(|b| (32..=126).contains(&b)))
        .ok_or(AgeError::MalformedHeader("non-ASCII header line"))?;
    Ok((line, pos + end + 1))
}

fn decode_b64(s: &str) -> Result<Vec<u8>, AgeError> {
    STANDARD_NO_PAD
        .decode(s)
        .map_err(|_| AgeError::MalformedHeader("invalid base64"))
}

fn parse_header(data: &[u8]) -> Result<Header, AgeError> {
    let (first, mut pos) = line_at(data, 0)?;
    if first != VERSION_LINE {
        return Err(AgeError::MalformedHeader("not an age v1 file"));
    }
    let mut stanzas = Vec::new();
    loop {
        let line_start = pos;
        let (line, next) = line_at(data, pos)?;
        if let Some(mac) = line.strip_prefix("--- ") {
            let mac = decode_b64(mac)?;
            if mac.len() != 32 {
                return Err(AgeError::MalformedHeader("MAC has the wrong length"));
            }
            return Ok(Header {
                stanzas,
                mac_input_len: line_start + 3,
                mac,
                payload_start: next,
            });
        }
        let rest = line.strip_prefix("-> ").ok_or(AgeError::MalformedHeader(
            "expected a stanza or the MAC line",
        ))?;
        let mut words = rest.split(' ');
        let kind = words
            .next()
            .filter(|w| !w.is_empty())
            .ok_or(AgeError::MalformedHeader("empty stanza type"))?
            .to_string();
        let args: Vec<String> = words.map(str::to_string).collect();
        if args.iter().any(String::is_empty) {
            return Err(AgeError::MalformedHeader("empty stanza argument"));
        }
        pos = next;
        let mut b64 = String::new();
        loop {
            let (body_line, next) = line_at(data, pos)?;
            if body_line.len() > STANZA_COLUMNS {
                return Err(AgeError::MalformedHeader("stanza body line too long"));
            }
            b64.push_str(body_line);
            pos = next;
            if body_line.len() < STANZA_COLUMNS {
                break;
            }
        }
        stanzas.push(Stanza {
            kind,
            args,
            body: decode_b64(&b64)?,
        });
    }
}

fn unwrap_file_key(
    stanza: &Stanza,
    identity: &Identity,
) -> Result<Option<Zeroizing<[u8; FILE_KEY_LEN]>>, AgeError> {
    let [share_b64] = stanza.args.as_slice() else {
        return Err(AgeError::MalformedHeader(
            "X25519 stanza needs exactly one argument",
        ));
    };
    let share: [u8; 32] = decode_b64(share_b64)?
        .try_into()
        .map_err(|_| AgeError::MalformedHeader("X25519 share is not 32 bytes"))?;
    if stanza.body.len() != FILE_KEY_LEN + TAG_LEN {
        return Err(AgeError::MalformedHeader("X25519 body is not 32 bytes"));
    }
    let share = PublicKey::from(share);
    let shared = identity.0.diffie_hellman(&share);
    if !shared.was_contributory() {
        return Err(AgeError::MalformedHeader(
            "X25519 share is a low-order point",
        ));
    }
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(share.as_bytes());
    salt[32..].copy_from_slice(identity.recipient().0.as_bytes());
    let wrap_key = hkdf(&salt, shared.as_bytes(), X25519_LABEL);
    match aead(&wrap_key).decrypt(&Nonce::from([0u8; 12]), stanza.body.as_slice()) {
        Ok(key) => {
            let key = Zeroizing::new(key);
            let mut out = Zeroizing::new([0u8; FILE_KEY_LEN]);
            out.copy_from_slice(&key);
            Ok(Some(out))
        }
        // Not for this identity.
        Err(_) => Ok(None),
    }
}

/// Decrypts an age file with the first identity that unwraps its file key.
pub fn decrypt(identities: &[Identity], data: &[u8]) -> Result<Vec<u8>, AgeError> {
    let header = parse_header(data)?;
    let mut file_key = None;
    'search: for stanza in header.stanzas.iter().filter(|s| s.kind == "X25519") {
        for id in identities {
            if let Some(k) = unwrap_file_key(stanza, id)? {
                file_key = Some(k);
                break 'search;
            }
        }
    }
    let file_key = file_key.ok_or(AgeError::NoMatchingIdentity)?;
    let mac_input = data
        .get(..header.mac_input_len)
        .ok_or(AgeError::MalformedHeader("truncated"))?;
    header_mac(file_key.as_ref(), mac_input)?
        .verify_slice(&header.mac)
        .map_err(|_| AgeError::HeaderMac)?;

    let payload = data
        .get(header.payload_start..)
        .ok_or(AgeError::Payload("missing payload"))?;
    let (nonce, mut body) = payload
        .split_at_checked(16)
        .ok_or(AgeError::Payload("missing payload nonce"))?;
    let payload_key = hkdf(nonce, file_key.as_ref(), b"payload");
    let cipher = aead(&payload_key);
    let mut out = Vec::with_capacity(body.len());
    let mut counter: u64 = 0;
    loop {
        let last = body.len() <= STREAM_CHUNK + TAG_LEN;
        let (sealed, rest) = body.split_at(if last {
            body.len()
        } else {
            STREAM_CHUNK + TAG_LEN
        });
        if sealed.len() < TAG_LEN {
            return Err(AgeError::Payload("truncated payload"));
        }
        let plain = cipher
            .decrypt(&Nonce::from(stream_nonce(counter, last)), sealed)
            .map_err(|_| AgeError::Payload("a payload chunk failed authentication"))?;
        if last && plain.is_empty() && counter > 0 {
            return Err(AgeError::Payload("empty final chunk"));
        }
        out.extend_from_slice(&plain);
        if last {
            return Ok(out);
        }
        body = rest;
        counter += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    #[test]
    fn round_trip_sizes_and_recipients() {
        let a = Identity::generate(&mut OsRng).unwrap();
        let b = Identity::generate(&mut OsRng).unwrap();
        let other = Identity::generate(&mut OsRng).unwrap();
        for len in [
            0,
            1,
            STREAM_CHUNK - 1,
            STREAM_CHUNK,
            STREAM_CHUNK + 1,
            3 * STREAM_CHUNK,
        ] {
            let plain: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let ct = encrypt(&[a.recipient(), b.recipient()], &plain, &mut OsRng).unwrap();
            assert_eq!(
                decrypt(std::slice::from_ref(&a), &ct).unwrap(),
                plain,
                "len {len}"
            );
            assert_eq!(decrypt(&[other.clone(), b.clone()], &ct).unwrap(), plain);
            assert_eq!(
                decrypt(std::slice::from_ref(&other), &ct),
                Err(AgeError::NoMatchingIdentity)
            );
        }
    }

    #[test]
    fn keys_round_trip_through_text() {
        let id = Identity::generate(&mut OsRng).unwrap();
        let text = id.to_bech32();
        assert!(text.starts_with("AGE-SECRET-KEY-1"));
        let again = Identity::parse(&text).unwrap();
        assert_eq!(again.recipient(), id.recipient());
        let r = id.recipient().to_bech32();
        assert!(r.starts_with("age1"));
        assert_eq!(Recipient::parse(&r).unwrap(), id.recipient());
        assert_eq!(
            Recipient::parse(&r.to_ascii_uppercase()),
            Err(AgeError::InvalidRecipient)
        );
        assert!(Identity::parse(&r).is_err());
        assert!(Recipient::parse(&text).is_err());
    }

    #[test]
    fn tampering_is_detected_and_never_panics() {
        let id = Identity::generate(&mut OsRng).unwrap();
        let plain = vec![42u8; 2 * STREAM_CHUNK + 10];
        let ct = encrypt(&[id.recipient()], &plain, &mut OsRng).unwrap();
        // Every single-byte flip is refused; none panics.
        for i in (0..ct.len()).step_by(97) {
            let mut bad = ct.clone();
            bad[i] ^= 0x01;
            assert!(
                decrypt(std::slice::from_ref(&id), &bad).is_err(),
                "flip at {i}"
            );
        }
        // Every truncation is refused.
        for cut in (0..ct.len()).step_by(1013) {
            assert!(
                decrypt(std::slice::from_ref(&id), &ct[..cut]).is_err(),
                "cut {cut}"
            );
        }
        // Dropping a whole middle chunk is refused.
        let header_end = ct.len() - (plain.len() + 3 * TAG_LEN) - 16;
        let chunk = STREAM_CHUNK + TAG_LEN;
        let mut dropped = ct[..header_end + 16 + chunk].to_vec();
        dropped.extend_from_slice(&ct[header_end + 16 + 2 * chunk..]);
        assert!(decrypt(std::slice::from_ref(&id), &dropped).is_err());
        // The header MAC covers the stanzas.
        let text = String::from_utf8_lossy(&ct[..header_end]).to_string();
        assert!(text.contains("-> X25519 "));
    }
}
