//! Native ZFS encryption, the pure decisions (docs/encryption.md): whether
//! a dataset is locked (its key not loaded: not mounted, its mountpoint
//! directory beneath empty, which must never be taken for an empty
//! dataset), which key opens it (its encryption root and key location),
//! whether a plan's dataset expects to be encrypted (declared, or below a
//! declared encrypted ancestor), and whether a send must be raw.
//!
//! Facts come in as `zfs get` values ([`KEY_PROPERTIES`]); zfs-fuse knows
//! none of them, so callers read them only where a dataset is not mounted
//! (or a plan declares encryption), and treat an unanswered read as
//! "not encrypted".

use serde::Serialize;

use crate::name::parent_of;
use crate::plan::Plan;
use crate::text::shown;

/// The properties that say whether, and by which key, a dataset is encrypted.
pub const KEY_PROPERTIES: [&str; 5] = [
    "encryption",
    "encryptionroot",
    "keystatus",
    "keyformat",
    "keylocation",
];

/// What `zfs get` says of one dataset's encryption (`-` or absent: unset).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KeyFacts {
    pub encryption: Option<String>,
    pub encryption_root: Option<String>,
    pub keystatus: Option<String>,
    pub keyformat: Option<String>,
    pub keylocation: Option<String>,
}

/// Whether a dataset's data can be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "key", rename_all = "kebab-case")]
pub enum KeyState {
    /// `encryption=off` (or a ZFS without encryption).
    NotEncrypted,
    /// Encrypted, the key loaded.
    Available { root: String },
    /// Encrypted, the key not loaded: ZFS cannot mount it, and its
    /// mountpoint shows the directory beneath.
    Locked {
        root: String,
        /// Where the root's key is (`file:///...`, `prompt`, ...), when known.
        keylocation: Option<String>,
    },
}

fn set(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty() && *v != "-")
}

impl KeyFacts {
    /// From a property map as `zfs get` gives it (name → value).
    pub fn from_values<'a>(value: impl Fn(&str) -> Option<&'a str>) -> KeyFacts {
        let take = |p: &str| value(p).map(str::to_string);
        KeyFacts {
            encryption: take("encryption"),
            encryption_root: take("encryptionroot"),
            keystatus: take("keystatus"),
            keyformat: take("keyformat"),
            keylocation: take("keylocation"),
        }
    }

    /// The dataset's key state; `dataset` is its own root when ZFS names none.
    pub fn state(&self, dataset: &str) -> KeyState {
        match set(&self.encryption) {
            None | Some("off") => return KeyState::NotEncrypted,
            Some(_) => {}
        }
        let root = set(&self.encryption_root).unwrap_or(dataset).to_string();
        if set(&self.keystatus) == Some("unavailable") {
            KeyState::Locked {
                root,
                keylocation: set(&self.keylocation)
                    .filter(|l| *l != "none")
                    .map(str::to_string),
            }
        } else {
            KeyState::Available { root }
        }
    }
}

impl KeyState {
    pub fn is_locked(&self) -> bool {
        matches!(self, KeyState::Locked { .. })
    }

    /// `zfs get -p keystatus`'s word for it (`-` when not encrypted).
    pub fn keystatus(&self) -> &'static str {
        match self {
            KeyState::NotEncrypted => "-",
            KeyState::Available { .. } => "available",
            KeyState::Locked { .. } => "unavailable",
        }
    }
}

/// What is wrong and what to do when `dataset` is locked: its files are
/// not there to see, so it is neither empty nor mounted; `consequence`
/// ends the first line ("not starting sonarr, ...", "nothing was moved").
/// `None` when it is not locked.
pub fn locked_problem(
    dataset: &str,
    state: &KeyState,
    consequence: &str,
) -> Option<(String, String)> {
    let KeyState::Locked { root, keylocation } = state else {
        return None;
    };
    let (dataset_shown, root_shown) = (shown(dataset), shown(root));
    let key = match keylocation.as_deref() {
        Some("prompt") => "its passphrase (keylocation=prompt)".to_string(),
        Some(location) => format!("the key at {}", shown(location)),
        None => "its key".to_string(),
    };
    let then = if root == dataset {
        format!("`zfs mount {dataset_shown}`")
    } else {
        format!("`zfs mount {dataset_shown}` (or `zfs mount -a`)")
    };
    Some((
        format!(
            "{dataset_shown} is locked: its encryption key is not loaded (keystatus: unavailable, encryption root {root_shown}); {consequence}"
        ),
        format!(
            "load the key (`zfs load-key {root_shown}`, which reads {key}) and mount it ({then}): its data is there, unreadable until then, and is never restored over"
        ),
    ))
}

