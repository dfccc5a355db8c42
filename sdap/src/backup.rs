//! A backup as a set of objects: where each lives, how a writer assembles
//! the manifest, and how a reader opens and checks one.
//!
//! Layout under the store's root (an R2 bucket, an S3 bucket or a folder):
//! `backups/<id>/chunk-000000.age …`, `backups/<id>/manifest.json`,
//! `backups/<id>/manifest.sig`. The manifest is written last, so a backup
//! without one is incomplete and never listed.

use std::collections::BTreeMap;

use ed25519_dalek::VerifyingKey;

use crate::age::Identity;
use crate::chunk::{self, Row, SealedChunk};
use crate::error::Error;
use crate::manifest::{self, ChunkEntry, Manifest};
use crate::tables;

pub const ROOT: &str = "backups/";
pub const MANIFEST: &str = "manifest.json";
pub const SIGNATURE: &str = "manifest.sig";

/// Backup ids are `YYYYMMDDTHHMMSSZ`, optionally followed by `-` and a
/// suffix: sortable by time, and safe as a path segment.
pub fn valid_backup_id(id: &str) -> bool {
    (16..=64).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && id.as_bytes().get(8) == Some(&b'T')
}

/// The object key of `name` (a chunk, the manifest or its signature) in
/// backup `id`.
pub fn object_key(id: &str, name: &str) -> String {
    format!("{ROOT}{id}/{name}")
}

/// Builds a manifest from chunk entries (in order) and the run's facts.
pub fn build_manifest(
    backup_id: &str,
    started_at: &str,
    finished_at: &str,
    chunks: Vec<ChunkEntry>,
    recipient_fingerprints: Vec<String>,
) -> Manifest {
    let mut counts: BTreeMap<String, u64> = tables::TABLES
        .iter()
        .map(|t| (t.name.to_string(), 0))
        .collect();
    for c in &chunks {
        *counts.entry(c.table.clone()).or_default() += c.rows;
    }
    Manifest {
        format: manifest::FORMAT.into(),
        format_version: manifest::FORMAT_VERSION,
        schema_version: tables::SCHEMA_VERSION.into(),
        backup_id: backup_id.into(),
        started_at: started_at.into(),
        finished_at: finished_at.into(),
        encoding: manifest::ENCODING.into(),
        compression: manifest::COMPRESSION.into(),
        encryption: manifest::ENCRYPTION.into(),
        tables: counts,
        chunks,
        recipients: recipient_fingerprints,
    }
}

/// Read access to a store, by object key. `Ok(None)`: no such object.
pub trait ObjectSource {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error>;
}

/// Reads and checks backup `id`'s manifest (signature first).
pub fn open_manifest(
    src: &dyn ObjectSource,
    id: &str,
    trusted: &[VerifyingKey],
) -> Result<Manifest, Error> {
    if !valid_backup_id(id) {
        return Err(Error::Manifest(format!("{id:?} is not a backup id")));
    }
    let manifest = src
        .get(&object_key(id, MANIFEST))?
        .ok_or_else(|| Error::Manifest(format!("backup {id} has no manifest")))?;
    let sig = src
        .get(&object_key(id, SIGNATURE))?
        .ok_or_else(|| Error::SignatureFile(format!("backup {id} has no {SIGNATURE}")))?;
    let m = manifest::open(&manifest, &sig, trusted)?;
    if m.backup_id != id {
        return Err(Error::Manifest(format!(
            "the manifest in folder {id} is backup {}'s (moved or replayed)",
            m.backup_id
        )));
    }
    Ok(m)
}

/// Refuses early, with the fingerprints, when none of the identities is a
/// recipient the manifest names.
pub fn check_identities(manifest: &Manifest, identities: &[Identity]) -> Result<(), Error> {
    let mine: Vec<String> = identities
        .iter()
        .map(|i| i.recipient().fingerprint())
        .collect();
    if mine.iter().any(|f| manifest.recipients.contains(f)) {
        return Ok(());
    }
    Err(Error::NotARecipient {
        identity: mine.join(", "),
        recipients: manifest.recipients.clone(),
    })
}

/// Reads, checks and decrypts one chunk.
pub fn read_chunk(
    src: &dyn ObjectSource,
    manifest: &Manifest,
    entry: &ChunkEntry,
    identities: &[Identity],
) -> Result<Vec<Row>, Error> {
    let stored = src.get(&object_key(&manifest.backup_id, &entry.object))?;
    chunk::open(entry, &manifest.chunks, stored.as_deref(), identities)
}

/// Every check a restore makes, without a database: signature, every
/// chunk's sha256, decryption, plaintext hashes and row counts. Calls
/// `progress` after each chunk.
pub fn verify(
    src: &dyn ObjectSource,
    id: &str,
    trusted: &[VerifyingKey],
    identities: &[Identity],
    progress: &mut dyn FnMut(&ChunkEntry),
) -> Result<Manifest, Error> {
    let manifest = open_manifest(src, id, trusted)?;
    check_identities(&manifest, identities)?;
    for entry in &manifest.chunks {
        read_chunk(src, &manifest, entry, identities)?;
        progress(entry);
    }
    Ok(manifest)
}

/// Convenience for writers that hold all rows of a table in memory (tests,
/// small exports): splits into chunks of `rows_per_chunk`, numbering from
/// `first_index`.
pub fn seal_table(
    table: &tables::Table,
    rows: &[Row],
    rows_per_chunk: usize,
    first_index: u32,
    recipients: &[crate::age::Recipient],
    rng: &mut dyn rand_core::CryptoRngCore,
) -> Result<Vec<SealedChunk>, Error> {
    rows.chunks(rows_per_chunk.max(1))
        .enumerate()
        .map(|(i, part)| chunk::seal(table, first_index + i as u32, part, recipients, rng))
        .collect()
}
