//! End-to-end: a client written to the design documents' HTTP contract, and
//! to nothing else, against the real Worker, pool and Postgres. It signs up
//! and in the way the contract says (register, then the OAuth2 password
//! form), and uses only contract members: no tags, modes, cursors or
//! dev tokens. What MEMSHADOW adds is allowed to be there (extra members,
//! extra headers) but is never relied on here.

use std::collections::HashSet;

use memshadow_e2e::{Client, api_url};
use serde_json::{Value, json};
use uuid::Uuid;

/// Registers a fresh account (200, the user without any password hash)
/// and signs in with the OAuth2 password form (200, a bearer token).
fn contract_client() -> Client {
    let anon = Client::anonymous(&api_url());
    let username = format!("contract_{}", &Uuid::new_v4().simple().to_string()[..16]);
    let email = format!("{username}@example.org");
    let password = "tidal-ostrich-quartz-917";
    let user = anon
        .post(
            "/api/v1/auth/register",
            &json!({"email": email, "username": username, "password": password}),
        )
        .expect(200)
        .json();
    assert!(
        Uuid::parse_str(user["id"].as_str().expect("id")).is_ok(),
        "{user}"
    );
    assert_eq!(user["email"], email);
    assert_eq!(user["username"], username);
    assert!(user["created_at"].is_string(), "{user}");
    let members: Vec<&String> = user.as_object().expect("an object").keys().collect();
    assert!(
        members
            .iter()
            .all(|k| !k.contains("password") && !k.contains("hash")),
        "the user never carries the hash: {user}"
    );

    let form = format!("grant_type=password&username={username}&password={password}");
    let token = anon
        .send(
            "POST",
            "/api/v1/auth/login",
            Some(form.into_bytes()),
            "application/x-www-form-urlencoded",
        )
        .expect(200)
        .json();
    assert_eq!(token["token_type"], "bearer", "{token}");
    let access = token["access_token"].as_str().expect("access_token");
    Client::anonymous(&api_url()).with_token(access)
}

/// `POST /memory/ingest` {content, metadata} → 200 with the memory.
fn ingest(client: &Client, content: &str, metadata: Value) -> Value {
    let m = client
        .post(
            "/api/v1/memory/ingest",
            &json!({"content": content, "metadata": metadata}),
        )
        .expect(200)
        .json();
    assert!(
        Uuid::parse_str(m["id"].as_str().expect("id")).is_ok(),
        "{m}"
    );
    assert_eq!(m["content"], content);
    assert_eq!(m["metadata"], metadata);
    assert!(m["created_at"].is_string(), "{m}");
    m
}

/// `POST /memory/retrieve?{query}` → 200 with a JSON array, best first,
/// each item a memory with its score.
fn retrieve(client: &Client, query: &str, body: Value) -> Vec<Value> {
    let path = if query.is_empty() {
        "/api/v1/memory/retrieve".to_string()
    } else {
        format!("/api/v1/memory/retrieve?{query}")
    };
    let reply = client.post(&path, &body).expect(200);
    let hits = reply
        .json()
        .as_array()
        .unwrap_or_else(|| panic!("retrieve answers a JSON array: {}", reply.text))
        .clone();
    let scores: Vec<f64> = hits
        .iter()
        .map(|h| {
            assert!(h["id"].is_string() && h["content"].is_string(), "{h}");
            h["score"].as_f64().expect("each result has its score")
        })
        .collect();
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "best first: {scores:?}"
    );
    hits
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

