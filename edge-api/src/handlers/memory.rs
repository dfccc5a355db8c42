//! HTTP handlers for `/api/v1/memory…`: parse the request, call
//! [`MemoryService`], shape the response.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::app::Ctx;
use crate::errors::{ApiError, ErrorCode};
use crate::http::{Request, Response};
use crate::json::{self, response};
use crate::repositories::memories::Filters;
use crate::router::parse_query;
use crate::services::memories::retrieval::{Page, RetrieveRequest};
use crate::services::memories::{
    BatchRequest, Cursor, DEFAULT_LIST_LIMIT, FilterBody, IngestRequest, MemoryService,
    PatchRequest, build_filters,
};

/// NDJSON export stops adding pages past this size and hands back a cursor
/// (`x-next-cursor`), so one export never exhausts an isolate's memory.
const EXPORT_MAX_BYTES: usize = 8 * 1024 * 1024;
/// Rows per statement of an export: large, so a big account takes few
/// statements. `limit` caps the rows of one part, not this page size.
const EXPORT_PAGE: usize = 1000;

/// 200 with the memory whether it was embedded inline or stored pending:
/// its `embedding_status` (`ready` | `pending`) says which.
pub async fn ingest(ctx: &Ctx<'_>, user: Uuid, req: &Request) -> Result<Response, ApiError> {
    let body: IngestRequest = json::parse_body(req)?;
    let svc = MemoryService::new(ctx, user);
    let mut out = svc.ingest_many(vec![Ok(body)]).await?;
    match out.pop() {
        Some(Ok(row)) => Ok(response(200, &row)),
        Some(Err(e)) => Err(e),
        None => Err(ApiError::internal("ingest returned nothing")),
    }
}

pub async fn batch(ctx: &Ctx<'_>, user: Uuid, req: &Request) -> Result<Response, ApiError> {
    let body: BatchRequest = json::parse_body(req)?;
    let max = ctx.cfg.limits.max_batch_items;
    if body.items.is_empty() || body.items.len() > max {
        return Err(ApiError::new(
            ErrorCode::BatchTooLarge,
            format!("a batch holds 1 to {max} items; got {}", body.items.len()),
        ));
    }
    let items: Vec<Result<IngestRequest, ApiError>> =
        body.items.into_iter().map(json::from_value).collect();
    let svc = MemoryService::new(ctx, user);
    let outcomes = svc.ingest_many(items).await?;
    // Each item answers as a single ingest would: 200 with the memory, or
    // the error's status with its error object.
    let stored = outcomes.iter().filter(|o| o.is_ok()).count();
    let results: Vec<Value> = outcomes
        .into_iter()
        .enumerate()
        .map(|(index, o)| match o {
            Ok(row) => json!({"index": index, "status": 200, "memory": row}),
            Err(e) => json!({"index": index, "status": e.code.status(), "error": e.body_object()}),
        })
        .collect();
    Ok(response(
        200,
        &json!({"results": results, "stored": stored, "failed": results.len() - stored}),
    ))
}

/// A JSON array of hits, best first. `limit` and `offset` are query
/// parameters; the mode used and the caller's pending-embedding count
/// travel in the `x-retrieval-mode` and `x-pending-embeddings` headers,
/// the time spent embedding and searching in `server-timing`.
pub async fn retrieve(ctx: &Ctx<'_>, user: Uuid, req: &Request) -> Result<Response, ApiError> {
    let (mut limit, mut offset) = (None, None);
    for (k, v) in parse_query(&req.query)? {
        match k.as_str() {
            "limit" => limit = Some(v),
            "offset" => offset = Some(v),
            other => {
                return Err(ApiError::new(
                    ErrorCode::InvalidParameter,
                    format!("unknown query parameter {:?}", json::truncate(other, 64)),
                ));
            }
        }
    }
    let page = Page::parse(limit.as_deref(), offset.as_deref(), &ctx.cfg.limits)?;
    let body: RetrieveRequest = json::parse_body(req)?;
    let out = MemoryService::new(ctx, user).retrieve(body, page).await?;
    let mut res = response(200, &out.hits);
    res.headers
        .push(("x-retrieval-mode".into(), out.mode.name().into()));
    res.headers
        .push(("x-pending-embeddings".into(), out.pending.to_string()));
    res.headers
        .push(("server-timing".into(), out.timing.header()));
    Ok(res)
}

pub async fn get(ctx: &Ctx<'_>, user: Uuid, id: Uuid) -> Result<Response, ApiError> {
    let row = MemoryService::new(ctx, user).get(&id).await?;
    Ok(response(200, &row))
}

pub async fn patch(
    ctx: &Ctx<'_>,
    user: Uuid,
    id: Uuid,
    req: &Request,
) -> Result<Response, ApiError> {
    let body: PatchRequest = json::parse_body(req)?;
    let row = MemoryService::new(ctx, user).patch(&id, body).await?;
    Ok(response(200, &row))
}

