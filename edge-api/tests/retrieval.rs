//! Retrieval behaviour against the real Postgres: the full-text branch
//! matches any meaningful word of a question and ranks by BM25 within a
//! bounded read, and offset paging walks one stable ranking (no page
//! repeats or skips a row, at any page size, past the old 50-row fusion
//! floor). Run with `--features native`.
#![cfg(feature = "native")]

mod common;

use std::collections::HashSet;

use common::{Harness, random_uuid};
use serde_json::{Value, json};
use uuid::Uuid;

async fn batch(h: &Harness, u: Uuid, contents: &[String]) {
    // At most 32 per batch: larger batches are embedded in the background
    // (MEMSHADOW_INLINE_EMBED_MAX_TEXTS), and these tests need vectors now.
    for chunk in contents.chunks(32) {
        let items: Vec<Value> = chunk.iter().map(|c| json!({"content": c})).collect();
        let (s, r) = h
            .call(
                "POST",
                "/api/v1/memory/batch",
                Some(u),
                Some(json!({"items": items})),
            )
            .await;
        assert_eq!(s, 200, "{r}");
        assert_eq!(r["failed"], 0, "{r}");
    }
}

/// One retrieve (`paging`: its query string, e.g. `limit=20&offset=40`):
/// the status and the hits.
async fn ask(h: &Harness, u: Uuid, body: Value, paging: &str) -> (u16, Vec<Value>) {
    let r = h.retrieve(u, paging, body).await;
    assert!(r.status != 200 || r.body.is_array(), "{}", r.body);
    (r.status, r.body.as_array().cloned().unwrap_or_default())
}

fn ids(hits: &[Value]) -> Vec<String> {
    hits.iter()
        .map(|x| x["id"].as_str().expect("id").to_string())
        .collect()
}

/// Ids of one page, and every hit's (vector_rank, text_rank).
async fn page(
    h: &Harness,
    u: Uuid,
    body: Value,
    limit: usize,
    offset: usize,
) -> (Vec<String>, Vec<(Value, Value)>) {
    let (s, hits) = ask(h, u, body, &format!("limit={limit}&offset={offset}")).await;
    assert_eq!(s, 200);
    let ranks = hits
        .iter()
        .map(|x| (x["vector_rank"].clone(), x["text_rank"].clone()))
        .collect();
    (ids(&hits), ranks)
}

#[tokio::test]
async fn offset_paging_walks_one_stable_ranking() {
    let h = Harness::new().await;
    let u = random_uuid();
    // 130 memories that all share "alpha" with the query (every one is in
    // both branches), with varied other words so scores differ.
    let words = ["beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"];
    let contents: Vec<String> = (0..130)
        .map(|i| {
            format!(
                "note {i} alpha {} {} {}",
                words[i % 7],
                words[(i / 7) % 7],
                "filler ".repeat(i % 5)
            )
        })
        .collect();
    batch(&h, u, &contents).await;

    for mode in ["hybrid", "text", "vector"] {
        let body = json!({"query": "alpha beta gamma", "mode": mode});
        // The whole ranking in the largest pages the API allows.
        let (mut all, _) = page(&h, u, body.clone(), 100, 0).await;
        let (rest, _) = page(&h, u, body.clone(), 100, 100).await;
        all.extend(rest);
        // Every memory matches the text; the vector branch may stop short
        // of all of them when the planner picks the approximate index.
        if mode != "vector" {
            assert_eq!(all.len(), 130, "{mode}: every memory is ranked");
        }
        assert!(all.len() > 10, "{mode}: {}", all.len());
        assert_eq!(
            all.iter().collect::<HashSet<_>>().len(),
            all.len(),
            "{mode}: no repeats"
        );
        // Any page size walks the same list: no row repeated or skipped,
        // including across offset 50 where the fusion depth used to change.
        for size in [7, 10, 33, 64] {
            let mut walked = Vec::new();
            let mut offset = 0;
            loop {
                let (ids, _) = page(&h, u, body.clone(), size, offset).await;
                let n = ids.len();
                walked.extend(ids);
                if n < size {
                    break;
                }
                offset += size;
            }
            assert_eq!(walked, all, "{mode}: pages of {size}");
        }
        // Past the end: an empty page, not an error.
        let (ids, _) = page(&h, u, body.clone(), 10, 1000).await;
        assert!(ids.is_empty());
    }

    // Vector mode has no text branch (its query text is NULL in SQL), text
    // mode no vector branch.
    let (_, ranks) = page(&h, u, json!({"query": "alpha", "mode": "vector"}), 100, 0).await;
    assert!(ranks.iter().all(|(v, t)| v.is_i64() && t.is_null()));
    let (_, ranks) = page(&h, u, json!({"query": "alpha", "mode": "text"}), 100, 0).await;
    assert!(ranks.iter().all(|(v, t)| v.is_null() && t.is_i64()));
    h.cleanup(u).await;
}

