//! Prints the plan of the retrieve statement for one query, run as the
//! application role with row-level security in force (the quality harness
//! records it in BENCHMARKS.md):
//!
//! ```text
//! explain-retrieve --user UUID --query TEXT [--vector PGVECTOR] [--model ID] [--limit N]
//! ```
//! Connects to `$DATABASE_URL`. Without `--vector` only the text branch runs.

use edge_api::platform::native;
use edge_api::repositories::memories::{Filters, Memories};
use edge_api::repositories::retrieval::{Query, pgvector_dims};
use edge_api::services::memories::rfc3339;

const USAGE: &str =
    "usage: explain-retrieve --user UUID --query TEXT [--vector PGVECTOR] [--model ID] [--limit N]";

fn die(msg: &str) -> ! {
    eprintln!("explain-retrieve: {msg}\n{USAGE}");
    std::process::exit(2)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut user = None;
    let mut text = None;
    let mut vector = None;
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
            "--vector" => vector = Some(value()),
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
    let text = text.unwrap_or_else(|| die("--query is required"));
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| die("DATABASE_URL is not set"));
    let sql = match native::connect(&url).await {
        Ok(s) => s,
        Err(e) => die(&format!("cannot connect: {e}")),
    };
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default();
    let query = Query {
        dim: vector.as_deref().map_or(0, pgvector_dims),
        vector,
        model: &model,
        text: Some(&text),
        budget: Default::default(),
    };
    let repo = Memories { sql: &sql };
    match repo
        .explain_retrieve(
            &user,
            &rfc3339(now_ms),
            &Filters::default(),
            &query,
            limit,
            0,
        )
        .await
    {
        Ok(lines) => println!("{}", lines.join("\n")),
        Err(e) => {
            eprintln!("explain-retrieve: {e}");
            std::process::exit(1)
        }
    }
}
