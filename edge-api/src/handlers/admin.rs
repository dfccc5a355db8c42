//! Operator endpoints, for the users listed in `MEMSHADOW_ADMIN_USER_IDS`:
//! `GET /api/v1/admin/backups`, the recent backup runs and the last success
//! and failure.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};

use crate::app::Ctx;
use crate::errors::{ApiError, ErrorCode};
use crate::handlers::health::outcome_json;
use crate::http::{Request, Response};
use crate::json::{self, response};
use crate::repositories::backups::{Backups, RunSummary};
use crate::router::parse_query;
use crate::services::auth::Caller;

/// Runs answered when the caller names no `limit`, and the most it may ask.
const DEFAULT_RUNS: usize = 20;
const MAX_RUNS: usize = 100;

/// 403 `admin_required` unless the caller is a configured operator.
pub fn require_admin(ctx: &Ctx<'_>, caller: &Caller) -> Result<(), ApiError> {
    if ctx.cfg.admin_user_ids.contains(&caller.user_id) {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::AdminRequired,
            "this endpoint is for operators (MEMSHADOW_ADMIN_USER_IDS)",
        ))
    }
}

fn run_json(r: &RunSummary) -> Value {
    json!({
        "backup_id": r.backup_id,
        "status": r.status,
        "started_at": r.started_at,
        "finished_at": r.finished_at,
        "duration_ms": r.duration_ms,
        "chunks": r.chunks,
        "rows": r.rows,
        "error": r.error,
        "deleted_at": r.deleted_at,
    })
}

/// `{"enabled", "retention", "webhook", "last_success", "last_failure", "runs"}`.
pub async fn backups(ctx: &Ctx<'_>, caller: &Caller, req: &Request) -> Result<Response, ApiError> {
    require_admin(ctx, caller)?;
    let mut limit = DEFAULT_RUNS;
    let bad = || {
        ApiError::new(
            ErrorCode::InvalidParameter,
            format!("limit must be an integer 1..={MAX_RUNS}"),
        )
    };
    for (k, v) in parse_query(&req.query)? {
        match k.as_str() {
            "limit" => {
                limit = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_RUNS).contains(n))
                    .ok_or_else(bad)?;
            }
            other => {
                return Err(ApiError::new(
                    ErrorCode::InvalidParameter,
                    format!("unknown query parameter {:?}", json::truncate(other, 64)),
                ));
            }
        }
    }
    let repo = Backups { sql: ctx.p.sql };
    let runs = repo.recent(limit).await?;
    let outcomes = repo.outcomes().await?;
    let last = |status: &str| {
        outcomes
            .iter()
            .find(|o| o.status == status)
            .map(outcome_json)
    };
    let cfg = ctx.cfg.backup.as_ref();
    Ok(response(
        200,
        &json!({
            "enabled": cfg.is_some(),
            "retention": cfg.map(|c| json!({"keep_daily": c.keep_daily, "keep_weekly": c.keep_weekly})),
            "webhook": cfg.is_some_and(|c| c.webhook_url.is_some()),
            "last_success": last("done"),
            "last_failure": last("failed"),
            "runs": runs.iter().map(run_json).collect::<Vec<_>>(),
        }),
    ))
}