#[tokio::test]
async fn text_branch_matches_any_meaningful_word_ranked_by_bm25() {
    let h = Harness::new().await;
    let u = random_uuid();
    let mut contents = vec![
        "Ada prefers green tea in the afternoon".to_string(),
        "The quarterly report mentions a common pattern and a rare anomaly".to_string(),
        "O'Brien's backslash \\ collection".to_string(),
    ];
    contents.extend((0..8).map(|i| format!("common pattern number {i} in the logs")));
    batch(&h, u, &contents).await;
    let text = |q: &str| json!({"query": q, "mode": "text"});
    let first = |hits: &[Value]| {
        hits.first()
            .and_then(|x| x["content"].as_str())
            .map(str::to_string)
    };

    // A question that shares one word with the memory finds it: the old
    // AND of every term ("ada", "like", "drink") matched nothing.
    let (s, hits) = ask(&h, u, text("What does Ada like to drink?"), "").await;
    assert_eq!(s, 200);
    assert_eq!(first(&hits).as_deref(), Some(contents[0].as_str()));
    assert_eq!(hits[0]["text_rank"], 1);

    // BM25: the memory holding the rare word beats eight that hold only
    // the common ones, though all match.
    let (_, hits) = ask(&h, u, text("rare common pattern"), "limit=20").await;
    assert_eq!(hits.len(), 9, "{hits:?}");
    assert_eq!(first(&hits).as_deref(), Some(contents[1].as_str()));

    // Stop words only: no meaningful word, no text match (and no error).
    let (s, hits) = ask(&h, u, text("what is it that they were"), "").await;
    assert_eq!((s, hits.len()), (200, 0));

    // tsquery syntax and quoting in the question are plain text.
    for q in [
        "O'Brien's \\ backslash",
        "brien & | ! <-> ( ) : * 'quoted' \"double\"",
        "'''",
        "\\",
    ] {
        let (s, _) = ask(&h, u, text(q), "").await;
        assert_eq!(s, 200, "{q}");
    }
    let (_, hits) = ask(&h, u, text("O'Brien's \\ backslash"), "").await;
    assert_eq!(first(&hits).as_deref(), Some(contents[2].as_str()));
    h.cleanup(u).await;
}

#[tokio::test]
async fn text_branch_reads_a_bounded_share_of_a_common_words_matches() {
    use edge_api::repositories::retrieval::TEXT_ROWS_PER_TERM;
    let h = Harness::new().await;
    let u = random_uuid();
    // More memories hold the common word than the branch takes per word;
    // three also hold a rare one.
    let common = TEXT_ROWS_PER_TERM + 60;
    let mut contents: Vec<String> = (0..common)
        .map(|i| format!("entry {i}: the usual pattern again"))
        .collect();
    let rare: Vec<String> = (0..3)
        .map(|i| format!("entry rare {i}: the pattern with an anomaly"))
        .collect();
    contents.extend(rare.iter().cloned());
    batch(&h, u, &contents).await;

    let body = json!({"query": "anomaly in the pattern", "mode": "text"});
    let (first, _) = page(&h, u, body.clone(), 100, 0).await;
    let (second, _) = page(&h, u, body.clone(), 100, 100).await;
    let (third, _) = page(&h, u, body.clone(), 100, 200).await;
    let (s, hits) = ask(&h, u, body, "limit=3").await;
    assert_eq!(s, 200);
    // The rare word's memories first: every match of the rarest lexeme is
    // read, whatever the common one's count.
    let top: HashSet<String> = hits
        .iter()
        .map(|x| x["content"].as_str().expect("content").to_string())
        .collect();
    assert_eq!(top, rare.into_iter().collect::<HashSet<_>>());
    // The common word's matches are read only up to the bound: the branch
    // ranks fewer memories than hold a query word.
    let ranked = first.len() + second.len() + third.len();
    assert!(ranked >= TEXT_ROWS_PER_TERM, "{ranked}");
    assert!(
        ranked <= TEXT_ROWS_PER_TERM + 3,
        "{ranked} of {}",
        common + 3
    );
    h.cleanup(u).await;
}
