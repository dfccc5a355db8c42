//! End-to-end tests of the memory API: the real Worker under wrangler dev,
//! the real embedding pool and Postgres. Every endpoint and error path.

use std::collections::HashSet;
use std::time::Duration;

use memshadow_e2e::{Client, DevSigner, api_url};
use serde_json::{Value, json};
use uuid::Uuid;

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|m| m["id"].as_str().expect("id").to_string())
        .collect()
}

/// The hits of a retrieve (`query`: its query string, e.g. `limit=3`).
fn retrieve(client: &Client, query: &str, body: Value) -> Vec<Value> {
    client.retrieve(query, &body).0
}

#[test]
fn health_ready_and_request_ids() {
    let anon = Client::anonymous(&api_url());
    let health = anon.get("/health").expect(200);
    let ready = anon.get("/ready").expect(200);
    let checks = ready.json();
    for dep in ["postgres", "kv", "embedding"] {
        assert_eq!(
            checks["checks"][dep], "ok",
            "{dep} should be up in the test stack: {checks}"
        );
    }
    let a = health
        .header("x-request-id")
        .expect("request id on /health");
    let b = ready.header("x-request-id").expect("request id on /ready");
    assert_ne!(a, b, "each response carries its own request id");
    let missing = anon.get("/no/such/route").expect(404);
    assert!(missing.header("x-request-id").is_some());
    assert_eq!(missing.error_code(), "not_found");
}

#[test]
fn ingest_get_and_duplicate() {
    let (client, _) = Client::new_user();
    let memory = client.ingest(
        "The launch code for project Heron is stored in the blue notebook.",
        json!({"metadata": {"source": "chat", "turn": 3}, "tags": ["projects", "heron"]}),
    );
    assert_eq!(
        memory["embedding_status"], "ready",
        "the pool is up: {memory}"
    );
    assert_eq!(memory["embedding_model"], "all-MiniLM-L6-v2");
    assert_eq!(memory["metadata"], json!({"source": "chat", "turn": 3}));
    let id = memory["id"].as_str().expect("id").to_string();
    Uuid::parse_str(&id).expect("ids are UUIDs");

    let fetched = client
        .get(&format!("/api/v1/memory/{id}"))
        .expect(200)
        .json();
    assert_eq!(fetched["content"], memory["content"]);
    assert_eq!(fetched["tags"], json!(["projects", "heron"]));

    let dup = client
        .post(
            "/api/v1/memory/ingest",
            &json!({"content": "The launch code for project Heron is stored in the blue notebook."}),
        )
        .expect(409);
    assert_eq!(dup.error_code(), "duplicate_memory");
    assert_eq!(dup.json()["error"]["existing_id"], json!(id));
}

#[test]
fn retrieve_ranks_the_relevant_memory_first_and_counts_access() {
    let (client, _) = Client::new_user();
    let target = client.ingest(
        "My sister Clara lives in Lisbon and works as a marine biologist.",
        json!({}),
    );
    client.ingest(
        "The printer on the third floor jams when printing duplex.",
        json!({}),
    );
    client.ingest(
        "Quarterly revenue grew by twelve percent over last year.",
        json!({}),
    );
    client.ingest(
        "Remember to water the ficus every Sunday morning.",
        json!({}),
    );

    // No word of the query appears in the target: only the vector branch can find it.
    let hits = retrieve(
        &client,
        "limit=3",
        json!({"query": "Where does my sibling reside?"}),
    );
    assert_eq!(hits.len(), 3);
    assert_eq!(
        hits[0]["id"], target["id"],
        "semantic match first: {hits:?}"
    );
    let scores: Vec<f64> = hits
        .iter()
        .map(|h| h["score"].as_f64().expect("score"))
        .collect();
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "best first: {scores:?}"
    );

    let id = target["id"].as_str().expect("id");
    let after = client
        .get(&format!("/api/v1/memory/{id}"))
        .expect(200)
        .json();
    assert!(
        after["access_count"].as_i64().expect("access_count") >= 1,
        "{after}"
    );
    assert!(after["accessed_at"].is_string());

    // Paging: offset 1 continues where offset 0 with limit 1 stopped.
    let first = retrieve(
        &client,
        "limit=1",
        json!({"query": "Where does my sibling reside?"}),
    );
    let second = retrieve(
        &client,
        "limit=1&offset=1",
        json!({"query": "Where does my sibling reside?"}),
    );
    assert_eq!(first[0]["id"], hits[0]["id"]);
    assert_eq!(second[0]["id"], hits[1]["id"]);
}

