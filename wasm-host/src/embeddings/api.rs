//! HTTP API: OpenAI-compatible `POST /v1/embeddings`, `GET /health`,
//! `GET /metrics`.
//!
//! Input is validated by hand from a `serde_json::Value` rather than by a
//! derived struct, so that each kind of bad input maps to its own stable code
//! (syntax → invalid_json, shape → invalid_input, limits → 413 codes).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::batcher::{Batcher, JobError};
use super::error::{ApiError, Code};
use super::fallback::Fallbacks;
use super::metrics::{Gauges, Metrics};
use super::model::ModelInfo;
use super::pool::Pool;

/// Request limits (from configuration).
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_inputs: usize,
    pub max_chars: usize,
    pub max_body_bytes: usize,
    pub retry_after_s: u64,
}

/// One model as served: its verified files, instances, queue, fallback
/// nodes and metrics.
pub struct ServedModel {
    pub model: ModelInfo,
    /// Texts per guest call: the pool's `max_batch`, or the model's lower cap.
    pub max_batch: usize,
    pub pool: Arc<Pool>,
    pub batcher: Batcher,
    pub fallbacks: Arc<Fallbacks>,
    pub metrics: Arc<Metrics>,
}

pub struct AppState {
    /// Serves requests that name no model.
    pub default: ServedModel,
    /// Served to requests that name them (`--extra-model`).
    pub extra: Vec<ServedModel>,
    pub limits: Limits,
}

impl AppState {
    /// Every served model, the default first.
    pub fn models(&self) -> impl Iterator<Item = &ServedModel> {
        std::iter::once(&self.default).chain(&self.extra)
    }

    /// The model a request names (None: the default).
    pub fn model(&self, requested: Option<&str>) -> Option<&ServedModel> {
        match requested {
            None => Some(&self.default),
            Some(r) => self.models().find(|m| model_matches(r, &m.model.id)),
        }
    }
}

/// Which model answered, for the metrics middleware.
#[derive(Debug, Clone)]
struct AnsweredBy(String);

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(
            "/v1/embeddings",
            post(embeddings).route_layer(middleware::from_fn_with_state(state.clone(), track)),
        )
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError::new(Code::NotFound, "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(Code::MethodNotAllowed, "method not allowed on this route")
        })
        .with_state(state)
}

/// Counts responses by status and code, observes latency, logs failures.
async fn track(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let resp = next.run(req).await;
    let elapsed = started.elapsed();
    // Requests refused before a model was chosen count for the default.
    let served = resp
        .extensions()
        .get::<AnsweredBy>()
        .and_then(|a| state.model(Some(&a.0)))
        .unwrap_or(&state.default);
    served.metrics.request_seconds.observe_duration(elapsed);
    let status = resp.status();
    let code = resp.extensions().get::<Code>().map_or("ok", |c| c.as_str());
    served.metrics.responses.inc(&[status.as_str(), code]);
    if status.is_server_error() {
        tracing::warn!(%status, code, ms = elapsed.as_millis() as u64, "embeddings request failed");
    } else {
        tracing::debug!(%status, code, ms = elapsed.as_millis() as u64, "embeddings request");
    }
    resp
}

fn invalid(msg: impl Into<String>) -> ApiError {
    ApiError::new(Code::InvalidInput, msg)
}

/// Parsed and validated request.
#[derive(Debug)]
pub struct EmbeddingsRequest<'m, M> {
    pub texts: Vec<String>,
    /// The served model that answers it (the default when none is named).
    pub model: &'m M,
}

/// What validating a request needs to know of a served model.
pub trait Dimensioned {
    fn dim(&self) -> usize;
}

impl Dimensioned for ModelInfo {
    fn dim(&self) -> usize {
        self.dim
    }
}

impl Dimensioned for ServedModel {
    fn dim(&self) -> usize {
        self.model.dim
    }
}

