//! How a Postgres SQLSTATE maps onto the ports' error kinds, shared by every
//! Postgres adapter so the same fault answers the same way on each runtime.

use crate::ports::PortErrorKind;

/// Unique violations for the core to handle; connection-level and transient
/// faults (a retry may help) as `Unavailable`; the rest as `Failed`.
pub fn classify(sqlstate: &str) -> PortErrorKind {
    match sqlstate {
        "23505" => PortErrorKind::UniqueViolation,
        // Serialization failure, deadlock, query cancelled (statement_timeout).
        "40001" | "40P01" | "57014" => PortErrorKind::Unavailable,
        // Connection exceptions, insufficient resources, server shutting down.
        s if s.starts_with("08") || s.starts_with("53") || s.starts_with("57P") => {
            PortErrorKind::Unavailable
        }
        _ => PortErrorKind::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::classify;
    use crate::ports::PortErrorKind::*;

    #[test]
    fn classes() {
        assert_eq!(classify("23505"), UniqueViolation);
        for code in ["08006", "53300", "57P01", "40001", "40P01", "57014"] {
            assert_eq!(classify(code), Unavailable, "{code}");
        }
        for code in ["42601", "22P02", "23503", "42501", ""] {
            assert_eq!(classify(code), Failed, "{code}");
        }
    }
}
