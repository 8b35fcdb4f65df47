//! What the pool looks like now, as read by one `zfs get` (parsed in
//! zpersist-zfs), and the host facts the planner may ask about.

use std::collections::BTreeMap;

use serde::Serialize;

/// Where a property's value comes from, as `zfs get -o source` says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    Local,
    Default,
    Received,
    Temporary,
    InheritedFrom(String),
    /// `-`: the property does not apply or is not set (user properties).
    None,
}

impl Source {
    pub fn parse(text: &str) -> Source {
        match text {
            "local" => Source::Local,
            "default" => Source::Default,
            "received" => Source::Received,
            "temporary" => Source::Temporary,
            other => match other.strip_prefix("inherited from ") {
                Some(from) => Source::InheritedFrom(from.to_string()),
                None => Source::None,
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObservedValue {
    pub value: String,
    pub source: Source,
}

/// The properties asked for, of every filesystem and volume in the pool.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ObservedPool {
    pub datasets: BTreeMap<String, BTreeMap<String, ObservedValue>>,
}

impl ObservedPool {
    pub fn exists(&self, dataset: &str) -> bool {
        self.datasets.contains_key(dataset)
    }

    /// A property's value; `None` when the dataset is missing or the
    /// property is unset (`-` with source `-`).
    pub fn value(&self, dataset: &str, property: &str) -> Option<&str> {
        let observed = self.datasets.get(dataset)?.get(property)?;
        if observed.source == Source::None && observed.value == "-" {
            return None;
        }
        Some(&observed.value)
    }

    pub fn source(&self, dataset: &str, property: &str) -> Option<&Source> {
        Some(&self.datasets.get(dataset)?.get(property)?.source)
    }

    pub fn insert(&mut self, dataset: &str, property: &str, value: &str, source: Source) {
        self.datasets
            .entry(dataset.to_string())
            .or_default()
            .insert(
                property.to_string(),
                ObservedValue {
                    value: value.to_string(),
                    source,
                },
            );
    }
}

/// Owner, group and permission bits of a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DirState {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

/// Read-only questions about the host. The planner stays pure by asking
/// through this trait; zpersist-host answers for real, tests with a table.
pub trait HostFacts {
    fn user_id(&self, name: &str) -> Option<u32>;
    fn group_id(&self, name: &str) -> Option<u32>;
    /// The directory's owner and mode, `None` if it does not exist.
    fn directory(&self, path: &str) -> Option<DirState>;
    /// Whether the directory has any entry; `None` if it cannot be read.
    fn has_entries(&self, path: &str) -> Option<bool>;
}
