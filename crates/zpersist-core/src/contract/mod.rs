//! The JSON files the NixOS modules write and the binaries read: one home,
//! one loader, one diagnostic type.
//!
//! Every contract is a serde type with a `version` field and
//! `#[serde(deny_unknown_fields)]` on each of its structs, implementing
//! [`Contract`]. [`parse`] reads it strictly: duplicate keys refused
//! ([`crate::json::parse_strict`]), the version checked before anything
//! else, unknown fields refused, then the contract's own rules
//! ([`Contract::problems`]); every problem found is a [`Diagnostic`].
//!
//! | file | type | read by |
//! | --- | --- | --- |
//! | the datasets plan | [`crate::plan::Plan`] | ensure-datasets |
//! | `/etc/zpersist/services.json` | [`services::ServicesFile`] | migrate-to-dataset |
//! | `/etc/zpersist/replication.json` | [`replication::ReplicationConfig`] | replication-lag |
//! | `/etc/zpersist/notify-context.json` | [`notify::NotifyContext`] | zpersist-notify |
//! | a service's preseed plan | [`crate::preseed::PreseedPlan`] | preseed-restore |
//! | `/etc/zpersist/pitr.json` | [`crate::pitr::contract::PitrContract`] | the `pitr-*` binaries |
//!
//! A new contract is a module here (or beside the decisions it feeds, as
//! preseed's and PITR's are): its structs with `deny_unknown_fields`, a `version` field,
//! `impl Contract` naming its kind, version and reader, and the rules
//! serde cannot say in [`Contract::problems`], each with where it is and
//! what to do. Its binary reads it with `zpersist_host::read_contract`
//! and reports with zpersist-report; tests cover a wrong version, an
//! unknown field and each rule.

pub mod notify;
pub mod replication;
pub mod services;

use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::text::shown;

/// One thing wrong, where it is, and what to do about it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// What is wrong, in a sentence that reads after its place.
    pub what: String,
    #[serde(rename = "where", skip_serializing_if = "Where::is_empty")]
    pub at: Where,
    /// What to do about it, when there is more to say than `what`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

/// Where a [`Diagnostic`] is, as precisely as known.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Where {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// A field or entry in the file (`services.sonarr`, `targets.nas`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl Where {
    pub fn is_empty(&self) -> bool {
        self.file.is_none() && self.dataset.is_none() && self.field.is_none()
    }
}

impl Diagnostic {
    pub fn new(what: impl Into<String>) -> Diagnostic {
        Diagnostic {
            what: what.into(),
            ..Diagnostic::default()
        }
    }

    pub fn in_file(mut self, file: impl Into<String>) -> Diagnostic {
        self.at.file = Some(file.into());
        self
    }

    pub fn on_dataset(mut self, dataset: impl Into<String>) -> Diagnostic {
        self.at.dataset = Some(dataset.into());
        self
    }

    pub fn at_field(mut self, field: impl Into<String>) -> Diagnostic {
        self.at.field = Some(field.into());
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    /// `FILE: DATASET: FIELD: WHAT`, each part as far as known, control
    /// characters escaped so that one diagnostic is one line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in [&self.at.file, &self.at.dataset, &self.at.field]
            .into_iter()
            .flatten()
        {
            write!(f, "{}: ", shown(part))?;
        }
        f.write_str(&shown(&self.what))
    }
}

/// A JSON file a NixOS module writes and a binary reads.
pub trait Contract: DeserializeOwned {
    /// What the file is, as messages name it ("plan", "services file").
    const KIND: &'static str;
    /// The one version this reader reads.
    const VERSION: u64;
    /// The program that reads it, as messages name it.
    const READER: &'static str;

    /// Everything wrong that serde's shape does not say (names, ranges,
    /// references between entries). None by default.
    fn problems(&self) -> Vec<Diagnostic> {
        Vec::new()
    }

    /// Called once parsed, before [`Contract::problems`] (to build an
    /// index, say).
    fn loaded(&mut self) {}
}

/// A `timeoutSeconds` of 0, which would kill every call at once: `each`
/// says what it bounds ("listing", "delivery").
pub fn zero_timeout(timeout_seconds: Option<u64>, each: &str) -> Option<Diagnostic> {
    (timeout_seconds == Some(0)).then(|| {
        Diagnostic::new(format!(
            "timeoutSeconds is 0; give the seconds each {each} may take"
        ))
        .at_field("timeoutSeconds")
    })
}

