//! `zpersist-load-key DATASET`: load the key of a dataset's encryption
//! root before the services on it start (the unit
//! `zpersist-load-key-<root>.service`, docs/encryption.md). Idempotent: a
//! loaded key is left as it is. A missing key file is a failure of this
//! unit alone (exit 1, notified), never of the boot: the datasets stay
//! locked and their services' mount checks keep only those services down.

use std::time::Duration;

use zpersist_core::encryption::{load_step, LoadStep};
use zpersist_zfs::Zfs;

/// What a run did: the line to print, or what failed and what to do.
pub fn run(dataset: &str, timeout: Duration) -> Result<String, (String, String)> {
    let zfs = Zfs::from_path()
        .map_err(|e| (e.to_string(), "install ZFS and try again".to_string()))?
        .with_timeout(timeout);
    let facts = |name: &str| {
        zpersist_zfs::encryption::key_facts(&zfs, &[name.to_string()])
            .map(|mut found| found.remove(name))
            .map_err(|e| {
                (
                    e.to_string(),
                    "check that the pool is imported and healthy (`zpool status`)".to_string(),
                )
            })
    };
    let present = |path: &str| std::path::Path::new(path).is_file();
    let mut step = load_step(dataset, facts(dataset)?.as_ref(), present);
    // A child: its root's key, read from the root.
    if let LoadStep::Refuse { .. } | LoadStep::Load { .. } = &step {
        if let Some(root) = facts(dataset)?
            .and_then(|f| f.encryption_root)
            .filter(|root| root != dataset && root != "-")
        {
            step = load_step(&root, facts(&root)?.as_ref(), present);
        }
    }
    match step {
        LoadStep::Loaded { root } => Ok(format!("the key of {root} is loaded; nothing to do")),
        LoadStep::Refuse { what, help } => Err((what, help)),
        LoadStep::Load { root, location } => {
            zfs.run(&["load-key", root.as_str()]).map_err(|e| {
                (
                    format!("{root}: could not load its key from {location}: {e}"),
                    format!("check the key at {location} (its format must be the dataset's keyformat: `zfs get keyformat {root}`), then `systemctl restart zpersist-datasets.service`"),
                )
            })?;
            Ok(format!("loaded the key of {root} from {location}"))
        }
    }
}