/// Validates a request body against the limits and the served models.
/// `model_of` finds a served model by the id a request names (None: the
/// default).
pub fn parse_request<'m, M: Dimensioned>(
    body: &[u8],
    limits: &Limits,
    model_of: impl Fn(Option<&str>) -> Option<&'m M>,
) -> Result<EmbeddingsRequest<'m, M>, ApiError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        ApiError::new(
            Code::InvalidUtf8,
            format!("body is not valid UTF-8 (byte {})", e.valid_up_to()),
        )
    })?;
    let value: Value = serde_json::from_str(text)
        .map_err(|e| ApiError::new(Code::InvalidJson, format!("body is not valid JSON: {e}")))?;
    let Value::Object(obj) = value else {
        return Err(invalid("body must be a JSON object"));
    };
    let requested = match obj.get("model") {
        None | Some(Value::Null) => None,
        Some(Value::String(m)) => Some(m.clone()),
        Some(_) => return Err(invalid("`model` must be a string")),
    };
    let Some(model) = model_of(requested.as_deref()) else {
        return Err(ApiError::new(
            Code::UnsupportedModel,
            format!(
                "model {:?} is not served here (GET /health lists the models)",
                requested.unwrap_or_default()
            ),
        ));
    };
    match obj.get("encoding_format") {
        None | Some(Value::Null) => {}
        Some(Value::String(f)) if f == "float" => {}
        Some(_) => return Err(invalid("`encoding_format` must be \"float\"")),
    }
    match obj.get("dimensions") {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) if n.as_u64() == Some(model.dim() as u64) => {}
        Some(_) => {
            return Err(invalid(format!(
                "`dimensions` must be {} for this model",
                model.dim()
            )));
        }
    }
    // text-embeddings-inference's `truncate`: embed the beginning of an
    // over-long text instead of refusing it. The model reads only its first
    // `max_tokens` tokens, which natural text fills well within `max_chars`.
    let truncate = match obj.get("truncate") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(invalid("`truncate` must be a boolean")),
    };
    let mut texts: Vec<String> = match obj.get("input") {
        None | Some(Value::Null) => return Err(invalid("`input` is required")),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => {
            if items.is_empty() {
                return Err(ApiError::new(Code::EmptyInput, "`input` is an empty array"));
            }
            if items.len() > limits.max_inputs {
                return Err(ApiError::new(
                    Code::TooManyInputs,
                    format!(
                        "`input` has {} texts; at most {} are allowed",
                        items.len(),
                        limits.max_inputs
                    ),
                ));
            }
            items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => Ok(s.clone()),
                    Value::Number(_) | Value::Array(_) => Err(invalid(format!(
                        "`input[{i}]` is not a string (token arrays are not supported)"
                    ))),
                    _ => Err(invalid(format!("`input[{i}]` is not a string"))),
                })
                .collect::<Result<_, _>>()?
        }
        Some(_) => return Err(invalid("`input` must be a string or an array of strings")),
    };
    for (i, t) in texts.iter_mut().enumerate() {
        if truncate {
            cut_to_chars(t, limits.max_chars);
        }
        if t.is_empty() {
            return Err(ApiError::new(
                Code::EmptyInput,
                format!("`input[{i}]` is an empty string"),
            ));
        }
        // Counting stops at the limit: a 2 MiB text need not be walked fully.
        if t.chars().take(limits.max_chars + 1).count() > limits.max_chars {
            return Err(ApiError::new(
                Code::TextTooLong,
                format!("`input[{i}]` has more than {} characters", limits.max_chars),
            ));
        }
    }
    Ok(EmbeddingsRequest { texts, model })
}

/// Shortens `text` to its first `max` characters (at a character boundary).
fn cut_to_chars(text: &mut String, max: usize) {
    if let Some((at, _)) = text.char_indices().nth(max) {
        text.truncate(at);
    }
}

/// Accepts the full id and, for hub-style ids, the part after the last `/`.
fn model_matches(requested: &str, served: &str) -> bool {
    requested == served || served.rsplit('/').next() == Some(requested)
}

async fn embeddings(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut answered_by = None;
    let mut resp = match embeddings_inner(&state, &headers, body, &mut answered_by).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    if let Some(id) = answered_by {
        resp.extensions_mut().insert(AnsweredBy(id));
    }
    resp
}

