//! The migration runner: applies `schema/migrations/*.sql` in order, once
//! each, recording them in `schema_migrations`, and ensures the
//! application's login role exists (row-level security applies to it).
//!
//! Run as a superuser (`migrate` binary). Each migration runs in its own
//! transaction together with its bookkeeping row, so a failure leaves the
//! database at the previous version.

use std::future::Future;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

/// Every migration, in order. A unit test checks this list against the
/// folder so a new file cannot be forgotten.
pub const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_memories",
        include_str!("../../../schema/migrations/0001_memories.sql"),
    ),
    (
        "0002_auth",
        include_str!("../../../schema/migrations/0002_auth.sql"),
    ),
    (
        "0003_store_at_scale",
        include_str!("../../../schema/migrations/0003_store_at_scale.sql"),
    ),
    (
        "0005_pending_by_user",
        include_str!("../../../schema/migrations/0005_pending_by_user.sql"),
    ),
    (
        "0006_backups",
        include_str!("../../../schema/migrations/0006_backups.sql"),
    ),
    (
        "0007_embedding_pipeline",
        include_str!("../../../schema/migrations/0007_embedding_pipeline.sql"),
    ),
    (
        "0008_backup_retention",
        include_str!("../../../schema/migrations/0008_backup_retention.sql"),
    ),
    (
        "0009_policies_the_planner_can_read",
        include_str!("../../../schema/migrations/0009_policies_the_planner_can_read.sql"),
    ),
    (
        "0010_embeddings_of_any_dimension",
        include_str!("../../../schema/migrations/0010_embeddings_of_any_dimension.sql"),
    ),
];

/// The application's role: login, no superuser, no BYPASSRLS.
pub const APP_ROLE: &str = "memshadow_app";

#[derive(Debug)]
pub struct MigrateReport {
    pub applied: Vec<String>,
    pub already: Vec<String>,
}

fn checksum(sql: &str) -> String {
    hex::encode(Sha256::digest(sql.as_bytes()))
}

/// Creates (or re-asserts) the application role. The password is set only
/// when the role is created, so an operator's rotation is not undone.
pub async fn ensure_app_role(client: &Client, password: &str) -> Result<(), tokio_postgres::Error> {
    let exists = client
        .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&APP_ROLE])
        .await?
        .is_some();
    if !exists {
        // Identifiers and passwords cannot be bound as parameters in DDL.
        let pw = password.replace('\'', "''");
        client
            .batch_execute(&format!(
                "CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD '{pw}'"
            ))
            .await?;
    }
    client
        .batch_execute(&format!(
            "ALTER ROLE {APP_ROLE} NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB; \
             GRANT USAGE ON SCHEMA public TO {APP_ROLE}"
        ))
        .await?;
    Ok(())
}

/// Applies pending migrations. Refuses to run if an applied migration's
/// file changed (its checksum differs): history is append-only.
pub async fn migrate(client: &mut Client, app_password: &str) -> Result<MigrateReport, String> {
    let db = |e: tokio_postgres::Error| match e.as_db_error() {
        Some(d) => format!("{}: {}", d.code().code(), d.message()),
        None => e.to_string(),
    };
    on_shared_catalogs(|| ensure_app_role(client, app_password))
        .await
        .map_err(db)?;
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ( \
               version text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await
        .map_err(db)?;
    let mut report = MigrateReport {
        applied: Vec::new(),
        already: Vec::new(),
    };
    for (version, sql) in MIGRATIONS {
        let tx = client.transaction().await.map_err(db)?;
        // Serialise concurrent runners (two stacks starting at once).
        tx.batch_execute("LOCK TABLE schema_migrations IN EXCLUSIVE MODE")
            .await
            .map_err(db)?;
        let row = tx
            .query_opt(
                "SELECT checksum FROM schema_migrations WHERE version = $1",
                &[version],
            )
            .await
            .map_err(db)?;
        let sum = checksum(sql);
        match row {
            Some(r) => {
                let recorded: String = r.get(0);
                if recorded != sum {
                    return Err(format!(
                        "migration {version} was changed after it was applied"
                    ));
                }
                report.already.push(version.to_string());
            }
            None => {
                tx.batch_execute(sql)
                    .await
                    .map_err(|e| format!("migration {version}: {}", db(e)))?;
                tx.execute(
                    "INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)",
                    &[version, &sum],
                )
                .await
                .map_err(db)?;
                report.applied.push(version.to_string());
            }
        }
        tx.commit().await.map_err(db)?;
    }
    let settings = app_role_settings();
    on_shared_catalogs(|| client.batch_execute(&settings))
        .await
        .map_err(db)?;
    Ok(report)
}

/// Runs an idempotent step on the cluster-wide catalogs (roles and their
/// settings), again when it lost a race.
///
/// Roles live outside any one database, so two runners migrating
/// *different* databases at once (parallel test suites, two stacks on one
/// server) are not serialised by the `schema_migrations` lock: both update
/// the role's catalog row and one fails with `tuple concurrently updated`
/// (XX000), or both create the role and one finds it exists. The step is
/// idempotent, so the loser simply runs it again.
async fn on_shared_catalogs<F, Fut>(mut step: F) -> Result<(), tokio_postgres::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), tokio_postgres::Error>>,
{
    const ATTEMPTS: u64 = 8;
    let mut attempt = 1;
    loop {
        match step().await {
            Err(e) if attempt < ATTEMPTS && lost_catalog_race(&e) => {
                tokio::time::sleep(Duration::from_millis(25 * attempt)).await;
                attempt += 1;
            }
            outcome => return outcome,
        }
    }
}

