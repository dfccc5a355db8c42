//! Backup runs (progress, lease, outcome and retention, in `backup_runs`)
//! and the export's paged reads of the backed-up tables. The column lists come from
//! `sdap::tables`, shared with the restore tool's check.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::ports::{PortError, Sql, SqlParam, SqlRow, SqlScope};
use crate::repositories::rows::{col, opt_col};

const TS: &str = "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'";

/// Starts a run unless one with this id exists. `$3`: lease seconds.
const START: &str = "INSERT INTO backup_runs (backup_id, started_at, status, lease_until, updated_at) \
     VALUES ($1, $2::timestamptz, 'running', $2::timestamptz + make_interval(secs => $3::text::int), $2::timestamptz) \
     ON CONFLICT (backup_id) DO NOTHING RETURNING backup_id";

/// Takes the lease of the oldest unfinished run whose lease ran out (its
/// runner died or hit its limits): the run resumes where it stopped.
fn claim_sql() -> String {
    format!(
        "UPDATE backup_runs SET lease_until = $1::timestamptz + make_interval(secs => $2::text::int), updated_at = $1::timestamptz \
         WHERE backup_id = (SELECT backup_id FROM backup_runs WHERE status = 'running' \
                            AND (lease_until IS NULL OR lease_until < $1::timestamptz) \
                            ORDER BY backup_id LIMIT 1 FOR UPDATE SKIP LOCKED) \
         RETURNING backup_id, to_char(started_at AT TIME ZONE 'UTC', {TS}), table_index::text, cursor, chunks::text"
    )
}

const ANY_RUNNING: &str = "SELECT backup_id FROM backup_runs WHERE status = 'running' LIMIT 1";

const SAVE: &str = "UPDATE backup_runs SET table_index = $2::text::int, cursor = $3, chunks = $4::text::jsonb, \
     updated_at = $5::timestamptz WHERE backup_id = $1 AND status = 'running'";

const RELEASE: &str = "UPDATE backup_runs SET lease_until = NULL, updated_at = $2::timestamptz \
     WHERE backup_id = $1 AND status = 'running'";

const FINISH: &str = "UPDATE backup_runs SET status = $2, finished_at = $3::timestamptz, \
     duration_ms = (extract(epoch FROM $3::timestamptz - started_at) * 1000)::bigint, \
     error = $4, lease_until = NULL, updated_at = $3::timestamptz \
     WHERE backup_id = $1 AND status = 'running'";

/// The newest finished run of each outcome.
fn outcomes_sql() -> String {
    format!(
        "SELECT DISTINCT ON (status) status, backup_id, to_char(finished_at AT TIME ZONE 'UTC', {TS}), \
                duration_ms::text, error \
         FROM backup_runs WHERE status IN ('done', 'failed') ORDER BY status, finished_at DESC"
    )
}

/// A run as operators and the webhook see it; counts come from the chunks
/// written so far (the whole backup once it is `done`).
fn summary_sql(filter: &str) -> String {
    format!(
        "SELECT backup_id, status, to_char(started_at AT TIME ZONE 'UTC', {TS}), \
                to_char(finished_at AT TIME ZONE 'UTC', {TS}), duration_ms::text, \
                jsonb_array_length(chunks)::text, \
                (SELECT coalesce(sum((c->>'rows')::bigint), 0) FROM jsonb_array_elements(chunks) c)::text, \
                error, to_char(deleted_at AT TIME ZONE 'UTC', {TS}) \
         FROM backup_runs {filter}"
    )
}

/// The newest runs first. `$1`: how many.
fn recent_sql() -> String {
    summary_sql("ORDER BY started_at DESC, backup_id DESC LIMIT $1::text::int")
}

fn one_sql() -> String {
    summary_sql("WHERE backup_id = $1")
}

/// Finished runs whose objects still exist, newest first: what retention
/// chooses from.
const RETAINED: &str = "SELECT backup_id, status FROM backup_runs \
     WHERE deleted_at IS NULL AND status IN ('done', 'failed') \
     ORDER BY started_at DESC, backup_id DESC";

