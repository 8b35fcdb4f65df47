//! The space a dataset can still take: its quota and refquota, its
//! ancestors' quotas, its pool's free space. Asked when a write into the
//! dataset failed for lack of space (rsync, zfs receive), to say which
//! limit it hit and how to raise it; and before filling a dataset.

use zpersist_core::human_bytes;
use zpersist_core::name::parent_of;

use crate::{Zfs, ZfsError};

/// One limit on the space a dataset can use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpaceLimit {
    /// `the quota of tank/services is 2.0 MiB, 2.0 MiB of it used`
    pub description: String,
    /// What can still be written under it.
    pub headroom: u64,
    /// `raise the quota of tank/services (...) or free space within it`
    pub help: String,
}

/// The limits on what `dataset` can hold: its quota and refquota, its
/// ancestors' quotas, the pool's free space (a `zfs get` per dataset up to
/// the pool). A dataset that cannot be read adds none.
pub fn space_limits(zfs: &Zfs, dataset: &str) -> Vec<SpaceLimit> {
    let mut limits = Vec::new();
    let mut name = Some(dataset);
    while let Some(ds) = name {
        name = parent_of(ds);
        let Ok(Some(props)) = zfs.get(
            ds,
            &["quota", "refquota", "used", "referenced", "available"],
        ) else {
            continue;
        };
        let value = |p: &str| {
            props
                .get(p)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let mut quotas = vec![("quota", value("quota"), value("used"))];
        if ds == dataset {
            quotas.push(("refquota", value("refquota"), value("referenced")));
        }
        for (property, size, used) in quotas.into_iter().filter(|(_, size, _)| *size > 0) {
            limits.push(SpaceLimit {
                description: format!(
                    "the {property} of {ds} is {}, {} of it used",
                    human_bytes(size),
                    human_bytes(used)
                ),
                headroom: size.saturating_sub(used),
                help: format!(
                    "raise the {property} of {ds} (`zfs set {property}=SIZE {ds}`, with room for the data) or free space within it"
                ),
            });
        }
        if name.is_none() {
            limits.push(SpaceLimit {
                description: format!(
                    "pool {ds} has {} available",
                    human_bytes(value("available"))
                ),
                headroom: value("available"),
                help: format!("free space in pool {ds} (or grow it)"),
            });
        }
    }
    limits
}

/// The limit with the least room left, if any could be read.
pub fn tightest_limit(zfs: &Zfs, dataset: &str) -> Option<SpaceLimit> {
    space_limits(zfs, dataset)
        .into_iter()
        .min_by_key(|limit| limit.headroom)
}

/// The dataset's `available` bytes, `None` if it does not exist
/// (`u64::MAX` if zfs printed no number for it).
pub fn available(zfs: &Zfs, dataset: &str) -> Result<Option<u64>, ZfsError> {
    Ok(zfs.get(dataset, &["available"])?.map(|props| {
        props
            .get("available")
            .and_then(|v| v.parse().ok())
            .unwrap_or(u64::MAX)
    }))
}
