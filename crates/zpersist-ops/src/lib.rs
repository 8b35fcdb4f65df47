//! The library of operations: each flow a binary (and, later, a `zpersist`
//! subcommand) runs, over the adapters and the core. A binary is a thin
//! main over one of these: arguments → contract → operation → report.
//!
//! - [`preseed`]: restore a service's empty dataset from the freshest good
//!   source before it starts (`preseed-restore`).
//! - [`drill`]: restore each declared source's freshest point into a
//!   scratch place no service sees, check it, measure RPO and RTO
//!   (`zpersist-drill`).
//! - [`config`]: where each contract is in the configuration directory,
//!   read by the one loader; `check` reads them all (`zpersist config check`).

pub mod config;
pub mod drill;
pub mod preseed;
