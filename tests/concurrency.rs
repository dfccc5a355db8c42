//! Many agents of one user at once, through the real Worker (wrangler dev,
//! local Hyperdrive), the real pool and Postgres: the load that once ended
//! in `40P01 deadlock detected` (a 503) and then a dead API process.
//!
//! Writers re-send overlapping batches, each in its own order, while
//! readers retrieve and a deleter removes one labelled slice again and
//! again. Nothing may answer 5xx, every item is stored or named as a
//! duplicate, every content written (outside the deleted slice) is present
//! exactly once at the end, and the API still answers afterwards.

use std::collections::{HashMap, HashSet};
use std::thread;

use memshadow_e2e::{Client, api_url};
use serde_json::{Value, json};

const WRITERS: usize = 6;
const READERS: usize = 4;
const ROUNDS: usize = 4;
const BATCH: usize = 50;

/// Round `r`'s contents: `BATCH` items, the second half shared with round
/// `r + 1` (so consecutive batches overlap), every seventh one doomed.
fn round_items(r: usize) -> Vec<Value> {
    (0..BATCH)
        .map(|i| {
            let n = r * BATCH / 2 + i;
            let doomed = n.is_multiple_of(7);
            json!({
                "content": format!("agent note {n}: the harbour lantern number {n} was relit at dusk"),
                "metadata": {"slice": if doomed { "doomed" } else { "kept" }},
            })
        })
        .collect()
}

/// Every memory of the client's user, from the NDJSON export in parts.
fn export_all(client: &Client) -> Vec<Value> {
    let mut out = Vec::new();
    let mut path = "/api/v1/memory/export".to_string();
    loop {
        let reply = client.get(&path).expect(200);
        out.extend(
            reply
                .text
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).expect("NDJSON line")),
        );
        match reply.header("x-next-cursor") {
            Some(c) => path = format!("/api/v1/memory/export?cursor={c}"),
            None => return out,
        }
    }
}

#[test]
fn concurrent_agents_of_one_user_get_no_5xx_and_lose_nothing() {
    let (client, _user) = Client::new_user();
    let mut handles = Vec::new();
    for w in 0..WRITERS {
        let c = client.clone();
        handles.push(thread::spawn(move || {
            for r in 0..ROUNDS {
                let mut items = round_items((r + w) % ROUNDS);
                match w % 3 {
                    0 => {}
                    1 => items.reverse(),
                    _ => items.rotate_left(w * 11 % BATCH),
                }
                let reply = c.post("/api/v1/memory/batch", &json!({ "items": items }));
                assert!(reply.status < 500, "batch: {} {}", reply.status, reply.text);
                assert_eq!(reply.status, 200, "{}", reply.text);
                for res in reply.json()["results"].as_array().expect("results") {
                    let st = res["status"].as_u64().expect("status");
                    assert!(
                        (200..300).contains(&st) || st == 409,
                        "every item is stored or a duplicate: {res}"
                    );
                }
            }
        }));
    }
    for k in 0..READERS {
        let c = client.clone();
        handles.push(thread::spawn(move || {
            for i in 0..ROUNDS * 3 {
                let reply = c.post(
                    "/api/v1/memory/retrieve",
                    &json!({"query": format!("harbour lantern number {}", k * 13 + i)}),
                );
                assert_eq!(reply.status, 200, "retrieve: {}", reply.text);
            }
        }));
    }
    let deleter = client.clone();
    handles.push(thread::spawn(move || {
        for _ in 0..ROUNDS * 2 {
            let reply = deleter.delete("/api/v1/memory?metadata=%7B%22slice%22%3A%22doomed%22%7D");
            assert_eq!(reply.status, 200, "delete: {}", reply.text);
        }
    }));
    for h in handles {
        h.join().expect("a client thread failed");
    }
    client
        .delete("/api/v1/memory?metadata=%7B%22slice%22%3A%22doomed%22%7D")
        .expect(200);

    let mut seen: HashMap<String, usize> = HashMap::new();
    for m in export_all(&client) {
        *seen
            .entry(m["content"].as_str().expect("content").to_string())
            .or_default() += 1;
    }
    let mut kept: HashSet<String> = HashSet::new();
    for r in 0..ROUNDS {
        for item in round_items(r) {
            let content = item["content"].as_str().expect("content").to_string();
            if item["metadata"]["slice"] == "kept" {
                kept.insert(content);
            }
        }
    }
    for (content, n) in &seen {
        assert_eq!(*n, 1, "stored exactly once: {content}");
        assert!(
            kept.contains(content),
            "only kept contents remain: {content}"
        );
    }
    assert_eq!(seen.len(), kept.len(), "every kept content is present");

    // The API process survived the load.
    Client::anonymous(&api_url()).get("/health").expect(200);
    client.delete("/api/v1/memory").expect(200);
}
