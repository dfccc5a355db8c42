//! Rewrites a statement so that every parameter is declared `text`, for
//! drivers that let the server infer parameter types (Spin's Postgres
//! interface binds a string parameter as whatever type the server infers,
//! and refuses to send a string where it inferred `uuid` or `jsonb`).
//!
//! The core's SQL is written for parameters typed `text` (the tokio-postgres
//! adapter declares them so with `query_typed`): `$1::uuid` means "the text
//! `$1`, cast to uuid". Writing each `$n` as `($n::text)` states the same
//! thing in the statement itself, so both adapters run identical semantics.
//!
//! Placeholders inside string literals, quoted identifiers, dollar-quoted
//! bodies and comments are left alone.

/// Returns `sql` with every parameter placeholder `$n` replaced by
/// `($n::text)`.
pub fn declare_params_text(sql: &str) -> String {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len() + 16);
    // Start of the not-yet-copied part of `sql`; everything is copied in
    // slices that begin and end on ASCII bytes, so UTF-8 stays intact.
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\'' => {
                let escapes =
                    i > 0 && matches!(b[i - 1], b'e' | b'E') && (i < 2 || !is_ident_byte(b[i - 2]));
                i = skip_quoted(b, i, b'\'', escapes);
            }
            b'"' => i = skip_quoted(b, i, b'"', false),
            b'-' if b.get(i + 1) == Some(&b'-') => {
                i = b[i..]
                    .iter()
                    .position(|&c| c == b'\n')
                    .map_or(b.len(), |n| i + n + 1);
            }
            b'/' if b.get(i + 1) == Some(&b'*') => i = skip_block_comment(b, i),
            b'$' if b.get(i + 1).is_some_and(u8::is_ascii_digit)
                && (i == 0 || !is_ident_byte(b[i - 1])) =>
            {
                let end = i + 1 + b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
                out.push_str(&sql[copied..i]);
                out.push('(');
                out.push_str(&sql[i..end]);
                out.push_str("::text)");
                copied = end;
                i = end;
            }
            b'$' if i == 0 || !is_ident_byte(b[i - 1]) => i = skip_dollar_quoted(b, i),
            _ => i += 1,
        }
    }
    out.push_str(&sql[copied..]);
    out
}

fn is_ident_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

/// Skips a `'…'` or `"…"` token starting at `start` (a doubled quote is an
/// escaped quote; with `backslash`, as in `E'…'`, so is `\'`). Returns the
/// index after the closing quote, or the end of input.
fn skip_quoted(b: &[u8], start: usize, quote: u8, backslash: bool) -> usize {
    let mut i = start + 1;
    while i < b.len() {
        if backslash && b[i] == b'\\' {
            i += 2;
        } else if b[i] == quote {
            if b.get(i + 1) == Some(&quote) {
                i += 2;
            } else {
                return i + 1;
            }
        } else {
            i += 1;
        }
    }
    b.len()
}

/// Skips a (possibly nested) `/* … */` comment starting at `start`.
fn skip_block_comment(b: &[u8], start: usize) -> usize {
    let mut depth = 0usize;
    let mut i = start;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            depth += 1;
            i += 2;
        } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    b.len()
}

/// Skips a dollar-quoted body `$tag$ … $tag$` starting at `start`; a `$`
/// that does not open one is skipped alone.
fn skip_dollar_quoted(b: &[u8], start: usize) -> usize {
    let tag_len = b[start + 1..]
        .iter()
        .take_while(|&&c| c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80)
        .count();
    let open_end = start + 1 + tag_len;
    if b.get(open_end) != Some(&b'$') {
        return start + 1;
    }
    let tag = &b[start..=open_end];
    let body = open_end + 1;
    b[body..]
        .windows(tag.len())
        .position(|w| w == tag)
        .map_or(b.len(), |n| body + n + tag.len())
}

#[cfg(test)]
mod tests {
    use super::declare_params_text as rewrite;

    #[test]
    fn parameters_become_text() {
        assert_eq!(
            rewrite(
                "SELECT * FROM m WHERE id = $1::uuid AND v <=> $2::text::vector LIMIT $10::int"
            ),
            "SELECT * FROM m WHERE id = ($1::text)::uuid AND v <=> ($2::text)::text::vector LIMIT ($10::text)::int"
        );
        assert_eq!(rewrite("VALUES($1,$2)"), "VALUES(($1::text),($2::text))");
        assert_eq!(rewrite("SELECT 1"), "SELECT 1");
    }

    #[test]
    fn quoted_text_and_comments_are_left_alone() {
        let sql =
            "SELECT '$1', \"$2\", E'\\'$3', $$ $4 $$, $f$ $5 $f$ -- $6\n, /* $7 /* $8 */ */ $9";
        assert_eq!(
            rewrite(sql),
            "SELECT '$1', \"$2\", E'\\'$3', $$ $4 $$, $f$ $5 $f$ -- $6\n, /* $7 /* $8 */ */ ($9::text)"
        );
        // A doubled quote does not end the literal; an identifier ending in a
        // digit-dollar sequence is not a parameter.
        assert_eq!(
            rewrite("SELECT 'it''s $1', a$1 FROM t"),
            "SELECT 'it''s $1', a$1 FROM t"
        );
    }

    #[test]
    fn unterminated_input_and_multibyte_text_do_not_panic() {
        for sql in [
            "SELECT '",
            "SELECT \"",
            "/*",
            "$a$ x",
            "SELECT $",
            "--",
            "é$1ü",
        ] {
            let _ = rewrite(sql);
        }
        assert_eq!(rewrite("SELECT 'é', $1"), "SELECT 'é', ($1::text)");
    }
}