/// The `server-timing` entries of a reply: (name, milliseconds).
fn server_timing(reply: &memshadow_e2e::Reply) -> Vec<(String, u64)> {
    let header = reply
        .header("server-timing")
        .expect("a server-timing header");
    header
        .split(',')
        .map(|entry| {
            let (name, dur) = entry
                .trim()
                .split_once(";dur=")
                .unwrap_or_else(|| panic!("name;dur=MS entries: {header}"));
            let ms = dur.parse().unwrap_or_else(|_| panic!("whole ms: {header}"));
            (name.to_string(), ms)
        })
        .collect()
}

#[test]
fn retrieve_reports_where_its_time_went() {
    let (client, _) = Client::new_user();
    client.ingest("The ferry to the island leaves at seven.", json!({}));
    let started = std::time::Instant::now();
    let (_, reply) = client.retrieve("", &json!({"query": "When does the boat depart?"}));
    let total_ms = started.elapsed().as_millis() as u64;
    let spans = server_timing(&reply);
    let names: Vec<&str> = spans.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["embed", "search"], "hybrid embeds, then searches");
    // Both spans lie within the request; each may read up to 1 ms long on a
    // whole-millisecond clock.
    let inside: u64 = spans.iter().map(|(_, ms)| ms).sum();
    assert!(inside <= total_ms + 2, "{spans:?} within {total_ms} ms");

    let (_, reply) = client.retrieve("", &json!({"query": "ferry", "mode": "text"}));
    let names: Vec<String> = server_timing(&reply).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["search"], "text mode never embeds");
}

#[test]
fn retrieve_filters_by_metadata_tags_and_dates() {
    let (client, _) = Client::new_user();
    let work = client.ingest(
        "Standup moved to 9:30 on Tuesdays.",
        json!({"metadata": {"area": "work"}, "tags": ["calendar"]}),
    );
    let home = client.ingest(
        "Dentist appointment on Tuesday at 9:30.",
        json!({"metadata": {"area": "home"}, "tags": ["calendar", "health"]}),
    );

    let only_work = retrieve(
        &client,
        "",
        json!({"query": "Tuesday 9:30", "filters": {"area": "work"}}),
    );
    assert_eq!(
        ids(&json!(only_work)),
        vec![work["id"].as_str().expect("id").to_string()]
    );

    let health = retrieve(
        &client,
        "",
        json!({"query": "Tuesday 9:30", "tags": ["health"]}),
    );
    assert_eq!(
        ids(&json!(health)),
        vec![home["id"].as_str().expect("id").to_string()]
    );

    let future = retrieve(
        &client,
        "",
        json!({"query": "Tuesday", "created_after": "2999-01-01T00:00:00Z"}),
    );
    assert!(future.is_empty());
    let past = retrieve(
        &client,
        "",
        json!({"query": "Tuesday", "created_before": "2000-01-01T00:00:00Z"}),
    );
    assert!(past.is_empty());

    let bad = client
        .post(
            "/api/v1/memory/retrieve",
            &json!({"query": "x", "filters": "area"}),
        )
        .expect(422);
    assert_eq!(bad.error_code(), "invalid_filter");
    let bad_date = client
        .post(
            "/api/v1/memory/retrieve",
            &json!({"query": "x", "created_after": "yesterday"}),
        )
        .expect(422);
    assert_eq!(bad_date.error_code(), "invalid_filter");
    for query in [
        "limit=0",
        "limit=101",
        "offset=-1",
        "offset=1001",
        "limit=x",
    ] {
        let r = client
            .post(
                &format!("/api/v1/memory/retrieve?{query}"),
                &json!({"query": "x"}),
            )
            .expect(422);
        assert_eq!(r.error_code(), "invalid_field", "{query}");
    }
    let in_body = client
        .post(
            "/api/v1/memory/retrieve",
            &json!({"query": "x", "limit": 5}),
        )
        .expect(422);
    assert_eq!(in_body.error_code(), "unknown_field");
}

