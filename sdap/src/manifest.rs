//! The manifest of one backup and its Ed25519 signature.
//!
//! `manifest.json` is stored exactly as signed; `manifest.sig` beside it
//! names the signing key and carries the signature over
//! `"memshadow-sdap-manifest-v1\n" ‖ manifest.json`. Restore trusts only
//! the public keys it is given, so a backup planted by someone without the
//! signing key is refused, and so is any edit of a signed manifest.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{ChunkRef, Error};
use crate::tables;

pub const FORMAT: &str = "memshadow-sdap";
pub const FORMAT_VERSION: u32 = 1;
pub const ENCODING: &str = "ndjson";
pub const COMPRESSION: &str = "zlib";
pub const ENCRYPTION: &str = "age-v1-x25519";
const SIGNATURE_CONTEXT: &[u8] = b"memshadow-sdap-manifest-v1\n";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    /// The newest migration the exported tables correspond to.
    pub schema_version: String,
    pub backup_id: String,
    pub started_at: String,
    pub finished_at: String,
    pub encoding: String,
    pub compression: String,
    pub encryption: String,
    /// Rows per table, summed over its chunks.
    pub tables: BTreeMap<String, u64>,
    /// In order; `index` equals the position.
    pub chunks: Vec<ChunkEntry>,
    /// sha256 (hex) of each recipient's X25519 public key.
    pub recipients: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkEntry {
    pub index: u32,
    /// Object name inside the backup's folder (`chunk-000003.age`).
    pub object: String,
    pub table: String,
    pub rows: u64,
    /// sha256 (hex) of the encrypted object as stored.
    pub sha256: String,
    /// Size in bytes of the encrypted object.
    pub size: u64,
    /// sha256 (hex) and length of the NDJSON plaintext, before compression.
    pub plaintext_sha256: String,
    pub plaintext_size: u64,
}

impl ChunkEntry {
    pub fn chunk_ref(&self) -> ChunkRef {
        ChunkRef {
            index: self.index,
            object: self.object.clone(),
            table: self.table.clone(),
        }
    }
}

/// `chunk-000003.age`: the only object names a manifest may list, so a
/// manifest cannot point a restore outside the backup's folder.
pub fn chunk_object_name(index: u32) -> String {
    format!("chunk-{index:06}.age")
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SignatureFile {
    algorithm: String,
    public_key: String,
    signature: String,
}

/// The Ed25519 key that signs manifests (a Worker secret: base64 of the
/// 32-byte seed).
pub struct ManifestSigner(SigningKey);

impl ManifestSigner {
    pub fn parse(b64: &str) -> Result<Self, Error> {
        let seed: [u8; 32] = STANDARD
            .decode(b64.trim())
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| Error::Key("signing key is not base64 of 32 bytes".into()))?;
        Ok(Self(SigningKey::from_bytes(&seed)))
    }

    pub fn generate(rng: &mut dyn CryptoRngCore) -> Result<Self, Error> {
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        rng.try_fill_bytes(seed.as_mut())
            .map_err(|_| Error::Key("the random-number source failed".into()))?;
        Ok(Self(SigningKey::from_bytes(&seed)))
    }

    pub fn to_base64(&self) -> zeroize::Zeroizing<String> {
        zeroize::Zeroizing::new(STANDARD.encode(self.0.to_bytes()))
    }

    pub fn public_key(&self) -> VerifyingKey {
        self.0.verifying_key()
    }

    /// Serialises the manifest and signs it: (`manifest.json`, `manifest.sig`).
    pub fn sign(&self, manifest: &Manifest) -> Result<(Vec<u8>, Vec<u8>), Error> {
        let bytes = serde_json::to_vec_pretty(manifest)
            .map_err(|e| Error::Manifest(format!("cannot serialise: {e}")))?;
        let mut msg = SIGNATURE_CONTEXT.to_vec();
        msg.extend_from_slice(&bytes);
        let sig = self.0.sign(&msg);
        let file = SignatureFile {
            algorithm: "ed25519".into(),
            public_key: STANDARD.encode(self.public_key().as_bytes()),
            signature: STANDARD.encode(sig.to_bytes()),
        };
        let sig_bytes = serde_json::to_vec_pretty(&file)
            .map_err(|e| Error::Manifest(format!("cannot serialise the signature: {e}")))?;
        Ok((bytes, sig_bytes))
    }
}

