//! The backup outcome webhook: when a run finishes (`done` or `failed`),
//! POSTs its outcome as JSON to `MEMSHADOW_BACKUP_WEBHOOK_URL` through the
//! HttpClient port. Best effort: a webhook that fails or answers non-2xx is
//! logged (without its URL, which may carry a token) and never fails the
//! backup.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde::Serialize;

use crate::app::Ctx;
use crate::repositories::backups::{Backups, RunSummary};
use crate::services::backup::BackupReport;

/// How long the webhook may take, milliseconds.
pub const WEBHOOK_TIMEOUT_MS: u64 = 5_000;
/// `event` of every payload.
pub const EVENT: &str = "memshadow.backup.finished";

/// What the webhook receives. Counts cover the whole backup (every chunk
/// the run wrote, across resumed invocations); `error` is the public-safe
/// reason of a failure, never internal detail.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Payload {
    pub event: &'static str,
    pub backup_id: Option<String>,
    /// `done` or `failed`.
    pub status: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub duration_ms: Option<i64>,
    pub chunks: u64,
    pub rows: u64,
    pub error: Option<String>,
    /// Backups that retention deleted after this one verified.
    pub deleted: Vec<String>,
}

/// The payload from the run's recorded summary, or (when it could not be
/// read) from what this invocation saw.
pub fn payload(report: &BackupReport, summary: Option<RunSummary>) -> Payload {
    let base = Payload {
        event: EVENT,
        backup_id: report.backup_id.clone(),
        status: report.status.clone(),
        started_at: None,
        finished_at: None,
        duration_ms: None,
        chunks: report.chunks_written as u64,
        rows: report.rows_written,
        error: report.error.clone(),
        deleted: report.deleted.clone(),
    };
    match summary {
        Some(s) => Payload {
            started_at: Some(s.started_at),
            finished_at: s.finished_at,
            duration_ms: s.duration_ms,
            chunks: s.chunks,
            rows: s.rows,
            ..base
        },
        None => base,
    }
}

/// Sends the outcome of a finished run, if a webhook is configured.
pub async fn notify(ctx: &Ctx<'_>, url: Option<&str>, report: &BackupReport) {
    let Some(url) = url else {
        return;
    };
    let summary = match &report.backup_id {
        Some(id) => match (Backups { sql: ctx.p.sql }).summary(id).await {
            Ok(s) => s,
            Err(e) => {
                ctx.log(&format!("backup webhook: reading run {id} failed: {e}"));
                None
            }
        },
        None => None,
    };
    let body = match serde_json::to_vec(&payload(report, summary)) {
        Ok(b) => b,
        Err(e) => {
            ctx.log(&format!("backup webhook: encoding failed: {e}"));
            return;
        }
    };
    match ctx.p.http.post_json(url, body, WEBHOOK_TIMEOUT_MS).await {
        Ok(r) if (200..300).contains(&r.status) => {}
        Ok(r) => ctx.log(&format!("backup webhook: answered HTTP {}", r.status)),
        Err(e) => ctx.log(&format!("backup webhook: not delivered: {:?}", e.kind)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_recorded_summary_wins_over_the_invocation() {
        let report = BackupReport {
            status: "done".into(),
            backup_id: Some("20261130T030000Z".into()),
            chunks_written: 1,
            rows_written: 10,
            error: None,
            deleted: vec!["20261120T030000Z".into()],
        };
        let p = payload(&report, None);
        assert_eq!((p.chunks, p.rows, p.started_at.clone()), (1, 10, None));
        let s = RunSummary {
            backup_id: "20261130T030000Z".into(),
            status: "done".into(),
            started_at: "2026-11-30T03:00:00.000000Z".into(),
            finished_at: Some("2026-11-30T03:00:09.000000Z".into()),
            duration_ms: Some(9000),
            chunks: 4,
            rows: 1700,
            error: None,
            deleted_at: None,
        };
        let v = serde_json::to_value(payload(&report, Some(s))).unwrap();
        assert_eq!(v["event"], EVENT);
        assert_eq!(v["status"], "done");
        assert_eq!(v["duration_ms"], 9000);
        assert_eq!(
            (v["chunks"].clone(), v["rows"].clone()),
            (4.into(), 1700.into())
        );
        assert_eq!(v["deleted"], serde_json::json!(["20261120T030000Z"]));
    }
}
