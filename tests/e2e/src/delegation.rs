//! ZFS delegation (`zfs allow` / `zfs unallow`) as data, for zfs-fuse,
//! which has neither: the allow and unallow commands a set of units ran
//! (logged by tests/env/delegation-zfs), replayed in time order against what
//! each unit needed while its main process ran. The rules, from zfs-allow(8):
//!
//! - `zfs allow [-u|-g] WHO PERMS DATASET` grants PERMS to a user (the
//!   default for a name without -u/-g, here) or a group, on DATASET and its
//!   descendants (no -l/-d given);
//! - `zfs unallow [-u|-g] WHO PERMS DATASET` removes exactly those grants
//!   of WHO made on DATASET itself; grants on other datasets stay;
//! - a user holds a permission on a dataset when it, or a group it is in,
//!   was granted it on that dataset or an ancestor.

use std::collections::{BTreeMap, BTreeSet};

use crate::units::Run;

/// One logged `zfs allow`/`unallow`.
#[derive(Debug, Clone)]
pub struct Event {
    pub at: u128,
    pub unit: String,
    pub argv: Vec<String>,
}

/// Reads the log tests/env/delegation-zfs writes.
pub fn read_log(text: &str) -> Vec<Event> {
    let mut events: Vec<Event> = text
        .lines()
        .filter(|l| !l.is_empty())
        .map(|line| {
            let mut fields = line.splitn(3, '\t');
            let at = fields.next().unwrap().parse().expect("a timestamp");
            let unit = fields.next().unwrap_or("?").to_owned();
            let argv = fields
                .next()
                .unwrap_or("")
                .split('\x1f')
                .filter(|a| !a.is_empty())
                .map(str::to_owned)
                .collect();
            Event { at, unit, argv }
        })
        .collect();
    events.sort_by_key(|e| e.at);
    events
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Who {
    User(String),
    Group(String),
}

/// The grants in force.
#[derive(Debug, Default)]
pub struct Grants {
    /// (who, dataset) -> permissions granted there.
    on: BTreeMap<(Who, String), BTreeSet<String>>,
}

impl Grants {
    /// Applies one logged command.
    pub fn apply(&mut self, argv: &[String]) {
        let (verb, rest) = argv.split_first().expect("a zfs subcommand");
        let (who, rest) = match rest {
            [flag, name, rest @ ..] if flag == "-u" => (Who::User(name.clone()), rest),
            [flag, name, rest @ ..] if flag == "-g" => (Who::Group(name.clone()), rest),
            [name, rest @ ..] => (Who::User(name.clone()), rest),
            [] => panic!("zfs {verb} without a user: {argv:?}"),
        };
        let [perms, dataset] = rest else {
            panic!("zfs {verb}: expected PERMS DATASET after the user: {argv:?}");
        };
        let perms = perms.split(',').map(str::to_owned);
        let entry = self.on.entry((who, dataset.clone())).or_default();
        match verb.as_str() {
            "allow" => entry.extend(perms),
            "unallow" => {
                for p in perms {
                    entry.remove(&p);
                }
            }
            other => panic!("not a delegation command: zfs {other}"),
        }
    }

    /// Whether `user` (in `groups`) holds `perm` on `dataset`.
    pub fn holds(&self, user: &str, groups: &[String], perm: &str, dataset: &str) -> bool {
        let mut whos = vec![Who::User(user.to_owned())];
        whos.extend(groups.iter().map(|g| Who::Group(g.clone())));
        let mut current = Some(dataset);
        while let Some(ds) = current {
            for who in &whos {
                if self
                    .on
                    .get(&(who.clone(), ds.to_owned()))
                    .is_some_and(|p| p.contains(perm))
                {
                    return true;
                }
            }
            current = ds.rsplit_once('/').map(|(parent, _)| parent);
        }
        false
    }
}

/// What a unit's main process needs: `perms` on `dataset`.
#[derive(Debug, Clone)]
pub struct Need {
    pub unit: String,
    pub dataset: String,
    pub perms: Vec<String>,
}

/// Each permission a unit's main process needed and lacked while it ran:
/// the first moment it was missing, and which unit's command took it away
/// (or that it was never granted).
pub fn lost_permissions(
    events: &[Event],
    runs: &[Run],
    needs: &[Need],
    user: &str,
    groups: &[String],
) -> Vec<String> {
    let mut problems = Vec::new();
    for need in needs {
        let Some(run) = runs.iter().find(|r| r.unit == need.unit) else {
            panic!("no run of {}", need.unit);
        };
        let mut grants = Grants::default();
        let mut reported = BTreeSet::new();
        let mut check = |grants: &Grants, cause: &str| {
            for perm in &need.perms {
                if !grants.holds(user, groups, perm, &need.dataset) && reported.insert(perm.clone())
                {
                    problems.push(format!(
                        "{} ran without `{perm}` on {} ({cause})",
                        need.unit, need.dataset
                    ));
                }
            }
        };
        let mut checked_start = false;
        for event in events {
            if !checked_start && event.at >= run.main_started {
                check(&grants, "not granted when it started");
                checked_start = true;
            }
            if event.at > run.main_ended {
                break;
            }
            grants.apply(&event.argv);
            if checked_start {
                check(
                    &grants,
                    &format!("after {} ran `zfs {}`", event.unit, event.argv.join(" ")),
                );
            }
        }
        if !checked_start {
            check(&grants, "not granted when it started");
        }
    }
    problems.sort();
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_owned).collect()
    }

    #[test]
    fn a_user_revoke_on_a_parent_leaves_a_group_grant_and_other_datasets_alone() {
        let mut g = Grants::default();
        g.apply(&argv("allow syncoid send,hold tank/services"));
        assert!(g.holds("syncoid", &[], "send", "tank/services/sonarr"));
        g.apply(&argv("allow syncoid send tank/services/sonarr"));
        g.apply(&argv("unallow syncoid send,hold tank/services"));
        assert!(g.holds("syncoid", &[], "send", "tank/services/sonarr"));
        assert!(!g.holds("syncoid", &[], "send", "tank/services"));
        g.apply(&argv("allow -g syncoid send tank/services"));
        g.apply(&argv("unallow syncoid send tank/services"));
        assert!(g.holds("syncoid", &["syncoid".into()], "send", "tank/services"));
        assert!(!g.holds("syncoid", &[], "send", "tank/services"));
    }

    #[test]
    fn a_revoke_during_a_run_is_reported_with_its_cause() {
        let events = vec![
            Event {
                at: 1,
                unit: "a".into(),
                argv: argv("allow syncoid send tank/s"),
            },
            Event {
                at: 5,
                unit: "b".into(),
                argv: argv("unallow syncoid send tank/s"),
            },
        ];
        let run = Run {
            unit: "a".into(),
            main_started: 2,
            main_ended: 10,
            succeeded: true,
            log: String::new(),
        };
        let need = Need {
            unit: "a".into(),
            dataset: "tank/s".into(),
            perms: vec!["send".into()],
        };
        let lost = lost_permissions(&events, &[run.clone()], &[need.clone()], "syncoid", &[]);
        assert_eq!(
            lost,
            ["a ran without `send` on tank/s (after b ran `zfs unallow syncoid send tank/s`)"]
        );
        let later = Run {
            main_ended: 4,
            ..run
        };
        assert!(lost_permissions(&events, &[later], &[need], "syncoid", &[]).is_empty());
    }
}
