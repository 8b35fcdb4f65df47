//! The event a failed unit becomes (pure).

use serde::Serialize;

use crate::context::Context;

/// What every delivery receives. Field names are part of the interface
/// (docs/notify.md): commands parse them.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub version: u32,
    /// Always "unit-failed" for now.
    pub kind: String,
    pub host: String,
    pub unit: String,
    /// What the unit does, e.g. "replication of tank/services/sonarr to nas (...)".
    pub summary: String,
    pub datasets: Vec<String>,
    /// RFC 3339, UTC.
    pub time: String,
    /// The last lines of the unit's journal, oldest first.
    pub journal: Vec<String>,
    /// Why `journal` is empty or partial, when it is.
    pub journal_note: Option<String>,
}

/// The journal tail, or why there is none.
#[derive(Debug, Clone, PartialEq)]
pub enum JournalTail {
    Lines(Vec<String>),
    Unavailable(String),
}

pub fn build(context: &Context, unit: &str, journal: JournalTail, time: &str) -> Event {
    let info = context.units.get(unit);
    let (journal, journal_note) = match journal {
        JournalTail::Lines(lines) if lines.is_empty() => (
            lines,
            Some(format!(
                "the journal holds no lines for {unit} (is journald running, and did the unit log anything?)"
            )),
        ),
        JournalTail::Lines(lines) => (lines, None),
        JournalTail::Unavailable(why) => (Vec::new(), Some(why)),
    };
    Event {
        version: 1,
        kind: "unit-failed".into(),
        host: context.host.clone(),
        unit: unit.to_owned(),
        summary: match info {
            Some(info) => info.summary.clone(),
            None => format!("{unit} (not listed in zpersist.notify.units)"),
        },
        datasets: info.map(|i| i.datasets.clone()).unwrap_or_default(),
        time: time.to_owned(),
        journal,
        journal_note,
    }
}

impl Event {
    /// One line for titles and subjects.
    pub fn title(&self) -> String {
        format!("{} failed on {}", self.unit, self.host)
    }

    /// A human-readable body: summary, datasets, journal tail.
    pub fn text(&self) -> String {
        let mut text = format!("{}\n{}\n", self.title(), self.summary);
        if !self.datasets.is_empty() {
            text.push_str(&format!("datasets: {}\n", self.datasets.join(", ")));
        }
        text.push_str(&format!("time: {}\n", self.time));
        if let Some(note) = &self.journal_note {
            text.push_str(&format!("journal: {note}\n"));
        }
        if !self.journal.is_empty() {
            text.push('\n');
            for line in &self.journal {
                text.push_str(line);
                text.push('\n');
            }
        }
        text
    }

    pub fn json(&self) -> String {
        serde_json::to_string(self).expect("an event serialises")
    }
}
