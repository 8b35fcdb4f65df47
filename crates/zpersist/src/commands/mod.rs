//! One module per subcommand, each a thin dispatch over `zpersist-ops`.

pub mod completions;
pub mod config;
pub mod datasets;
pub mod drill;
pub mod man;
pub mod migrate;
pub mod pitr;
pub mod preseed;
pub mod restore;
pub mod status;
