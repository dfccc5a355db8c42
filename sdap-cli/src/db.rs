//! The Postgres side: exporting a database into a backup (an operator's
//! manual backup, and the benchmark's) and loading a verified backup into a
//! database, then proving the load by re-reading it.
//!
//! Both read rows through `sdap::tables` (the same text forms the API's
//! scheduled export uses), so a restored database re-exports to the bytes
//! the manifest hashed.

use indicatif::ProgressBar;
use rand_core::OsRng;
use sdap::age::{Identity, Recipient};
use sdap::backup::{self, ObjectSource};
use sdap::chunk::{self, Row};
use sdap::manifest::{Manifest, ManifestSigner};
use sdap::tables::{self, Table};
use tokio_postgres::{Client, GenericClient, NoTls};

use crate::store::Store;

pub async fn connect(url: &str) -> Result<Client, String> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|e| format!("cannot connect to the database: {e}"))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("sdap: database connection ended: {e}");
        }
    });
    Ok(client)
}

fn db_err(what: &str) -> impl Fn(tokio_postgres::Error) -> String + '_ {
    move |e| match e.as_db_error() {
        Some(d) => format!("{what}: {} ({})", d.message(), d.code().code()),
        None => format!("{what}: {e}"),
    }
}

/// One page of `table` after `cursor`, as text rows.
async fn page(
    client: &impl GenericClient,
    table: &Table,
    cursor: Option<&str>,
    limit: u64,
) -> Result<Vec<Row>, String> {
    let sql = table.page_sql(None);
    let limit = limit.to_string();
    let rows = client
        .query(&sql, &[&cursor, &limit])
        .await
        .map_err(db_err(&format!("reading {}", table.name)))?;
    rows.iter()
        .map(|r| {
            (0..table.columns.len())
                .map(|i| {
                    r.try_get::<_, Option<String>>(i)
                        .map_err(|e| format!("reading {}: {e}", table.name))
                })
                .collect()
        })
        .collect()
}

fn key_of(table: &Table, row: &Row) -> Option<String> {
    row.get(table.key_index()).cloned().flatten()
}

pub struct ExportPlan<'a> {
    pub backup_id: String,
    pub rows_per_chunk: u64,
    pub recipients: &'a [Recipient],
    pub signer: &'a ManifestSigner,
}

