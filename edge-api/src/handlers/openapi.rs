//! Serves `schema/openapi.json`, the API's contract, compiled into the binary.

use crate::http::Response;

/// The OpenAPI 3.1 document, verbatim from `schema/openapi.json`.
pub const OPENAPI_JSON: &str = include_str!("../../../schema/openapi.json");

pub fn document() -> Response {
    Response {
        status: 200,
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("cache-control".into(), "public, max-age=300".into()),
        ],
        body: OPENAPI_JSON.as_bytes().to_vec(),
    }
}