/// Parses and checks a contract's text: strict JSON (no key twice), the
/// version first, the shape (unknown fields refused), then the contract's
/// own rules. `Err` holds every problem found.
pub fn parse<C: Contract>(text: &str) -> Result<C, Vec<Diagnostic>> {
    let value = crate::json::parse_strict(text)
        .map_err(|e| vec![Diagnostic::new(format!("not valid JSON: {e}"))])?;
    match value.get("version") {
        Some(v) if v.as_u64() == Some(C::VERSION) => {}
        Some(v) => {
            return Err(vec![Diagnostic::new(format!(
                "{} version {v} is not supported; this {} reads version {}",
                C::KIND,
                C::READER,
                C::VERSION
            ))
            .with_help(format!(
                "the {} and {} come from the same zpersist: rebuild the system so that both are of one version",
                C::KIND,
                C::READER
            ))])
        }
        None => {
            return Err(vec![Diagnostic::new(format!(
                "missing field `version` (this {} reads version {})",
                C::READER,
                C::VERSION
            ))])
        }
    }
    // The shape's error names the field where it is (`services.sonarr`,
    // `sources[1].replica`), not only its own name.
    let mut contract: C = serde_path_to_error::deserialize(value).map_err(|e| {
        let field = e.path().to_string();
        let problem = Diagnostic::new(e.into_inner().to_string());
        vec![if field.is_empty() || field == "." {
            problem
        } else {
            problem.at_field(field)
        }]
    })?;
    contract.loaded();
    let problems = contract.problems();
    if problems.is_empty() {
        Ok(contract)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Example {
        #[allow(dead_code)]
        version: u64,
        names: Vec<String>,
    }

    impl Contract for Example {
        const KIND: &'static str = "example file";
        const VERSION: u64 = 3;
        const READER: &'static str = "example-reader";

        fn problems(&self) -> Vec<Diagnostic> {
            self.names
                .iter()
                .filter(|n| n.is_empty())
                .map(|_| Diagnostic::new("a name is empty").at_field("names"))
                .collect()
        }
    }

    fn whats(text: &str) -> Vec<String> {
        parse::<Example>(text)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn one_loader_checks_json_version_shape_and_rules_in_that_order() {
        assert_eq!(
            parse::<Example>(r#"{"version":3,"names":["a"]}"#)
                .unwrap()
                .names,
            ["a"]
        );
        assert!(whats("{").contains(
            &"not valid JSON: EOF while parsing an object at line 1 column 1".to_string()
        ));
        assert!(whats(r#"{"version":3,"version":3,"names":[]}"#)[0]
            .contains("`version` is given twice"));
        assert_eq!(
            whats(r#"{"version":2,"names":"not even a list"}"#),
            ["example file version 2 is not supported; this example-reader reads version 3"]
        );
        assert_eq!(
            whats(r#"{"names":[]}"#),
            ["missing field `version` (this example-reader reads version 3)"]
        );
        assert!(whats(r#"{"version":3,"names":[],"extra":1}"#)[0].contains("unknown field `extra`"));
        assert_eq!(
            whats(r#"{"version":3,"names":["", ""]}"#),
            ["names: a name is empty", "names: a name is empty"]
        );
    }

    #[test]
    fn a_wrong_shape_names_the_field_where_it_is() {
        assert_eq!(
            whats(r#"{"version":3,"names":["a", 7]}"#),
            ["names[1]: invalid type: integer `7`, expected a string"]
        );
        let problems = parse::<Example>(r#"{"version":3,"names":["a", 7]}"#).unwrap_err();
        assert_eq!(problems[0].at.field.as_deref(), Some("names[1]"));
        // A field missing at the top has no place but its name.
        assert_eq!(whats(r#"{"version":3}"#), ["missing field `names`"]);
    }

    #[test]
    fn a_diagnostic_says_where_then_what_on_one_line_and_serialises_as_data() {
        let d = Diagnostic::new("is declared\ntwice")
            .on_dataset("tank/a")
            .in_file("/etc/plan.json")
            .with_help("remove one");
        assert_eq!(d.to_string(), "/etc/plan.json: tank/a: is declared\\ntwice");
        assert_eq!(
            serde_json::to_value(&d).unwrap(),
            serde_json::json!({"what": "is declared\ntwice", "where": {"file": "/etc/plan.json", "dataset": "tank/a"}, "help": "remove one"})
        );
        assert_eq!(
            serde_json::to_value(Diagnostic::new("x")).unwrap(),
            serde_json::json!({"what": "x"})
        );
    }
}