/// What `zpersist-load-key DATASET` does, from the dataset's key facts
/// (`None`: it does not exist) and whether the key file a `file://`
/// location names is there (`key_file_present` is asked only then).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum LoadStep {
    /// The root's key is loaded: nothing to do.
    Loaded { root: String },
    /// `zfs load-key ROOT`.
    Load { root: String, location: String },
    /// Nothing can be loaded: what is wrong, and what to do.
    Refuse { what: String, help: String },
}

/// The step for `dataset`, and what a unit of this root depends on.
pub fn load_step(
    dataset: &str,
    facts: Option<&KeyFacts>,
    key_file_present: impl Fn(&str) -> bool,
) -> LoadStep {
    let shown_dataset = shown(dataset);
    let Some(facts) = facts else {
        return LoadStep::Refuse {
            what: format!("{shown_dataset} does not exist, so it has no key to load"),
            help: "zpersist-datasets.service creates it (`journalctl -u zpersist-datasets.service`); is its pool imported (`zpool list`)?".into(),
        };
    };
    match facts.state(dataset) {
        KeyState::NotEncrypted => LoadStep::Refuse {
            what: format!("{shown_dataset} is not encrypted (encryption: {}), so it has no key to load", facts.encryption.as_deref().unwrap_or("-")),
            help: "remove its encryption declaration, or move its data into a new encrypted dataset (docs/encryption.md); nothing was done".into(),
        },
        KeyState::Available { root } => LoadStep::Loaded { root },
        KeyState::Locked { root, keylocation } => {
            let shown_root = shown(&root);
            match keylocation.as_deref() {
                Some(location) if location.starts_with("file://") => {
                    let path = &location["file://".len()..];
                    if key_file_present(path) {
                        LoadStep::Load { root, location: location.to_string() }
                    } else {
                        LoadStep::Refuse {
                            what: format!("{shown_root}'s key file {} is missing, so its datasets stay locked and the services on them stay down", shown(path)),
                            help: format!("put the key at {} (as root, mode 0400), then `systemctl restart zpersist-datasets.service` (it loads the key first, then mounts its datasets); nothing else waits for this key", shown(path)),
                        }
                    }
                }
                Some("prompt") => LoadStep::Refuse {
                    what: format!("{shown_root}'s key is a passphrase (keylocation=prompt), which this unit never asks for"),
                    help: format!("type it: `zfs load-key {shown_root}`, then `systemctl restart zpersist-datasets.service`; or let boot ask for it (`required = true` puts it in boot.zfs.requestEncryptionCredentials)"),
                },
                Some(location) => LoadStep::Load { root, location: location.to_string() },
                None => LoadStep::Refuse {
                    what: format!("{shown_root} has no key location"),
                    help: format!("load its key by hand (`zfs load-key -L file:///PATH {shown_root}`) and set its keylocation (`zfs set keylocation=file:///PATH {shown_root}`)"),
                },
            }
        }
    }
}

/// Whether the plan expects `name` to be encrypted: it declares
/// `encryption` other than `off`, or, declaring none itself, the nearest
/// declared ancestor that declares `encryption` does (ZFS makes a child an
/// encrypted parent's: it inherits the encryption root). The nearest
/// declared ancestor with an `encryption` of its own, when that is why.
pub fn expected_root<'a>(plan: &'a Plan, name: &'a str) -> Option<&'a str> {
    let mut current = Some(name);
    while let Some(n) = current {
        if let Some(value) = plan
            .dataset(n)
            .and_then(|spec| spec.properties.get("encryption"))
        {
            return (value != "off").then_some(n);
        }
        current = parent_of(n);
    }
    None
}

