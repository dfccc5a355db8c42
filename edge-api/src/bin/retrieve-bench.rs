//! Times the retrieve statement (the repository's own, run as the
//! application role with row-level security in force) for query vectors
//! read from standard input, one pgvector text per line, and prints one
//! JSON line per query: `{"ms": …, "ids": […]}`. bench/scale drives it
//! beside Chroma and an exact scan over the same vectors.
//!
//! ```text
//! retrieve-bench --user UUID [--model ID] [--limit N] [--query TEXT] < vectors.txt
//! ```
//! Connects to `$DATABASE_URL`. Without `--query` only the vector branch
//! runs (vector search alone); with it, hybrid retrieval with that text.

use std::io::BufRead;
use std::time::Instant;

use edge_api::platform::native;
use edge_api::repositories::memories::{Filters, Memories};
use edge_api::repositories::retrieval::Query;
use edge_api::services::memories::rfc3339;

const USAGE: &str =
    "usage: retrieve-bench --user UUID [--model ID] [--limit N] [--query TEXT] < vectors.txt";

fn die(msg: &str) -> ! {
    eprintln!("retrieve-bench: {msg}\n{USAGE}");
    std::process::exit(2)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut user = None;
    let mut text = None;
    let mut model = "all-MiniLM-L6-v2".to_string();
    let mut limit = 10usize;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| die(&format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--user" => user = Some(value()),
            "--query" => text = Some(value()),
            "--model" => model = value(),
            "--limit" => {
                limit = value()
                    .parse()
                    .unwrap_or_else(|_| die("--limit must be a number"))
            }
            _ => die(&format!("unknown argument {flag}")),
        }
    }
    let user = user.unwrap_or_else(|| die("--user is required"));
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| die("DATABASE_URL is not set"));
    let sql = match native::connect(&url).await {
        Ok(s) => s,
        Err(e) => die(&format!("cannot connect: {e}")),
    };
    let repo = Memories { sql: &sql };
    for line in std::io::stdin().lock().lines() {
        let vector = line.unwrap_or_else(|e| die(&format!("reading stdin: {e}")));
        let query = Query {
            vector: Some(vector),
            model: &model,
            text: text.as_deref(),
        };
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default();
        let started = Instant::now();
        let hits = repo
            .retrieve(
                &user,
                &rfc3339(now_ms),
                &Filters::default(),
                &query,
                limit,
                0,
            )
            .await;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        match hits {
            Ok(hits) => {
                let ids: Vec<&str> = hits.iter().map(|h| h.memory.id.as_str()).collect();
                println!("{}", serde_json::json!({ "ms": ms, "ids": ids }));
            }
            Err(e) => {
                eprintln!("retrieve-bench: {e}");
                std::process::exit(1)
            }
        }
    }
}
