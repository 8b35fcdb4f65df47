//! Whether a service's datasets are mounted where the service keeps its
//! data: the decision `zpersist-check-mounted` makes before the service may
//! start (`zpersist-<service>-mounted.service`), from what `zfs get
//! mounted,mountpoint` says. A service started on the directory beneath an
//! unmounted dataset would write its state where the dataset hides it later.

use serde::Serialize;

use crate::encryption::{locked_problem, KeyState};
use crate::facts::Mount;
use crate::name::name_problem;
use crate::plan::{mountpoint_problem, normalize_path};
use crate::text::shown;

/// The properties the check reads.
pub const PROPERTIES: [&str; 2] = ["mounted", "mountpoint"];

/// What zfs says of one dataset (`None`: it does not exist).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// `yes` or `no`, as `zfs get -p mounted` prints it.
    pub mounted: Option<String>,
    pub mountpoint: Option<String>,
}

/// The outcome for one dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum MountState {
    /// Mounted on the path the service uses.
    Mounted,
    /// The dataset does not exist.
    Missing,
    /// It exists, with the right mountpoint, but is not mounted.
    NotMounted { mountpoint: String },
    /// Its mountpoint is another path, or `none`/`legacy`.
    Elsewhere { mountpoint: String, mounted: bool },
    /// It exists, not mounted, and is encrypted with its key not loaded
    /// (zpersist_core::encryption): its path shows the directory beneath,
    /// which is not the dataset's (empty) data.
    Locked {
        root: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        keylocation: Option<String>,
    },
    /// zfs says it is mounted on the path, but the path shows another
    /// filesystem: one mounted over it, or the directory beneath.
    NotShown { view: PathView },
    /// zfs says it is mounted on the path, but what the path shows could
    /// not be read (the path cannot be stat'ed, /proc/self/mountinfo
    /// unreadable).
    Unverified { error: String },
}

/// The state once the host's mount table is consulted: a dataset zfs says
/// is [`MountState::Mounted`] stays so only when its path shows it
/// (`showing`: `zpersist_host::inuse::mount_showing` of the path, or its
/// error); any other state is kept as it is.
pub fn confirm_shown(
    state: MountState,
    dataset: &str,
    expected: &str,
    showing: Result<&Mount, String>,
) -> MountState {
    if state != MountState::Mounted {
        return state;
    }
    match showing.map(|mount| path_view(dataset, expected, mount)) {
        Ok(PathView::Dataset) => MountState::Mounted,
        Ok(view) => MountState::NotShown { view },
        Err(error) => MountState::Unverified { error },
    }
}

/// Whether the state needs the dataset's key facts: it exists and is not
/// mounted (only then is a second `zfs get` of them worth its cost).
pub fn needs_key_facts(state: &MountState) -> bool {
    matches!(
        state,
        MountState::NotMounted { .. } | MountState::Elsewhere { mounted: false, .. }
    )
}

/// The state once the dataset's key is known: an unmounted dataset whose
/// key is not loaded is [`MountState::Locked`]; anything else is kept.
pub fn with_key(state: MountState, key: Option<&KeyState>) -> MountState {
    match key {
        Some(KeyState::Locked { root, keylocation }) if needs_key_facts(&state) => {
            MountState::Locked {
                root: root.clone(),
                keylocation: keylocation.clone(),
            }
        }
        _ => state,
    }
}

/// What is wrong, and what to do, when zfs says `dataset` is mounted on
/// `path` but the path does not show it (or what it shows could not be
/// read): `zpersist-check-mounted` and `zpersist-status` say the same.
pub fn not_shown_problem(
    dataset: &str,
    path: &str,
    state: &MountState,
) -> Option<(String, String)> {
    match state {
        MountState::NotShown { view } => Some((
            format!(
                "{} is mounted (zfs says so), but {}",
                shown(dataset),
                view.problem(dataset, path).unwrap_or_default()
            ),
            view.help(path),
        )),
        MountState::Unverified { error } => Some((
            format!(
                "{} is mounted on {} (zfs says so), but what the path shows cannot be read: {}",
                shown(dataset),
                shown(path),
                shown(error)
            ),
            format!(
                "see `findmnt {}` and `stat {}`; until the path is seen to show the dataset, nothing says the service would write to it",
                shown(path),
                shown(path)
            ),
        )),
        _ => None,
    }
}

