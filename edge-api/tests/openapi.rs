//! Responses validated against `schema/openapi.json`: every status a
//! scenario produces must be documented for its operation, and its JSON body
//! must match the documented schema. Run with `--features native`.
#![cfg(feature = "native")]

mod common;

use common::schema::Documented;
use common::{EmbedMode, Harness, random_uuid};
use edge_api::http::Response;
use serde_json::{Value, json};

/// Every exchange is checked, and which (operation, status) pairs were seen
/// is kept for the coverage assertions below.
struct Validator {
    documented: Documented,
    seen: Vec<(String, String, u16)>,
}

impl Validator {
    /// Checks one exchange: `route` is the documented path template.
    fn validate(&mut self, method: &str, route: &str, res: &Response) {
        self.documented.assert(method, route, res);
        self.seen.push((method.into(), route.into(), res.status));
    }
}

#[tokio::test]
async fn responses_match_the_document() {
    let mut h = Harness::new().await;
    let admin = random_uuid();
    h.cfg.admin_user_ids = vec![admin];
    let h = h;
    let mut val = Validator {
        documented: Documented::new(),
        seen: Vec::new(),
    };
    let u = random_uuid();
    let mut go = async |method: &str,
                        path: &str,
                        route: &str,
                        body: Option<Value>,
                        user: Option<uuid::Uuid>| {
        let res = h
            .send(
                method,
                path,
                user,
                body.map(|b| serde_json::to_vec(&b).expect("json")),
            )
            .await;
        val.validate(method, route, &res);
        res
    };
    go("GET", "/health", "/health", None, None).await;
    go("GET", "/ready", "/ready", None, None).await;
    go("GET", "/openapi.json", "/openapi.json", None, None).await;
    let ingest = "/api/v1/memory/ingest";
    let res = go(
        "POST",
        ingest,
        ingest,
        Some(json!({"content": "validated memory", "metadata": {"a": 1}, "tags": ["t"]})),
        Some(u),
    )
    .await;
    let id = serde_json::from_slice::<Value>(&res.body).expect("json")["id"]
        .as_str()
        .expect("id")
        .to_string();
    go(
        "POST",
        ingest,
        ingest,
        Some(json!({"content": "validated memory"})),
        Some(u),
    )
    .await;
    go(
        "POST",
        ingest,
        ingest,
        Some(json!({"content": "x", "nope": 1})),
        Some(u),
    )
    .await;
    go("POST", ingest, ingest, Some(json!({"content": "x"})), None).await;
    h.embedder.mode.set(EmbedMode::Down);
    go(
        "POST",
        ingest,
        ingest,
        Some(json!({"content": "pending one", "expires_at": h.now_rfc3339(60_000)})),
        Some(u),
    )
    .await;
    go("GET", "/ready", "/ready", None, None).await;
    h.embedder.mode.set(EmbedMode::Up);
    let batch = "/api/v1/memory/batch";
    go(
        "POST",
        batch,
        batch,
        Some(json!({"items": [{"content": "b1"}, {"content": ""}, {"content": "b1"}]})),
        Some(u),
    )
    .await;
    go("POST", batch, batch, Some(json!({"items": []})), Some(u)).await;
    let retrieve = "/api/v1/memory/retrieve";
    go(
        "POST",
        retrieve,
        retrieve,
        Some(json!({"query": "validated", "filters": {"a": 1}, "tags": ["t"]})),
        Some(u),
    )
    .await;
    go(
        "POST",
        "/api/v1/memory/retrieve?limit=2&offset=1",
        retrieve,
        Some(json!({"query": "memory b1", "mode": "vector"})),
        Some(u),
    )
    .await;
    go(
        "POST",
        "/api/v1/memory/retrieve?limit=0",
        retrieve,
        Some(json!({"query": "memory"})),
        Some(u),
    )
    .await;
    go(
        "POST",
        "/api/v1/memory/retrieve?page=2",
        retrieve,
        Some(json!({"query": "memory"})),
        Some(u),
    )
    .await;
    h.embedder.mode.set(EmbedMode::Down);
    go(
        "POST",
        retrieve,
        retrieve,
        Some(json!({"query": "pending"})),
        Some(u),
    )
    .await;
    go(
        "POST",
        retrieve,
        retrieve,
        Some(json!({"query": "pending", "mode": "vector"})),
        Some(u),
    )
    .await;
    h.embedder.mode.set(EmbedMode::Up);
    go(
        "GET",
        "/api/v1/memory?limit=1",
        "/api/v1/memory",
        None,
        Some(u),
    )
    .await;
    go(
        "GET",
        "/api/v1/memory?cursor=bad",
        "/api/v1/memory",
        None,
        Some(u),
    )
    .await;
    go(
        "GET",
        "/api/v1/memory?metadata=%5B%5D",
        "/api/v1/memory",
        None,
        Some(u),
    )
    .await;
    go(
        "GET",
        "/api/v1/memory/export",
        "/api/v1/memory/export",
        None,
        Some(u),
    )
    .await;
    let one = format!("/api/v1/memory/{id}");
    let tpl = "/api/v1/memory/{id}";
    go("GET", &one, tpl, None, Some(u)).await;
    go("GET", "/api/v1/memory/zzz", tpl, None, Some(u)).await;
    go("GET", &one, tpl, None, Some(random_uuid())).await;
    go(
        "PATCH",
        &one,
        tpl,
        Some(json!({"metadata": {"b": 2}})),
        Some(u),
    )
    .await;
    h.embedder.mode.set(EmbedMode::Down);
    go(
        "PATCH",
        &one,
        tpl,
        Some(json!({"content": "edited"})),
        Some(u),
    )
    .await;
    h.embedder.mode.set(EmbedMode::Up);
    go("PATCH", &one, tpl, Some(json!({"content": "b1"})), Some(u)).await;
    go("PATCH", &one, tpl, Some(json!({})), Some(u)).await;
    go("DELETE", &one, tpl, None, Some(u)).await;
    go("DELETE", &one, tpl, None, Some(u)).await;
    go(
        "DELETE",
        "/api/v1/memory?tag=zzz",
        "/api/v1/memory",
        None,
        Some(u),
    )
    .await;
    go("DELETE", "/api/v1/memory", "/api/v1/memory", None, Some(u)).await;
    let backups = "/api/v1/admin/backups";
    go("GET", backups, backups, None, None).await;
    go("GET", backups, backups, None, Some(u)).await;
    go("GET", backups, backups, None, Some(admin)).await;
    go(
        "GET",
        "/api/v1/admin/backups?limit=0",
        backups,
        None,
        Some(admin),
    )
    .await;

    let statuses = |route: &str, m: &str| -> Vec<u16> {
        val.seen
            .iter()
            .filter(|(mm, r, _)| mm == m && r == route)
            .map(|x| x.2)
            .collect()
    };
    // The scenario exercised the interesting statuses, not just 200s.
    assert_eq!(statuses(ingest, "POST"), vec![200, 409, 422, 401, 200]);
    assert_eq!(
        statuses(retrieve, "POST"),
        vec![200, 200, 422, 400, 200, 503]
    );
    assert_eq!(statuses(tpl, "PATCH"), vec![200, 200, 409, 422]);
    assert_eq!(statuses(tpl, "DELETE"), vec![200, 404]);
    assert!(statuses("/ready", "GET").contains(&503));
    assert_eq!(statuses(backups, "GET"), vec![401, 403, 200, 400]);
}

