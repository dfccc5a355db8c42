//! `wasm-host` binary: reads configuration, starts the embeddings pool (all
//! checks before the port is bound), serves until SIGINT/SIGTERM.
//! `wasm-host serve ...` instead serves the Spin build of edge-api.

use std::process::ExitCode;

use tracing_subscriber::EnvFilter;
use wasm_host::config::{Options, Settings};
use wasm_host::embeddings::Service;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            // tokio-postgres logs every server notice at info (`serve` rolls back
            // idle connections on purpose, which draws a warning notice).
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,tokio_postgres=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    if std::env::args().nth(1).as_deref() == Some("serve") {
        return serve_spin().await;
    }
    let settings = match Options::load().and_then(Settings::resolve) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("wasm-host: {e}");
            return ExitCode::from(2);
        }
    };
    let service = match Service::start(&settings).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("wasm-host: start-up failed: {e:#}");
            return ExitCode::from(1);
        }
    };
    match service.serve(settings.listen, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wasm-host: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// `wasm-host serve`: exit 2 for bad options, 1 when start-up fails.
async fn serve_spin() -> ExitCode {
    use clap::Parser;
    let args = std::env::args()
        .enumerate()
        .filter(|(i, _)| *i != 1)
        .map(|(_, a)| a);
    let opts = match wasm_host::spin::ServeOptions::try_parse_from(args) {
        Ok(o) => o,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(2);
        }
    };
    match wasm_host::spin::run(opts, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wasm-host serve: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