/// Records that retention deleted a finished run's objects (`$3`: how many).
const MARK_DELETED: &str = "UPDATE backup_runs SET deleted_at = $2::timestamptz, \
     deleted_objects = $3::text::int, updated_at = $2::timestamptz \
     WHERE backup_id = $1 AND deleted_at IS NULL AND status IN ('done', 'failed')";

/// Where an unfinished run stands.
#[derive(Debug, Clone, PartialEq)]
pub struct RunState {
    pub backup_id: String,
    pub started_at: String,
    /// Index into `sdap::tables::TABLES` of the table being exported.
    pub table_index: usize,
    /// Key of the last row exported from that table.
    pub cursor: Option<String>,
    /// JSON array of the manifest entries of the chunks written so far.
    pub chunks_json: String,
}

/// The last success or failure, for `/ready` and operators.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub status: String,
    pub backup_id: String,
    pub finished_at: String,
    pub duration_ms: i64,
    pub error: Option<String>,
}

/// One run, for the admin endpoint and the webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    pub backup_id: String,
    /// `running`, `done` or `failed`.
    pub status: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub duration_ms: Option<i64>,
    pub chunks: u64,
    pub rows: u64,
    /// Public-safe reason of a failure.
    pub error: Option<String>,
    /// When retention deleted its objects.
    pub deleted_at: Option<String>,
}

/// A finished run whose objects still exist.
#[derive(Debug, Clone, PartialEq)]
pub struct Retained {
    pub backup_id: String,
    /// True for `done` (verified), false for `failed`.
    pub done: bool,
}

fn number<T: std::str::FromStr>(r: &SqlRow, i: usize) -> Result<T, PortError> {
    col(r, i)?
        .parse()
        .map_err(|_| PortError::failed(format!("column {i} is not a number")))
}

fn summary(r: &SqlRow) -> Result<RunSummary, PortError> {
    Ok(RunSummary {
        backup_id: col(r, 0)?.to_string(),
        status: col(r, 1)?.to_string(),
        started_at: col(r, 2)?.to_string(),
        finished_at: opt_col(r, 3)?.map(str::to_string),
        duration_ms: match opt_col(r, 4)? {
            Some(_) => Some(number(r, 4)?),
            None => None,
        },
        chunks: number(r, 5)?,
        rows: number(r, 6)?,
        error: opt_col(r, 7)?.map(str::to_string),
        deleted_at: opt_col(r, 8)?.map(str::to_string),
    })
}

pub struct Backups<'a> {
    pub sql: &'a dyn Sql,
}

fn p(v: impl Into<String>) -> SqlParam {
    Some(v.into())
}

