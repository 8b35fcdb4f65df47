//! The library of operations: each flow a binary (and, later, a `zpersist`
//! subcommand) runs, over the adapters and the core. A binary is a thin
//! main over one of these: arguments → contract → operation → report.
//!
//! - [`preseed`]: restore a service's empty dataset from the freshest good
//!   source before it starts (`preseed-restore`).
//! - [`drill`]: restore each declared source's freshest point into a
//!   scratch place no service sees, check it, measure RPO and RTO
//!   (`zpersist-drill`).
//! - [`load_key`]: load an encryption root's key before its services
//!   (`zpersist-load-key`).

pub mod drill;
pub mod load_key;
pub mod preseed;
