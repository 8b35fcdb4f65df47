//! Preseed of an encrypted dataset (docs/encryption.md): the restore keeps
//! it encrypted with its own key. A snapshot point is sent raw (`zfs send
//! -w`: a raw replica's key is not loaded where it is, and a plain stream
//! received next to the dataset would land unencrypted); the received
//! sibling is unlocked with the key the live dataset's root declares
//! (`zfs load-key -L LOCATION`, then `keylocation` set to it); a restic or
//! PITR sibling is created with the live root's encryption. A copy that
//! arrives unencrypted for an encrypted dataset is never swapped in, and a
//! missing key file stops the restore before anything is received.

use zpersist_core::encryption::{KeyFacts, KeyState};
use zpersist_zfs::Zfs;

use super::run::{fail, Failure};

/// The live dataset's encryption: its root and the root's key location.
#[derive(Debug, Clone)]
pub(crate) struct Live {
    pub(crate) root: String,
    pub(crate) facts: KeyFacts,
    pub(crate) keylocation: String,
}

fn key_facts(zfs: &Zfs, dataset: &str) -> Result<Option<KeyFacts>, Failure> {
    zpersist_zfs::encryption::key_facts(zfs, &[dataset.to_string()])
        .map(|mut found| found.remove(dataset))
        .map_err(|e| {
            fail(
                e.to_string(),
                "check that ZFS answers (`zpool status`) and start the service again",
            )
        })
}

/// `None`: the dataset is not encrypted (or this ZFS has no encryption).
pub(crate) fn live(zfs: &Zfs, dataset: &str) -> Result<Option<Live>, Failure> {
    let Some(facts) = key_facts(zfs, dataset)? else {
        return Ok(None);
    };
    let root = match facts.state(dataset) {
        KeyState::NotEncrypted => return Ok(None),
        KeyState::Available { root } | KeyState::Locked { root, .. } => root,
    };
    let root_facts = if root == dataset {
        facts.clone()
    } else {
        key_facts(zfs, &root)?.unwrap_or_default()
    };
    let keylocation = root_facts
        .keylocation
        .clone()
        .filter(|l| l != "-" && l != "none")
        .unwrap_or_else(|| "prompt".into());
    Ok(Some(Live {
        root,
        facts: root_facts,
        keylocation,
    }))
}

impl Live {
    /// The key file, for a `file://` location.
    fn key_file(&self) -> Option<&str> {
        self.keylocation.strip_prefix("file://")
    }

    /// Before anything is received: the key that will unlock the copy is
    /// there (a file key), or the restore stops naming it.
    pub(crate) fn key_ready(&self, dataset: &str) -> Result<(), Failure> {
        match self.key_file() {
            Some(path) if std::path::Path::new(path).is_file() => Ok(()),
            Some(path) => Err(fail(
                format!("{dataset} is encrypted (encryption root {}) and its key file {path} is missing: the restored copy could not be unlocked; nothing was received or moved", self.root),
                format!("put {}'s key at {path} (the key the replica was encrypted with), then start the service again", self.root),
            )),
            None => Err(fail(
                format!("{dataset} is encrypted (encryption root {}) with keylocation={}: preseed unlocks a restored copy only from a key file; nothing was received or moved", self.root, self.keylocation),
                format!("restore it by hand (docs/encryption.md: `zfs send -w REPLICA@SNAP | zfs receive -u {dataset}.restore`, `zfs load-key {dataset}.restore`), or give {} a file key", self.root),
            )),
        }
    }

    /// `-o` options for a new sibling that must be encrypted as the live
    /// dataset is: its own root's encryption when the live dataset is its
    /// own root (next to it, the sibling would otherwise be unencrypted);
    /// nothing when it inherits (the sibling inherits the same parent).
    pub(crate) fn create_options(&self, dataset: &str) -> Vec<String> {
        if self.root != dataset {
            return Vec::new();
        }
        let mut options = Vec::new();
        for (property, value) in [
            ("encryption", self.facts.encryption.as_deref()),
            ("keyformat", self.facts.keyformat.as_deref()),
            ("keylocation", Some(self.keylocation.as_str())),
        ] {
            if let Some(value) = value.filter(|v| *v != "-") {
                options.push("-o".into());
                options.push(format!("{property}={value}"));
            }
        }
        options
    }

    /// A received sibling: encrypted (a plaintext copy is refused), its
    /// key loaded from the live root's location and recorded there.
    pub(crate) fn unlock(
        &self,
        zfs: &Zfs,
        dataset: &str,
        sibling: &str,
        label: &str,
    ) -> Result<(), Failure> {
        let facts = key_facts(zfs, sibling)?.unwrap_or_default();
        match facts.state(sibling) {
            KeyState::NotEncrypted => Err(fail(
                format!("{label} arrived unencrypted in {sibling}, but {dataset} is encrypted (encryption root {}): it is not swapped in", self.root),
                format!("the source holds a plain copy (sent without -w); restore from a raw replica, or by hand into a new encrypted dataset (docs/encryption.md); `zfs destroy -r {sibling}` discards this copy"),
            )),
            KeyState::Available { .. } => Ok(()),
            KeyState::Locked { root, .. } => {
                let run = |args: &[&str]| {
                    zfs.run(args).map(|_| ()).map_err(|e| {
                        fail(
                            format!("{sibling}: could not load its key from {}: {e}", self.keylocation),
                            format!("{label} was encrypted with another key than {}'s ({}); load the right one by hand (`zfs load-key -L file:///PATH {root}`) and start the service again", self.root, self.keylocation),
                        )
                    })
                };
                run(&["load-key", "-L", &self.keylocation, &root])?;
                run(&["set", &format!("keylocation={}", self.keylocation), &root])
            }
        }
    }
}
