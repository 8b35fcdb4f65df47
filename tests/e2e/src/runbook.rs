//! The runbooks under docs/runbooks/, read as programs: their ```sh blocks
//! in order, each with the marker that precedes it, so that
//! tests/e2e/tests/runbooks.rs runs what a person would type.
//!
//! Markers (an HTML comment on the line just above the fence, invisible
//! when the Markdown is rendered):
//! - `<!-- runbook: settings -->`: the "set these" block; the test
//!   replaces it with its own values for exactly the same variables;
//! - `<!-- runbook: skip (REASON) -->`: not run, for a stated reason
//!   (`systemctl`, `nixos-rebuild`: nothing a test machine has);
//! - `<!-- runbook: only NAME -->`: one of several alternatives (a restore
//!   source); run only when the test runs alternative NAME.
//!
//! Every other ```sh block is run, and a ```sh block preceded by any other
//! `runbook:` comment is an error: nothing is skipped silently.

use std::collections::BTreeSet;
use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};

use crate::repo_root;

/// What the marker above a block says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mark {
    Run,
    Settings,
    Skip(String),
    Only(String),
}

/// One ```sh block.
#[derive(Debug, Clone)]
pub struct Block {
    /// 1-based line of the opening fence.
    pub line: usize,
    pub code: String,
    pub mark: Mark,
}

/// A runbook's blocks, or what is wrong with its markers.
pub fn parse(text: &str) -> Result<Vec<Block>, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let Some(info) = line.strip_prefix("```") else {
            i += 1;
            continue;
        };
        let start = i;
        let mut code = String::new();
        i += 1;
        while i < lines.len() && !lines[i].starts_with("```") {
            code.push_str(lines[i]);
            code.push('\n');
            i += 1;
        }
        if i == lines.len() {
            return Err(format!("line {}: the block never closes", start + 1));
        }
        i += 1;
        let previous = start.checked_sub(1).map(|p| lines[p].trim()).unwrap_or("");
        let marker = previous
            .strip_prefix("<!-- runbook:")
            .and_then(|m| m.strip_suffix("-->"))
            .map(str::trim);
        if info.trim() != "sh" {
            if marker.is_some() {
                return Err(format!(
                    "line {}: a runbook marker above a ```{info} block (only ```sh blocks run)",
                    start + 1
                ));
            }
            continue;
        }
        let mark = match marker {
            None => Mark::Run,
            Some("settings") => Mark::Settings,
            Some(m) if m.starts_with("skip") => {
                let reason = m
                    .strip_prefix("skip")
                    .map(str::trim)
                    .and_then(|r| r.strip_prefix('('))
                    .and_then(|r| r.strip_suffix(')'))
                    .map(str::trim)
                    .unwrap_or("");
                if reason.is_empty() {
                    return Err(format!(
                        "line {}: a skip needs its reason: <!-- runbook: skip (why) -->",
                        start + 1
                    ));
                }
                Mark::Skip(reason.to_owned())
            }
            Some(m) if m.starts_with("only ") => Mark::Only(m["only ".len()..].trim().to_owned()),
            Some(other) => {
                return Err(format!(
                    "line {}: unknown runbook marker {other:?} (settings, skip (why), only NAME)",
                    start + 1
                ))
            }
        };
        blocks.push(Block {
            line: start + 1,
            code,
            mark,
        });
    }
    Ok(blocks)
}

/// The shell variables a block assigns (`NAME=` at the start of a word,
/// `export` or not), comments left out.
pub fn assigned(code: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in code.lines() {
        let line = line.split(" #").next().unwrap_or("");
        if line.trim_start().starts_with('#') {
            continue;
        }
        for word in line.split_whitespace() {
            if let Some((name, _)) = word.split_once('=') {
                let mut chars = name.chars();
                let first_ok = chars
                    .next()
                    .is_some_and(|c| c.is_ascii_uppercase() || c == '_');
                if first_ok
                    && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                {
                    names.insert(name.to_owned());
                }
            }
        }
    }
    names
}

/// The literal values a block assigns (`NAME=value`, `NAME="value"`,
/// `export NAME=value`), leaving out values computed by the shell (with
/// `$`), for checking a runbook's "set these" block against the example
/// host it names.
pub fn literal_values(code: &str) -> std::collections::BTreeMap<String, String> {
    let mut values = std::collections::BTreeMap::new();
    for line in code.lines() {
        let line = line.split(" #").next().unwrap_or("");
        let mut rest = line.trim();
        while !rest.is_empty() {
            let (word, after) = match rest.find('=') {
                Some(eq)
                    if rest[..eq]
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                        && eq > 0 =>
                {
                    let name = &rest[..eq];
                    let value_and_more = &rest[eq + 1..];
                    let (value, after) = if let Some(quoted) = value_and_more.strip_prefix('"') {
                        let end = quoted.find('"').unwrap_or(quoted.len());
                        (&quoted[..end], quoted.get(end + 1..).unwrap_or(""))
                    } else if let Some(quoted) = value_and_more.strip_prefix('\'') {
                        let end = quoted.find('\'').unwrap_or(quoted.len());
                        (&quoted[..end], quoted.get(end + 1..).unwrap_or(""))
                    } else {
                        let end = value_and_more
                            .find(char::is_whitespace)
                            .unwrap_or(value_and_more.len());
                        (&value_and_more[..end], &value_and_more[end..])
                    };
                    ((name, Some(value)), after)
                }
                _ => {
                    let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                    (("", None), &rest[end..])
                }
            };
            if let (name, Some(value)) = word {
                if !value.contains('$') {
                    values.insert(name.to_owned(), value.to_owned());
                }
            }
            rest = after.trim_start();
        }
    }
    values
}

