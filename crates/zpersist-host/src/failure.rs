//! A host effect that failed, said the way every binary says it
//! (`error: WHAT` then `  help: WHAT TO DO`).

/// What failed, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub error: String,
    pub help: String,
}
