//! Runtime-neutral HTTP request and response: what adapters convert to and
//! from, and what the core's router takes and returns.

/// An incoming request, already read into memory by the adapter.
/// Adapters cap the body at `Config::max_body_bytes` + 1 so the core can
/// answer 413 without reading an unbounded stream.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    /// Path without the query string, e.g. `/api/v1/memory/123`.
    pub path: String,
    /// Raw query string without the leading `?` (may be empty).
    pub query: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An outgoing response.
#[derive(Debug, Clone, Default)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}
