//! The scheduled SDAP backup: exports users, passkey credentials, refresh
//! sessions and memories in chunks (the `sdap` format: NDJSON, zlib, age to
//! the configured recipients), uploads each through the Blob port, reads it
//! back and compares its sha256, and finally writes the Ed25519-signed
//! manifest. Progress lives in Postgres (`backup_runs`) after every chunk,
//! so a run cut short resumes where it stopped; reads are plain keyset
//! pages, so ingest and retrieve never wait on it.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rand_core::{CryptoRng, RngCore};
use serde::Serialize;

use crate::app::Ctx;
use crate::config::BackupConfig;
use crate::repositories::backups::{Backups, RunState};
use crate::services::memories::rfc3339;
use crate::services::{backup_retention, backup_webhook};
use sdap::age::Recipient;
use sdap::backup as layout;
use sdap::chunk;
use sdap::manifest::{ChunkEntry, ManifestSigner};
use sdap::tables::TABLES;

/// The cron expression that starts a daily backup (wrangler.toml).
pub const BACKUP_CRON: &str = "0 3 * * *";
/// How long a runner holds a run; past it, the next scheduled run resumes it.
const LEASE_SECONDS: u64 = 15 * 60;

/// What one invocation did with backups.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct BackupReport {
    /// `disabled`, `idle`, `busy` (another runner holds it), `running`
    /// (stopped at the per-run cap; resumes next time), `done` or `failed`.
    pub status: String,
    pub backup_id: Option<String>,
    pub chunks_written: usize,
    pub rows_written: u64,
    pub error: Option<String>,
    /// Older backups that retention deleted after this one verified.
    pub deleted: Vec<String>,
}

/// The platform CSPRNG as a `rand_core` generator for the age encryption.
struct PlatformRng;

impl RngCore for PlatformRng {
    fn next_u32(&mut self) -> u32 {
        rand_core::impls::next_u32_via_fill(self)
    }
    fn next_u64(&mut self) -> u64 {
        rand_core::impls::next_u64_via_fill(self)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        // Callers use try_fill_bytes; a failure here leaves zeros, which
        // the age writer never sees (it only calls try_fill_bytes).
        let _ = self.try_fill_bytes(dest);
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        fill_random(dest).map_err(|_| rand_core::Error::from(core::num::NonZeroU32::MIN))
    }
}

impl CryptoRng for PlatformRng {}

#[cfg(feature = "rng")]
fn fill_random(dest: &mut [u8]) -> Result<(), ()> {
    getrandom::getrandom(dest).map_err(|_| ())
}

#[cfg(not(feature = "rng"))]
fn fill_random(_: &mut [u8]) -> Result<(), ()> {
    Err(())
}

/// A failure: logged in full, recorded and reported in public-safe words.
struct Failure {
    public: String,
    detail: String,
}

fn fail(public: &str, detail: impl core::fmt::Display) -> Failure {
    Failure {
        public: public.to_string(),
        detail: detail.to_string(),
    }
}

/// Runs the backup job. `start_new`: the daily trigger, which starts a
/// backup when none is unfinished; other triggers only resume one. A run
/// that completes is followed by retention; a run that finishes either way
/// is reported to the webhook.
pub async fn run(ctx: &Ctx<'_>, start_new: bool) -> BackupReport {
    let Some(cfg) = ctx.cfg.backup.as_ref() else {
        return BackupReport {
            status: "disabled".into(),
            ..Default::default()
        };
    };
    let mut report = run_export(ctx, cfg, start_new).await;
    if report.status == "done" {
        report.deleted = backup_retention::apply(ctx, cfg).await;
    }
    if report.status == "done" || report.status == "failed" {
        backup_webhook::notify(ctx, cfg.webhook_url.as_deref(), &report).await;
    }
    report
}

/// Claims or starts a run and exports from where it stands.
async fn run_export(ctx: &Ctx<'_>, cfg: &BackupConfig, start_new: bool) -> BackupReport {
    let now = rfc3339(ctx.now_ms);
    let repo = Backups { sql: ctx.p.sql };
    let mut report = BackupReport::default();

    let state = match next_run(&repo, &now, start_new, ctx.now_ms).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            report.status = if start_new { "busy" } else { "idle" }.into();
            return report;
        }
        Err(e) => {
            ctx.log(&format!("backup: claiming a run failed: {e}"));
            report.status = "failed".into();
            report.error = Some("backup bookkeeping unavailable".into());
            return report;
        }
    };
    report.backup_id = Some(state.backup_id.clone());
    let id = state.backup_id.clone();
    match export(ctx, cfg, &repo, state, &mut report).await {
        Ok(true) => {
            report.status = "done".into();
            if let Err(e) = repo
                .finish(&id, &rfc3339(ctx.p.clock.now_millis()), None)
                .await
            {
                ctx.log(&format!("backup {id}: recording success failed: {e}"));
            }
        }
        Ok(false) => {
            report.status = "running".into();
            if let Err(e) = repo.release(&id, &rfc3339(ctx.p.clock.now_millis())).await {
                ctx.log(&format!("backup {id}: releasing the lease failed: {e}"));
            }
        }
        Err(f) => {
            ctx.log(&format!("backup {id}: {}: {}", f.public, f.detail));
            report.status = "failed".into();
            report.error = Some(f.public.clone());
            let end = rfc3339(ctx.p.clock.now_millis());
            if let Err(e) = repo.finish(&id, &end, Some(&f.public)).await {
                ctx.log(&format!("backup {id}: recording the failure failed: {e}"));
            }
        }
    }
    report
}

