//! Scaffolding for tests against real components. Never used by what users run.
pub mod nix;
pub mod pool;
