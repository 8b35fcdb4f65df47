//! The snapshots of one dataset from
//! `zfs get -H -p -o name,property,value -d 1 creation,guid DATASET`, the
//! form OpenZFS and zfs-fuse both understand (zfs-fuse has no `list -p` and
//! no `get -t`, so snapshot rows are told apart by their '@'). The same
//! listing runs here or on another host: `Zfs::at(location).snapshots()`.

use std::collections::BTreeMap;

use zpersist_core::replication::Snapshot;

/// The arguments of `zfs` listing the snapshots of `dataset`: what
/// [`Zfs::snapshots`](crate::Zfs::snapshots) runs, here or over ssh.
pub(crate) fn listing_args(dataset: &str) -> Vec<String> {
    creation_and_guid_args(&["-d", "1"], dataset)
}

/// The argv, `zfs` first, listing the snapshots of `dataset`, for messages
/// that tell a person what to run.
pub fn snapshots_argv(dataset: &str) -> Vec<String> {
    with_zfs(listing_args(dataset))
}

fn with_zfs(args: Vec<String>) -> Vec<String> {
    std::iter::once("zfs".to_string()).chain(args).collect()
}

/// `get -H -p -o name,property,value SCOPE creation,guid DATASET`.
fn creation_and_guid_args(scope: &[&str], dataset: &str) -> Vec<String> {
    ["get", "-H", "-p", "-o", "name,property,value"]
        .iter()
        .chain(scope)
        .chain(&["creation,guid", dataset])
        .map(|s| s.to_string())
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

/// The argv, `zfs` first, listing every snapshot under `root` (all
/// datasets at once: one call however many datasets there are).
pub fn all_snapshots_argv(root: &str) -> Vec<String> {
    with_zfs(creation_and_guid_args(&["-r"], root))
}

/// The snapshots in `output` of [`all_snapshots_argv`], by dataset, each
/// list oldest first. Rows of datasets themselves are skipped.
pub fn parse_all_snapshots(output: &str) -> Result<BTreeMap<String, Vec<Snapshot>>, String> {
    let mut lines: BTreeMap<&str, String> = BTreeMap::new();
    for line in output.lines().filter(|l| !l.is_empty()) {
        let name = line.split('\t').next().unwrap_or_default();
        if let Some((dataset, _)) = name.split_once('@') {
            let text = lines.entry(dataset).or_default();
            text.push_str(line);
            text.push('\n');
        }
    }
    lines
        .into_iter()
        .map(|(dataset, text)| parse_snapshots(dataset, &text).map(|s| (dataset.to_string(), s)))
        .collect()
}

#[cfg(test)]
mod all_tests {
    use super::*;

    #[test]
    fn one_listing_is_split_by_dataset_and_a_child_is_not_its_parent() {
        let output = "tank/a\tcreation\t1\n\
                      tank/a@x\tcreation\t10\n\
                      tank/a@x\tguid\t111\n\
                      tank/a/b@x\tcreation\t20\n\
                      tank/a/b@x\tguid\t222\n";
        let all = parse_all_snapshots(output).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all["tank/a"][0].guid, "111");
        assert_eq!(all["tank/a/b"][0].creation, 20);
        assert_eq!(
            all_snapshots_argv("tank").join(" "),
            "zfs get -H -p -o name,property,value -r creation,guid tank"
        );
        assert_eq!(
            snapshots_argv("tank/a").join(" "),
            "zfs get -H -p -o name,property,value -d 1 creation,guid tank/a"
        );
    }
}