/// Whether the dataset is mounted on `expected` (an absolute path).
pub fn mount_state(expected: &str, observed: Option<&Observed>) -> MountState {
    let Some(observed) = observed else {
        return MountState::Missing;
    };
    let mountpoint = observed.mountpoint.clone().unwrap_or_else(|| "-".into());
    let mounted = observed.mounted.as_deref() == Some("yes");
    let same_path =
        mountpoint.starts_with('/') && normalize_path(&mountpoint) == normalize_path(expected);
    match (same_path, mounted) {
        (true, true) => MountState::Mounted,
        (true, false) => MountState::NotMounted { mountpoint },
        (false, _) => MountState::Elsewhere {
            mountpoint,
            mounted,
        },
    }
}

/// What a dataset's path really shows, from the host's mount table (the
/// filesystem whose device the path has): zfs may say a dataset is mounted
/// there while another filesystem covers it (a tmpfs, a stray bind mount),
/// and a service, preseed or a check walking the path would then see the
/// cover, never the dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "shows", rename_all = "kebab-case")]
pub enum PathView {
    /// The path is the dataset's own mount.
    Dataset,
    /// Another filesystem is mounted on the path itself.
    Covered { by: String },
    /// The path is no mountpoint: it shows a directory of the filesystem
    /// mounted above it.
    Beneath { of: String, on: String },
}

/// Decides [`PathView`] from the mount whose files `path` shows
/// (`zpersist_host::inuse::mount_showing`).
pub fn path_view(dataset: &str, path: &str, showing: &Mount) -> PathView {
    let at_path = normalize_path(&showing.mountpoint) == normalize_path(path);
    match (at_path, showing.is_zfs_dataset(dataset)) {
        (true, true) => PathView::Dataset,
        (true, false) => PathView::Covered {
            by: showing.describe(),
        },
        (false, _) => PathView::Beneath {
            of: showing.describe(),
            on: showing.mountpoint.clone(),
        },
    }
}

impl PathView {
    /// What is wrong, for a message that goes on "DATASET is mounted (zfs
    /// says so), but PATH ..."; `None` for [`PathView::Dataset`].
    pub fn problem(&self, dataset: &str, path: &str) -> Option<String> {
        let (dataset, path) = (shown(dataset), shown(path));
        match self {
            PathView::Dataset => None,
            PathView::Covered { by } => Some(format!(
                "{path} does not show {dataset}: {by} is mounted over it, hiding the dataset"
            )),
            PathView::Beneath { of, on } => Some(format!(
                "{path} does not show {dataset}: it is a directory of {of} mounted on {}",
                shown(on)
            )),
        }
    }

    /// What to do about it.
    pub fn help(&self, path: &str) -> String {
        let path = shown(path);
        format!("see what is mounted there (`findmnt {path}`, `grep {path} /proc/self/mountinfo`), unmount what covers the dataset (`umount {path}`), then start the service again")
    }
}

