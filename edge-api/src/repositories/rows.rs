//! Helpers shared by the auth repositories: reading text columns out of
//! [`SqlRow`]s, and (in tests) checking that statements use every parameter.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::ports::{PortError, SqlRow};

pub fn bad_row(what: &str) -> PortError {
    PortError::failed(format!("unexpected row shape: {what}"))
}

/// A non-NULL text column.
pub fn col(row: &SqlRow, i: usize) -> Result<&str, PortError> {
    row.get(i)
        .and_then(|c| c.as_deref())
        .ok_or_else(|| bad_row(&format!("column {i} is NULL or missing")))
}

/// A nullable text column.
pub fn opt_col(row: &SqlRow, i: usize) -> Result<Option<&str>, PortError> {
    row.get(i)
        .map(|c| c.as_deref())
        .ok_or_else(|| bad_row(&format!("column {i} missing")))
}

/// Asserts that `sql` uses exactly `$1..=$n`, each at least once, so
/// adapters that infer parameter types never meet an unused one.
#[cfg(test)]
pub fn uses_every_parameter(name: &str, sql: &str, n: usize) {
    let mut max = 0;
    for (i, _) in sql.match_indices('$') {
        let digits: String = sql[i + 1..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if let Ok(k) = digits.parse::<usize>() {
            max = max.max(k);
        }
    }
    assert_eq!(max, n, "{name}: highest parameter");
    for k in 1..=n {
        let p = format!("${k}");
        let used = sql
            .match_indices(&p)
            .any(|(i, _)| !sql[i + p.len()..].starts_with(|c: char| c.is_ascii_digit()));
        assert!(used, "{name} does not use {p}");
    }
}
