//! Just enough XML for S3's answers: the keys, sizes and continuation
//! token of a ListObjectsV2 page, and the `<Code>` of an error. The bytes come from
//! the network, so every step returns an error instead of panicking, and
//! nothing is indexed by position.
//!
//! Searching for `<Name>` … `</Name>` is sound for S3's documents: text
//! content escapes `<` and `&`, so an object key can never look like a tag.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

/// One page of ListObjectsV2.
#[derive(Debug, PartialEq, Eq)]
pub struct ListPage {
    pub keys: Vec<String>,
    /// Each key's `<Size>` in bytes, in the same order (`None` when a
    /// server leaves it out or it is not a number): for display only.
    pub sizes: Vec<Option<u64>>,
    /// Set when the listing continues on another page.
    pub next_token: Option<String>,
}

/// The raw text between `<name>` and the next `</name>` in `xml`, and what
/// follows the closing tag.
fn element<'a>(xml: &'a str, name: &str) -> Option<(&'a str, &'a str)> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let (_, after_open) = xml.split_once(&open)?;
    after_open.split_once(&close)
}

/// Replaces the five predefined entities and numeric character references.
fn unescape(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some((before, after)) = rest.split_once('&') {
        out.push_str(before);
        let (entity, tail) = after
            .split_once(';')
            .ok_or_else(|| "an unterminated entity".to_string())?;
        let decoded = match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = if let Some(hex) = entity.strip_prefix("#x") {
                    u32::from_str_radix(hex, 16).ok()
                } else if let Some(dec) = entity.strip_prefix('#') {
                    dec.parse::<u32>().ok()
                } else {
                    None
                };
                code.and_then(char::from_u32)
                    .ok_or_else(|| "an unknown entity".to_string())?
            }
        };
        out.push(decoded);
        rest = tail;
    }
    out.push_str(rest);
    Ok(out)
}

/// Parses a `ListBucketResult` (ListObjectsV2). Errors describe the shape,
/// never echo the body.
pub fn parse_list(body: &[u8]) -> Result<ListPage, String> {
    let xml = std::str::from_utf8(body).map_err(|_| "the listing is not UTF-8".to_string())?;
    if !xml.contains("<ListBucketResult") {
        return Err("the answer is not a ListBucketResult".into());
    }
    let mut keys = Vec::new();
    let mut sizes = Vec::new();
    let mut rest = xml;
    while let Some((contents, after)) = element(rest, "Contents") {
        let (key, _) =
            element(contents, "Key").ok_or_else(|| "an entry without a Key".to_string())?;
        keys.push(unescape(key)?);
        sizes.push(element(contents, "Size").and_then(|(v, _)| v.trim().parse::<u64>().ok()));
        rest = after;
    }
    let truncated = element(xml, "IsTruncated").is_some_and(|(v, _)| v.trim() == "true");
    let next_token = match element(xml, "NextContinuationToken") {
        Some((token, _)) if truncated => Some(unescape(token)?),
        _ if truncated => return Err("a truncated listing without NextContinuationToken".into()),
        _ => None,
    };
    Ok(ListPage {
        keys,
        sizes,
        next_token,
    })
}

/// The `<Code>` of an S3 error document (e.g. `SignatureDoesNotMatch`),
/// when it is a plain identifier: safe to log, unlike the message, which
/// may echo the request.
pub fn error_code(body: &[u8]) -> Option<String> {
    let xml = std::str::from_utf8(body).ok()?;
    let (code, _) = element(xml, "Code")?;
    let code = code.trim();
    (!code.is_empty() && code.len() <= 64 && code.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then(|| code.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const PAGE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>bucket</Name><Prefix>backups/</Prefix><KeyCount>2</KeyCount>
  <MaxKeys>1000</MaxKeys><IsTruncated>true</IsTruncated>
  <Contents><Key>backups/1/manifest.json</Key><Size>10</Size>
    <Owner><ID>x</ID></Owner></Contents>
  <Contents><Key>backups/1/a&amp;b &lt;c&gt; &#233;&#x263A;</Key></Contents>
  <NextContinuationToken>1/abc+def==</NextContinuationToken>
</ListBucketResult>"#;

    #[test]
    fn keys_and_the_token_of_a_truncated_page() {
        let page = parse_list(PAGE.as_bytes()).unwrap();
        assert_eq!(
            page.keys,
            vec!["backups/1/manifest.json", "backups/1/a&b <c> é☺"]
        );
        assert_eq!(page.sizes, vec![Some(10), None]);
        assert_eq!(page.next_token.as_deref(), Some("1/abc+def=="));
    }

    #[test]
    fn the_last_page_has_no_token_and_an_empty_listing_no_keys() {
        let last = PAGE.replace("<IsTruncated>true", "<IsTruncated>false");
        assert_eq!(parse_list(last.as_bytes()).unwrap().next_token, None);
        let empty = "<ListBucketResult><KeyCount>0</KeyCount><IsTruncated>false</IsTruncated></ListBucketResult>";
        assert_eq!(
            parse_list(empty.as_bytes()).unwrap(),
            ListPage {
                keys: vec![],
                sizes: vec![],
                next_token: None
            }
        );
    }

    #[test]
    fn malformed_listings_are_errors() {
        let no_token = PAGE.replace("NextContinuationToken", "Other");
        for bad in [
            &b"\xff\xfe"[..],
            b"<Error><Code>AccessDenied</Code></Error>",
            b"<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>",
            b"<ListBucketResult><Contents><Key>a&amp</Key></Contents></ListBucketResult>",
            b"<ListBucketResult><Contents><Key>a&bogus;</Key></Contents></ListBucketResult>",
            b"<ListBucketResult><Contents><Key>&#xD800;</Key></Contents></ListBucketResult>",
            no_token.as_bytes(),
        ] {
            assert!(parse_list(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn truncated_or_hostile_bytes_never_panic() {
        let page = PAGE.as_bytes();
        for end in 0..page.len() {
            let _ = parse_list(page.get(..end).unwrap());
            let _ = error_code(page.get(..end).unwrap());
        }
    }

    #[test]
    fn error_codes_are_kept_only_when_plain() {
        let body = b"<Error><Code>SignatureDoesNotMatch</Code><Message>...</Message></Error>";
        assert_eq!(error_code(body).as_deref(), Some("SignatureDoesNotMatch"));
        assert_eq!(error_code(b"<Error><Code>a b</Code></Error>"), None);
        assert_eq!(error_code(b"gateway timeout"), None);
    }
}
