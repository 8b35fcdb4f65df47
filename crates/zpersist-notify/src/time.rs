//! Timestamps for events: the formatting lives in zpersist-core; the clock
//! is read here.

pub use zpersist_core::time::rfc3339;

/// Seconds since the epoch now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
