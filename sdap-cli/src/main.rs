//! `sdap`: the operator's side of MEMSHADOW backups. Makes the keys, lists
//! the backups in a store (a folder or an S3-compatible bucket), verifies
//! one without writing anything, restores one into a database (checking
//! signature, every sha256, decryption, row counts and content hashes),
//! and exports a database by hand.
//!
//! The private age identity lives only here, never at the edge.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod db;
mod s3_store;
mod store;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ed25519_dalek::VerifyingKey;
use indicatif::{ProgressBar, ProgressStyle};
use rand_core::OsRng;
use sdap::age::{Identity, Recipient};
use sdap::backup;
use sdap::manifest::{self, ManifestSigner};

use crate::store::Store;

#[derive(Parser)]
#[command(
    name = "sdap",
    about = "MEMSHADOW backups: keys, list, verify, restore, export"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct Source {
    /// The store: `s3://BUCKET` (settings from MEMSHADOW_BACKUP_S3_*), or
    /// a folder holding `backups/<id>/…` (a copy of the bucket).
    #[arg(long)]
    from: String,
    /// Ed25519 public key (base64) trusted to sign manifests, or a file
    /// holding one; repeatable.
    #[arg(long = "trusted-key", env = "SDAP_TRUSTED_KEY", required = true)]
    trusted_keys: Vec<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Make an age identity and an Ed25519 signing key in a folder
    /// (identity.txt, signing-key.txt: mode 0600; recipient.txt,
    /// signing-key.pub) and print the API's settings.
    Keygen {
        #[arg(long)]
        dir: PathBuf,
    },
    /// List the complete backups in a store, newest last.
    List {
        #[command(flatten)]
        source: Source,
    },
    /// Every check a restore makes, without touching a database.
    Verify {
        #[command(flatten)]
        source: Source,
        /// A backup id, or `latest`.
        #[arg(long, default_value = "latest")]
        backup: String,
        /// age identity file (AGE-SECRET-KEY-1… lines).
        #[arg(long)]
        identity: PathBuf,
    },
    /// Verify, then load into a database in one transaction and check it.
    Restore {
        #[command(flatten)]
        source: Source,
        #[arg(long, default_value = "latest")]
        backup: String,
        #[arg(long)]
        identity: PathBuf,
        /// Postgres URL of the target (a superuser or the table owner);
        /// the schema must be migrated and, unless --merge, every table empty.
        #[arg(long)]
        database: String,
        /// Add to a non-empty database, skipping rows whose key exists.
        #[arg(long)]
        merge: bool,
    },
    /// Export a database into a store (a manual backup).
    Export {
        #[arg(long)]
        database: String,
        /// `s3://BUCKET` (settings from MEMSHADOW_BACKUP_S3_*), or a folder.
        #[arg(long)]
        to: String,
        /// age recipient (age1…); repeatable.
        #[arg(long = "recipient", required = true)]
        recipients: Vec<String>,
        /// File holding the Ed25519 signing key (base64 seed).
        #[arg(long)]
        signing_key: PathBuf,
        #[arg(long, default_value_t = 1000)]
        rows_per_chunk: u64,
        /// The backup's id [the current UTC time, YYYYMMDDTHHMMSSZ].
        #[arg(long)]
        backup_id: Option<String>,
    },
}