impl Backups<'_> {
    async fn q(
        &self,
        sql: &str,
        params: &[SqlParam],
    ) -> Result<Vec<Vec<Option<String>>>, PortError> {
        self.sql.query(&SqlScope::System, sql, params).await
    }

    /// True when the run was created (false: that id exists already).
    pub async fn start(&self, id: &str, now: &str, lease_s: u64) -> Result<bool, PortError> {
        let rows = self
            .q(START, &[p(id), p(now), p(lease_s.to_string())])
            .await?;
        Ok(!rows.is_empty())
    }

    pub async fn claim(&self, now: &str, lease_s: u64) -> Result<Option<RunState>, PortError> {
        let rows = self
            .q(&claim_sql(), &[p(now), p(lease_s.to_string())])
            .await?;
        let Some(r) = rows.first() else {
            return Ok(None);
        };
        Ok(Some(RunState {
            backup_id: col(r, 0)?.to_string(),
            started_at: col(r, 1)?.to_string(),
            table_index: col(r, 2)?
                .parse()
                .map_err(|_| PortError::failed("table_index is not a number"))?,
            cursor: opt_col(r, 3)?.map(str::to_string),
            chunks_json: col(r, 4)?.to_string(),
        }))
    }

    pub async fn any_running(&self) -> Result<bool, PortError> {
        Ok(!self.q(ANY_RUNNING, &[]).await?.is_empty())
    }

    pub async fn save(&self, state: &RunState, now: &str) -> Result<(), PortError> {
        self.q(
            SAVE,
            &[
                p(&state.backup_id),
                p(state.table_index.to_string()),
                state.cursor.clone(),
                p(&state.chunks_json),
                p(now),
            ],
        )
        .await
        .map(|_| ())
    }

    pub async fn release(&self, id: &str, now: &str) -> Result<(), PortError> {
        self.q(RELEASE, &[p(id), p(now)]).await.map(|_| ())
    }

    /// Marks the run `done` or `failed` (with a public-safe error).
    pub async fn finish(&self, id: &str, now: &str, error: Option<&str>) -> Result<(), PortError> {
        let status = if error.is_some() { "failed" } else { "done" };
        self.q(
            FINISH,
            &[p(id), p(status), p(now), error.map(str::to_string)],
        )
        .await
        .map(|_| ())
    }

    pub async fn outcomes(&self) -> Result<Vec<Outcome>, PortError> {
        let rows = self.q(&outcomes_sql(), &[]).await?;
        rows.iter()
            .map(|r| {
                Ok(Outcome {
                    status: col(r, 0)?.to_string(),
                    backup_id: col(r, 1)?.to_string(),
                    finished_at: col(r, 2)?.to_string(),
                    duration_ms: col(r, 3)?
                        .parse()
                        .map_err(|_| PortError::failed("duration is not a number"))?,
                    error: opt_col(r, 4)?.map(str::to_string),
                })
            })
            .collect()
    }

    /// The newest `limit` runs, whatever their status.
    pub async fn recent(&self, limit: usize) -> Result<Vec<RunSummary>, PortError> {
        let rows = self.q(&recent_sql(), &[p(limit.to_string())]).await?;
        rows.iter().map(summary).collect()
    }

    pub async fn summary(&self, id: &str) -> Result<Option<RunSummary>, PortError> {
        let rows = self.q(&one_sql(), &[p(id)]).await?;
        rows.first().map(summary).transpose()
    }

    /// Finished runs whose objects still exist, newest first.
    pub async fn retained(&self) -> Result<Vec<Retained>, PortError> {
        let rows = self.q(RETAINED, &[]).await?;
        rows.iter()
            .map(|r| {
                Ok(Retained {
                    backup_id: col(r, 0)?.to_string(),
                    done: col(r, 1)? == "done",
                })
            })
            .collect()
    }

    pub async fn mark_deleted(&self, id: &str, now: &str, objects: usize) -> Result<(), PortError> {
        self.q(MARK_DELETED, &[p(id), p(now), p(objects.to_string())])
            .await
            .map(|_| ())
    }

    /// One page of `table` after `cursor`, as of the run's start: users that
    /// existed then, the credentials and sessions of exactly those users (so
    /// a restore never meets a dangling foreign key), unexpired sessions,
    /// and every memory.
    pub async fn page(
        &self,
        table: &sdap::tables::Table,
        cursor: Option<&str>,
        limit: usize,
        started_at: &str,
    ) -> Result<Vec<Vec<Option<String>>>, PortError> {
        let filter = match table.name {
            "users" => "created_at < $3::timestamptz",
            "webauthn_credentials" => {
                "user_id IN (SELECT id FROM users WHERE created_at < $3::timestamptz)"
            }
            "refresh_tokens" => {
                "expires_at > $3::timestamptz AND user_id IN (SELECT id FROM users WHERE created_at < $3::timestamptz)"
            }
            _ => "$3::timestamptz IS NOT NULL",
        };
        self.q(
            &table.page_sql(Some(filter)),
            &[
                cursor.map(str::to_string),
                p(limit.to_string()),
                p(started_at),
            ],
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repositories::rows::uses_every_parameter;

    #[test]
    fn statements_use_every_parameter() {
        uses_every_parameter("START", START, 3);
        uses_every_parameter("CLAIM", &claim_sql(), 2);
        uses_every_parameter("SAVE", SAVE, 5);
        uses_every_parameter("RELEASE", RELEASE, 2);
        uses_every_parameter("FINISH", FINISH, 4);
        uses_every_parameter("RECENT", &recent_sql(), 1);
        uses_every_parameter("ONE", &one_sql(), 1);
        uses_every_parameter("RETAINED", RETAINED, 0);
        uses_every_parameter("MARK_DELETED", MARK_DELETED, 3);
        for t in sdap::tables::TABLES {
            uses_every_parameter(t.name, &t.page_sql(Some("$3::timestamptz IS NOT NULL")), 3);
        }
    }
}