#[test]
fn patch_merges_metadata_and_reembeds_changed_content() {
    let (client, _) = Client::new_user();
    let m = client.ingest(
        "Favourite colour: teal.",
        json!({"metadata": {"a": 1, "b": 2}}),
    );
    let id = m["id"].as_str().expect("id");
    let path = format!("/api/v1/memory/{id}");

    let merged = client
        .patch(&path, &json!({"metadata": {"b": null, "c": 3}}))
        .expect(200)
        .json();
    assert_eq!(
        merged["metadata"],
        json!({"a": 1, "c": 3}),
        "merge patch semantics"
    );
    let replaced = client
        .patch(
            &path,
            &json!({"metadata": {"z": true}, "metadata_mode": "replace"}),
        )
        .expect(200)
        .json();
    assert_eq!(replaced["metadata"], json!({"z": true}));

    let changed = client
        .patch(
            &path,
            &json!({"content": "The reactor coolant pump needs a new seal."}),
        )
        .expect(200)
        .json();
    assert_eq!(
        changed["content"],
        "The reactor coolant pump needs a new seal."
    );
    assert_eq!(changed["embedding_status"], "ready");
    let hits = retrieve(
        &client,
        "limit=1",
        json!({"query": "nuclear plant maintenance parts"}),
    );
    assert_eq!(
        hits[0]["id"],
        json!(id),
        "the new content's embedding is searched"
    );

    let unknown = client.patch(&path, &json!({"colour": "red"})).expect(422);
    assert_eq!(unknown.error_code(), "unknown_field");
}

#[test]
fn delete_one_and_delete_by_filter() {
    let (client, _) = Client::new_user();
    let a = client.ingest("alpha memory to delete", json!({"tags": ["tmp"]}));
    let b = client.ingest("beta memory to delete by tag", json!({"tags": ["tmp"]}));
    let keep = client.ingest("gamma memory to keep", json!({"tags": ["keep"]}));

    let a_path = format!("/api/v1/memory/{}", a["id"].as_str().expect("id"));
    let gone = client.delete(&a_path).expect(200).json();
    assert_eq!(gone, json!({"status": "deleted", "memory_id": a["id"]}));
    assert_eq!(
        client.get(&a_path).expect(404).error_code(),
        "memory_not_found"
    );
    client.delete(&a_path).expect(404);

    let deleted = client.delete("/api/v1/memory?tag=tmp").expect(200).json();
    assert_eq!(deleted["deleted"], 1, "only b was left with tag tmp");
    client
        .get(&format!("/api/v1/memory/{}", b["id"].as_str().expect("id")))
        .expect(404);
    client
        .get(&format!(
            "/api/v1/memory/{}",
            keep["id"].as_str().expect("id")
        ))
        .expect(200);

    let all = client.delete("/api/v1/memory").expect(200).json();
    assert_eq!(all["deleted"], 1);
    assert_eq!(
        client.get("/api/v1/memory").expect(200).json()["memories"],
        json!([])
    );
}

#[test]
fn list_pages_with_cursors_and_export_is_ndjson() {
    let (client, _) = Client::new_user();
    let mut stored = HashSet::new();
    for i in 0..5 {
        let m = client.ingest(
            &format!("list item number {i} about topic {}", i * 7),
            json!({"tags": ["list"]}),
        );
        stored.insert(m["id"].as_str().expect("id").to_string());
    }
    let mut seen = Vec::new();
    let mut path = "/api/v1/memory?limit=2".to_string();
    loop {
        let page = client.get(&path).expect(200).json();
        let page_ids = ids(&page["memories"]);
        assert!(page_ids.len() <= 2);
        seen.extend(page_ids);
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/memory?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5, "every memory exactly once: {seen:?}");
    assert_eq!(seen.iter().cloned().collect::<HashSet<_>>(), stored);

    let export = client.get("/api/v1/memory/export").expect(200);
    assert!(
        export
            .header("content-type")
            .unwrap_or_default()
            .starts_with("application/x-ndjson")
    );
    let lines: Vec<Value> = export
        .text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(lines.len(), 5);
    assert_eq!(
        lines
            .iter()
            .map(|m| m["id"].as_str().expect("id").to_string())
            .collect::<HashSet<_>>(),
        stored
    );

    assert_eq!(
        client
            .get("/api/v1/memory?cursor=not-a-cursor")
            .expect(400)
            .error_code(),
        "invalid_cursor"
    );
    assert_eq!(
        client
            .get("/api/v1/memory?limit=abc")
            .expect(400)
            .error_code(),
        "invalid_parameter"
    );
    assert_eq!(
        client
            .get("/api/v1/memory?colour=red")
            .expect(400)
            .error_code(),
        "invalid_parameter"
    );
}

