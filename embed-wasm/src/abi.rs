//! The guest ABI of `ABI.md` (version 1): request parsing, result encoding, and the wasm exports.
//!
//! Parsing and encoding are plain functions, compiled and tested natively;
//! only the `extern "C"` exports and their statics are wasm-only, so a native
//! binary linking this rlib gets no stray `ms_*` symbols.

use crate::Embeddings;

/// `ms_abi_version()`.
pub const ABI_VERSION: u32 = 1;

/// Result and `ms_init` status codes (see ABI.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Status {
    Ok = 0,
    BadFraming = 1,
    InvalidUtf8 = 2,
    NotInitialised = 3,
    InferenceFailed = 4,
    ModelLoadFailed = 5,
}

/// Splits a request (`u32 count`, then `count × {u32 len, bytes}`) into texts.
pub fn parse_request(buf: &[u8]) -> Result<Vec<&str>, (Status, String)> {
    let framing = |msg: String| (Status::BadFraming, msg);
    let mut rest = buf;
    let count =
        take_u32(&mut rest).ok_or_else(|| framing("request shorter than its count".into()))?;
    // Each text needs at least its 4-byte length: reject absurd counts before
    // allocating for them.
    if count as usize > rest.len() / 4 {
        return Err(framing(format!(
            "count {count} does not fit in {} bytes",
            buf.len()
        )));
    }
    let mut texts = Vec::with_capacity(count as usize);
    for i in 0..count {
        let len = take_u32(&mut rest)
            .ok_or_else(|| framing(format!("text {i}: length prefix past the end")))?
            as usize;
        if len > rest.len() {
            return Err(framing(format!("text {i}: {len} bytes past the end")));
        }
        let (bytes, tail) = rest.split_at(len);
        rest = tail;
        let text = std::str::from_utf8(bytes).map_err(|e| {
            (
                Status::InvalidUtf8,
                format!("text {i} is not valid UTF-8: {e}"),
            )
        })?;
        texts.push(text);
    }
    if !rest.is_empty() {
        return Err(framing(format!(
            "{} trailing bytes after {count} texts",
            rest.len()
        )));
    }
    Ok(texts)
}