/// Exports every table from one consistent snapshot into `store`.
pub async fn export(
    client: &mut Client,
    store: &Store,
    plan: &ExportPlan<'_>,
    bar: &ProgressBar,
) -> Result<Manifest, String> {
    let started_at = now_rfc3339();
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(db_err("starting the export snapshot"))?;
    tx.batch_execute("SET LOCAL app.system = 'on'")
        .await
        .map_err(db_err("setting the scope"))?;
    let mut entries = Vec::new();
    for table in tables::TABLES {
        let mut cursor: Option<String> = None;
        loop {
            let rows = page(&tx, table, cursor.as_deref(), plan.rows_per_chunk).await?;
            if rows.is_empty() {
                break;
            }
            let index = u32::try_from(entries.len()).map_err(|_| "too many chunks")?;
            let sealed = chunk::seal(table, index, &rows, plan.recipients, &mut OsRng)
                .map_err(|e| e.to_string())?;
            store
                .put(
                    &backup::object_key(&plan.backup_id, &sealed.entry.object),
                    &sealed.ciphertext,
                )
                .map_err(|e| e.to_string())?;
            bar.inc(rows.len() as u64);
            entries.push(sealed.entry);
            cursor = rows.last().and_then(|r| key_of(table, r));
            if (rows.len() as u64) < plan.rows_per_chunk {
                break;
            }
        }
    }
    tx.commit().await.map_err(db_err("ending the snapshot"))?;
    let manifest = backup::build_manifest(
        &plan.backup_id,
        &started_at,
        &now_rfc3339(),
        entries,
        plan.recipients.iter().map(Recipient::fingerprint).collect(),
    );
    let (m, s) = plan.signer.sign(&manifest).map_err(|e| e.to_string())?;
    // Chunks first, the signature, then the manifest: a backup is listed
    // only once it is whole.
    store
        .put(&backup::object_key(&plan.backup_id, backup::SIGNATURE), &s)
        .map_err(|e| e.to_string())?;
    store
        .put(&backup::object_key(&plan.backup_id, backup::MANIFEST), &m)
        .map_err(|e| e.to_string())?;
    Ok(manifest)
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// What a restore did, per table: rows inserted and (with --merge) rows
/// already present.
#[derive(Debug, Default)]
pub struct RestoreReport {
    pub tables: Vec<(String, u64, u64)>,
}

/// Loads a verified backup in one transaction: all of it, or nothing.
pub async fn restore(
    client: &mut Client,
    src: &dyn ObjectSource,
    manifest: &Manifest,
    identities: &[Identity],
    merge: bool,
    bar: &ProgressBar,
) -> Result<RestoreReport, String> {
    let tx = client
        .transaction()
        .await
        .map_err(db_err("starting the restore transaction"))?;
    tx.batch_execute("SET LOCAL app.system = 'on'")
        .await
        .map_err(db_err("setting the scope"))?;
    check_schema(&tx, &manifest.schema_version).await?;
    if !merge {
        for table in tables::TABLES {
            let sql = format!("SELECT EXISTS (SELECT 1 FROM {})", table.name);
            let row = tx
                .query_one(&sql, &[])
                .await
                .map_err(db_err("checking the target is empty"))?;
            if row.try_get::<_, bool>(0).unwrap_or(true) {
                return Err(format!(
                    "the target database is not empty (table {} has rows); restore into an empty database, or pass --merge to add the backup's rows to it",
                    table.name
                ));
            }
        }
    }
    let mut report = RestoreReport::default();
    for table in tables::TABLES {
        let sql = table.insert_sql(merge);
        let mut inserted = 0u64;
        let mut expected = 0u64;
        for entry in manifest.chunks.iter().filter(|c| c.table == table.name) {
            // Re-read and re-check: the store may have changed since verify.
            let rows =
                backup::read_chunk(src, manifest, entry, identities).map_err(|e| e.to_string())?;
            let json = serde_json::to_string(&rows).map_err(|e| e.to_string())?;
            inserted += tx
                .execute(&sql, &[&json])
                .await
                .map_err(db_err(&format!("loading {}", entry.chunk_ref())))?;
            expected += entry.rows;
            bar.inc(1);
        }
        report
            .tables
            .push((table.name.to_string(), inserted, expected - inserted));
    }
    if !merge {
        check_loaded(&tx, manifest).await?;
    }
    tx.commit()
        .await
        .map_err(db_err("committing the restore"))?;
    Ok(report)
}

async fn check_schema(tx: &impl GenericClient, version: &str) -> Result<(), String> {
    let applied = tx
        .query_opt(
            "SELECT 1 FROM schema_migrations WHERE version = $1",
            &[&version],
        )
        .await
        .map_err(|e| {
            format!(
                "the target database has no migration history ({}); create it with the `migrate` tool first",
                e.as_db_error().map(|d| d.message()).unwrap_or("unreadable")
            )
        })?;
    if applied.is_none() {
        return Err(format!(
            "the target database has not applied migration {version}, which this backup's tables need; run `migrate` on it first"
        ));
    }
    Ok(())
}

/// Re-reads every table in key order, cut at the manifest's chunk sizes,
/// and compares row counts and each chunk's plaintext sha256.
async fn check_loaded(tx: &impl GenericClient, manifest: &Manifest) -> Result<(), String> {
    for table in tables::TABLES {
        let count: i64 = tx
            .query_one(&format!("SELECT count(*) FROM {}", table.name), &[])
            .await
            .map_err(db_err("counting rows"))?
            .try_get(0)
            .map_err(|e| e.to_string())?;
        let declared = manifest.tables.get(table.name).copied().unwrap_or(0);
        if u64::try_from(count).ok() != Some(declared) {
            return Err(format!(
                "after loading, table {} has {count} rows; the manifest says {declared}",
                table.name
            ));
        }
        let mut cursor: Option<String> = None;
        for entry in manifest.chunks.iter().filter(|c| c.table == table.name) {
            let rows = page(tx, table, cursor.as_deref(), entry.rows).await?;
            let plaintext = chunk::encode_plaintext(table, entry.index, &rows);
            if chunk::sha256_hex(&plaintext) != entry.plaintext_sha256 {
                return Err(format!(
                    "after loading, {} reads back differently from what was backed up",
                    entry.chunk_ref()
                ));
            }
            cursor = rows.last().and_then(|r| key_of(table, r));
        }
    }
    Ok(())
}

/// Connects and loads; used by `restore` after `verify` passed.
pub async fn restore_into(
    url: &str,
    src: &dyn ObjectSource,
    manifest: &Manifest,
    identities: &[Identity],
    merge: bool,
    bar: &ProgressBar,
) -> Result<RestoreReport, String> {
    let mut client = connect(url).await?;
    restore(&mut client, src, manifest, identities, merge, bar).await
}
