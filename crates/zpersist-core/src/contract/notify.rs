//! `/etc/zpersist/notify-context.json`, rendered by nix/modules/notify.nix
//! and read by zpersist-notify: the host, what each unit does, and where
//! failures are delivered.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::{Contract, Diagnostic};

pub const NOTIFY_VERSION: u64 = 1;

/// How long each delivery (and reading the journal) may take when the
/// context does not say.
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 30;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotifyContext {
    pub version: u32,
    pub host: String,
    #[serde(default = "default_journal_lines")]
    pub journal_lines: usize,
    #[serde(default)]
    pub units: BTreeMap<String, UnitInfo>,
    pub delivery: Delivery,
    /// The wall-clock limit of each delivery and of reading the journal,
    /// in seconds ([`DEFAULT_TIMEOUT_SECONDS`] when absent).
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

fn default_journal_lines() -> usize {
    50
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UnitInfo {
    #[serde(default)]
    pub datasets: Vec<String>,
    pub summary: String,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Delivery {
    pub command: Option<CommandDelivery>,
    pub ntfy: Option<Ntfy>,
    pub webhook: Option<Webhook>,
    pub email: Option<Email>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CommandDelivery {
    pub argv: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Ntfy {
    pub url: String,
    pub topic: String,
    #[serde(default = "default_priority")]
    pub priority: String,
    pub token_file: Option<String>,
    #[serde(default = "default_curl")]
    pub curl: String,
}

fn default_priority() -> String {
    "high".into()
}

fn default_curl() -> String {
    "curl".into()
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Webhook {
    pub url: String,
    #[serde(default = "default_curl")]
    pub curl: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Email {
    pub to: Vec<String>,
    pub from: String,
    pub sendmail: String,
}

impl Contract for NotifyContext {
    const KIND: &'static str = "notification context";
    const VERSION: u64 = NOTIFY_VERSION;
    const READER: &'static str = "zpersist-notify";

    fn problems(&self) -> Vec<Diagnostic> {
        let mut problems: Vec<Diagnostic> = super::zero_timeout(self.timeout_seconds, "delivery")
            .into_iter()
            .collect();
        if let Some(command) = &self.delivery.command {
            if command.argv.is_empty() {
                problems.push(Diagnostic::new("delivery.command.argv is empty"));
            }
        }
        problems
    }
}

impl NotifyContext {
    /// The limit of each delivery and of reading the journal.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_seconds.unwrap_or(DEFAULT_TIMEOUT_SECONDS))
    }

    /// Whether any delivery is configured.
    pub fn delivers(&self) -> bool {
        let d = &self.delivery;
        d.command.is_some() || d.ntfy.is_some() || d.webhook.is_some() || d.email.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whats(text: &str) -> Vec<String> {
        super::super::parse::<NotifyContext>(text)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn contexts_are_read_strictly() {
        let ok = r#"{"version":1,"host":"forge","delivery":{"command":{"argv":["/bin/true"]}}}"#;
        let context = super::super::parse::<NotifyContext>(ok).unwrap();
        assert_eq!(context.journal_lines, 50);
        assert_eq!(context.timeout(), Duration::from_secs(30));
        assert!(context.delivers());
        assert!(whats(r#"{"version":2,"host":"h","delivery":{}}"#)[0]
            .contains("version 2 is not supported"));
        assert!(
            whats(r#"{"version":1,"host":"h","delivery":{},"colour":1}"#)[0]
                .contains("unknown field `colour`")
        );
        assert_eq!(
            whats(
                r#"{"version":1,"host":"h","delivery":{"command":{"argv":[]}},"timeoutSeconds":0}"#
            ),
            [
                "timeoutSeconds: timeoutSeconds is 0; give the seconds each delivery may take",
                "delivery.command.argv is empty"
            ]
        );
    }
}
