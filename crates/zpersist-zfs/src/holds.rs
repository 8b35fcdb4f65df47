//! User holds on snapshots (`zfs hold`, `zfs holds`, `zfs release`), and a
//! dataset's snapshots in this pool's own order (`-s createtxg`).

use crate::{Zfs, ZfsError};

impl Zfs {
    /// The snapshots of `dataset` (full names, not its children's), in the
    /// order this pool created or received them.
    pub fn snapshots_in_txg_order(&self, dataset: &str) -> Result<Vec<String>, ZfsError> {
        let out = self.run(&[
            "list",
            "-H",
            "-o",
            "name",
            "-t",
            "snapshot",
            "-s",
            "createtxg",
            "-d",
            "1",
            dataset,
        ])?;
        Ok(out
            .lines()
            .filter(|l| l.starts_with(&format!("{dataset}@")))
            .map(str::to_owned)
            .collect())
    }

    /// Which of `snapshots` hold `tag`.
    pub fn held_with(&self, snapshots: &[String], tag: &str) -> Result<Vec<String>, ZfsError> {
        if snapshots.is_empty() {
            return Ok(Vec::new());
        }
        let mut args = vec!["holds".to_owned(), "-H".to_owned()];
        args.extend(snapshots.iter().cloned());
        let out = self.run(&args)?;
        Ok(out
            .lines()
            .filter_map(|line| {
                let mut fields = line.split('\t');
                let (name, held) = (fields.next()?, fields.next()?);
                (held == tag).then(|| name.to_owned())
            })
            .collect())
    }

    /// `zfs hold TAG SNAPSHOT`.
    pub fn hold(&self, tag: &str, snapshot: &str) -> Result<(), ZfsError> {
        self.run(&["hold", tag, snapshot]).map(drop)
    }

    /// `zfs release TAG SNAPSHOT`.
    pub fn release(&self, tag: &str, snapshot: &str) -> Result<(), ZfsError> {
        self.run(&["release", tag, snapshot]).map(drop)
    }
}