/// A runbook file, parsed.
pub struct Runbook {
    pub path: Utf8PathBuf,
    pub blocks: Vec<Block>,
}

/// The runbooks directory.
pub fn dir() -> Utf8PathBuf {
    repo_root().join("docs/runbooks")
}

/// Every runbook file name (`*.md`) in docs/runbooks.
pub fn all_names() -> BTreeSet<String> {
    std::fs::read_dir(dir())
        .expect("docs/runbooks exists")
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".md"))
        .collect()
}

/// What a run of a runbook printed.
#[derive(Debug)]
pub struct Ran {
    pub ok: bool,
    pub output: String,
}

impl Runbook {
    pub fn load(name: &str) -> Runbook {
        let path = dir().join(name);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let blocks = parse(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
        Runbook { path, blocks }
    }

    /// [`Self::load`], checking that exactly the blocks a test expects
    /// are skipped: the i-th skipped block's code contains `skipped[i]`
    /// (`"systemctl stop"`, `"nixos-rebuild"`). A new skip is then a
    /// change of the test too.
    pub fn load_skipping(name: &str, skipped: &[&str]) -> Runbook {
        let rb = Runbook::load(name);
        let actual: Vec<&Block> = rb
            .blocks
            .iter()
            .filter(|b| matches!(b.mark, Mark::Skip(_)))
            .collect();
        let matches = actual.len() == skipped.len()
            && actual.iter().zip(skipped).all(|(b, s)| b.code.contains(s));
        assert!(
            matches,
            "{}: the skipped blocks are not the ones the test expects ({skipped:?}):\n{}",
            rb.path,
            actual
                .iter()
                .map(|b| format!("line {}: {}", b.line, b.code.trim()))
                .collect::<Vec<_>>()
                .join("\n")
        );
        rb
    }

    /// The one settings block (panics when there is none or several).
    pub fn settings(&self) -> &Block {
        let settings: Vec<&Block> = self
            .blocks
            .iter()
            .filter(|b| b.mark == Mark::Settings)
            .collect();
        assert_eq!(
            settings.len(),
            1,
            "{}: exactly one <!-- runbook: settings --> block is needed",
            self.path
        );
        assert!(
            std::ptr::eq(settings[0], &self.blocks[0]),
            "{}: the settings block comes first, before any command",
            self.path
        );
        settings[0]
    }

    /// The alternatives (`only NAME`) the runbook offers.
    pub fn alternatives(&self) -> BTreeSet<String> {
        self.blocks
            .iter()
            .filter_map(|b| match &b.mark {
                Mark::Only(n) => Some(n.clone()),
                _ => None,
            })
            .collect()
    }

    /// The script a test runs: `settings` (the test's values, which must
    /// assign exactly the variables the runbook's settings block does),
    /// then every block to run for `alternative`, each announced on
    /// stderr with its line so a failure names it.
    pub fn script(&self, settings: &str, alternative: Option<&str>) -> String {
        self.script_of(settings, alternative, 0..self.blocks.len())
    }

    fn script_of(
        &self,
        settings: &str,
        alternative: Option<&str>,
        range: std::ops::Range<usize>,
    ) -> String {
        let theirs = assigned(&self.settings().code);
        let ours = assigned(settings);
        assert_eq!(
            ours,
            theirs,
            "{}: the test's settings must set exactly the runbook's variables (line {})",
            self.path,
            self.settings().line
        );
        if let Some(a) = alternative {
            assert!(
                self.alternatives().contains(a),
                "{}: no alternative {a:?} (has {:?})",
                self.path,
                self.alternatives()
            );
        }
        let mut script = String::from("set -euo pipefail\n");
        script.push_str(&format!(
            "echo '### {}:{} settings (the test values)' >&2\n",
            self.path.file_name().unwrap(),
            self.settings().line
        ));
        script.push_str(settings);
        script.push('\n');
        for (i, block) in self.blocks.iter().enumerate() {
            if !range.contains(&i) {
                continue;
            }
            let run = match &block.mark {
                Mark::Run => true,
                Mark::Only(n) => Some(n.as_str()) == alternative,
                Mark::Settings | Mark::Skip(_) => false,
            };
            if run {
                script.push_str(&format!(
                    "echo '### {}:{}' >&2\n",
                    self.path.file_name().unwrap(),
                    block.line
                ));
                script.push_str(&block.code);
            }
        }
        script
    }

    /// The index of the first block whose code contains `text`.
    pub fn block_with(&self, text: &str) -> usize {
        self.blocks
            .iter()
            .position(|b| b.code.contains(text))
            .unwrap_or_else(|| panic!("{}: no block contains {text:?}", self.path))
    }

    /// [`Self::script`] limited to the blocks `range` (indices into
    /// `blocks`), after the settings: for a test that changes something
    /// between two blocks (a service writing while a copy runs). Variables
    /// the blocks before the range captured are not there.
    pub fn script_range(
        &self,
        settings: &str,
        alternative: Option<&str>,
        range: std::ops::Range<usize>,
    ) -> String {
        self.script_of(settings, alternative, range)
    }

    /// Runs [`Self::script`] with `bash -euo pipefail`, `path_front`
    /// before PATH, bounded by `limit`.
    pub fn run(
        &self,
        settings: &str,
        alternative: Option<&str>,
        path_front: &[&Utf8Path],
        limit: Duration,
    ) -> Ran {
        self.run_script(&self.script(settings, alternative), path_front, limit)
    }

    /// Runs a script of this runbook (see [`Self::script_range`]).
    pub fn run_script(&self, script: &str, path_front: &[&Utf8Path], limit: Duration) -> Ran {
        let mut path: Vec<String> = path_front.iter().map(|p| p.to_string()).collect();
        path.push(std::env::var("PATH").unwrap_or_default());
        // From a directory every user reaches: the runbooks run
        // `runuser -u postgres`, which inherits it.
        let handle = duct::cmd("bash", ["-euo", "pipefail", "-c", script])
            .dir(crate::reachable::NEUTRAL_CWD)
            .env("PATH", path.join(":"))
            .stdin_null()
            .stderr_to_stdout()
            .stdout_capture()
            .unchecked()
            .start()
            .expect("bash runs");
        let output = match handle.wait_timeout(limit).expect("bash is waited for") {
            Some(out) => out.clone(),
            None => {
                let _ = handle.kill();
                panic!("{}: still running after {limit:?}", self.path);
            }
        };
        Ran {
            ok: output.status.success(),
            output: String::from_utf8_lossy(&output.stdout).into_owned(),
        }
    }

    /// [`Self::script`] run in the OpenZFS guest (crate::guest) with
    /// `bash -euo pipefail`, bounded by `limit`: for a runbook whose
    /// commands only OpenZFS has (native encryption, `zfs change-key`).
    /// stderr follows stdout in the output, the `###` lines among them.
    pub fn run_in_guest(
        &self,
        guest: &crate::guest::Guest,
        settings: &str,
        alternative: Option<&str>,
        limit: Duration,
    ) -> Ran {
        let script = format!(
            "exec 2>&1
{}",
            self.script(settings, alternative)
        );
        let out = guest.run_full(&["bash", "-euo", "pipefail", "-c", &script], None, limit);
        Ran {
            ok: out.success(),
            output: format!("{}{}", out.stdout, out.stderr),
        }
    }

    /// [`Self::run`], which must succeed.
    pub fn run_ok(
        &self,
        settings: &str,
        alternative: Option<&str>,
        path_front: &[&Utf8Path],
        limit: Duration,
    ) -> String {
        let ran = self.run(settings, alternative, path_front, limit);
        assert!(
            ran.ok,
            "{} ({alternative:?}) failed; the last ### line names the block:\n{}",
            self.path, ran.output
        );
        ran.output
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_decide_what_runs() {
        let text = "# t\n<!-- runbook: settings -->\n```sh\nA=1 B=\"x y\"\nexport C=2   # D=3\n```\n\n```nix\nx = 1;\n```\n<!-- runbook: skip (systemd) -->\n```sh\nsystemctl stop x\n```\n<!-- runbook: only ssh -->\n```sh\nssh x\n```\n```sh\necho $A\n```\n";
        let blocks = parse(text).unwrap();
        assert_eq!(
            blocks.iter().map(|b| b.mark.clone()).collect::<Vec<_>>(),
            [
                Mark::Settings,
                Mark::Skip("systemd".into()),
                Mark::Only("ssh".into()),
                Mark::Run
            ]
        );
        assert_eq!(
            assigned(&blocks[0].code),
            ["A", "B", "C"].map(String::from).into()
        );
    }

    #[test]
    fn literal_values_leave_out_what_the_shell_computes() {
        let values =
            literal_values("A=1 B=\"x y\"   # C=3\nexport D=/p E='q r'\nF=$(date) G=a$B\n");
        assert_eq!(
            values.into_iter().collect::<Vec<_>>(),
            [("A", "1"), ("B", "x y"), ("D", "/p"), ("E", "q r")]
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
        );
    }

    #[test]
    fn a_skip_without_reason_or_an_unknown_marker_is_an_error() {
        assert!(parse("<!-- runbook: skip -->\n```sh\nx\n```\n")
            .unwrap_err()
            .contains("reason"));
        assert!(parse("<!-- runbook: skipp (x) -->\n```sh\nx\n```\n").is_err());
        assert!(parse("<!-- runbook: sometimes -->\n```sh\nx\n```\n")
            .unwrap_err()
            .contains("unknown"));
        assert!(parse("<!-- runbook: skip (x) -->\n```nix\nx\n```\n").is_err());
    }
}
