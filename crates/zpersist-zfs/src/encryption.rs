//! Native encryption's facts (`encryption`, `encryptionroot`, `keystatus`,
//! `keyformat`, `keylocation`) as zpersist_core::encryption reads them.
//! zfs-fuse knows none of these properties: there a read answers that no
//! dataset is encrypted, never an error.

use std::collections::BTreeMap;

use zpersist_core::encryption::{KeyFacts, KEY_PROPERTIES};

use crate::{Zfs, ZfsError};

/// The key facts of each of `datasets` that exists, by one `zfs get`.
/// A ZFS without encryption (zfs-fuse: "bad property list") answers an
/// empty map, so every dataset counts as not encrypted.
pub fn key_facts(zfs: &Zfs, datasets: &[String]) -> Result<BTreeMap<String, KeyFacts>, ZfsError> {
    let properties: Vec<String> = KEY_PROPERTIES.iter().map(|p| p.to_string()).collect();
    let observed = match zfs.observe_named(datasets, &properties) {
        Ok((observed, _missing)) => observed,
        Err(e) if crate::unknown_property(e.stderr()).is_some() => return Ok(BTreeMap::new()),
        Err(e) => return Err(e),
    };
    Ok(datasets
        .iter()
        .filter(|d| observed.exists(d))
        .map(|d| (d.clone(), KeyFacts::from_values(|p| observed.value(d, p))))
        .collect())
}