/// Parses a trusted public key (base64 of 32 bytes).
pub fn parse_public_key(b64: &str) -> Result<VerifyingKey, Error> {
    let bytes: [u8; 32] = STANDARD
        .decode(b64.trim())
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| Error::Key("public key is not base64 of 32 bytes".into()))?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| Error::Key("not an Ed25519 public key".into()))
}

pub fn key_fingerprint(key: &VerifyingKey) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Checks the signature against the trusted keys, then parses and
/// validates the manifest. Nothing in an unverified manifest is believed.
pub fn open(
    manifest_bytes: &[u8],
    sig_bytes: &[u8],
    trusted: &[VerifyingKey],
) -> Result<Manifest, Error> {
    let file: SignatureFile = serde_json::from_slice(sig_bytes)
        .map_err(|e| Error::SignatureFile(format!("not a signature file: {e}")))?;
    if file.algorithm != "ed25519" {
        return Err(Error::SignatureFile(format!(
            "unsupported algorithm {:?}",
            file.algorithm
        )));
    }
    let claimed = parse_public_key(&file.public_key)
        .map_err(|_| Error::SignatureFile("the signer's public key is malformed".into()))?;
    let key = trusted
        .iter()
        .find(|k| k.as_bytes() == claimed.as_bytes())
        .ok_or_else(|| Error::UntrustedSigner {
            fingerprint: key_fingerprint(&claimed),
        })?;
    let sig: [u8; 64] = STANDARD
        .decode(file.signature.trim())
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| Error::SignatureFile("the signature is not base64 of 64 bytes".into()))?;
    let mut msg = SIGNATURE_CONTEXT.to_vec();
    msg.extend_from_slice(manifest_bytes);
    key.verify_strict(&msg, &Signature::from_bytes(&sig))
        .map_err(|_| Error::BadSignature)?;
    let manifest: Manifest = serde_json::from_slice(manifest_bytes)
        .map_err(|e| Error::Manifest(format!("not a manifest: {e}")))?;
    manifest.validate()?;
    Ok(manifest)
}

impl Manifest {
    /// Structural checks on a (signed) manifest: supported format, chunk
    /// indices in order, safe object names, known tables, counts that add up.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |why: String| Err(Error::Manifest(why));
        if self.format != FORMAT {
            return bad(format!("format {:?} is not {FORMAT}", self.format));
        }
        if self.format_version != FORMAT_VERSION {
            return bad(format!(
                "format version {} is not supported (this tool reads {FORMAT_VERSION})",
                self.format_version
            ));
        }
        if self.encoding != ENCODING
            || self.compression != COMPRESSION
            || self.encryption != ENCRYPTION
        {
            return bad("unsupported encoding, compression or encryption".into());
        }
        let mut sums: BTreeMap<&str, u64> = BTreeMap::new();
        for (pos, c) in self.chunks.iter().enumerate() {
            if c.index as usize != pos {
                return bad(format!("chunk at position {pos} has index {}", c.index));
            }
            if c.object != chunk_object_name(c.index) {
                return bad(format!("chunk {} has object name {:?}", c.index, c.object));
            }
            if tables::table(&c.table).is_none() {
                return bad(format!(
                    "chunk {} names unknown table {:?}",
                    c.index, c.table
                ));
            }
            let is_hex = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
            if !is_hex(&c.sha256) || !is_hex(&c.plaintext_sha256) {
                return bad(format!("chunk {} has a malformed sha256", c.index));
            }
            *sums.entry(c.table.as_str()).or_default() += c.rows;
        }
        for (table, rows) in &self.tables {
            if tables::table(table).is_none() {
                return bad(format!("unknown table {table:?}"));
            }
            if sums.get(table.as_str()).copied().unwrap_or(0) != *rows {
                return bad(format!(
                    "table {table}: {rows} rows declared, chunks hold {}",
                    sums.get(table.as_str()).copied().unwrap_or(0)
                ));
            }
        }
        if let Some(t) = sums.keys().find(|t| !self.tables.contains_key(**t)) {
            return bad(format!("chunks of table {t} not counted in tables"));
        }
        Ok(())
    }
}
