//! `Clock` from the WASI wall clock (std's `SystemTime`).

use std::time::{SystemTime, UNIX_EPOCH};

use crate::ports::Clock;

pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> i64 {
        // A clock before 1970 is a broken host; 0 keeps expiry checks sane.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }
}