#[test]
fn batch_reports_each_item() {
    let (client, _) = Client::new_user();
    let reply = client
        .post(
            "/api/v1/memory/batch",
            &json!({"items": [
                {"content": "batch one: the train leaves at noon"},
                {"content": "batch one: the train leaves at noon"},
                {"content": 5},
                {"content": "batch three: bring an umbrella", "tags": ["weather"]}
            ]}),
        )
        .expect(200)
        .json();
    let results = reply["results"].as_array().expect("results");
    assert_eq!(results.len(), 4);
    assert_eq!(results[0]["status"], 200);
    assert_eq!(results[1]["status"], 409);
    assert_eq!(results[1]["error"]["code"], "duplicate_memory");
    assert_eq!(results[2]["status"], 422);
    assert_eq!(results[3]["status"], 200);
    assert_eq!(reply["stored"], 2);
    assert_eq!(
        client.get("/api/v1/memory").expect(200).json()["memories"]
            .as_array()
            .expect("list")
            .len(),
        2
    );

    let too_many: Vec<Value> = (0..101)
        .map(|i| json!({"content": format!("item {i}")}))
        .collect();
    let r = client
        .post("/api/v1/memory/batch", &json!({"items": too_many}))
        .expect(422);
    assert_eq!(r.error_code(), "batch_too_large");
}

#[test]
fn expired_memories_never_appear() {
    let (client, _) = Client::new_user();
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let m = client.ingest(
        "an ephemeral note about the zebra crossing",
        json!({"expires_at": soon}),
    );
    let id = m["id"].as_str().expect("id");
    std::thread::sleep(Duration::from_secs(3));
    client.get(&format!("/api/v1/memory/{id}")).expect(404);
    assert!(retrieve(&client, "", json!({"query": "zebra crossing"})).is_empty());
    assert_eq!(
        client.get("/api/v1/memory").expect(200).json()["memories"],
        json!([])
    );
    assert_eq!(client.get("/api/v1/memory/export").expect(200).text, "");
}

#[test]
fn bad_input_gets_precise_4xx() {
    let (client, _) = Client::new_user();
    let ingest = "/api/v1/memory/ingest";
    assert_eq!(
        client
            .post_raw(ingest, b"{\"content\": ".to_vec())
            .expect(400)
            .error_code(),
        "invalid_json"
    );
    assert_eq!(
        client
            .post_raw(ingest, vec![0xff, 0xfe, 0x00])
            .expect(400)
            .error_code(),
        "invalid_json"
    );
    assert_eq!(
        client
            .post(ingest, &json!({"content": 42}))
            .expect(422)
            .error_code(),
        "invalid_field"
    );
    assert_eq!(
        client.post(ingest, &json!({})).expect(422).error_code(),
        "invalid_field"
    );
    assert_eq!(
        client
            .post(ingest, &json!({"content": "x", "colour": 1}))
            .expect(422)
            .error_code(),
        "unknown_field"
    );
    assert_eq!(
        client
            .post(ingest, &json!({"content": "x".repeat(33 * 1024)}))
            .expect(422)
            .error_code(),
        "content_too_large"
    );
    let many: serde_json::Map<String, Value> =
        (0..65).map(|i| (format!("k{i}"), json!(i))).collect();
    assert_eq!(
        client
            .post(ingest, &json!({"content": "x", "metadata": many}))
            .expect(422)
            .error_code(),
        "metadata_too_large"
    );
    let big_meta = json!({"content": "x", "metadata": {"blob": "y".repeat(9 * 1024)}});
    assert_eq!(
        client.post(ingest, &big_meta).expect(422).error_code(),
        "metadata_too_large"
    );
    let huge = vec![b' '; 1024 * 1024 + 10];
    assert_eq!(
        client.post_raw(ingest, huge).expect(413).error_code(),
        "payload_too_large"
    );
    assert_eq!(
        client
            .get("/api/v1/memory/not-a-uuid")
            .expect(400)
            .error_code(),
        "invalid_parameter"
    );
    assert_eq!(
        client
            .get(&format!("/api/v1/memory/{}", Uuid::new_v4()))
            .expect(404)
            .error_code(),
        "memory_not_found"
    );
    let wrong_method = client
        .send("PUT", "/api/v1/memory/ingest", None, "")
        .expect(405);
    assert!(
        wrong_method
            .header("allow")
            .unwrap_or_default()
            .contains("POST")
    );
    // Nothing half-written: none of the rejected requests stored anything.
    assert_eq!(
        client.get("/api/v1/memory").expect(200).json()["memories"],
        json!([])
    );
}

