//! Preseed: before a service starts, make sure its dataset holds data
//! (docs/preseed.md). [`run`] is one run (lock, look, decide, restore
//! through a journaled sibling swap); [`sources`] lists each kind of
//! source's restore points and fills a dataset from one of them (the
//! drill lists and restores with the same code).

pub(crate) mod encrypted;
pub mod run;
pub mod sources;

pub use run::{run, Options, Report, SourceReport};
