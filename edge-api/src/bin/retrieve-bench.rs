//! Times the retrieve statement (the repository's own, run as the
//! application role with row-level security in force) for queries read
//! from standard input, one per line, and prints one JSON line per query:
//! `{"ms": …, "ids": […]}`. bench/scale drives it beside Chroma and an
//! exact scan over the same vectors; bench/quality's text-branch tuning
//! drives it with `--texts` and the budget flags.
//!
//! ```text
//! retrieve-bench --user UUID [--model ID] [--limit N] [--query TEXT] < vectors.txt
//! retrieve-bench --user UUID --texts [--model ID] [--limit N] [--idf-sample N] [--rows-per-term N] [--max-terms N] < questions.txt
//! ```
//! Connects to `$DATABASE_URL`. Lines are pgvector texts: without
//! `--query` only the vector branch runs (vector search alone), with it
//! hybrid retrieval with that text. With `--texts` a line is a question,
//! alone (the text branch only) or followed by a tab and its pgvector text
//! (hybrid). The text branch runs within the given budget (default: the
//! API's, `TextBudget::default`).

use std::io::BufRead;
use std::time::Instant;

use edge_api::platform::native;
use edge_api::repositories::memories::{Filters, Memories};
use edge_api::repositories::retrieval::{Query, TextBudget, pgvector_dims};
use edge_api::services::memories::rfc3339;

const USAGE: &str = "usage: retrieve-bench --user UUID [--model ID] [--limit N] [--query TEXT] < vectors.txt
       retrieve-bench --user UUID --texts [--model ID] [--limit N] [--idf-sample N] [--rows-per-term N] [--max-terms N] < questions.txt";

fn number(flag: &str, value: String) -> usize {
    value
        .parse()
        .unwrap_or_else(|_| die(&format!("{flag} must be a number")))
}

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
    let mut texts = false;
    let mut budget = TextBudget::default();
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
            "--limit" => limit = number(&flag, value()),
            "--texts" => texts = true,
            "--idf-sample" => budget.idf_sample = number(&flag, value()),
            "--rows-per-term" => budget.rows_per_term = number(&flag, value()),
            "--max-terms" => budget.max_terms = number(&flag, value()),
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
        let line = line.unwrap_or_else(|e| die(&format!("reading stdin: {e}")));
        // `--texts`: TEXT or TEXT<TAB>VECTOR; otherwise VECTOR.
        let (query_text, vector) = match (texts, line.split_once('\t')) {
            (true, Some((t, v))) => (Some(t), Some(v.to_string())),
            (true, None) => (Some(line.as_str()), None),
            (false, _) => (text.as_deref(), Some(line.clone())),
        };
        let query = Query {
            dim: vector.as_deref().map_or(0, pgvector_dims),
            vector,
            model: &model,
            text: query_text,
            budget,
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