/// `status 0, count, dim, count × token_count, count × dim × f32`.
pub fn encode_ok(embeddings: &Embeddings, dim: usize) -> Vec<u8> {
    let count = embeddings.vectors.len();
    let mut out = Vec::with_capacity(12 + count * 4 + count * dim * 4);
    out.extend_from_slice(&(Status::Ok as u32).to_le_bytes());
    out.extend_from_slice(&(count as u32).to_le_bytes());
    out.extend_from_slice(&(dim as u32).to_le_bytes());
    for &n in &embeddings.token_counts {
        out.extend_from_slice(&n.to_le_bytes());
    }
    for v in &embeddings.vectors {
        for x in v {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    out
}

/// `status, message_len, message`.
pub fn encode_error(status: Status, message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + message.len());
    out.extend_from_slice(&(status as u32).to_le_bytes());
    out.extend_from_slice(&(message.len() as u32).to_le_bytes());
    out.extend_from_slice(message.as_bytes());
    out
}

fn take_u32(rest: &mut &[u8]) -> Option<u32> {
    let (head, tail) = rest.split_first_chunk::<4>()?;
    *rest = tail;
    Some(u32::from_le_bytes(*head))
}

#[cfg(target_family = "wasm")]
mod exports {
    //! The `extern "C"` surface. One instance serves one call at a time
    //! (wasm32-wasip1 has no threads), so the statics are never contended.

    use std::sync::{Mutex, OnceLock};

    use super::{ABI_VERSION, Status, encode_error, encode_ok, parse_request};
    use crate::{DEFAULT_MAX_TOKENS, Embedder, ModelFiles};

    static EMBEDDER: OnceLock<Embedder> = OnceLock::new();
    /// The buffer `ms_alloc` handed out; `ms_embed` only reads inside it.
    static REQUEST: Mutex<Vec<u8>> = Mutex::new(Vec::new());
    /// The last result, kept alive until the next call so the host can read it.
    static RESULT: Mutex<Vec<u8>> = Mutex::new(Vec::new());

    unsafe extern "C" {
        fn __wasm_call_ctors();
    }

    /// Reactor entry point: without it, wasm-ld wraps every export as a
    /// command (ctors + dtors per call), which corrupts memory.
    #[unsafe(no_mangle)]
    pub extern "C" fn _initialize() {
        // SAFETY: called once by the host before any other export, as the
        // WASI reactor convention requires.
        unsafe { __wasm_call_ctors() }
    }

    #[unsafe(no_mangle)]
    pub extern "C" fn ms_abi_version() -> u32 {
        ABI_VERSION
    }

    #[unsafe(no_mangle)]
    pub extern "C" fn ms_init() -> u32 {
        if EMBEDDER.get().is_some() {
            return Status::Ok as u32;
        }
        let loaded = max_tokens().and_then(|max_tokens| {
            let tok = std::fs::read("/model/tokenizer.json")
                .map_err(|e| format!("/model/tokenizer.json: {e}"))?;
            let model = std::fs::read("/model/model.onnx")
                .map_err(|e| format!("/model/model.onnx: {e}"))?;
            let files = ModelFiles {
                tokenizer_json: &tok,
                max_tokens,
            };
            Embedder::load_owned(model, files).map_err(|e| e.to_string())
        });
        match loaded {
            Ok(embedder) => {
                let _ = EMBEDDER.set(embedder);
                Status::Ok as u32
            }
            Err(msg) => {
                // ms_init has no result buffer; stderr reaches the host's log.
                eprintln!("embed-wasm: ms_init failed: {msg}");
                Status::ModelLoadFailed as u32
            }
        }
    }

    #[unsafe(no_mangle)]
    pub extern "C" fn ms_alloc(len: u32) -> u32 {
        let Ok(mut request) = REQUEST.lock() else {
            return 0;
        };
        let mut buf = Vec::new();
        // A request too big for guest memory is the host's problem to report,
        // not a trap.
        if buf.try_reserve_exact((len as usize).max(1)).is_err() {
            return 0;
        }
        buf.resize(len as usize, 0);
        *request = buf;
        request.as_mut_ptr() as u32
    }

    #[unsafe(no_mangle)]
    pub extern "C" fn ms_embed(ptr: u32, len: u32) -> u32 {
        let result = embed(ptr as usize, len as usize);
        // The request is consumed: free it before the result is kept.
        if let Ok(mut request) = REQUEST.lock() {
            *request = Vec::new();
        }
        match RESULT.lock() {
            Ok(mut slot) => {
                *slot = result;
                slot.as_ptr() as u32
            }
            Err(_) => 0,
        }
    }

    fn embed(ptr: usize, len: usize) -> Vec<u8> {
        let Ok(request) = REQUEST.lock() else {
            return encode_error(Status::BadFraming, "request buffer unavailable");
        };
        // Only read what ms_alloc handed out: (ptr, len) must lie inside it.
        let base = request.as_ptr() as usize;
        let Some(buf) = ptr
            .checked_sub(base)
            .and_then(|off| request.get(off..off.checked_add(len)?))
        else {
            return encode_error(
                Status::BadFraming,
                "(ptr, len) is not inside the ms_alloc buffer",
            );
        };
        let Some(embedder) = EMBEDDER.get() else {
            return encode_error(Status::NotInitialised, "ms_init has not succeeded");
        };
        let texts = match parse_request(buf) {
            Ok(texts) => texts,
            Err((status, msg)) => return encode_error(status, &msg),
        };
        match embedder.embed(&texts) {
            Ok(embeddings) => encode_ok(&embeddings, embedder.dim()),
            Err(e) => encode_error(Status::InferenceFailed, &e.to_string()),
        }
    }

    /// The truncation length the host set in `MEMSHADOW_MAX_TOKENS` (the
    /// manifest's `max_tokens`), else all-MiniLM-L6-v2's.
    fn max_tokens() -> Result<usize, String> {
        match std::env::var("MEMSHADOW_MAX_TOKENS") {
            Err(_) => Ok(DEFAULT_MAX_TOKENS),
            Ok(v) => v
                .parse()
                .map_err(|_| format!("MEMSHADOW_MAX_TOKENS={v:?} is not a number")),
        }
    }

    #[unsafe(no_mangle)]
    pub extern "C" fn ms_dim() -> u32 {
        EMBEDDER.get().map_or(0, |e| e.dim() as u32)
    }

    #[unsafe(no_mangle)]
    pub extern "C" fn ms_max_tokens() -> u32 {
        EMBEDDER.get().map_or(0, |e| e.max_tokens() as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(texts: &[&[u8]]) -> Vec<u8> {
        let mut out = (texts.len() as u32).to_le_bytes().to_vec();
        for t in texts {
            out.extend_from_slice(&(t.len() as u32).to_le_bytes());
            out.extend_from_slice(t);
        }
        out
    }

    #[test]
    fn parses_well_formed_requests() {
        let req = request(&[b"hello", b"", "wörld".as_bytes()]);
        assert_eq!(parse_request(&req).unwrap(), vec!["hello", "", "wörld"]);
        assert_eq!(parse_request(&request(&[])).unwrap(), Vec::<&str>::new());
    }

    #[test]
    fn rejects_bad_framing_and_utf8() {
        let status = |buf: &[u8]| parse_request(buf).unwrap_err().0;
        assert_eq!(status(b""), Status::BadFraming);
        assert_eq!(status(&[1, 0, 0]), Status::BadFraming);
        let mut req = request(&[b"abc"]);
        req.push(0);
        assert_eq!(status(&req), Status::BadFraming, "trailing byte");
        let req = request(&[b"abc"]);
        assert_eq!(
            status(&req[..req.len() - 1]),
            Status::BadFraming,
            "short text"
        );
        assert_eq!(
            status(&u32::MAX.to_le_bytes()),
            Status::BadFraming,
            "absurd count"
        );
        assert_eq!(status(&request(&[b"ok", b"\xff\xfe"])), Status::InvalidUtf8);
    }

    #[test]
    fn encodes_results_as_documented() {
        let e = Embeddings {
            vectors: vec![vec![1.0, -0.5], vec![0.25, 2.0]],
            token_counts: vec![3, 7],
        };
        let out = encode_ok(&e, 2);
        let words: Vec<u32> = out
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(&words[..5], &[0, 2, 2, 3, 7]);
        let floats: Vec<f32> = words[5..].iter().map(|w| f32::from_bits(*w)).collect();
        assert_eq!(floats, vec![1.0, -0.5, 0.25, 2.0]);

        let err = encode_error(Status::InvalidUtf8, "bad");
        assert_eq!(&err[..8], &[2, 0, 0, 0, 3, 0, 0, 0]);
        assert_eq!(&err[8..], b"bad");
    }
}
