//! The notification mechanism of zpersist: a failed unit becomes one JSON
//! event, delivered to a command (on stdin) and/or ntfy, a webhook, email.
//!
//! - [`context`]: the context file the NixOS module renders (host, unit →
//!   datasets, delivery settings);
//! - [`event`]: building the event (pure);
//! - [`deliver`]: planning each delivery as an argv plus stdin (pure) and
//!   running it (adapter);
//! - [`journal`]: the failed unit's journal tail (adapter).

pub mod context;
pub mod deliver;
pub mod event;
pub mod journal;
pub mod time;
