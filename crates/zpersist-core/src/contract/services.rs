//! `/etc/zpersist/services.json`, rendered by the NixOS module
//! (zpersist.services) and read by migrate-to-dataset: each service's
//! dataset, directory, units, owner and properties.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Contract, Diagnostic};
use crate::migration::MigrationTarget;
use crate::name::{name_problem, pool_of};

pub const SERVICES_VERSION: u64 = 1;

/// `/etc/zpersist/services.json`, rendered by the NixOS module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicesFile {
    pub version: u64,
    pub pool: String,
    pub services: BTreeMap<String, ServiceEntry>,
}

/// One service's dataset, as declared in the services file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceEntry {
    pub dataset: String,
    pub mountpoint: String,
    #[serde(default)]
    pub units: Vec<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

impl Contract for ServicesFile {
    const KIND: &'static str = "services file";
    const VERSION: u64 = SERVICES_VERSION;
    const READER: &'static str = "migrate-to-dataset";

    fn problems(&self) -> Vec<Diagnostic> {
        let mut problems = Vec::new();
        if let Some(problem) = name_problem(&self.pool) {
            problems
                .push(Diagnostic::new(format!("pool `{}`: {problem}", self.pool)).at_field("pool"));
        }
        for (name, entry) in &self.services {
            let field = format!("services.{name}");
            for problem in entry.target().problems() {
                problems
                    .push(Diagnostic::new(format!("service `{name}`: {problem}")).at_field(&field));
            }
            if pool_of(&entry.dataset) != self.pool {
                problems.push(
                    Diagnostic::new(format!(
                        "service `{name}`: dataset `{}` is not in the pool `{}`",
                        entry.dataset, self.pool
                    ))
                    .at_field(&field),
                );
            }
        }
        problems
    }
}

impl ServicesFile {
    /// Parses and validates the whole file (the one contract loader,
    /// [`super::parse`]); every problem is reported, as text.
    pub fn parse(text: &str) -> Result<ServicesFile, Vec<String>> {
        super::parse::<ServicesFile>(text)
            .map_err(|problems| problems.iter().map(ToString::to_string).collect())
    }
}

impl ServiceEntry {
    pub fn target(&self) -> MigrationTarget {
        MigrationTarget {
            dataset: self.dataset.clone(),
            path: self.mountpoint.clone(),
            units: self.units.clone(),
            user: self.user.clone(),
            group: self.group.clone(),
            mode: self.mode.clone(),
            properties: self.properties.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_files_are_validated_strictly() {
        let ok = r#"{"version":1,"pool":"tank","services":{"sonarr":{"dataset":"tank/services/sonarr","mountpoint":"/var/lib/sonarr","units":["sonarr.service"],"user":"sonarr","group":null,"mode":"0750","properties":{"recordsize":"16K"}}}}"#;
        let file = ServicesFile::parse(ok).unwrap();
        assert_eq!(file.services["sonarr"].target().path, "/var/lib/sonarr");
        for bad in [
            r#"{"version":2,"pool":"tank","services":{}}"#,
            r#"{"version":1,"pool":"tank","services":{},"extra":1}"#,
            r#"{"version":1,"pool":"tank","services":{"a":{"dataset":"tank/a","mountpoint":"/a","colour":"red"}}}"#,
            r#"{"version":1,"pool":"tank","services":{"a":{"dataset":"other/a","mountpoint":"/a"}}}"#,
            r#"{"version":1,"pool":"tank","services":{"a":{"dataset":"tank/a","mountpoint":"a/b"}}}"#,
            r#"{"version":1,"pool":"tank","services":{"a":{"dataset":"tank/a","mountpoint":"/a","properties":{"recordsize":"3K"}}}}"#,
            r#"{"version":1,"pool":"tank","services":{"a":{"dataset":"tank/a","mountpoint":"/a","mode":"999"}}}"#,
            r#"{"version":1,"pool":"tank","services":{"a":{"dataset":"tank/a","mountpoint":"/a","mode":"+755"}}}"#,
            r#"{"version":1,"pool":"tank","services":{"a":{"dataset":"tank/a","mountpoint":"/a","user":"1000"}}}"#,
            r#"{"version":1,"pool":"tank","pool":"tank","services":{}}"#,
        ] {
            assert!(ServicesFile::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn problems_name_the_service_entry() {
        let bad = r#"{"version":1,"pool":"tank","services":{"a":{"dataset":"tank/a","mountpoint":"/a","user":"1000"}}}"#;
        assert_eq!(
            ServicesFile::parse(bad).unwrap_err(),
            ["services.a: service `a`: user `1000` must be a user or group name, not a number or path"]
        );
    }
}
