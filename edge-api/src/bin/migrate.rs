//! Applies the schema migrations: `migrate [ADMIN_DATABASE_URL]` (default
//! `$MEMSHADOW_ADMIN_DATABASE_URL`). Idempotent; run as a superuser.
//! The application role's password, used only when the role is created,
//! comes from `MEMSHADOW_APP_DB_PASSWORD` (default `memshadow_app`).

use edge_api::platform::{migrate, native};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let url = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("MEMSHADOW_ADMIN_DATABASE_URL").ok())
        .unwrap_or_else(|| {
            eprintln!("usage: migrate ADMIN_DATABASE_URL (or set MEMSHADOW_ADMIN_DATABASE_URL)");
            std::process::exit(2)
        });
    let password =
        std::env::var("MEMSHADOW_APP_DB_PASSWORD").unwrap_or_else(|_| "memshadow_app".into());
    let mut client = match native::connect_client(&url).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("migrate: cannot connect: {e} (is Postgres running? scripts/pg.sh start)");
            std::process::exit(1)
        }
    };
    match migrate::migrate(&mut client, &password).await {
        Ok(r) if r.applied.is_empty() => {
            println!("migrate: up to date ({} migrations)", r.already.len())
        }
        Ok(r) => println!(
            "migrate: applied {}; {} already applied",
            r.applied.join(", "),
            r.already.len()
        ),
        Err(e) => {
            eprintln!("migrate: {e}");
            std::process::exit(1)
        }
    }
}
