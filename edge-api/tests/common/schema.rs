//! Checks answers against `schema/openapi.json`: the status must be
//! documented for the operation and the body (JSON, or NDJSON line by line)
//! must match its schema. One checker for every test crate, so the contract
//! tests and the auth tests hold the document to the same rules.

use edge_api::handlers::openapi::OPENAPI_JSON;
use edge_api::http::Response;
use serde_json::Value;

pub struct Documented {
    doc: Value,
}

impl Default for Documented {
    fn default() -> Self {
        Self::new()
    }
}

impl Documented {
    pub fn new() -> Self {
        Self {
            doc: serde_json::from_str(OPENAPI_JSON).expect("schema/openapi.json parses"),
        }
    }

    /// Follows a local `$ref` (`#/a/b/c`).
    fn resolve<'a>(&'a self, v: &'a Value) -> &'a Value {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => self.resolve(
                r.trim_start_matches("#/")
                    .split('/')
                    .fold(&self.doc, |node, key| &node[key]),
            ),
            None => v,
        }
    }

    /// Where `v` breaks `schema`, one line per problem. A small JSON Schema
    /// checker for the keywords this document uses: type (arrays with
    /// "null" included), properties, required, additionalProperties: false,
    /// items, enum, const, minimum, maximum, allOf.
    pub fn errors(&self, schema: &Value, v: &Value) -> Vec<String> {
        let mut errors = Vec::new();
        self.check(schema, v, "$", &mut errors);
        errors
    }

    fn check(&self, schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
        let s = self.resolve(schema);
        if let Some(all) = s.get("allOf").and_then(Value::as_array) {
            for sub in all {
                self.check(sub, v, at, errors);
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
                    Some(ps) => self.check(ps, val, &format!("{at}.{k}"), errors),
                    None if s.get("additionalProperties") == Some(&Value::Bool(false)) => {
                        errors.push(format!("{at}: undocumented property {k}"))
                    }
                    None => {}
                }
            }
        }
        if let (Some(items), Some(arr)) = (s.get("items"), v.as_array()) {
            for (i, x) in arr.iter().enumerate() {
                self.check(items, x, &format!("{at}[{i}]"), errors);
            }
        }
    }

    /// Documented response headers: a required one must be present, and
    /// every one present must match its schema (integers parsed first).
    fn check_headers(&self, method: &str, route: &str, resp: &Value, res: &Response) {
        let status = res.status;
        let Some(headers) = resp.get("headers").and_then(Value::as_object) else {
            return;
        };
        for (name, h) in headers {
            let h = self.resolve(h);
            let Some(raw) = res.header(name) else {
                assert!(
                    h.get("required") != Some(&Value::Bool(true)),
                    "{method} {route} {status}: required header {name} is missing"
                );
                continue;
            };
            let schema = &h["schema"];
            let value = match schema["type"].as_str() {
                Some("integer") => raw
                    .parse::<i64>()
                    .map(Value::from)
                    .unwrap_or_else(|_| Value::String(raw.to_string())),
                _ => Value::String(raw.to_string()),
            };
            let errors = self.errors(schema, &value);
            assert!(
                errors.is_empty(),
                "{method} {route} {status}: header {name}: {errors:?}"
            );
        }
    }

    /// Asserts that `res` is a documented answer of `method route` (`route`
    /// is the documented path template).
    pub fn assert(&self, method: &str, route: &str, res: &Response) {
        let op = &self.doc["paths"][route][method.to_lowercase()];
        assert!(op.is_object(), "{method} {route} is not documented");
        let status = res.status;
        let body = String::from_utf8_lossy(&res.body);
        let resp = op["responses"]
            .get(status.to_string())
            .unwrap_or_else(|| panic!("{method} {route}: status {status} undocumented; {body}"));
        let resp = self.resolve(resp);
        self.check_headers(method, route, resp, res);
        let Some(content) = resp.get("content").and_then(Value::as_object) else {
            assert!(
                res.body.is_empty(),
                "{method} {route} {status}: documented without a body, got {body}"
            );
            return;
        };
        let ct = res
            .header("content-type")
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim();
        let media = content.get(ct).unwrap_or_else(|| {
            panic!("{method} {route} {status}: content type {ct:?} undocumented")
        });
        let values: Vec<Value> = if ct == "application/x-ndjson" {
            body.lines()
                .map(|l| serde_json::from_str(l).expect("NDJSON line"))
                .collect()
        } else {
            vec![serde_json::from_slice(&res.body).expect("JSON body")]
        };
        let errors: Vec<String> = values
            .iter()
            .flat_map(|v| self.errors(&media["schema"], v))
            .collect();
        assert!(errors.is_empty(), "{method} {route} {status}: {errors:#?}");
    }
}
