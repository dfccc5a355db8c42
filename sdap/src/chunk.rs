//! One chunk: rows of one table, encoded as NDJSON, compressed with zlib,
//! encrypted to the recipients with age.
//!
//! Plaintext: a header line `{"sdap":1,"table":…,"chunk":…,"columns":[…]}`
//! then one JSON array per row, each value a string (the column's text
//! form, see `tables`) or null, in column order. Serialisation is
//! deterministic, so re-encoding restored rows reproduces the hash.

use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::age::{self, AgeError, Identity, Recipient};
use crate::error::Error;
use crate::manifest::{ChunkEntry, chunk_object_name};
use crate::tables::Table;

/// One row: every column as text or NULL, in the table's column order.
pub type Row = Vec<Option<String>>;

const PLAINTEXT_VERSION: u32 = 1;
/// zlib level: a good size/CPU balance inside a Worker's CPU budget.
const COMPRESSION_LEVEL: u8 = 6;

#[derive(Serialize, Deserialize)]
struct Header {
    sdap: u32,
    table: String,
    chunk: u32,
    columns: Vec<String>,
}

pub fn encode_plaintext(table: &Table, index: u32, rows: &[Row]) -> Vec<u8> {
    let header = Header {
        sdap: PLAINTEXT_VERSION,
        table: table.name.to_string(),
        chunk: index,
        columns: table.column_names().iter().map(|c| c.to_string()).collect(),
    };
    // Strings, nulls and a plain struct always serialise.
    let mut out = serde_json::to_vec(&header).unwrap_or_default();
    out.push(b'\n');
    for row in rows {
        out.extend_from_slice(&serde_json::to_vec(row).unwrap_or_default());
        out.push(b'\n');
    }
    out
}

/// Parses a chunk's plaintext, checking it is chunk `index` of `table`
/// with exactly the table's columns.
pub fn decode_plaintext(table: &Table, index: u32, plaintext: &[u8]) -> Result<Vec<Row>, String> {
    let text = core::str::from_utf8(plaintext).map_err(|_| "plaintext is not UTF-8".to_string())?;
    let mut lines = text.split_terminator('\n');
    let header: Header = lines
        .next()
        .and_then(|l| serde_json::from_str(l).ok())
        .ok_or_else(|| "plaintext has no valid header line".to_string())?;
    if header.sdap != PLAINTEXT_VERSION {
        return Err(format!(
            "plaintext version {} is not supported",
            header.sdap
        ));
    }
    if header.table != table.name || header.chunk != index {
        return Err(format!(
            "plaintext says it is chunk {} of table {}",
            header.chunk, header.table
        ));
    }
    if header.columns != table.column_names() {
        return Err(format!(
            "plaintext columns {:?} differ from this schema's {:?}",
            header.columns,
            table.column_names()
        ));
    }
    let width = table.columns.len();
    lines
        .enumerate()
        .map(|(i, line)| {
            let row: Row = serde_json::from_str(line)
                .map_err(|e| format!("row {i} is not a JSON array of strings/nulls: {e}"))?;
            if row.len() != width {
                return Err(format!(
                    "row {i} has {} values, expected {width}",
                    row.len()
                ));
            }
            Ok(row)
        })
        .collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A chunk ready to upload, with its manifest entry.
pub struct SealedChunk {
    pub ciphertext: Vec<u8>,
    pub entry: ChunkEntry,
}

/// Encodes, compresses and encrypts `rows` as chunk `index` of `table`.
pub fn seal(
    table: &Table,
    index: u32,
    rows: &[Row],
    recipients: &[Recipient],
    rng: &mut dyn CryptoRngCore,
) -> Result<SealedChunk, Error> {
    let plaintext = encode_plaintext(table, index, rows);
    let compressed = miniz_oxide::deflate::compress_to_vec_zlib(&plaintext, COMPRESSION_LEVEL);
    let ciphertext = age::encrypt(recipients, &compressed, rng).map_err(Error::Encrypt)?;
    let entry = ChunkEntry {
        index,
        object: chunk_object_name(index),
        table: table.name.to_string(),
        rows: rows.len() as u64,
        sha256: sha256_hex(&ciphertext),
        size: ciphertext.len() as u64,
        plaintext_sha256: sha256_hex(&plaintext),
        plaintext_size: plaintext.len() as u64,
    };
    Ok(SealedChunk { ciphertext, entry })
}

/// Checks a stored object against its manifest entry (sha256 first, so a
/// swapped chunk is named as such), then decrypts, decompresses (bounded
/// by the signed plaintext size), re-hashes and parses it.
pub fn open(
    entry: &ChunkEntry,
    all: &[ChunkEntry],
    stored: Option<&[u8]>,
    identities: &[Identity],
) -> Result<Vec<Row>, Error> {
    let chunk = entry.chunk_ref();
    let ciphertext = stored.ok_or_else(|| Error::ChunkMissing(chunk.clone()))?;
    let digest = sha256_hex(ciphertext);
    if digest != entry.sha256 {
        let found_as = all
            .iter()
            .find(|c| c.sha256 == digest && c.index != entry.index)
            .map(|c| c.index);
        return Err(Error::ChunkHash { chunk, found_as });
    }
    let corrupt = |why: String| Error::ChunkCorrupt {
        chunk: entry.chunk_ref(),
        why,
    };
    let compressed = match age::decrypt(identities, ciphertext) {
        Ok(c) => c,
        Err(AgeError::NoMatchingIdentity) => return Err(Error::ChunkWrongIdentity(chunk)),
        Err(e) => return Err(corrupt(e.to_string())),
    };
    let limit = usize::try_from(entry.plaintext_size)
        .map_err(|_| corrupt("plaintext size too large".into()))?;
    let plaintext = miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(&compressed, limit)
        .map_err(|e| corrupt(format!("decompression failed: {:?}", e.status)))?;
    if sha256_hex(&plaintext) != entry.plaintext_sha256 {
        return Err(corrupt(
            "plaintext sha256 does not match the manifest".into(),
        ));
    }
    let table = crate::tables::table(&entry.table)
        .ok_or_else(|| corrupt(format!("unknown table {}", entry.table)))?;
    let rows = decode_plaintext(table, entry.index, &plaintext).map_err(corrupt)?;
    if rows.len() as u64 != entry.rows {
        return Err(corrupt(format!(
            "holds {} rows, the manifest says {}",
            rows.len(),
            entry.rows
        )));
    }
    Ok(rows)
}
