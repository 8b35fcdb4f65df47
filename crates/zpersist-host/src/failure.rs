//! A host effect that failed, said the way every binary says it
//! (`error: WHAT` then `  help: WHAT TO DO`).

/// What failed, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub error: String,
    pub help: String,
}

/// A host effect that failed is a failure of the operation, with its help.
impl From<Failure> for zpersist_core::error::Error {
    fn from(f: Failure) -> zpersist_core::error::Error {
        zpersist_core::error::Error::failed(f.error).with_help(f.help)
    }
}
