//! The clock: the one place zpersist reads the wall-clock time (the core
//! takes `now` as data; the adapters and ops ask here).

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the epoch (0 if the clock is before it).
pub fn now() -> i64 {
    now_micros().div_euclid(1_000_000)
}

/// Microseconds since the epoch (0 if the clock is before it).
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}
