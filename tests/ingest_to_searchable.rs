//! End-to-end: from ingest to searchable with no manual trigger, against the
//! real Worker under wrangler dev (its queue consumer and the stack's timer,
//! scripts/scheduler.sh), the real pool and Postgres.
//!
//! - A memory of more than 10,000 characters (the pool's `max_chars` is
//!   8,192) is embedded by its beginning and becomes `ready`.
//! - A bulk import in batches of 100 (`MEMSHADOW_BULK_MEMORIES`, default 300
//!   here; the benchmark runs 1,000 and more) ends with every memory `ready`,
//!   and a question sharing no word with one of them finds it by meaning.

use std::time::Duration;

use memshadow_e2e::{Client, embedding_statuses, eventually, synthetic_memory};
use serde_json::{Value, json};

fn bulk_size() -> usize {
    std::env::var("MEMSHADOW_BULK_MEMORIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

#[test]
fn a_memory_longer_than_the_pool_limit_becomes_ready() {
    let (client, _) = Client::new_user();
    let content = format!(
        "Grandfather's sourdough starter is fed every morning with rye flour. {}",
        "The crumb stays open when the dough rests overnight in the cold. ".repeat(160)
    );
    assert!(content.chars().count() > 10_000);
    let stored = client.ingest(&content, json!({}));
    let id = stored["id"].as_str().expect("id").to_string();
    let ready = eventually(Duration::from_secs(120), || {
        (client.embedding_status(&id) == "ready").then_some(())
    });
    assert!(
        ready.is_some(),
        "a 10,000-character memory never became ready: {}",
        client.get(&format!("/api/v1/memory/{id}")).text
    );
}

#[test]
fn a_bulk_import_becomes_searchable_by_meaning_without_a_trigger() {
    let (client, _) = Client::new_user();
    let n = bulk_size();
    let needle = "My daughter's violin lessons are every Tuesday after school.";
    let mut texts: Vec<String> = (0..n).map(synthetic_memory).collect();
    texts[n / 2] = needle.to_string();
    for chunk in texts.chunks(100) {
        let items: Vec<Value> = chunk.iter().map(|t| json!({"content": t})).collect();
        client
            .post("/api/v1/memory/batch", &json!({"items": items}))
            .expect(200);
    }
    // Budget: this machine embeds about 11 short texts/s per core.
    let budget = Duration::from_secs(120 + n as u64 / 2);
    let done = eventually(budget, || {
        let counts = embedding_statuses(&client);
        (counts.get("ready").copied() == Some(n)).then_some(counts)
    });
    assert!(
        done.is_some(),
        "not every imported memory became ready: {:?}",
        embedding_statuses(&client)
    );
    // No word in common with the needle (stop words aside).
    let reply = client
        .post(
            "/api/v1/memory/retrieve?limit=5",
            &json!({"query": "When does the kid practise her musical instrument class?"}),
        )
        .expect(200);
    assert!(
        reply.text.contains(needle),
        "the paraphrase did not find the memory among the top 5: {}",
        reply.text
    );
}
