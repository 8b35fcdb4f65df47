//! `/etc/zpersist/notify-context.json`, as nix/modules/notify.nix renders it.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

/// How long each delivery (and reading the journal) may take when the
/// context does not say.
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 30;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Context {
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

impl Context {
    /// Parses the context file's text; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Context, String> {
        let context: Context = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if context.version != 1 {
            return Err(format!(
                "version {} is not supported (this zpersist-notify reads version 1)",
                context.version
            ));
        }
        if context.timeout_seconds == Some(0) {
            return Err("timeoutSeconds is 0; give the seconds each delivery may take".into());
        }
        if let Some(command) = &context.delivery.command {
            if command.argv.is_empty() {
                return Err("delivery.command.argv is empty".into());
            }
        }
        Ok(context)
    }

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