/// Resumes an unfinished run whose lease expired, or (daily trigger, none
/// unfinished) starts one.
async fn next_run(
    repo: &Backups<'_>,
    now: &str,
    start_new: bool,
    now_ms: i64,
) -> Result<Option<RunState>, crate::ports::PortError> {
    if let Some(s) = repo.claim(now, LEASE_SECONDS).await? {
        return Ok(Some(s));
    }
    if !start_new || repo.any_running().await? {
        return Ok(None);
    }
    let id = backup_id(now_ms);
    if !repo.start(&id, now, LEASE_SECONDS).await? {
        // Started already this second (a duplicate trigger).
        return Ok(None);
    }
    Ok(Some(RunState {
        backup_id: id,
        started_at: now.to_string(),
        table_index: 0,
        cursor: None,
        chunks_json: "[]".into(),
    }))
}

/// `YYYYMMDDTHHMMSSZ` of a Unix time in milliseconds.
pub fn backup_id(now_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(now_ms)
        .map(|t| t.format("%Y%m%dT%H%M%SZ").to_string())
        .unwrap_or_else(|| "19700101T000000Z".into())
}

/// Exports from where `state` stands. Ok(true): the backup is complete and
/// its manifest written; Ok(false): the per-run chunk cap was reached.
async fn export(
    ctx: &Ctx<'_>,
    cfg: &BackupConfig,
    repo: &Backups<'_>,
    mut state: RunState,
    report: &mut BackupReport,
) -> Result<bool, Failure> {
    let recipients: Vec<Recipient> = cfg
        .recipients
        .iter()
        .map(|r| Recipient::parse(r))
        .collect::<Result<_, _>>()
        .map_err(|e| fail("a backup recipient is invalid", e))?;
    let signer = ManifestSigner::parse(&cfg.signing_key)
        .map_err(|e| fail("the backup signing key is invalid", e))?;
    let mut entries: Vec<ChunkEntry> = serde_json::from_str(&state.chunks_json)
        .map_err(|e| fail("the saved backup progress is unreadable", e))?;
    let mut rng = PlatformRng;

    for _ in 0..cfg.max_chunks_per_run {
        let Some(table) = TABLES.get(state.table_index) else {
            break;
        };
        let rows = repo
            .page(
                table,
                state.cursor.as_deref(),
                cfg.rows_per_chunk,
                &state.started_at,
            )
            .await
            .map_err(|e| fail("reading rows for the backup failed", e))?;
        if rows.is_empty() {
            state.table_index += 1;
            state.cursor = None;
        } else {
            let index = u32::try_from(entries.len()).map_err(|e| fail("too many chunks", e))?;
            let sealed = chunk::seal(table, index, &rows, &recipients, &mut rng)
                .map_err(|e| fail("encrypting a backup chunk failed", e))?;
            let key = layout::object_key(&state.backup_id, &sealed.entry.object);
            put_verified(ctx, &key, &sealed.ciphertext).await?;
            report.chunks_written += 1;
            report.rows_written += rows.len() as u64;
            state.cursor = rows
                .last()
                .and_then(|r| r.get(table.key_index()).cloned().flatten());
            if rows.len() < cfg.rows_per_chunk {
                state.table_index += 1;
                state.cursor = None;
            }
            entries.push(sealed.entry);
        }
        state.chunks_json = serde_json::to_string(&entries)
            .map_err(|e| fail("saving backup progress failed", e))?;
        repo.save(&state, &rfc3339(ctx.p.clock.now_millis()))
            .await
            .map_err(|e| fail("saving backup progress failed", e))?;
    }
    if state.table_index < TABLES.len() {
        return Ok(false);
    }

    let manifest = layout::build_manifest(
        &state.backup_id,
        &state.started_at,
        &rfc3339(ctx.p.clock.now_millis()),
        entries,
        recipients.iter().map(Recipient::fingerprint).collect(),
    );
    let (m, s) = signer
        .sign(&manifest)
        .map_err(|e| fail("signing the manifest failed", e))?;
    // The signature first, the manifest last: a listed backup is whole.
    put_verified(
        ctx,
        &layout::object_key(&state.backup_id, layout::SIGNATURE),
        &s,
    )
    .await?;
    put_verified(
        ctx,
        &layout::object_key(&state.backup_id, layout::MANIFEST),
        &m,
    )
    .await?;
    Ok(true)
}

/// Uploads, reads back and compares sha256: a backup counts only once the
/// store demonstrably holds it.
async fn put_verified(ctx: &Ctx<'_>, key: &str, bytes: &[u8]) -> Result<(), Failure> {
    ctx.p
        .blob
        .put(key, bytes)
        .await
        .map_err(|e| fail("uploading to the backup store failed", e))?;
    let back = ctx
        .p
        .blob
        .get(key)
        .await
        .map_err(|e| fail("reading back from the backup store failed", e))?;
    match back {
        Some(b) if chunk::sha256_hex(&b) == chunk::sha256_hex(bytes) => Ok(()),
        Some(_) => Err(fail(
            "the backup store returned different bytes than were written",
            key,
        )),
        None => Err(fail("the backup store lost an object just written", key)),
    }
}