/// The report's lines for a dataset in `state`: what is wrong, and what to
/// do; `None` when it is mounted where it should be.
pub fn message_and_help(
    service: &str,
    dataset: &str,
    expected: &str,
    state: &MountState,
) -> Option<(String, String)> {
    let not_shown = not_shown_problem(dataset, expected, state);
    let (dataset, expected) = (shown(dataset), shown(expected));
    let not_mounted = |mounted: bool, mountpoint: &str| {
        format!(
            "{dataset} is not mounted on {expected} (mounted: {}, mountpoint: {}); not starting {service}, which would write to the directory beneath",
            if mounted { "yes" } else { "no" },
            shown(mountpoint)
        )
    };
    let restart = format!(
        "journalctl -u zpersist-datasets.service says why; fix it, run `systemctl restart zpersist-datasets.service` and start {service}'s units again"
    );
    Some(match state {
        MountState::Mounted => return None,
        MountState::Missing => (
            format!("{service} keeps its data on {dataset}, which zfs cannot read: the dataset does not exist"),
            format!("journalctl -u zpersist-datasets.service says why it is missing; once it is fixed, start {service}'s units again"),
        ),
        MountState::NotMounted { mountpoint } => (not_mounted(false, mountpoint), restart),
        MountState::Locked { root, keylocation } => {
            let key = KeyState::Locked { root: root.clone(), keylocation: keylocation.clone() };
            let (what, help) = locked_problem(
                &dataset,
                &key,
                &format!("not starting {service}, which would write to the directory beneath"),
            )?;
            (what, format!("{help}; then start {service}'s units again"))
        }
        MountState::NotShown { .. } | MountState::Unverified { .. } => {
            let (what, help) = not_shown?;
            let why = match state {
                MountState::NotShown { .. } => ", which would write there and not to the dataset",
                _ => "",
            };
            (format!("{what}; not starting {service}{why}"), help)
        }
        MountState::Elsewhere { mountpoint, mounted } => (
            not_mounted(*mounted, mountpoint),
            format!("{restart}; if the data really moved to {}, declare that path (zpersist.services.{service}.mountpoint or the dataset's zpersist.datasets entry)", shown(mountpoint)),
        ),
    })
}