fn read_text(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn trusted_keys(args: &[String]) -> Result<Vec<VerifyingKey>, String> {
    args.iter()
        .map(|a| {
            let text = if Path::new(a).is_file() {
                read_text(Path::new(a))?
            } else {
                a.clone()
            };
            manifest::parse_public_key(&text).map_err(|e| format!("--trusted-key: {e}"))
        })
        .collect()
}

fn identities(path: &Path) -> Result<Vec<Identity>, String> {
    Identity::parse_file(&read_text(path)?)
        .map_err(|e| format!("--identity {}: {e}", path.display()))
}

fn resolve(store: &Store, wanted: &str) -> Result<String, String> {
    if wanted != "latest" {
        return Ok(wanted.to_string());
    }
    store
        .backup_ids()
        .map_err(|e| e.to_string())?
        .pop()
        .ok_or_else(|| "the store holds no complete backup".to_string())
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar
}

fn write_secret(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(text.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn keygen(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let id = Identity::generate(&mut OsRng).map_err(|e| e.to_string())?;
    let signer = ManifestSigner::generate(&mut OsRng).map_err(|e| e.to_string())?;
    let recipient = id.recipient().to_bech32();
    let public = base64_of(signer.public_key().as_bytes());
    write_secret(
        &dir.join("identity.txt"),
        &format!(
            "# sdap restore identity; recipient: {recipient}\n{}\n",
            id.to_bech32().as_str()
        ),
    )?;
    write_secret(
        &dir.join("signing-key.txt"),
        &format!("{}\n", signer.to_base64().as_str()),
    )?;
    std::fs::write(dir.join("signing-key.pub"), format!("{public}\n"))
        .map_err(|e| e.to_string())?;
    std::fs::write(dir.join("recipient.txt"), format!("{recipient}\n"))
        .map_err(|e| e.to_string())?;
    println!("MEMSHADOW_BACKUP_RECIPIENTS={recipient}");
    println!("MEMSHADOW_BACKUP_SIGNING_KEY: the contents of signing-key.txt (a secret)");
    println!("trusted key for restore (--trusted-key): {public}");
    Ok(())
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn list(source: &Source) -> Result<(), String> {
    let keys = trusted_keys(&source.trusted_keys)?;
    let store = Store::open(&source.from)?;
    let ids = store.backup_ids().map_err(|e| e.to_string())?;
    if ids.is_empty() {
        println!("no complete backups in {}", store.describe());
        return Ok(());
    }
    println!(
        "{:<24} {:>12} {:>12} {:>8} {:>10}  status",
        "backup", "age", "size", "chunks", "rows"
    );
    let now = chrono::Utc::now();
    for id in ids {
        let size = store.backup_size(&id);
        match backup::open_manifest(&store, &id, &keys) {
            Ok(m) => {
                let age = chrono::DateTime::parse_from_rfc3339(&m.finished_at)
                    .map(|t| human_age(now.signed_duration_since(t).num_seconds()))
                    .unwrap_or_else(|_| "?".into());
                let rows: u64 = m.tables.values().sum();
                println!(
                    "{id:<24} {age:>12} {:>12} {:>8} {rows:>10}  signed",
                    human_size(size),
                    m.chunks.len()
                );
            }
            Err(e) => println!(
                "{id:<24} {:>12} {:>12}  REFUSED: {e}",
                "?",
                human_size(size)
            ),
        }
    }
    Ok(())
}

fn human_age(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS.get(unit).copied().unwrap_or("B"))
}

fn verify(
    source: &Source,
    wanted: &str,
    identity: &Path,
) -> Result<(Store, manifest::Manifest, Vec<Identity>), String> {
    let keys = trusted_keys(&source.trusted_keys)?;
    let ids = identities(identity)?;
    let store = Store::open(&source.from)?;
    let id = resolve(&store, wanted)?;
    let manifest = backup::open_manifest(&store, &id, &keys).map_err(|e| e.to_string())?;
    backup::check_identities(&manifest, &ids).map_err(|e| e.to_string())?;
    let pb = bar(manifest.chunks.len() as u64, "verifying");
    for entry in &manifest.chunks {
        backup::read_chunk(&store, &manifest, entry, &ids).map_err(|e| e.to_string())?;
        pb.inc(1);
    }
    pb.finish_and_clear();
    Ok((store, manifest, ids))
}

async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Keygen { dir } => keygen(&dir),
        Command::List { source } => list(&source),
        Command::Verify {
            source,
            backup,
            identity,
        } => {
            let (_, m, _) = verify(&source, &backup, &identity)?;
            let rows: u64 = m.tables.values().sum();
            println!(
                "backup {} verified: signature, {} chunks (sha256, decryption, plaintext sha256), {rows} rows",
                m.backup_id,
                m.chunks.len()
            );
            Ok(())
        }
        Command::Restore {
            source,
            backup,
            identity,
            database,
            merge,
        } => {
            let (store, m, ids) = verify(&source, &backup, &identity)?;
            let pb = bar(m.chunks.len() as u64, "loading");
            let report = db::restore_into(&database, &store, &m, &ids, merge, &pb).await?;
            pb.finish_and_clear();
            println!("backup {} restored:", m.backup_id);
            for (table, inserted, skipped) in report.tables {
                if merge {
                    println!("  {table}: {inserted} rows inserted, {skipped} already present");
                } else {
                    println!("  {table}: {inserted} rows");
                }
            }
            if !merge {
                println!("row counts and content hashes match the manifest");
            }
            Ok(())
        }
        Command::Export {
            database,
            to,
            recipients,
            signing_key,
            rows_per_chunk,
            backup_id,
        } => {
            let recipients = recipients
                .iter()
                .map(|r| Recipient::parse(r).map_err(|e| format!("--recipient {r}: {e}")))
                .collect::<Result<Vec<_>, _>>()?;
            let signer =
                ManifestSigner::parse(&read_text(&signing_key)?).map_err(|e| e.to_string())?;
            let store = Store::open(&to)?;
            let id = backup_id
                .unwrap_or_else(|| chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string());
            if !backup::valid_backup_id(&id) {
                return Err(format!(
                    "--backup-id {id:?}: expected YYYYMMDDTHHMMSSZ[-suffix]"
                ));
            }
            let mut client = db::connect(&database).await?;
            let pb = ProgressBar::new_spinner();
            pb.set_message("exporting rows");
            let plan = db::ExportPlan {
                backup_id: id,
                rows_per_chunk: rows_per_chunk.max(1),
                recipients: &recipients,
                signer: &signer,
            };
            let m = db::export(&mut client, &store, &plan, &pb).await?;
            pb.finish_and_clear();
            println!(
                "backup {} written: {} chunks, rows {:?}",
                m.backup_id,
                m.chunks.len(),
                m.tables
            );
            Ok(())
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sdap: {e}");
            ExitCode::FAILURE
        }
    }
}