/// Sets `answered_by` to the chosen model's id once the body names one.
async fn embeddings_inner(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    answered_by: &mut Option<String>,
) -> Result<Response, ApiError> {
    let limit = state.limits.max_body_bytes;
    let too_large = || ApiError::new(Code::BodyTooLarge, format!("body exceeds {limit} bytes"));
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let bytes = to_bytes(body, limit).await.map_err(|e| {
        // `to_bytes` reports the limit as an error in the source chain.
        let mut src: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(s) = src {
            if s.is::<http_body_util::LengthLimitError>() {
                return too_large();
            }
            src = s.source();
        }
        invalid(format!("could not read the body: {e}"))
    })?;
    let request = parse_request(&bytes, &state.limits, |m| state.model(m))?;
    let served = request.model;
    *answered_by = Some(served.model.id.clone());
    let n = request.texts.len();
    let embedded = match served.batcher.embed(request.texts).await {
        Err(_) => {
            return Err(
                ApiError::new(Code::QueueFull, "the embedding queue is full; retry later")
                    .retry_after(state.limits.retry_after_s),
            );
        }
        Ok(Err(JobError::Closed)) => {
            return Err(ApiError::new(Code::ShuttingDown, "the pool is stopping")
                .retry_after(state.limits.retry_after_s));
        }
        Ok(Err(JobError::Trap(kind))) => {
            return Err(ApiError::new(
                Code::InferenceFailed,
                format!("the embedding call failed ({kind}); other requests are unaffected"),
            ));
        }
        Ok(Err(JobError::Failed(detail))) => {
            tracing::error!(detail, "inference failed");
            return Err(ApiError::new(
                Code::InferenceFailed,
                "the embedding call failed",
            ));
        }
        Ok(Ok(e)) => e,
    };
    if embedded.vectors.len() != n {
        tracing::error!(got = embedded.vectors.len(), n, "vector count mismatch");
        return Err(ApiError::new(
            Code::InferenceFailed,
            "the embedding call failed",
        ));
    }
    served.metrics.texts.fetch_add(n as u64, Ordering::Relaxed);
    let tokens: u64 = embedded.token_counts.iter().map(|&t| t as u64).sum();
    let data: Vec<Value> = embedded
        .vectors
        .into_iter()
        .enumerate()
        .map(|(i, v)| json!({"object": "embedding", "embedding": v, "index": i}))
        .collect();
    Ok(axum::Json(json!({
        "object": "list",
        "data": data,
        "model": served.model.id,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }))
    .into_response())
}

/// The default model's state at the top level (what clients of one model
/// read), and every served model under `models`.
async fn health(State(state): State<Arc<AppState>>) -> Response {
    let mut body = model_health(&state.default);
    body["status"] = json!("ok");
    body["models"] = state.models().map(model_health).collect();
    axum::Json(body).into_response()
}

fn model_health(served: &ServedModel) -> Value {
    let now = Instant::now();
    let fallbacks: Vec<Value> = served
        .fallbacks
        .nodes
        .iter()
        .map(|n| {
            let healthy = n.healthy.lock().ok().and_then(|h| *h);
            json!({
                "url": n.label,
                "breaker": format!("{:?}", n.breaker.state(now)).to_lowercase(),
                "healthy": healthy,
            })
        })
        .collect();
    json!({
        "model": served.model.id,
        "variant": served.model.variant,
        "dim": served.model.dim,
        "max_tokens": served.model.max_tokens,
        "max_batch": served.max_batch,
        "instances": served.pool.size(),
        "instances_busy": served.metrics.instances_busy.load(Ordering::Relaxed),
        "queue_depth": served.metrics.queue_depth.load(Ordering::Relaxed),
        "expected_wait_ms": duration_ms(served.batcher.expected_wait()),
        "snapshot": {
            "compiled_cached": served.pool.load.compiled_cached,
            "snapshot_cached": served.pool.load.snapshot_cached,
            "load_seconds": served.pool.load.seconds,
        },
        "fallbacks": fallbacks,
    })
}

fn duration_ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Query of `GET /metrics`: `?model=ID` for a model other than the default.
#[derive(serde::Deserialize)]
struct MetricsQuery {
    model: Option<String>,
}

