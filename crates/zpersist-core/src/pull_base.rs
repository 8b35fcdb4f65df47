//! The protected base of a pulled replica: the newest snapshot the backup
//! host received of a dataset is held (`zfs hold <tag>`) there, so neither
//! its own pruning nor a stray destroy takes the snapshot the next
//! incremental starts from; the hold moves forward after each pull. The
//! tag names the source (`zpersist-base-<source>`): two sources, or a
//! person's own holds, never release each other's.
//!
//! "Newest" is in the backup host's own order: the snapshots as `zfs list
//! -s createtxg` lists them there (the transaction group of the receive),
//! never their `creation`, which the source chose.

/// What to do with the holds of `tag` on one dataset.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BaseMove {
    /// The snapshot (full name) to hold, when it is not held with `tag` yet.
    pub hold: Option<String>,
    /// Snapshots (full names) whose `tag` hold to release: every other one.
    pub release: Vec<String>,
}

/// The hold of `tag` on the newest of `snapshots` (full names, oldest
/// received first) and on nothing else; `held` are the snapshots holding
/// `tag` now. No snapshot: nothing held is released (an emptied listing
/// is not a reason to drop the base).
pub fn move_base(snapshots: &[String], held: &[String]) -> BaseMove {
    let Some(newest) = snapshots.last() else {
        return BaseMove::default();
    };
    BaseMove {
        hold: (!held.contains(newest)).then(|| newest.clone()),
        release: held.iter().filter(|s| *s != newest).cloned().collect(),
    }
}

/// The hold tag of the base pulled from `source`.
pub fn tag(source: &str) -> String {
    format!("zpersist-base-{source}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_hold_moves_to_the_newest_received_snapshot_and_only_there() {
        let snaps = names(&["b/x@1", "b/x@2", "b/x@3"]);
        assert_eq!(
            move_base(&snaps, &[]),
            BaseMove {
                hold: Some("b/x@3".into()),
                release: vec![]
            }
        );
        assert_eq!(
            move_base(&snaps, &names(&["b/x@1"])),
            BaseMove {
                hold: Some("b/x@3".into()),
                release: names(&["b/x@1"])
            }
        );
        assert_eq!(move_base(&snaps, &names(&["b/x@3"])), BaseMove::default());
        assert_eq!(move_base(&[], &names(&["b/x@1"])), BaseMove::default());
        assert_eq!(tag("forge"), "zpersist-base-forge");
    }
}