/// Whether a send of a dataset whose `encryption` is `value` must be raw
/// (`zfs send -w`): any encrypted dataset. A plain send of one would
/// decrypt it on the way, and the target would hold plaintext.
pub fn raw_send_required(encryption: Option<&str>) -> bool {
    !matches!(encryption, None | Some("") | Some("-") | Some("off"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(encryption: &str, root: &str, keystatus: &str, location: &str) -> KeyFacts {
        KeyFacts {
            encryption: Some(encryption.into()),
            encryption_root: Some(root.into()),
            keystatus: Some(keystatus.into()),
            keyformat: Some("raw".into()),
            keylocation: Some(location.into()),
        }
    }

    #[test]
    fn locked_available_and_not_encrypted_are_told_apart() {
        assert_eq!(
            facts("off", "-", "-", "none").state("tank/a"),
            KeyState::NotEncrypted
        );
        assert_eq!(KeyFacts::default().state("tank/a"), KeyState::NotEncrypted);
        assert_eq!(
            facts("aes-256-gcm", "tank/a", "available", "file:///k").state("tank/a/b"),
            KeyState::Available {
                root: "tank/a".into()
            }
        );
        // A child's own keylocation is `none`: the root's key opens it.
        let locked = facts("aes-256-gcm", "tank/a", "unavailable", "none").state("tank/a/b");
        assert_eq!(
            locked,
            KeyState::Locked {
                root: "tank/a".into(),
                keylocation: None
            }
        );
        let (what, help) = locked_problem("tank/a/b", &locked, "nothing was moved").unwrap();
        assert_eq!(what, "tank/a/b is locked: its encryption key is not loaded (keystatus: unavailable, encryption root tank/a); nothing was moved");
        assert!(help.starts_with("load the key (`zfs load-key tank/a`, which reads its key) and mount it (`zfs mount tank/a/b` (or `zfs mount -a`))"), "{help}");
        let own =
            facts("aes-256-gcm", "tank/a", "unavailable", "file:///run/keys/a").state("tank/a");
        let (_, help) = locked_problem("tank/a", &own, "x").unwrap();
        assert!(
            help.starts_with("load the key (`zfs load-key tank/a`, which reads the key at file:///run/keys/a) and mount it (`zfs mount tank/a`)"),
            "{help}"
        );
        assert!(locked_problem("tank/a", &KeyState::NotEncrypted, "x").is_none());
    }

    #[test]
    fn load_steps_by_key_state_and_key_file() {
        let locked = facts("aes-256-gcm", "tank/a", "unavailable", "file:///run/keys/a");
        assert_eq!(
            load_step("tank/a", Some(&locked), |p| p == "/run/keys/a"),
            LoadStep::Load {
                root: "tank/a".into(),
                location: "file:///run/keys/a".into()
            }
        );
        let LoadStep::Refuse { what, help } = load_step("tank/a", Some(&locked), |_| false) else {
            panic!()
        };
        assert_eq!(what, "tank/a's key file /run/keys/a is missing, so its datasets stay locked and the services on them stay down");
        assert!(help.starts_with("put the key at /run/keys/a"), "{help}");
        let loaded = facts("aes-256-gcm", "tank/a", "available", "file:///run/keys/a");
        assert_eq!(
            load_step("tank/a", Some(&loaded), |_| false),
            LoadStep::Loaded {
                root: "tank/a".into()
            }
        );
        let prompt = facts("aes-256-gcm", "tank/a", "unavailable", "prompt");
        assert!(matches!(
            load_step("tank/a", Some(&prompt), |_| true),
            LoadStep::Refuse { .. }
        ));
        assert!(matches!(
            load_step("tank/a", None, |_| true),
            LoadStep::Refuse { .. }
        ));
        let plain = facts("off", "-", "-", "none");
        assert!(matches!(
            load_step("tank/a", Some(&plain), |_| true),
            LoadStep::Refuse { .. }
        ));
    }

    #[test]
    fn raw_sends_for_every_encrypted_dataset() {
        assert!(raw_send_required(Some("aes-256-gcm")));
        assert!(raw_send_required(Some("on")));
        assert!(!raw_send_required(Some("off")));
        assert!(!raw_send_required(Some("-")));
        assert!(!raw_send_required(None));
    }
}
