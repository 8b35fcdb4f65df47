//! The snapshots of one dataset from
//! `zfs get -H -p -o name,property,value -d 1 creation,guid DATASET`, the
//! form OpenZFS and zfs-fuse both understand (zfs-fuse has no `list -p` and
//! no `get -t`, so snapshot rows are told apart by their '@'). The same
//! listing runs here or on another host: `Zfs::at(location).snapshots()`.

use std::collections::BTreeMap;

use zpersist_core::replication::Snapshot;

/// The arguments of `zfs` listing the snapshots of `dataset`.
pub(crate) fn listing_args(dataset: &str) -> Vec<&str> {
    vec![
        "get",
        "-H",
        "-p",
        "-o",
        "name,property,value",
        "-d",
        "1",
        "creation,guid",
        dataset,
    ]
}

/// The argv, `zfs` first, listing the snapshots of `dataset`: what
/// [`Zfs::snapshots`](crate::Zfs::snapshots) runs, for messages that tell
/// a person what to run.
pub fn snapshots_argv(dataset: &str) -> Vec<String> {
    std::iter::once("zfs")
        .chain(listing_args(dataset))
        .map(str::to_string)
        .collect()
}

/// The snapshots of `dataset` (not of its children) in `output` of
/// [`snapshots_argv`], oldest first. Rows of other datasets and of the
/// dataset itself are skipped.
pub fn parse_snapshots(dataset: &str, output: &str) -> Result<Vec<Snapshot>, String> {
    let prefix = format!("{dataset}@");
    let mut by_name: BTreeMap<String, (Option<i64>, Option<String>)> = BTreeMap::new();
    for line in output.lines().filter(|l| !l.is_empty()) {
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() < 3 {
            return Err(format!("unexpected line from zfs get: {line:?}"));
        }
        let Some(snap) = fields[0].strip_prefix(&prefix) else {
            continue;
        };
        let entry = by_name.entry(snap.to_owned()).or_default();
        match fields[1] {
            "creation" => {
                entry.0 = Some(fields[2].parse().map_err(|_| {
                    format!("creation of {} is not a number: {:?}", fields[0], fields[2])
                })?)
            }
            "guid" => entry.1 = Some(fields[2].to_owned()),
            _ => {}
        }
    }
    let mut snapshots: Vec<Snapshot> = by_name
        .into_iter()
        .filter_map(|(name, (creation, guid))| {
            Some(Snapshot {
                name,
                creation: creation?,
                guid: guid?,
            })
        })
        .collect();
    snapshots.sort_by(|a, b| (a.creation, &a.name).cmp(&(b.creation, &b.name)));
    Ok(snapshots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_rows_of_the_dataset_only_oldest_first() {
        let out = "tank/s\tcreation\t100\t-\n\
                   tank/s\tguid\t1\t-\n\
                   tank/s@b\tcreation\t300\t-\n\
                   tank/s@b\tguid\t33\t-\n\
                   tank/s@a\tcreation\t200\t-\n\
                   tank/s@a\tguid\t22\t-\n\
                   tank/s/child\tcreation\t250\t-\n\
                   tank/s/child@x\tcreation\t260\t-\n";
        let snaps = parse_snapshots("tank/s", out).unwrap();
        let names: Vec<&str> = snaps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(snaps[1].guid, "33");
        assert_eq!(snaps[1].creation, 300);
    }

    #[test]
    fn a_garbled_creation_is_an_error_naming_the_snapshot() {
        let err = parse_snapshots("tank/s", "tank/s@a\tcreation\tsoon\t-\n").unwrap_err();
        assert!(err.contains("tank/s@a"), "{err}");
    }

    #[test]
    fn the_listing_is_one_depth_of_creation_and_guid_in_parsable_form() {
        assert_eq!(
            snapshots_argv("tank/my data").join(" "),
            "zfs get -H -p -o name,property,value -d 1 creation,guid tank/my data"
        );
    }
}