#[test]
fn tokens_are_verified_precisely() {
    let signer = DevSigner::load();
    let user = Uuid::new_v4().to_string();
    let path = "/api/v1/memory";
    let anon = Client::anonymous(&api_url());
    let missing = anon.get(path).expect(401);
    assert_eq!(missing.error_code(), "missing_token");
    assert!(missing.header("www-authenticate").is_some());

    let with = |token: String| Client::anonymous(&api_url()).with_token(&token).get(path);
    let header = json!({"alg": "ES256", "typ": "JWT", "kid": signer.kid()});
    let claims = signer.claims_for(&user);
    with(signer.sign(&header, &claims)).expect(200);

    let mut expired = claims.clone();
    expired["exp"] = json!(chrono::Utc::now().timestamp() - 60);
    assert_eq!(
        with(signer.sign(&header, &expired))
            .expect(401)
            .error_code(),
        "token_expired"
    );
    let mut early = claims.clone();
    early["nbf"] = json!(chrono::Utc::now().timestamp() + 3600);
    assert_eq!(
        with(signer.sign(&header, &early)).expect(401).error_code(),
        "token_not_yet_valid"
    );
    let mut issuer = claims.clone();
    issuer["iss"] = json!("someone-else");
    assert_eq!(
        with(signer.sign(&header, &issuer)).expect(401).error_code(),
        "invalid_issuer"
    );
    let mut audience = claims.clone();
    audience["aud"] = json!("another-api");
    assert_eq!(
        with(signer.sign(&header, &audience))
            .expect(401)
            .error_code(),
        "invalid_audience"
    );
    let mut subject = claims.clone();
    subject["sub"] = json!("not-a-uuid");
    assert_eq!(
        with(signer.sign(&header, &subject))
            .expect(401)
            .error_code(),
        "invalid_subject"
    );
    let other_kid = json!({"alg": "ES256", "typ": "JWT", "kid": "no-such-key"});
    assert_eq!(
        with(signer.sign(&other_kid, &claims))
            .expect(401)
            .error_code(),
        "unknown_key"
    );

    // alg=none: an unsigned token must never pass.
    let good = signer.sign(&header, &claims);
    let mut parts: Vec<&str> = good.split('.').collect();
    let none_header = base64_url(&json!({"alg": "none", "typ": "JWT"}).to_string());
    parts[0] = &none_header;
    assert_eq!(
        with(format!("{}.{}.", parts[0], parts[1]))
            .expect(401)
            .error_code(),
        "invalid_token"
    );
    // Tampered payload: the signature no longer matches.
    let mut tampered = claims.clone();
    tampered["sub"] = json!(Uuid::new_v4().to_string());
    let forged = format!(
        "{}.{}.{}",
        good.split('.').next().unwrap_or_default(),
        base64_url(&tampered.to_string()),
        good.rsplit('.').next().unwrap_or_default()
    );
    assert_eq!(with(forged).expect(401).error_code(), "invalid_token");
    assert_eq!(
        with("garbage".into()).expect(401).error_code(),
        "invalid_token"
    );
}

fn base64_url(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

#[test]
fn openapi_document_is_served_and_lists_every_route() {
    let doc = Client::anonymous(&api_url())
        .get("/openapi.json")
        .expect(200)
        .json();
    assert!(
        doc["openapi"]
            .as_str()
            .unwrap_or_default()
            .starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let routes = [
        ("/api/v1/memory/ingest", "post"),
        ("/api/v1/memory/batch", "post"),
        ("/api/v1/memory/retrieve", "post"),
        ("/api/v1/memory/{id}", "get"),
        ("/api/v1/memory/{id}", "patch"),
        ("/api/v1/memory/{id}", "delete"),
        ("/api/v1/memory", "get"),
        ("/api/v1/memory", "delete"),
        ("/api/v1/memory/export", "get"),
        ("/health", "get"),
        ("/ready", "get"),
    ];
    for (path, method) in routes {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} missing from /openapi.json"
        );
    }
}