/// The checker itself rejects what it should (so a green run means something).
#[test]
fn checker_rejects_mismatches() {
    let documented = Documented::new();
    let memory = json!({"$ref": "#/components/schemas/Memory"});
    let good = json!({"id": "00000000-0000-4000-8000-000000000000", "content": "c", "content_hash": "ab",
        "metadata": {}, "tags": [], "embedding_status": "ready", "embedding_model": null,
        "created_at": "t", "updated_at": "t", "accessed_at": null, "access_count": 0, "expires_at": null});
    let errors = documented.errors(&memory, &good);
    assert!(errors.is_empty(), "{errors:?}");
    for (field, bad) in [
        ("access_count", json!(-1)),
        ("embedding_status", json!("done")),
        ("tags", json!("t")),
        ("extra", json!(1)),
    ] {
        let mut v = good.clone();
        v[field] = bad;
        let errors = documented.errors(&memory, &v);
        assert!(!errors.is_empty(), "{field} should be rejected");
    }
    let mut v = good.clone();
    v.as_object_mut().expect("obj").remove("content");
    let errors = documented.errors(&memory, &v);
    assert_eq!(errors, vec!["$: missing required content".to_string()]);
}

/// A documented required header that is missing fails the check.
#[test]
#[should_panic(expected = "required header x-retrieval-mode is missing")]
fn checker_requires_documented_headers() {
    let res = Response {
        status: 200,
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("x-pending-embeddings".into(), "0".into()),
            ("server-timing".into(), "search;dur=1".into()),
        ],
        body: b"[]".to_vec(),
    };
    Documented::new().assert("POST", "/api/v1/memory/retrieve", &res);
}

/// A header value outside its documented schema fails the check.
#[test]
#[should_panic(expected = "header x-pending-embeddings")]
fn checker_checks_header_values() {
    let res = Response {
        status: 200,
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("x-retrieval-mode".into(), "text".into()),
            ("x-pending-embeddings".into(), "-1".into()),
            ("server-timing".into(), "search;dur=1".into()),
        ],
        body: b"[]".to_vec(),
    };
    Documented::new().assert("POST", "/api/v1/memory/retrieve", &res);
}
