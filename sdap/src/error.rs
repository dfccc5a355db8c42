//! Why a backup was refused. Every chunk error names the chunk (its index,
//! object name and table) so an operator knows which object to look at.

use crate::age::AgeError;

/// Names one chunk in messages: `chunk 3 (chunk-000003.age, memories)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkRef {
    pub index: u32,
    pub object: String,
    pub table: String,
}

impl core::fmt::Display for ChunkRef {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "chunk {} ({}, table {})",
            self.index, self.object, self.table
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A key, recipient or identity could not be read.
    Key(String),
    /// Encryption failed while writing a backup.
    Encrypt(AgeError),
    /// `manifest.sig` is missing or not a signature file.
    SignatureFile(String),
    /// The manifest is signed by a key that is not among the trusted ones.
    UntrustedSigner {
        fingerprint: String,
    },
    /// The signature does not verify: the manifest changed after signing.
    BadSignature,
    /// The signed manifest is not a valid manifest of a supported format.
    Manifest(String),
    /// The identity given is not one of the backup's recipients.
    NotARecipient {
        identity: String,
        recipients: Vec<String>,
    },
    ChunkMissing(ChunkRef),
    /// The object's sha256 differs from the manifest's. `found_as` is the
    /// chunk whose hash it carries, when it is another chunk of the same
    /// backup (chunks swapped or reordered).
    ChunkHash {
        chunk: ChunkRef,
        found_as: Option<u32>,
    },
    /// No identity given can decrypt the chunk.
    ChunkWrongIdentity(ChunkRef),
    /// The chunk decrypted badly or its contents contradict the manifest.
    ChunkCorrupt {
        chunk: ChunkRef,
        why: String,
    },
    /// Reading from or writing to the object store failed.
    Store(String),
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Key(why) => write!(f, "bad key: {why}"),
            Self::Encrypt(e) => write!(f, "encryption failed: {e}"),
            Self::SignatureFile(why) => write!(f, "manifest signature unreadable: {why}"),
            Self::UntrustedSigner { fingerprint } => write!(
                f,
                "manifest is signed by key {fingerprint}, which is not a trusted signing key: refusing a possibly planted backup"
            ),
            Self::BadSignature => write!(
                f,
                "manifest signature does not verify: the manifest was changed after it was signed"
            ),
            Self::Manifest(why) => write!(f, "manifest rejected: {why}"),
            Self::NotARecipient {
                identity,
                recipients,
            } => write!(
                f,
                "the identity (recipient fingerprint {identity}) is not a recipient of this backup; its recipients are {}",
                recipients.join(", ")
            ),
            Self::ChunkMissing(c) => write!(f, "{c} is missing from the store"),
            Self::ChunkHash {
                chunk,
                found_as: Some(other),
            } => write!(
                f,
                "{chunk}: sha256 does not match the manifest; the object holds chunk {other}'s bytes (chunks reordered or swapped)"
            ),
            Self::ChunkHash {
                chunk,
                found_as: None,
            } => write!(
                f,
                "{chunk}: sha256 does not match the manifest (altered or corrupted)"
            ),
            Self::ChunkWrongIdentity(c) => {
                write!(f, "{c}: none of the given identities can decrypt it")
            }
            Self::ChunkCorrupt { chunk, why } => write!(f, "{chunk}: {why}"),
            Self::Store(why) => write!(f, "object store: {why}"),
        }
    }
}

impl std::error::Error for Error {}