pub async fn delete(ctx: &Ctx<'_>, user: Uuid, id: Uuid) -> Result<Response, ApiError> {
    MemoryService::new(ctx, user).delete(&id).await?;
    Ok(response(
        200,
        &json!({"status": "deleted", "memory_id": id.to_string()}),
    ))
}

/// Query parameters shared by list, export and bulk delete.
struct ListQuery {
    filters: Filters,
    cursor: Option<Cursor>,
    limit: Option<usize>,
}

/// Parses `tag` (repeatable, all-of), `metadata` (a JSON object),
/// `created_after`, `created_before`, and, where `paged`, `limit` and
/// `cursor`. Unknown parameters are refused like unknown JSON fields.
fn list_query(ctx: &Ctx<'_>, req: &Request, paged: bool) -> Result<ListQuery, ApiError> {
    let mut f = FilterBody::default();
    let mut cursor = None;
    let mut limit = None;
    let bad = |m: String| ApiError::new(ErrorCode::InvalidParameter, m);
    for (k, v) in parse_query(&req.query)? {
        match k.as_str() {
            "tag" => f.tags.get_or_insert_with(Vec::new).push(v),
            "metadata" => {
                let m: Value = serde_json::from_str(&v).map_err(|_| {
                    ApiError::new(ErrorCode::InvalidFilter, "metadata must be a JSON object")
                })?;
                f.metadata = Some(m);
            }
            "created_after" => f.created_after = Some(v),
            "created_before" => f.created_before = Some(v),
            "cursor" if paged => cursor = Some(Cursor::decode(&v)?),
            "limit" if paged => {
                let max = ctx.cfg.limits.max_page;
                let n: usize = v
                    .parse()
                    .map_err(|_| bad(format!("limit must be an integer 1..={max}")))?;
                if !(1..=max).contains(&n) {
                    return Err(bad(format!("limit must be an integer 1..={max}")));
                }
                limit = Some(n);
            }
            other => {
                return Err(bad(format!(
                    "unknown query parameter {:?}",
                    json::truncate(other, 64)
                )));
            }
        }
    }
    Ok(ListQuery {
        filters: build_filters(&f, &ctx.cfg.limits)?,
        cursor,
        limit,
    })
}

pub async fn list(ctx: &Ctx<'_>, user: Uuid, req: &Request) -> Result<Response, ApiError> {
    let q = list_query(ctx, req, true)?;
    let limit = q.limit.unwrap_or(DEFAULT_LIST_LIMIT);
    let (rows, next) = MemoryService::new(ctx, user)
        .list(&q.filters, q.cursor.as_ref(), limit)
        .await?;
    Ok(response(
        200,
        &json!({"memories": rows, "next_cursor": next}),
    ))
}

pub async fn delete_many(ctx: &Ctx<'_>, user: Uuid, req: &Request) -> Result<Response, ApiError> {
    let q = list_query(ctx, req, false)?;
    let deleted = MemoryService::new(ctx, user)
        .delete_matching(&q.filters)
        .await?;
    Ok(response(200, &json!({"deleted": deleted})))
}

/// NDJSON, one memory per line, newest first. Large exports come in parts:
/// `x-next-cursor` is set when more remain (pass it back as `cursor`). A
/// part ends after `limit` rows (when given) or past [`EXPORT_MAX_BYTES`].
pub async fn export(ctx: &Ctx<'_>, user: Uuid, req: &Request) -> Result<Response, ApiError> {
    let q = list_query(ctx, req, true)?;
    let svc = MemoryService::new(ctx, user);
    let mut body = Vec::new();
    let mut cursor = q.cursor;
    let mut left = q.limit;
    let mut next;
    loop {
        let page = left.map_or(EXPORT_PAGE, |l| l.min(EXPORT_PAGE));
        let (rows, n) = svc.list(&q.filters, cursor.as_ref(), page).await?;
        for row in &rows {
            serde_json::to_writer(&mut body, row).map_err(|e| ApiError::internal(e.to_string()))?;
            body.push(b'\n');
        }
        left = left.map(|l| l - rows.len());
        next = n;
        match &next {
            Some(c) if body.len() < EXPORT_MAX_BYTES && left != Some(0) => {
                cursor = Some(Cursor::decode(c)?)
            }
            _ => break,
        }
    }
    let mut headers = vec![
        (
            "content-type".to_string(),
            "application/x-ndjson".to_string(),
        ),
        ("cache-control".to_string(), "no-store".to_string()),
    ];
    if let Some(c) = next {
        headers.push(("x-next-cursor".to_string(), c));
    }
    Ok(Response {
        status: 200,
        headers,
        body,
    })
}
