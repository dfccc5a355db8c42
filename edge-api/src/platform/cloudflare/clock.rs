//! `Clock` from the JavaScript `Date.now()`. Inside Workers it advances only
//! across I/O (a Spectre mitigation), which is fine for expiry checks.

use crate::ports::Clock;

pub struct JsClock;

impl Clock for JsClock {
    fn now_millis(&self) -> i64 {
        // f64 milliseconds since the epoch; exact in an i64 for millennia.
        worker::js_sys::Date::now() as i64
    }
}
