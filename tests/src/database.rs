//! Databases of their own, on the stack's Postgres, for tests whose Worker
//! must not share the stack's database: the stack's scheduled job embeds
//! every user's due rows, so a test that needs rows to stay pending (a pool
//! outage) or a database restored from a backup gets one of these.

use std::path::PathBuf;
use std::process::Command;

use tokio_postgres::NoTls;

/// The superuser URL of the stack's database (scripts/env.sh sets it).
pub fn admin_url() -> String {
    std::env::var("MEMSHADOW_ADMIN_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:54329/memshadow".into())
}

/// The application role's URL of the stack's database.
pub fn app_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        "postgres://memshadow_app:memshadow_app@127.0.0.1:54329/memshadow".into()
    })
}

/// `url` with its database name replaced by `db`.
pub fn with_db(url: &str, db: &str) -> String {
    let cut = url.rfind('/').unwrap_or(url.len());
    format!("{}/{db}", &url[..cut])
}

/// Where the workspace's binaries are built (scripts/env.sh).
pub fn target_dir() -> PathBuf {
    std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/memshadow/target")
        })
}

/// Runs `sql` (simple protocol, one statement for DDL on databases) and
/// returns the rows as text.
pub fn try_sql(url: &str, sql: &str) -> Result<Vec<Vec<Option<String>>>, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let (c, conn) = tokio_postgres::connect(url, NoTls)
            .await
            .map_err(|e| format!("cannot reach Postgres at {url}: {e}"))?;
        tokio::spawn(conn);
        let rows = c.simple_query(sql).await.map_err(|e| e.to_string())?;
        Ok(rows
            .into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => {
                    Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
                }
                _ => None,
            })
            .collect())
    })
}

pub fn run_sql(url: &str, sql: &str) -> Vec<Vec<Option<String>>> {
    try_sql(url, sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// A new database migrated by the real `migrate` binary; dropped when the
/// guard goes.
pub struct FreshDatabase {
    pub name: String,
}

impl FreshDatabase {
    pub fn create(name: &str) -> Self {
        run_sql(
            &admin_url(),
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        );
        run_sql(&admin_url(), &format!("CREATE DATABASE {name}"));
        let db = FreshDatabase {
            name: name.to_string(),
        };
        let migrated = Command::new(target_dir().join("release/migrate"))
            .arg(db.admin_url())
            .status()
            .expect("run migrate (built by scripts/stack.sh build)");
        assert!(migrated.success(), "migrating {name} failed");
        db
    }

    pub fn admin_url(&self) -> String {
        with_db(&admin_url(), &self.name)
    }

    pub fn app_url(&self) -> String {
        with_db(&app_url(), &self.name)
    }
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        // Best effort: a leftover database is dropped by the next create.
        let _ = try_sql(
            &admin_url(),
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}