/// One model's metrics: the default's unless `?model=` names another (a
/// scrape job per model keeps every series name unchanged).
async fn metrics(
    State(state): State<Arc<AppState>>,
    Query(query): Query<MetricsQuery>,
) -> Response {
    let Some(served) = state.model(query.model.as_deref()) else {
        return ApiError::new(
            Code::UnsupportedModel,
            "`model` names no model served here (GET /health lists them)",
        )
        .into_response();
    };
    let now = Instant::now();
    let breakers = served
        .fallbacks
        .nodes
        .iter()
        .map(|n| (n.label.as_str(), n.breaker.state(now).code()))
        .collect();
    let text = served.metrics.render(&Gauges {
        instances: served.pool.size(),
        breakers,
    });
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(id: &str, dim: usize) -> ModelInfo {
        ModelInfo {
            id: id.into(),
            variant: "fp32".into(),
            dim,
            max_tokens: 256,
            max_batch: None,
            staged_dir: "/nonexistent".into(),
            model_sha256: String::new(),
            tokenizer_sha256: String::new(),
        }
    }

    /// A request parsed by a pool serving MiniLM by default and mpnet on
    /// request: its texts and the id of the model that answers it.
    #[derive(Debug)]
    struct Parsed {
        texts: Vec<String>,
        model: String,
    }

    fn parse(body: &[u8]) -> Result<Parsed, ApiError> {
        let served = [
            model("all-MiniLM-L6-v2", 384),
            model("sentence-transformers/all-mpnet-base-v2", 768),
        ];
        parse_request(body, &limits(), |requested| match requested {
            None => served.first(),
            Some(r) => served.iter().find(|m| model_matches(r, &m.id)),
        })
        .map(|r| Parsed {
            texts: r.texts,
            model: r.model.id.clone(),
        })
    }

    fn limits() -> Limits {
        Limits {
            max_inputs: 4,
            max_chars: 10,
            max_body_bytes: 1000,
            retry_after_s: 1,
        }
    }

    fn code_of(body: &[u8]) -> Code {
        parse(body).expect_err("should be rejected").code
    }

    #[test]
    fn accepts_string_and_array() {
        let r = parse(br#"{"input":"hi"}"#).expect("ok");
        assert_eq!(r.texts, vec!["hi"]);
        assert_eq!(r.model, "all-MiniLM-L6-v2", "the default answers");
        let r = parse(
            br#"{"input":["a","b"],"model":"all-MiniLM-L6-v2","encoding_format":"float","dimensions":384,"user":"x"}"#,
        )
        .expect("ok");
        assert_eq!(r.texts, vec!["a", "b"]);
        assert_eq!(r.model, "all-MiniLM-L6-v2");
    }

    #[test]
    fn the_named_model_decides_the_dimensions() {
        let r = parse(br#"{"input":"a","model":"all-mpnet-base-v2","dimensions":768}"#)
            .expect("mpnet by its short name");
        assert_eq!(r.model, "sentence-transformers/all-mpnet-base-v2");
        assert_eq!(
            parse(br#"{"input":"a","model":"all-mpnet-base-v2","dimensions":384}"#)
                .expect_err("mpnet has 768")
                .code,
            Code::InvalidInput
        );
        assert_eq!(
            parse(br#"{"input":"a","dimensions":768}"#)
                .expect_err("the default has 384")
                .code,
            Code::InvalidInput
        );
    }

    #[test]
    fn each_fault_has_its_code() {
        assert_eq!(code_of(b"{\"input\": \"\xff\"}"), Code::InvalidUtf8);
        assert_eq!(code_of(b"{\"input\":"), Code::InvalidJson);
        assert_eq!(code_of(b"[1]"), Code::InvalidInput);
        assert_eq!(code_of(br#"{"inputs":"x"}"#), Code::InvalidInput);
        assert_eq!(code_of(br#"{"input":3}"#), Code::InvalidInput);
        assert_eq!(code_of(br#"{"input":["a",3]}"#), Code::InvalidInput);
        assert_eq!(code_of(br#"{"input":[[101,102]]}"#), Code::InvalidInput);
        assert_eq!(code_of(br#"{"input":"a","model":7}"#), Code::InvalidInput);
        assert_eq!(
            code_of(br#"{"input":"a","encoding_format":"base64"}"#),
            Code::InvalidInput
        );
        assert_eq!(
            code_of(br#"{"input":"a","dimensions":128}"#),
            Code::InvalidInput
        );
        assert_eq!(code_of(br#"{"input":[]}"#), Code::EmptyInput);
        assert_eq!(code_of(br#"{"input":["a",""]}"#), Code::EmptyInput);
        assert_eq!(
            code_of(br#"{"input":["a","b","c","d","e"]}"#),
            Code::TooManyInputs
        );
        assert_eq!(
            code_of(r#"{"input":"ééééééééééé"}"#.as_bytes()),
            Code::TextTooLong
        );
        assert_eq!(
            code_of(br#"{"input":"a","model":"gpt"}"#),
            Code::UnsupportedModel
        );
    }

    #[test]
    fn char_limit_counts_characters_not_bytes() {
        // Ten two-byte characters: 20 bytes but exactly at the limit.
        parse(r#"{"input":"éééééééééé"}"#.as_bytes()).expect("at limit");
    }

    #[test]
    fn truncate_embeds_the_beginning_of_long_texts() {
        let long = format!(r#"{{"input":["{}","ok"],"truncate":true}}"#, "é".repeat(25));
        let r = parse(long.as_bytes()).expect("truncated");
        assert_eq!(r.texts, vec!["é".repeat(10), "ok".to_string()]);
        // Without it (or with false) the limit still refuses.
        let refused = long.replace("true", "false");
        assert_eq!(code_of(refused.as_bytes()), Code::TextTooLong);
        assert_eq!(
            code_of(br#"{"input":"a","truncate":"yes"}"#),
            Code::InvalidInput
        );
        // Truncation never turns an empty text into an accepted one.
        assert_eq!(
            code_of(br#"{"input":[""],"truncate":true}"#),
            Code::EmptyInput
        );
    }

    #[test]
    fn short_model_names_match_hub_ids() {
        assert!(model_matches(
            "all-MiniLM-L6-v2",
            "sentence-transformers/all-MiniLM-L6-v2"
        ));
        assert!(!model_matches("all-MiniLM-L6-v2-int8", "all-MiniLM-L6-v2"));
    }
}