/// Why the arguments cannot be checked: a dataset name ZFS would refuse,
/// or a mountpoint that is not an absolute path.
pub fn argument_problem(dataset: &str, mountpoint: &str) -> Option<String> {
    if let Some(why) = name_problem(dataset) {
        return Some(format!("dataset `{}`: {why}", shown(dataset)));
    }
    if !mountpoint.starts_with('/') {
        return Some(format!(
            "mountpoint `{}` of {dataset} must be an absolute path",
            shown(mountpoint)
        ));
    }
    mountpoint_problem(mountpoint)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(mountpoint: &str, fstype: &str, source: &str, root: &str) -> Mount {
        Mount {
            mountpoint: mountpoint.into(),
            fstype: fstype.into(),
            source: source.into(),
            root: root.into(),
            device: "0:50".into(),
        }
    }

    #[test]
    fn a_path_shows_its_dataset_only_when_the_dataset_is_mounted_there_whole() {
        let ds = "tank/services/sonarr";
        let at = "/var/lib/sonarr";
        for fstype in ["zfs", "fuse.zfs"] {
            assert_eq!(
                path_view(ds, at, &mount(at, fstype, ds, "/")),
                PathView::Dataset
            );
            assert_eq!(
                path_view(ds, "/var/lib/sonarr/", &mount(at, fstype, ds, "/")),
                PathView::Dataset
            );
        }
        let covered = path_view(ds, at, &mount(at, "tmpfs", "tmpfs", "/"));
        assert_eq!(
            covered,
            PathView::Covered {
                by: "tmpfs from tmpfs".into()
            }
        );
        assert!(covered
            .problem(ds, at)
            .unwrap()
            .contains("tmpfs from tmpfs is mounted over it"));
        // A bind mount of a directory of the dataset itself is not the dataset.
        assert!(matches!(
            path_view(ds, at, &mount(at, "zfs", ds, "/old")),
            PathView::Covered { .. }
        ));
        // Another dataset mounted there.
        assert!(matches!(
            path_view(ds, at, &mount(at, "zfs", "tank/other", "/")),
            PathView::Covered { .. }
        ));
        // Not a mountpoint at all: the directory beneath, on the root.
        assert_eq!(
            path_view(ds, at, &mount("/", "ext4", "/dev/vda", "/")),
            PathView::Beneath {
                of: "ext4 from /dev/vda".into(),
                on: "/".into()
            }
        );
        assert_eq!(PathView::Dataset.problem(ds, at), None);
    }

    fn seen(mounted: &str, mountpoint: &str) -> Observed {
        Observed {
            mounted: Some(mounted.into()),
            mountpoint: Some(mountpoint.into()),
        }
    }

    #[test]
    fn states() {
        assert_eq!(
            mount_state("/var/lib/a", Some(&seen("yes", "/var/lib/a"))),
            MountState::Mounted
        );
        assert_eq!(
            mount_state("/var/lib/a/", Some(&seen("yes", "/var/lib//a"))),
            MountState::Mounted,
            "one path spelled two ways"
        );
        assert_eq!(mount_state("/var/lib/a", None), MountState::Missing);
        assert_eq!(
            mount_state("/var/lib/a", Some(&seen("no", "/var/lib/a"))),
            MountState::NotMounted {
                mountpoint: "/var/lib/a".into()
            }
        );
        assert_eq!(
            mount_state("/var/lib/a", Some(&seen("yes", "/srv/a"))),
            MountState::Elsewhere {
                mountpoint: "/srv/a".into(),
                mounted: true
            }
        );
        assert_eq!(
            mount_state("/var/lib/a", Some(&seen("no", "legacy"))),
            MountState::Elsewhere {
                mountpoint: "legacy".into(),
                mounted: false
            }
        );
    }

    #[test]
    fn messages_name_the_dataset_and_the_service() {
        let (message, help) = message_and_help(
            "sonarr",
            "tank/s",
            "/var/lib/s",
            &MountState::NotMounted {
                mountpoint: "/var/lib/s".into(),
            },
        )
        .unwrap();
        assert_eq!(message, "tank/s is not mounted on /var/lib/s (mounted: no, mountpoint: /var/lib/s); not starting sonarr, which would write to the directory beneath");
        assert!(help.contains("systemctl restart zpersist-datasets.service"));
        assert_eq!(
            message_and_help("sonarr", "tank/s", "/var/lib/s", &MountState::Mounted),
            None
        );
        let (message, _) = message_and_help(
            "sonarr",
            "tank/s",
            "/var/lib/s",
            &MountState::Elsewhere {
                mountpoint: "/x\n".into(),
                mounted: true,
            },
        )
        .unwrap();
        assert!(
            message.contains("/x\\n"),
            "control characters are shown escaped: {message}"
        );
    }

    #[test]
    fn mounted_stays_mounted_only_when_the_path_shows_the_dataset() {
        let (ds, at) = ("tank/s", "/var/lib/s");
        let own = mount(at, "fuse.zfs", ds, "/");
        let cover = mount(at, "tmpfs", "cover", "/");
        assert_eq!(
            confirm_shown(MountState::Mounted, ds, at, Ok(&own)),
            MountState::Mounted
        );
        let covered = confirm_shown(MountState::Mounted, ds, at, Ok(&cover));
        assert_eq!(
            covered,
            MountState::NotShown {
                view: PathView::Covered {
                    by: "tmpfs from cover".into()
                }
            }
        );
        let (message, help) = message_and_help("sonarr", ds, at, &covered).unwrap();
        assert_eq!(message, "tank/s is mounted (zfs says so), but /var/lib/s does not show tank/s: tmpfs from cover is mounted over it, hiding the dataset; not starting sonarr, which would write there and not to the dataset");
        assert!(help.contains("umount /var/lib/s"), "{help}");
        let unread = confirm_shown(MountState::Mounted, ds, at, Err("gone".into()));
        assert_eq!(
            unread,
            MountState::Unverified {
                error: "gone".into()
            }
        );
        assert!(message_and_help("sonarr", ds, at, &unread)
            .unwrap()
            .0
            .contains("cannot be read: gone; not starting sonarr"));
        // Not mounted stays not mounted, whatever the path shows.
        let not = MountState::NotMounted {
            mountpoint: at.into(),
        };
        assert_eq!(confirm_shown(not.clone(), ds, at, Ok(&cover)), not);
        assert_eq!(
            serde_json::to_value(&covered).unwrap(),
            serde_json::json!({"state": "not-shown", "view": {"shows": "covered", "by": "tmpfs from cover"}})
        );
    }

    #[test]
    fn arguments_are_checked() {
        assert_eq!(argument_problem("tank/s", "/var/lib/s"), None);
        assert!(argument_problem("tank/s@x", "/var/lib/s").is_some());
        assert!(argument_problem("tank/s", "none").is_some());
        assert!(argument_problem("tank/s", "var/lib").is_some());
        assert!(argument_problem("tank/s", "/var/../lib").is_some());
    }
}
