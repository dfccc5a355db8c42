//! Liveness (`/health`, no dependencies touched) and readiness (`/ready`:
//! Postgres, KV and the embedding pool, each named when down; plus the last
//! backup's success and failure, for information).

use serde_json::json;

use crate::app::Ctx;
use crate::errors::{ApiError, ErrorCode};
use crate::http::Response;
use crate::json::response;
use crate::repositories::backups::{Backups, Outcome};
use crate::repositories::memories::Memories;
use crate::services::embedding::Embedder;

pub fn health() -> Response {
    response(
        200,
        &json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}),
    )
}

/// Checks each dependency once; 200 when all answer, else 503 `not_ready`
/// naming the ones that did not (details go to the log).
pub async fn ready(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    let pg = Memories { sql: ctx.p.sql }
        .ping()
        .await
        .map_err(|e| e.to_string());
    let kv = ctx
        .p
        .kv
        .get("memshadow:ready-probe")
        .await
        .map(|_| ())
        .map_err(|e| e.to_string());
    let embedder = Embedder {
        http: ctx.p.http,
        kv: ctx.p.kv,
        cfg: ctx.cfg,
    };
    let pool = embedder.ping().await.map_err(|e| e.to_string());
    let mut down = Vec::new();
    let mut checks = serde_json::Map::new();
    for (name, r) in [("postgres", pg), ("kv", kv), ("embedding", pool)] {
        match r {
            Ok(()) => {
                checks.insert(name.into(), json!("ok"));
            }
            Err(detail) => {
                ctx.log(&format!("ready: {name} down: {detail}"));
                checks.insert(name.into(), json!("down"));
                down.push(name);
            }
        }
    }
    if down.is_empty() {
        let backup = backup_outcomes(ctx).await;
        Ok(response(
            200,
            &json!({"status": "ready", "checks": checks, "backup": backup}),
        ))
    } else {
        Err(ApiError::new(
            ErrorCode::NotReady,
            format!("unavailable: {}", down.join(", ")),
        )
        .with_extra(json!({"checks": checks})))
    }
}

/// `{"last_success": {…}|null, "last_failure": {…}|null}` from
/// `backup_runs`; null when it cannot be read (readiness does not hinge on it).
async fn backup_outcomes(ctx: &Ctx<'_>) -> serde_json::Value {
    match (Backups { sql: ctx.p.sql }).outcomes().await {
        Ok(outcomes) => {
            let pick = |status: &str| {
                outcomes
                    .iter()
                    .find(|o| o.status == status)
                    .map(outcome_json)
            };
            json!({"last_success": pick("done"), "last_failure": pick("failed")})
        }
        Err(e) => {
            ctx.log(&format!("ready: backup outcomes unreadable: {e}"));
            serde_json::Value::Null
        }
    }
}

/// A finished run's outcome (`BackupOutcome` in the OpenAPI document).
pub fn outcome_json(o: &Outcome) -> serde_json::Value {
    json!({
        "backup_id": o.backup_id,
        "finished_at": o.finished_at,
        "duration_ms": o.duration_ms,
        "error": o.error,
    })
}