fn lost_catalog_race(e: &tokio_postgres::Error) -> bool {
    let Some(d) = e.as_db_error() else {
        return false;
    };
    let code = d.code();
    *code == SqlState::UNIQUE_VIOLATION
        || *code == SqlState::DUPLICATE_OBJECT
        || (*code == SqlState::INTERNAL_ERROR && d.message().contains("concurrently updated"))
}

/// Session defaults of the application role, applied at every login
/// (pooled connections included: Hyperdrive and tokio-postgres both open
/// ordinary sessions as this role).
///
/// - HNSW covers every user's rows, and user, filter, expiry and model
///   conditions apply after the index scan. The iterative scan keeps
///   scanning until the query's LIMIT is met (`relaxed_order`: the
///   retrieve statement re-sorts its candidates by distance), up to
///   `max_scan_tuples` index tuples, so a filtered search returns the full
///   limit instead of whatever survived the first `ef_search` candidates.
/// - `ef_search` 200: at least the vector branch's candidate depth (100),
///   and measured (BENCHMARKS.md "Vector search at scale", the sweep) at
///   100,000 memories: recall@10 0.927 -> 0.952 against 100 for about 1 ms
///   more per query; at 1,000,000 recall rose too (0.347 -> 0.428).
/// - A runaway statement stops after `statement_timeout` instead of holding
///   a connection after its client has gone; the Worker answers 503.
/// - No parallel workers: the API's statements are short and many run at
///   once, so the cores are already busy. The retrieve statement's exact
///   arm is planned as a parallel scan that a one-time filter skips for a
///   large user, yet its two workers were started anyway: with them, the
///   statement's p50 for bench-load's 90,000-memory user was 40-47 ms,
///   without them 34-41 ms (60 questions, alternating runs).
pub fn app_role_settings() -> String {
    format!(
        "ALTER ROLE {APP_ROLE} SET hnsw.iterative_scan = 'relaxed_order'; \
         ALTER ROLE {APP_ROLE} SET hnsw.ef_search = {HNSW_EF_SEARCH}; \
         ALTER ROLE {APP_ROLE} SET hnsw.max_scan_tuples = {HNSW_MAX_SCAN_TUPLES}; \
         ALTER ROLE {APP_ROLE} SET statement_timeout = '{STATEMENT_TIMEOUT}'; \
         ALTER ROLE {APP_ROLE} SET max_parallel_workers_per_gather = 0"
    )
}

pub const HNSW_EF_SEARCH: u32 = 200;
pub const HNSW_MAX_SCAN_TUPLES: u32 = 100_000;
pub const STATEMENT_TIMEOUT: &str = "15s";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_matches_the_folder() {
        // Cargo sets CARGO_MANIFEST_DIR when it runs a test: the checkout
        // under test, even for a binary reused from another checkout.
        let crate_dir =
            std::env::var("CARGO_MANIFEST_DIR").unwrap_or(env!("CARGO_MANIFEST_DIR").into());
        let dir = format!("{crate_dir}/../schema/migrations");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .expect("schema/migrations exists")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".sql"))
            .map(|n| n.trim_end_matches(".sql").to_string())
            .collect();
        files.sort();
        let listed: Vec<String> = MIGRATIONS.iter().map(|(v, _)| v.to_string()).collect();
        assert_eq!(files, listed);
        assert!(listed.windows(2).all(|w| w[0] < w[1]), "ordered");
    }
}
