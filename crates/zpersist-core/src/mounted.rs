//! Whether a service's datasets are mounted where the service keeps its
//! data: the decision `zpersist-check-mounted` makes before the service may
//! start (`zpersist-<service>-mounted.service`), from what `zfs get
//! mounted,mountpoint` says. A service started on the directory beneath an
//! unmounted dataset would write its state where the dataset hides it later.

use serde::Serialize;

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

/// The report's lines for a dataset in `state`: what is wrong, and what to
/// do; `None` when it is mounted where it should be.
pub fn message_and_help(
    service: &str,
    dataset: &str,
    expected: &str,
    state: &MountState,
) -> Option<(String, String)> {
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
    fn arguments_are_checked() {
        assert_eq!(argument_problem("tank/s", "/var/lib/s"), None);
        assert!(argument_problem("tank/s@x", "/var/lib/s").is_some());
        assert!(argument_problem("tank/s", "none").is_some());
        assert!(argument_problem("tank/s", "var/lib").is_some());
        assert!(argument_problem("tank/s", "/var/../lib").is_some());
    }
}