#[test]
fn register_login_ingest_retrieve_patch_delete() {
    let client = contract_client();
    let design = ingest(
        &client,
        "MEMSHADOW fuses vector and full-text rankings by reciprocal rank.",
        json!({"project": "memshadow", "kind": "design"}),
    );
    let ops = ingest(
        &client,
        "MEMSHADOW keeps its embeddings in Postgres with pgvector.",
        json!({"project": "memshadow", "kind": "ops"}),
    );
    let garden = ingest(
        &client,
        "The tomatoes in the garden need water on Sunday mornings.",
        json!({"project": "garden"}),
    );

    // A flat metadata filter: every result matches it, and both matching
    // memories are found.
    let hits = retrieve(
        &client,
        "",
        json!({"query": "MEMSHADOW rankings and embeddings", "filters": {"project": "memshadow"}}),
    );
    assert!(!hits.is_empty());
    for h in &hits {
        assert_eq!(h["metadata"]["project"], "memshadow", "{h}");
    }
    let found: HashSet<String> = hits.iter().map(id_of).collect();
    assert_eq!(found, HashSet::from([id_of(&design), id_of(&ops)]));
    // Two conditions: both must hold.
    let hits = retrieve(
        &client,
        "",
        json!({"query": "MEMSHADOW", "filters": {"project": "memshadow", "kind": "ops"}}),
    );
    assert_eq!(
        hits.iter().map(id_of).collect::<Vec<_>>(),
        vec![id_of(&ops)]
    );

    // PATCH content and metadata: 200 with the updated memory; the new
    // content is embedded again, so a question with none of its words finds it.
    let path = format!("/api/v1/memory/{}", id_of(&garden));
    let patched = client
        .patch(
            &path,
            &json!({"content": "Sourdough bread rises overnight in a cool kitchen.",
                    "metadata": {"project": "baking"}}),
        )
        .expect(200)
        .json();
    assert_eq!(patched["id"], garden["id"]);
    assert_eq!(
        patched["content"],
        "Sourdough bread rises overnight in a cool kitchen."
    );
    assert_eq!(patched["metadata"]["project"], "baking");
    assert_ne!(patched["content_hash"], garden["content_hash"]);
    assert_eq!(patched["embedding_status"], "ready", "{patched}");
    let hits = retrieve(
        &client,
        "limit=1",
        json!({"query": "How long should the dough proof?"}),
    );
    assert_eq!(
        hits.iter().map(id_of).collect::<Vec<_>>(),
        vec![id_of(&garden)]
    );
    let got = client.get(&path).expect(200).json();
    assert_eq!(got["metadata"]["project"], "baking");

    // DELETE: 200 with a status body; afterwards GET is 404.
    let deleted = client.delete(&path).expect(200).json();
    assert_eq!(
        deleted,
        json!({"status": "deleted", "memory_id": id_of(&garden)})
    );
    client.get(&path).expect(404);
    let hits = retrieve(&client, "", json!({"query": "sourdough bread"}));
    assert!(hits.iter().all(|h| h["id"] != garden["id"]), "{hits:?}");
}

#[test]
fn limit_and_offset_page_without_overlap() {
    let client = contract_client();
    let mut all = HashSet::new();
    for i in 0..7 {
        let m = ingest(
            &client,
            &format!("Lantern number {i} hangs by the harbour wall."),
            json!({"project": "harbour", "n": i}),
        );
        all.insert(id_of(&m));
    }
    let body = json!({"query": "lantern harbour", "filters": {"project": "harbour"}});
    let mut seen: Vec<String> = Vec::new();
    for offset in [0, 3, 6] {
        let page = retrieve(&client, &format!("limit=3&offset={offset}"), body.clone());
        assert_eq!(page.len(), if offset == 6 { 1 } else { 3 }, "{page:?}");
        for h in &page {
            assert!(
                !seen.contains(&id_of(h)),
                "page at offset {offset} repeats {h}"
            );
            seen.push(id_of(h));
        }
    }
    assert_eq!(seen.iter().cloned().collect::<HashSet<_>>(), all);
    assert!(retrieve(&client, "limit=3&offset=9", body.clone()).is_empty());
    // The default page is 10: all seven, in the order the pages gave.
    assert_eq!(
        retrieve(&client, "", body)
            .iter()
            .map(id_of)
            .collect::<Vec<_>>(),
        seen
    );
}

#[test]
fn unknown_filter_keys_match_nothing_and_bad_paging_is_refused() {
    let client = contract_client();
    ingest(
        &client,
        "The lighthouse keeper logs the weather at dawn.",
        json!({"project": "coast"}),
    );
    let none = retrieve(
        &client,
        "",
        json!({"query": "lighthouse weather", "filters": {"no_memory_has_this_key": "x"}}),
    );
    assert!(none.is_empty(), "{none:?}");
    let one = retrieve(
        &client,
        "",
        json!({"query": "lighthouse weather", "filters": {"project": "coast"}}),
    );
    assert_eq!(one.len(), 1);

    for query in [
        "limit=0",
        "limit=101",
        "limit=-1",
        "limit=ten",
        "offset=-1",
        "offset=1.5",
        "offset=100000",
    ] {
        let r = client
            .post(
                &format!("/api/v1/memory/retrieve?{query}"),
                &json!({"query": "lighthouse"}),
            )
            .expect(422);
        assert_eq!(r.error_code(), "invalid_field", "{query}: {}", r.text);
    }
    // The edges of the range are accepted.
    retrieve(&client, "limit=1&offset=0", json!({"query": "lighthouse"}));
    retrieve(&client, "limit=100", json!({"query": "lighthouse"}));
}
