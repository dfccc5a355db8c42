//! Responses validated against `schema/openapi.json`: every status a
//! scenario produces must be documented for its operation, and its JSON body
//! must match the documented schema. Run with `--features native`.
#![cfg(feature = "native")]

mod common;

use common::{EmbedMode, Harness, random_uuid};
use edge_api::handlers::openapi::OPENAPI_JSON;
use serde_json::{Value, json};

/// Resolves a local `$ref` (`#/a/b/c`).
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let target = r
                .trim_start_matches("#/")
                .split('/')
                .fold(doc, |node, key| &node[key]);
            resolve(doc, target)
        }
        None => v,
    }
}

/// A small JSON Schema checker: the keywords this document uses
/// (type incl. arrays with "null", properties, required,
/// additionalProperties: false, items, enum, const, minimum, maximum, allOf).
fn check(doc: &Value, schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    let s = resolve(doc, schema);
    if let Some(all) = s.get("allOf").and_then(Value::as_array) {
        for sub in all {
            check(doc, sub, v, at, errors);
        }
    }
    if let Some(t) = s.get("type") {
        let types: Vec<&str> = match t {
            Value::String(x) => vec![x.as_str()],
            Value::Array(xs) => xs.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let ok = types.iter().any(|t| match *t {
            "null" => v.is_null(),
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            _ => false,
        });
        if !ok {
            errors.push(format!("{at}: {v} is not of type {t}"));
            return;
        }
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array)
        && !e.contains(v)
    {
        errors.push(format!("{at}: {v} not in {e:?}"));
    }
    if let Some(c) = s.get("const")
        && c != v
    {
        errors.push(format!("{at}: {v} != const {c}"));
    }
    if let (Some(min), Some(n)) = (s.get("minimum").and_then(Value::as_f64), v.as_f64())
        && n < min
    {
        errors.push(format!("{at}: {n} < {min}"));
    }
    if let (Some(max), Some(n)) = (s.get("maximum").and_then(Value::as_f64), v.as_f64())
        && n > max
    {
        errors.push(format!("{at}: {n} > {max}"));
    }
    if let Some(obj) = v.as_object() {
        let props = s.get("properties").and_then(Value::as_object);
        for r in s
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let r = r.as_str().unwrap_or_default();
            if !obj.contains_key(r) {
                errors.push(format!("{at}: missing required {r}"));
            }
        }
        for (k, val) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(ps) => check(doc, ps, val, &format!("{at}.{k}"), errors),
                None if s.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    errors.push(format!("{at}: undocumented property {k}"))
                }
                None => {}
            }
        }
    }
    if let (Some(items), Some(arr)) = (s.get("items"), v.as_array()) {
        for (i, x) in arr.iter().enumerate() {
            check(doc, items, x, &format!("{at}[{i}]"), errors);
        }
    }
}

struct Validator {
    doc: Value,
    seen: Vec<(String, String, u16)>,
}

impl Validator {
    /// Checks one exchange: `route` is the documented path template.
    fn validate(
        &mut self,
        method: &str,
        route: &str,
        status: u16,
        content_type: Option<&str>,
        body: &[u8],
    ) {
        let op = &self.doc["paths"][route][method.to_lowercase()];
        assert!(op.is_object(), "{method} {route} is not documented");
        let resp = op["responses"].get(status.to_string()).unwrap_or_else(|| {
            panic!(
                "{method} {route}: status {status} is not documented; body {}",
                String::from_utf8_lossy(body)
            )
        });
        let resp = resolve(&self.doc, resp).clone();
        self.seen.push((method.into(), route.into(), status));
        let Some(content) = resp.get("content").and_then(Value::as_object) else {
            assert!(
                body.is_empty(),
                "{method} {route} {status}: documented without a body"
            );
            return;
        };
        let ct = content_type
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        let media = content
            .get(&ct)
            .unwrap_or_else(|| panic!("{method} {route} {status}: content type {ct} undocumented"));
        let values: Vec<Value> = if ct == "application/x-ndjson" {
            String::from_utf8_lossy(body)
                .lines()
                .map(|l| serde_json::from_str(l).expect("ndjson line"))
                .collect()
        } else {
            vec![serde_json::from_slice(body).expect("JSON body")]
        };
        let mut errors = Vec::new();
        for v in &values {
            check(&self.doc, &media["schema"], v, "$", &mut errors);
        }
        assert!(errors.is_empty(), "{method} {route} {status}: {errors:#?}");
    }
}

#[tokio::test]
async fn responses_match_the_document() {
    let h = Harness::new().await;
    let mut val = Validator {
        doc: serde_json::from_str(OPENAPI_JSON).expect("doc"),
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
        val.validate(
            method,
            route,
            res.status,
            res.header("content-type"),
            &res.body,
        );
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
        Some(json!({"query": "validated", "filters": {"tags": ["t"]}})),
        Some(u),
    )
    .await;
    go(
        "POST",
        retrieve,
        retrieve,
        Some(json!({"query": "memory b1", "limit": 2})),
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

    let statuses = |route: &str, m: &str| -> Vec<u16> {
        val.seen
            .iter()
            .filter(|(mm, r, _)| mm == m && r == route)
            .map(|x| x.2)
            .collect()
    };
    // The scenario exercised the interesting statuses, not just 200s.
    assert!(
        statuses(ingest, "POST")
            .iter()
            .all(|s| [201, 409, 422, 401, 202].contains(s))
    );
    assert_eq!(statuses(tpl, "PATCH"), vec![200, 202, 409, 422]);
    assert!(statuses("/ready", "GET").contains(&503));
}

/// The checker itself rejects what it should (so a green run means something).
#[test]
fn checker_rejects_mismatches() {
    let doc: Value = serde_json::from_str(OPENAPI_JSON).expect("doc");
    let memory = json!({"$ref": "#/components/schemas/Memory"});
    let good = json!({"id": "00000000-0000-4000-8000-000000000000", "content": "c", "content_hash": "ab",
        "metadata": {}, "tags": [], "embedding_status": "ready", "embedding_model": null,
        "created_at": "t", "updated_at": "t", "accessed_at": null, "access_count": 0, "expires_at": null});
    let mut errors = Vec::new();
    check(&doc, &memory, &good, "$", &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
    for (field, bad) in [
        ("access_count", json!(-1)),
        ("embedding_status", json!("done")),
        ("tags", json!("t")),
        ("extra", json!(1)),
    ] {
        let mut v = good.clone();
        v[field] = bad;
        let mut errors = Vec::new();
        check(&doc, &memory, &v, "$", &mut errors);
        assert!(!errors.is_empty(), "{field} should be rejected");
    }
    let mut v = good.clone();
    v.as_object_mut().expect("obj").remove("content");
    let mut errors = Vec::new();
    check(&doc, &memory, &v, "$", &mut errors);
    assert_eq!(errors, vec!["$: missing required content".to_string()]);
}
