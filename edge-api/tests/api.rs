//! Integration tests of the core router against the real Postgres: ingest,
//! retrieval ranking and filters, pagination, edits, isolation, expiry,
//! limits and error paths. Run with `--features native`.
#![cfg(feature = "native")]

mod common;

use common::{EmbedMode, Harness, code, random_uuid};
use edge_api::http::Request;
use serde_json::{Value, json};

#[tokio::test]
async fn ingest_get_and_duplicate() {
    let h = Harness::new().await;
    let u = random_uuid();
    let (s, m) = h
        .ingest(u, json!({"content": "The cat sat on the mat", "metadata": {"src": "t"}, "tags": ["pets", "pets", " home "]}))
        .await;
    assert_eq!(s, 200, "{m}");
    assert_eq!(m["embedding_status"], "ready");
    assert_eq!(m["embedding_model"], common::MODEL);
    assert_eq!(m["tags"], json!(["pets", "home"]));
    assert_eq!(m["metadata"], json!({"src": "t"}));
    assert_eq!(m["content_hash"].as_str().map(str::len), Some(64));
    assert_eq!(m["access_count"], 0);
    let id = m["id"].as_str().expect("id").to_string();

    let (s, got) = h
        .call("GET", &format!("/api/v1/memory/{id}"), Some(u), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(got, m);

    let (s, dup) = h
        .ingest(u, json!({"content": "The cat sat on the mat"}))
        .await;
    assert_eq!(s, 409);
    assert_eq!(code(&dup), "duplicate_memory");
    assert_eq!(dup["error"]["existing_id"], json!(id));

    // Same content for another user is not a duplicate.
    let other = random_uuid();
    let (s, _) = h
        .ingest(other, json!({"content": "The cat sat on the mat"}))
        .await;
    assert_eq!(s, 200);
    h.cleanup(u).await;
    h.cleanup(other).await;
}

#[tokio::test]
async fn embedding_outage_stores_pending_and_answers_200_pending() {
    let h = Harness::new().await;
    let u = random_uuid();
    h.embedder.mode.set(EmbedMode::Down);
    let (s, m) = h
        .ingest(u, json!({"content": "stored while the pool is down"}))
        .await;
    assert_eq!(s, 200, "{m}");
    assert_eq!(m["embedding_status"], "pending");
    assert_eq!(m["embedding_model"], Value::Null);
    // A pool answering with the wrong model or dimension is not trusted either.
    h.embedder.mode.set(EmbedMode::WrongModel);
    let (s, m) = h.ingest(u, json!({"content": "wrong model answer"})).await;
    assert_eq!((s, m["embedding_status"].as_str()), (200, Some("pending")));
    h.embedder.mode.set(EmbedMode::WrongDim);
    let (s, m) = h
        .ingest(u, json!({"content": "wrong dimension answer"}))
        .await;
    assert_eq!((s, m["embedding_status"].as_str()), (200, Some("pending")));
    // Pending rows are still found by full-text search, and the answer
    // says how many of the caller's memories wait for an embedding.
    h.embedder.mode.set(EmbedMode::Down);
    let r = h.retrieve(u, "", json!({"query": "pool down"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.mode.as_deref(), Some("text"));
    assert_eq!(r.pending, Some(3));
    assert_eq!(r.body[0]["content"], "stored while the pool is down");
    // Vector search needs the pool: refused with a retryable 503.
    let r = h
        .retrieve(u, "", json!({"query": "pool down", "mode": "vector"}))
        .await;
    assert_eq!((r.status, code(&r.body)), (503, "not_ready"), "{}", r.body);
    // Another user's pending rows are not counted.
    let r = h
        .retrieve(random_uuid(), "", json!({"query": "pool down"}))
        .await;
    assert_eq!((r.status, r.pending), (200, Some(0)));
    assert_eq!(r.body, json!([]));
    h.cleanup(u).await;
}

#[tokio::test]
async fn embeddings_are_cached_in_kv() {
    let h = Harness::new().await;
    let u = random_uuid();
    let (s, _) = h.ingest(u, json!({"content": "cache me if you can"})).await;
    assert_eq!(s, 200);
    let texts = h.embedder.texts.get();
    for _ in 0..2 {
        let (s, _) = h
            .call(
                "POST",
                "/api/v1/memory/retrieve",
                Some(u),
                Some(json!({"query": "cache me if you can"})),
            )
            .await;
        assert_eq!(s, 200);
    }
    // The query text equals the stored content: one cache entry serves all three.
    assert_eq!(h.embedder.texts.get(), texts);
    assert!(!h.kv.is_empty());
    h.cleanup(u).await;
}

async fn seed(h: &Harness, u: uuid::Uuid) -> Vec<String> {
    let docs = [
        (
            "Postgres vacuum reclaims dead tuples and prevents transaction id wraparound",
            json!({"topic": "db", "lvl": 2}),
            vec!["db", "ops"],
        ),
        (
            "Rust borrow checker enforces aliasing xor mutability at compile time",
            json!({"topic": "lang"}),
            vec!["rust"],
        ),
        (
            "HNSW graphs give approximate nearest neighbour search over vectors",
            json!({"topic": "db", "lvl": 3}),
            vec!["db", "search"],
        ),
        (
            "My grandmother's apple pie recipe uses cinnamon and nutmeg",
            json!({"topic": "food"}),
            vec!["home"],
        ),
        (
            "Reciprocal rank fusion merges ranked lists from vector and text search",
            json!({"topic": "search"}),
            vec!["search"],
        ),
    ];
    let mut ids = Vec::new();
    for (c, m, t) in docs {
        let (s, r) = h
            .ingest(u, json!({"content": c, "metadata": m, "tags": t}))
            .await;
        assert_eq!(s, 200, "{r}");
        ids.push(r["id"].as_str().expect("id").to_string());
        h.advance(10);
    }
    ids
}

#[tokio::test]
async fn hybrid_retrieval_ranks_and_filters() {
    let h = Harness::new().await;
    let u = random_uuid();
    let ids = seed(&h, u).await;
    let retrieve = |query: &'static str, body: Value| h.retrieve(u, query, body);

    let r = retrieve("", json!({"query": "apple pie recipe"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.mode.as_deref(), Some("hybrid"));
    assert_eq!(r.pending, Some(0));
    let res = r.body.as_array().expect("an array of hits");
    assert_eq!(res[0]["id"], json!(ids[3]), "{}", r.body);
    // Found by both branches: ranks 1 and 1, the best possible fused score.
    assert_eq!(res[0]["vector_rank"], 1);
    assert_eq!(res[0]["text_rank"], 1);
    let best = 2.0 / (f64::from(edge_api::repositories::retrieval::RRF_K) + 1.0);
    assert!((res[0]["score"].as_f64().expect("score") - best).abs() < 1e-9);
    assert!(res[0]["similarity"].as_f64().expect("sim") > 0.5);
    let scores: Vec<f64> = res
        .iter()
        .map(|x| x["score"].as_f64().expect("score"))
        .collect();
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "best first: {scores:?}"
    );

    // One branch at a time: vector mode finds it without text ranks, text
    // mode without vector ranks (and without calling the embedder).
    let r = retrieve("", json!({"query": "apple pie recipe", "mode": "vector"})).await;
    assert_eq!(r.mode.as_deref(), Some("vector"));
    assert_eq!(r.body[0]["id"], json!(ids[3]));
    assert!(
        r.body
            .as_array()
            .expect("hits")
            .iter()
            .all(|x| x["text_rank"].is_null())
    );
    let embedded = h.embedder.texts.get();
    let r = retrieve("", json!({"query": "cinnamon nutmeg", "mode": "text"})).await;
    assert_eq!(r.mode.as_deref(), Some("text"));
    assert_eq!(r.ids(), vec![ids[3].clone()]);
    assert!(r.body[0]["vector_rank"].is_null());
    assert_eq!(h.embedder.texts.get(), embedded, "text mode embeds nothing");

    // A flat metadata filter (containment) + tags all-of beside it.
    let r = retrieve(
        "",
        json!({"query": "search vectors", "filters": {"topic": "db"}, "tags": ["search"]}),
    )
    .await;
    assert_eq!(r.ids(), vec![ids[2].clone()]);
    let r = retrieve(
        "",
        json!({"query": "search vectors", "filters": {"topic": "db"}}),
    )
    .await;
    let mut got = r.ids();
    got.sort_unstable();
    let mut want = vec![ids[0].clone(), ids[2].clone()];
    want.sort_unstable();
    assert_eq!(got, want);
    // A key no memory has: an empty list, not an error.
    let r = retrieve(
        "",
        json!({"query": "search", "filters": {"no_such_key": 1}}),
    )
    .await;
    assert_eq!((r.status, r.body.clone()), (200, json!([])));

    // Created range: the last two only.
    let (_, all) = h
        .call("GET", "/api/v1/memory?limit=100", Some(u), None)
        .await;
    let third_created = all["memories"]
        .as_array()
        .expect("m")
        .iter()
        .find(|m| m["id"] == json!(ids[3]))
        .expect("row")["created_at"]
        .clone();
    let r = retrieve(
        "",
        json!({"query": "search recipe vacuum rust fusion", "created_after": third_created}),
    )
    .await;
    let mut got = r.ids();
    got.sort_unstable();
    let mut want = vec![ids[3].clone(), ids[4].clone()];
    want.sort_unstable();
    assert_eq!(got, want);

    // Limit and offset (query parameters) page through the same ranking.
    let full = retrieve("limit=5", json!({"query": "search"})).await;
    let p2 = retrieve("limit=2&offset=1", json!({"query": "search"})).await;
    assert_eq!(p2.ids(), full.ids()[1..3].to_vec());

    // Access statistics are bumped once per retrieval that returns a row.
    let one = format!("/api/v1/memory/{}", ids[3]);
    let get = || h.call("GET", &one, Some(u), None);
    let (_, before) = get().await;
    assert!(before["accessed_at"].is_string());
    let r = retrieve("limit=1", json!({"query": "apple pie"})).await;
    assert_eq!(r.ids(), vec![ids[3].clone()]);
    let (_, after) = get().await;
    assert_eq!(
        after["access_count"].as_i64(),
        before["access_count"].as_i64().map(|n| n + 1)
    );

    // Bad requests: out-of-range paging is refused, never replaced.
    for (query, body, want) in [
        ("", json!({"query": ""}), "invalid_field"),
        ("limit=0", json!({"query": "x"}), "invalid_field"),
        ("limit=101", json!({"query": "x"}), "invalid_field"),
        ("limit=ten", json!({"query": "x"}), "invalid_field"),
        ("offset=-1", json!({"query": "x"}), "invalid_field"),
        ("offset=5000", json!({"query": "x"}), "invalid_field"),
        ("", json!({"query": "x", "limit": 5}), "unknown_field"),
        ("", json!({"query": "x", "offset": 1}), "unknown_field"),
        ("", json!({"query": "x", "mode": "fuzzy"}), "invalid_field"),
        ("", json!({"query": "x", "filters": [1]}), "invalid_filter"),
        (
            "",
            json!({"query": "x", "filters": "topic"}),
            "invalid_filter",
        ),
        (
            "",
            json!({"query": "x", "created_after": "last week"}),
            "invalid_filter",
        ),
        ("", json!({"query": "x", "k": 3}), "unknown_field"),
    ] {
        let r = retrieve(query, body.clone()).await;
        assert_eq!((r.status, code(&r.body)), (422, want), "{query} {body}");
    }
    let r = retrieve("page=2", json!({"query": "x"})).await;
    assert_eq!((r.status, code(&r.body)), (400, "invalid_parameter"));
    h.cleanup(u).await;
}

#[tokio::test]
async fn tenants_are_isolated() {
    let h = Harness::new().await;
    let (a, b) = (random_uuid(), random_uuid());
    let (_, m) = h
        .ingest(a, json!({"content": "alice's secret diary entry"}))
        .await;
    let id = m["id"].as_str().expect("id").to_string();
    for (method, body) in [
        ("GET", None),
        ("PATCH", Some(json!({"tags": ["x"]}))),
        ("DELETE", None),
    ] {
        let (s, r) = h
            .call(method, &format!("/api/v1/memory/{id}"), Some(b), body)
            .await;
        assert_eq!((s, code(&r)), (404, "memory_not_found"), "{method}");
    }
    let r = h
        .retrieve(b, "", json!({"query": "alice secret diary"}))
        .await;
    assert_eq!((r.status, r.body), (200, json!([])));
    let (_, r) = h.call("GET", "/api/v1/memory", Some(b), None).await;
    assert_eq!(r["memories"], json!([]));
    let (_, r) = h.call("DELETE", "/api/v1/memory", Some(b), None).await;
    assert_eq!(r["deleted"], 0);
    // Bob storing the same text is not told Alice has it.
    let (s, _) = h
        .ingest(b, json!({"content": "alice's secret diary entry"}))
        .await;
    assert_eq!(s, 200);
    let (s, _) = h
        .call("GET", &format!("/api/v1/memory/{id}"), Some(a), None)
        .await;
    assert_eq!(s, 200);
    h.cleanup(a).await;
    h.cleanup(b).await;
}

/// Row-level security holds even when a statement forgets its WHERE clause.
#[tokio::test]
async fn row_level_security_applies_to_the_app_role() {
    use edge_api::ports::{Sql, SqlScope};
    let h = Harness::new().await;
    let (a, b) = (random_uuid(), random_uuid());
    h.ingest(a, json!({"content": "row of a"})).await;
    h.ingest(b, json!({"content": "row of b"})).await;
    let q = |scope: SqlScope, sql: &'static str, params: Vec<Option<String>>| {
        let sql_port: &dyn Sql = &h.sql;
        async move { sql_port.query(&scope, sql, &params).await }
    };
    // No user filter at all: still only A's rows.
    let rows = q(
        SqlScope::User(a.to_string()),
        "SELECT user_id::text FROM memories",
        vec![],
    )
    .await
    .expect("query");
    assert!(!rows.is_empty());
    assert!(
        rows.iter()
            .all(|r| r[0].as_deref() == Some(a.to_string().as_str()))
    );
    // A "bad WHERE" asking for B's rows in A's scope sees nothing.
    let rows = q(
        SqlScope::User(a.to_string()),
        "SELECT count(*)::text FROM memories WHERE user_id = $1::uuid",
        vec![Some(b.to_string())],
    )
    .await
    .expect("query");
    assert_eq!(rows[0][0].as_deref(), Some("0"));
    // Writing a row for B in A's scope is refused by the policy.
    let err = q(
        SqlScope::User(a.to_string()),
        "INSERT INTO memories (user_id, content, content_hash) VALUES ($1::uuid, 'x', repeat('a', 64))",
        vec![Some(b.to_string())],
    )
    .await
    .expect_err("RLS WITH CHECK");
    assert!(err.detail.contains("42501"), "{err}");
    // Updating or deleting B's rows from A's scope touches nothing.
    let rows = q(
        SqlScope::User(a.to_string()),
        "WITH d AS (DELETE FROM memories WHERE user_id = $1::uuid RETURNING 1) SELECT count(*)::text FROM d",
        vec![Some(b.to_string())],
    )
    .await
    .expect("query");
    assert_eq!(rows[0][0].as_deref(), Some("0"));
    // The system scope sees both.
    let rows = q(
        SqlScope::System,
        "SELECT count(DISTINCT user_id)::text FROM memories WHERE user_id IN ($1::uuid, $2::uuid)",
        vec![Some(a.to_string()), Some(b.to_string())],
    )
    .await
    .expect("query");
    assert_eq!(rows[0][0].as_deref(), Some("2"));
    // And a bare connection of the app role, with no scope set, sees nothing.
    let raw = edge_api::platform::native::connect_client(&common::database_url())
        .await
        .expect("connect");
    let n: i64 = raw
        .query_one("SELECT count(*) FROM memories", &[])
        .await
        .expect("q")
        .get(0);
    assert_eq!(n, 0);
    h.cleanup(a).await;
    h.cleanup(b).await;
}

#[tokio::test]
async fn list_paginates_with_opaque_cursors_and_filters() {
    let h = Harness::new().await;
    let u = random_uuid();
    let mut created = Vec::new();
    for i in 0..7 {
        let tags = if i % 2 == 0 {
            json!(["even"])
        } else {
            json!(["odd"])
        };
        let (s, m) = h
            .ingest(
                u,
                json!({"content": format!("note number {i}"), "tags": tags, "metadata": {"i": i}}),
            )
            .await;
        assert_eq!(s, 200);
        created.push(m["id"].as_str().expect("id").to_string());
        h.advance(5);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/memory?limit=3&cursor={c}"),
            None => "/api/v1/memory?limit=3".into(),
        };
        let (s, page) = h.call("GET", &path, Some(u), None).await;
        assert_eq!(s, 200, "{page}");
        for m in page["memories"].as_array().expect("memories") {
            seen.push(m["id"].as_str().expect("id").to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let mut newest_first = created.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first);

    let (_, r) = h
        .call("GET", "/api/v1/memory?tag=even", Some(u), None)
        .await;
    assert_eq!(r["memories"].as_array().map(Vec::len), Some(4));
    let (_, r) = h
        .call(
            "GET",
            "/api/v1/memory?metadata=%7B%22i%22%3A3%7D",
            Some(u),
            None,
        )
        .await;
    assert_eq!(r["memories"][0]["id"], json!(created[3]));

    for (q, status, want) in [
        ("cursor=garbage", 400, "invalid_cursor"),
        (
            "cursor=eyJ0IjoiMjAyNi0wMS0wMSIsImkiOiJ4In0",
            400,
            "invalid_cursor",
        ),
        ("limit=0", 400, "invalid_parameter"),
        ("limit=abc", 400, "invalid_parameter"),
        ("sort=asc", 400, "invalid_parameter"),
        ("metadata=%5B1%5D", 422, "invalid_filter"),
        ("metadata=%7Bbad", 422, "invalid_filter"),
        ("created_after=tomorrow", 422, "invalid_filter"),
        ("tag=%FF", 400, "invalid_parameter"),
    ] {
        let (s, r) = h
            .call("GET", &format!("/api/v1/memory?{q}"), Some(u), None)
            .await;
        assert_eq!((s, code(&r)), (status, want), "{q}");
    }

    // Export: NDJSON of everything, newest first.
    let res = h.send("GET", "/api/v1/memory/export", Some(u), None).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("content-type"), Some("application/x-ndjson"));
    let lines: Vec<Value> = String::from_utf8(res.body)
        .expect("utf8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 7);
    assert_eq!(lines[0]["id"], json!(newest_first[0]));

    // Bulk delete by filter, then everything.
    let (s, r) = h
        .call("DELETE", "/api/v1/memory?tag=odd", Some(u), None)
        .await;
    assert_eq!((s, r["deleted"].as_u64()), (200, Some(3)));
    let (_, r) = h.call("DELETE", "/api/v1/memory", Some(u), None).await;
    assert_eq!(r["deleted"], 4);
    let (_, r) = h.call("GET", "/api/v1/memory", Some(u), None).await;
    assert_eq!(r["memories"], json!([]));
}

#[tokio::test]
async fn patch_merges_replaces_and_reembeds() {
    let h = Harness::new().await;
    let u = random_uuid();
    let (_, m) = h
        .ingest(
            u,
            json!({"content": "original text", "metadata": {"a": 1, "b": {"c": 2}}, "tags": ["t"]}),
        )
        .await;
    let id = m["id"].as_str().expect("id").to_string();
    let path = format!("/api/v1/memory/{id}");
    h.advance(1000);

    let (s, p) = h
        .call(
            "PATCH",
            &path,
            Some(u),
            Some(json!({"metadata": {"b": {"d": 3}, "a": null, "e": 5}})),
        )
        .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["metadata"], json!({"b": {"c": 2, "d": 3}, "e": 5}));
    assert_eq!(p["content_hash"], m["content_hash"]);
    assert_ne!(p["updated_at"], m["updated_at"]);

    let (_, p) = h
        .call(
            "PATCH",
            &path,
            Some(u),
            Some(json!({"metadata": {"only": true}, "metadata_mode": "replace"})),
        )
        .await;
    assert_eq!(p["metadata"], json!({"only": true}));

    let calls = h.embedder.calls.get();
    let (s, p) = h
        .call(
            "PATCH",
            &path,
            Some(u),
            Some(json!({"content": "completely new words"})),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(p["embedding_status"], "ready");
    assert_ne!(p["content_hash"], m["content_hash"]);
    assert_eq!(h.embedder.calls.get(), calls + 1);
    let r = h
        .retrieve(u, "", json!({"query": "completely new words"}))
        .await;
    assert_eq!(r.body[0]["id"], json!(id));
    assert_eq!(r.body[0]["vector_rank"], 1);

    // Content change while the pool is down: 200, pending.
    h.embedder.mode.set(EmbedMode::Down);
    let (s, p) = h
        .call(
            "PATCH",
            &path,
            Some(u),
            Some(json!({"content": "edited during an outage"})),
        )
        .await;
    assert_eq!((s, p["embedding_status"].as_str()), (200, Some("pending")));
    h.embedder.mode.set(EmbedMode::Up);

    // Expiry set and cleared.
    let later = h.now_rfc3339(3_600_000);
    let (_, p) = h
        .call("PATCH", &path, Some(u), Some(json!({"expires_at": later})))
        .await;
    assert!(p["expires_at"].is_string());
    let (_, p) = h
        .call("PATCH", &path, Some(u), Some(json!({"expires_at": null})))
        .await;
    assert_eq!(p["expires_at"], Value::Null);

    // Editing into another memory's content is a duplicate.
    let (_, other) = h.ingest(u, json!({"content": "second memory"})).await;
    let (s, r) = h
        .call(
            "PATCH",
            &path,
            Some(u),
            Some(json!({"content": "second memory"})),
        )
        .await;
    assert_eq!((s, code(&r)), (409, "duplicate_memory"));
    assert_eq!(r["error"]["existing_id"], other["id"]);

    for (body, want) in [
        (json!({}), "invalid_field"),
        (json!({"metadata": "x"}), "invalid_field"),
        (
            json!({"metadata_mode": "append", "metadata": {}}),
            "invalid_field",
        ),
        (json!({"content": ""}), "invalid_field"),
        (
            json!({"expires_at": "2000-01-01T00:00:00Z"}),
            "invalid_field",
        ),
        (json!({"tags": "x"}), "invalid_field"),
        (json!({"id": "x"}), "unknown_field"),
    ] {
        let (s, r) = h.call("PATCH", &path, Some(u), Some(body.clone())).await;
        assert_eq!((s, code(&r)), (422, want), "{body}");
    }
    let (s, r) = h
        .call(
            "PATCH",
            "/api/v1/memory/not-a-uuid",
            Some(u),
            Some(json!({"tags": []})),
        )
        .await;
    assert_eq!((s, code(&r)), (400, "invalid_parameter"));

    let (s, r) = h.call("DELETE", &path, Some(u), None).await;
    assert_eq!((s, r), (200, json!({"status": "deleted", "memory_id": id})));
    let (s, r) = h.call("DELETE", &path, Some(u), None).await;
    assert_eq!((s, code(&r)), (404, "memory_not_found"));
    h.cleanup(u).await;
}

#[tokio::test]
async fn expiry_hides_rows_and_allows_re_ingest() {
    let h = Harness::new().await;
    let u = random_uuid();
    let (s, m) = h
        .ingest(
            u,
            json!({"content": "ephemeral note about tea", "expires_at": h.now_rfc3339(1000)}),
        )
        .await;
    assert_eq!(s, 200, "{m}");
    let id = m["id"].as_str().expect("id").to_string();
    let (s, _) = h
        .ingest(
            u,
            json!({"content": "expired already", "expires_at": h.now_rfc3339(-1000)}),
        )
        .await;
    assert_eq!(s, 422);

    h.advance(2000);
    let (s, _) = h
        .call("GET", &format!("/api/v1/memory/{id}"), Some(u), None)
        .await;
    assert_eq!(s, 404);
    let r = h.retrieve(u, "", json!({"query": "ephemeral tea"})).await;
    assert_eq!((r.status, r.body), (200, json!([])));
    let (_, r) = h.call("GET", "/api/v1/memory", Some(u), None).await;
    assert_eq!(r["memories"], json!([]));
    // The same content may be stored again: a new memory, not a duplicate.
    let (s, m2) = h
        .ingest(u, json!({"content": "ephemeral note about tea"}))
        .await;
    assert_eq!(s, 200, "{m2}");
    assert_ne!(m2["id"], json!(id));
    assert_eq!(m2["expires_at"], Value::Null);
    h.cleanup(u).await;
}

#[tokio::test]
async fn batch_reports_each_item() {
    let h = Harness::new().await;
    let u = random_uuid();
    h.ingest(u, json!({"content": "already here"})).await;
    let (s, r) = h
        .call(
            "POST",
            "/api/v1/memory/batch",
            Some(u),
            Some(json!({"items": [
                {"content": "first new"},
                {"content": "already here"},
                {"content": ""},
                {"content": "first new"},
                {"content": "x", "bogus": 1},
                {"content": "second new", "tags": ["b"]},
                7
            ]})),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let res = r["results"].as_array().expect("results");
    let statuses: Vec<u64> = res
        .iter()
        .map(|x| x["status"].as_u64().expect("status"))
        .collect();
    // Each item answers as a single ingest would.
    assert_eq!(statuses, vec![200, 409, 422, 409, 422, 200, 422]);
    assert_eq!(res[1]["error"]["code"], "duplicate_memory");
    assert!(res[1]["error"]["existing_id"].is_string());
    assert_eq!(res[3]["error"]["existing_id"], res[0]["memory"]["id"]);
    assert_eq!(res[4]["error"]["code"], "unknown_field");
    assert_eq!(
        (r["stored"].as_u64(), r["failed"].as_u64()),
        (Some(2), Some(5))
    );
    // One embedding call for the whole batch.
    let calls = h.embedder.calls.get();
    h.call(
        "POST",
        "/api/v1/memory/batch",
        Some(u),
        Some(json!({"items": [{"content": "b1"}, {"content": "b2"}]})),
    )
    .await;
    assert_eq!(h.embedder.calls.get(), calls + 1);

    let items: Vec<Value> = (0..101)
        .map(|i| json!({"content": format!("n{i}")}))
        .collect();
    let (s, r) = h
        .call(
            "POST",
            "/api/v1/memory/batch",
            Some(u),
            Some(json!({"items": items})),
        )
        .await;
    assert_eq!((s, code(&r)), (422, "batch_too_large"));
    let (s, r) = h
        .call(
            "POST",
            "/api/v1/memory/batch",
            Some(u),
            Some(json!({"items": []})),
        )
        .await;
    assert_eq!((s, code(&r)), (422, "batch_too_large"));
    h.cleanup(u).await;
}

#[tokio::test]
async fn limits_and_malformed_requests() {
    let h = Harness::new().await;
    let u = random_uuid();
    let big = "x".repeat(32 * 1024 + 1);
    let (s, r) = h.ingest(u, json!({"content": big})).await;
    assert_eq!((s, code(&r)), (422, "content_too_large"));
    let (s, _) = h.ingest(u, json!({"content": "y".repeat(32 * 1024)})).await;
    assert_eq!(s, 200);
    let (s, r) = h
        .ingest(
            u,
            json!({"content": "m", "metadata": {"k": "v".repeat(8 * 1024)}}),
        )
        .await;
    assert_eq!((s, code(&r)), (422, "metadata_too_large"));
    let many: serde_json::Map<String, Value> =
        (0..65).map(|i| (format!("k{i}"), json!(i))).collect();
    let (s, r) = h.ingest(u, json!({"content": "m", "metadata": many})).await;
    assert_eq!((s, code(&r)), (422, "metadata_too_large"));
    let (s, r) = h.ingest(u, json!({"content": "nul \u{0} inside"})).await;
    assert_eq!((s, code(&r)), (422, "invalid_field"));
    let (s, r) = h
        .ingest(u, json!({"content": "m", "metadata": {"k": "\u{0}"}}))
        .await;
    assert_eq!((s, code(&r)), (422, "invalid_field"));

    let res = h
        .send(
            "POST",
            "/api/v1/memory/ingest",
            Some(u),
            Some(vec![b' '; 1024 * 1024 + 1]),
        )
        .await;
    assert_eq!(res.status, 413);
    for (body, status, want) in [
        (&b"{\"content\": "[..], 400, "invalid_json"),
        (b"", 400, "invalid_json"),
        (b"[]", 422, "invalid_field"),
        (b"{\"content\": 5}", 422, "invalid_field"),
        (
            b"{\"content\": \"a\", \"expires\": 1}",
            422,
            "unknown_field",
        ),
        (b"{\"content\": \"a\", \"tags\": [1]}", 422, "invalid_field"),
        (
            b"{\"content\": \"a\", \"expires_at\": \"soon\"}",
            422,
            "invalid_field",
        ),
    ] {
        let res = h
            .send(
                "POST",
                "/api/v1/memory/ingest",
                Some(u),
                Some(body.to_vec()),
            )
            .await;
        let v: Value = serde_json::from_slice(&res.body).expect("json");
        assert_eq!(
            (res.status, code(&v)),
            (status, want),
            "{}",
            String::from_utf8_lossy(body)
        );
        assert!(v["error"]["message"].is_string());
        assert!(v["error"]["request_id"].is_string());
    }
    let mut req = Request {
        method: "POST".into(),
        path: "/api/v1/memory/ingest".into(),
        headers: vec![
            ("authorization".into(), format!("Bearer {}", h.token(u))),
            ("content-type".into(), "text/plain".into()),
        ],
        body: b"{\"content\":\"a\"}".to_vec(),
        ..Default::default()
    };
    let res = h.raw(req.clone()).await;
    assert_eq!(res.status, 415);
    req.headers[1].1 = "application/json; charset=utf-8".into();
    assert_eq!(h.raw(req).await.status, 200);
    h.cleanup(u).await;
}

#[tokio::test]
async fn authentication_errors_are_precise() {
    let h = Harness::new().await;
    let u = random_uuid();
    let (s, r) = h.call("GET", "/api/v1/memory", None, None).await;
    assert_eq!((s, code(&r)), (401, "missing_token"));
    let send = |token: String| {
        h.raw(Request {
            method: "GET".into(),
            path: "/api/v1/memory".into(),
            headers: vec![("authorization".into(), format!("Bearer {token}"))],
            ..Default::default()
        })
    };
    let body = |r: edge_api::http::Response| -> (u16, String) {
        let v: Value = serde_json::from_slice(&r.body).expect("json");
        (r.status, code(&v).to_string())
    };
    assert_eq!(
        body(send("nonsense".into()).await),
        (401, "invalid_token".into())
    );
    let expired = h.token_with(
        json!({"sub": u.to_string(), "iss": "memshadow", "aud": "memshadow-api"}),
        -120,
    );
    assert_eq!(body(send(expired).await), (401, "token_expired".into()));
    let wrong_aud = h.token_with(
        json!({"sub": u.to_string(), "iss": "memshadow", "aud": "other"}),
        60,
    );
    assert_eq!(
        body(send(wrong_aud).await),
        (401, "invalid_audience".into())
    );
    let wrong_iss = h.token_with(
        json!({"sub": u.to_string(), "iss": "x", "aud": "memshadow-api"}),
        60,
    );
    assert_eq!(body(send(wrong_iss).await), (401, "invalid_issuer".into()));
    let bad_sub = h.token_with(
        json!({"sub": "bob", "iss": "memshadow", "aud": "memshadow-api"}),
        60,
    );
    assert_eq!(body(send(bad_sub).await), (401, "invalid_subject".into()));
    let res = send(h.token(u)).await;
    assert_eq!(res.status, 200);
    // A token is checked against the request's time (the Clock port).
    let t = h.token(u);
    h.advance(3_600_000);
    assert_eq!(body(send(t).await), (401, "token_expired".into()));
}

#[tokio::test]
async fn routing_health_ready_and_openapi() {
    let h = Harness::new().await;
    let (s, r) = h.call("GET", "/health", None, None).await;
    assert_eq!((s, r["status"].as_str()), (200, Some("ok")));
    let (s, r) = h.call("GET", "/ready", None, None).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        r["checks"],
        json!({"postgres": "ok", "kv": "ok", "embedding": "ok"})
    );
    h.embedder.mode.set(EmbedMode::Down);
    let res = h.send("GET", "/ready", None, None).await;
    assert_eq!(res.status, 503);
    assert_eq!(res.header("retry-after"), Some("5"));
    let v: Value = serde_json::from_slice(&res.body).expect("json");
    assert_eq!(code(&v), "not_ready");
    assert_eq!(v["error"]["message"], "unavailable: embedding");
    assert_eq!(v["error"]["checks"]["postgres"], "ok");

    let (s, r) = h.call("GET", "/openapi.json", None, None).await;
    assert_eq!((s, r["openapi"].as_str()), (200, Some("3.1.0")));
    let (s, r) = h.call("GET", "/nope", None, None).await;
    assert_eq!((s, code(&r)), (404, "not_found"));
    let res = h.send("PUT", "/api/v1/memory/ingest", None, None).await;
    assert_eq!(res.status, 405);
    assert_eq!(res.header("allow"), Some("POST"));

    // The caller's request id is echoed; a fresh one is made otherwise.
    let res = h
        .raw(Request {
            method: "GET".into(),
            path: "/health".into(),
            headers: vec![("x-request-id".into(), "abc-123".into())],
            ..Default::default()
        })
        .await;
    assert_eq!(res.header("x-request-id"), Some("abc-123"));
    let a = h.send("GET", "/health", None, None).await;
    let b = h.send("GET", "/health", None, None).await;
    assert_ne!(a.header("x-request-id"), b.header("x-request-id"));
}

#[tokio::test]
async fn database_outage_is_a_503_without_details() {
    use edge_api::app::Platform;
    let h = Harness::new().await;
    // Port 1 on loopback: nothing listens, the connect fails at once.
    let err = edge_api::platform::native::connect(
        "postgres://memshadow_app:memshadow_app@127.0.0.1:1/memshadow",
    )
    .await
    .err()
    .expect("no server on port 1");
    assert_eq!(err.kind, edge_api::ports::PortErrorKind::Unavailable);
    struct DownSql;
    #[async_trait::async_trait(?Send)]
    impl edge_api::ports::Sql for DownSql {
        async fn query(
            &self,
            _: &edge_api::ports::SqlScope,
            _: &str,
            _: &[Option<String>],
        ) -> Result<Vec<Vec<Option<String>>>, edge_api::ports::PortError> {
            Err(edge_api::ports::PortError::unavailable(
                "connect 10.1.2.3:5432: refused",
            ))
        }
    }
    let p = Platform {
        sql: &DownSql,
        kv: &h.kv,
        http: &h.embedder,
        clock: &h.clock,
        queue: &h.queue,
        blob: &h.blob,
    };
    let u = random_uuid();
    let res = edge_api::app::handle(
        &p,
        &h.cfg,
        Request {
            method: "GET".into(),
            path: "/api/v1/memory".into(),
            headers: vec![("authorization".into(), format!("Bearer {}", h.token(u)))],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(res.status, 503);
    assert_eq!(res.header("retry-after"), Some("5"));
    let body = String::from_utf8(res.body).expect("utf8");
    assert!(
        body.contains("database_unavailable") && !body.contains("10.1.2.3"),
        "{body}"
    );
}

#[tokio::test]
async fn misconfiguration_answers_503_everywhere() {
    let err = edge_api::config::Config::from_lookup(|_| None).expect_err("no keys");
    for path in ["/health", "/api/v1/memory"] {
        let req = Request {
            method: "GET".into(),
            path: path.into(),
            ..Default::default()
        };
        let res = edge_api::app::handle_misconfigured(&err, &req, 0);
        assert_eq!(res.status, 503);
        let v: Value = serde_json::from_slice(&res.body).expect("json");
        assert_eq!(code(&v), "misconfigured");
        assert!(!String::from_utf8_lossy(&res.body).contains("MEMSHADOW_JWT"));
    }
}

/// The dev tool's key set configures the API, and its tokens are accepted.
#[tokio::test]
async fn mint_token_output_is_accepted() {
    let dir = std::env::temp_dir().join(format!("memshadow-mint-{}", random_uuid()));
    let bin = env!("CARGO_BIN_EXE_mint-token");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(bin)
            .args(args)
            .output()
            .expect("run mint-token");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("utf8")
            .trim()
            .to_string()
    };
    let d = dir.to_str().expect("path");
    run(&["generate", "--out", d]);
    let jwks = std::fs::read_to_string(dir.join("jwks.json")).expect("jwks.json");
    assert_eq!(run(&["jwks", "--keys", d]), jwks);
    let u = random_uuid();
    let token = run(&["token", "--keys", d, "--sub", &u.to_string()]);

    let mut h = Harness::new().await;
    h.cfg = edge_api::config::Config::from_lookup(|k| {
        (k == "MEMSHADOW_JWT_PUBLIC_KEYS").then(|| jwks.clone())
    })
    .expect("config from the dev JWKS");
    let res = h
        .raw(Request {
            method: "GET".into(),
            path: "/api/v1/memory".into(),
            headers: vec![("authorization".into(), format!("Bearer {token}"))],
            ..Default::default()
        })
        .await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    // A regenerated key changes the kid: old tokens are refused as unknown_key.
    run(&["generate", "--out", d, "--force"]);
    let jwks2 = std::fs::read_to_string(dir.join("jwks.json")).expect("jwks.json");
    h.cfg = edge_api::config::Config::from_lookup(|k| {
        (k == "MEMSHADOW_JWT_PUBLIC_KEYS").then(|| jwks2.clone())
    })
    .expect("config");
    let res = h
        .raw(Request {
            method: "GET".into(),
            path: "/api/v1/memory".into(),
            headers: vec![("authorization".into(), format!("Bearer {token}"))],
            ..Default::default()
        })
        .await;
    assert_eq!(res.status, 401);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The PgSql adapter's contract: text in, text out, scopes that do not leak
/// between statements, and error kinds the core relies on.
#[tokio::test]
async fn pgsql_adapter_contract() {
    use edge_api::ports::{PortErrorKind, Sql, SqlScope};
    let h = Harness::new().await;
    let sql: &dyn Sql = &h.sql;
    let user = random_uuid().to_string();
    let rows = sql
        .query(
            &SqlScope::User(user.clone()),
            "SELECT $1::text, $2::text, current_setting('app.user_id', true)",
            &[Some("héllo".into()), None],
        )
        .await
        .expect("query");
    assert_eq!(
        rows,
        vec![vec![Some("héllo".to_string()), None, Some(user.clone())]]
    );
    // The scope was transaction-local: the next statement does not inherit it.
    let rows = sql
        .query(
            &SqlScope::System,
            "SELECT coalesce(current_setting('app.user_id', true), ''), current_setting('app.system', true)",
            &[],
        )
        .await
        .expect("query");
    assert_eq!(
        rows,
        vec![vec![Some(String::new()), Some("on".to_string())]]
    );
    let rows = sql
        .query(
            &SqlScope::User(user.clone()),
            "SELECT coalesce(current_setting('app.system', true), '')",
            &[],
        )
        .await
        .expect("query");
    assert_eq!(rows[0][0].as_deref(), Some(""));
    // Columns must be text: a missing cast is a clear failure, not a panic.
    let err = sql
        .query(&SqlScope::System, "SELECT 1", &[])
        .await
        .expect_err("int column");
    assert_eq!(err.kind, PortErrorKind::Failed);
    assert!(err.detail.contains("cast it in SQL"), "{err}");
    let err = sql
        .query(&SqlScope::System, "SELEC 1", &[])
        .await
        .expect_err("syntax");
    assert_eq!(err.kind, PortErrorKind::Failed);
    assert!(err.detail.starts_with("42601"), "{err}");
    // Unique violations are told apart (the core maps them to 409).
    let u = random_uuid();
    h.ingest(u, json!({"content": "unique once"})).await;
    let err = sql
        .query(
            &SqlScope::User(u.to_string()),
            "INSERT INTO memories (user_id, content, content_hash) \
             SELECT user_id, content, content_hash FROM memories WHERE user_id = $1::uuid",
            &[Some(u.to_string())],
        )
        .await
        .expect_err("duplicate");
    assert_eq!(err.kind, PortErrorKind::UniqueViolation);
    // A failed statement leaves the connection usable.
    assert!(
        sql.query(&SqlScope::System, "SELECT 'ok'::text", &[])
            .await
            .is_ok()
    );
    h.cleanup(u).await;
}
