//! The forced command of a send-only ssh key: what a puller (syncoid on a
//! backup host pulling from here) may run, decided from the command line
//! ssh hands over (`SSH_ORIGINAL_COMMAND`) and the datasets the key may read.
//!
//! The command line is never given to a shell. It is split into words by a
//! deliberately small grammar (bare words of `[A-Za-z0-9_@:./,=+#%-]` and
//! single-quoted strings without escapes, adjacent parts joined; blanks
//! between words); anything else (`|`, `;`, `$`, a backquote, a double quote,
//! a backslash, a redirection, a newline) is refused. Of the words, only
//! these shapes pass, each on the allowed datasets (or below them) only:
//!
//! - `exit`, `echo -n`: syncoid's connection checks, answered here;
//! - `command -v PROGRAM`: syncoid's probes for lzop and mbuffer, answered
//!   "not available" (so it sends a bare `zfs send`, with no pipe to allow);
//! - `zpool get ... POOL` for a pool holding an allowed dataset;
//! - `zfs get`/`zfs list` of allowed datasets (read only);
//! - `zfs send` of an allowed dataset's snapshot or bookmark, or a resume
//!   token (`-t`: what it resumes is checked by the delegation: the key's
//!   user holds `send` on the allowed datasets only);
//! - `zfs bookmark SNAPSHOT BOOKMARK` of an allowed dataset, when the key
//!   may bookmark (the puller's protected base).
//!
//! Never `destroy`, `rollback`, `receive`, `set`, `snapshot`, a shell.

use std::fmt;

/// What the key may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatePolicy {
    /// Datasets (and everything below them) the key may read and send.
    pub datasets: Vec<String>,
    /// `zfs bookmark` allowed on them.
    pub bookmark: bool,
}

/// What to do with one command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Run this argv (its first word is `zfs` or `zpool`).
    Run(Vec<String>),
    /// Answer with this exit status and nothing on stdout.
    Answer(i32),
}

/// Why a command line was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub what: String,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)
    }
}

fn refuse(what: impl Into<String>) -> Refused {
    Refused { what: what.into() }
}

fn bare(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_@:./,=+#%-".contains(c)
}

/// The words of a command line, or why it is not one this gate reads.
pub fn words(line: &str) -> Result<Vec<String>, Refused> {
    let mut words = Vec::new();
    let mut current: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == ' ' || c == '\t' {
            if let Some(word) = current.take() {
                words.push(word);
            }
        } else if c == '\'' {
            let word = current.get_or_insert_with(String::new);
            loop {
                match chars.next() {
                    Some('\'') => break,
                    Some(c) if c.is_control() => {
                        return Err(refuse("a control character inside quotes"))
                    }
                    Some(c) => word.push(c),
                    None => return Err(refuse("an unterminated quote")),
                }
            }
        } else if bare(c) {
            current.get_or_insert_with(String::new).push(c);
        } else {
            return Err(refuse(format!(
                "{:?} is not allowed on a send-only key (no pipes, lists, expansions or redirections: the line is never given to a shell)",
                c
            )));
        }
    }
    if let Some(word) = current.take() {
        words.push(word);
    }
    Ok(words)
}

impl GatePolicy {
    /// Whether `name` (a dataset, `ds@snap` or `ds#bookmark`) is an allowed
    /// dataset or lies below one.
    pub fn covers(&self, name: &str) -> bool {
        let dataset = name.split(['@', '#']).next().unwrap_or(name);
        if dataset.is_empty() || dataset.contains("..") || dataset.starts_with('-') {
            return false;
        }
        self.datasets.iter().any(|d| {
            dataset == d
                || dataset
                    .strip_prefix(d.as_str())
                    .is_some_and(|r| r.starts_with('/'))
        })
    }

    fn covers_pool(&self, pool: &str) -> bool {
        self.datasets
            .iter()
            .any(|d| d.split('/').next() == Some(pool))
    }

    /// The verdict on one command line.
    pub fn decide(&self, line: &str) -> Result<Verdict, Refused> {
        let words = words(line)?;
        let w: Vec<&str> = words.iter().map(String::as_str).collect();
        match w.as_slice() {
            ["exit"] | ["echo", "-n"] => Ok(Verdict::Answer(0)),
            ["command", "-v", program] if words_are_names(&[program]) => Ok(Verdict::Answer(1)),
            ["zpool", "get", rest @ ..] => {
                let positional = self.positionals(rest, "o")?;
                match positional.as_slice() {
                    [_props, pool] if self.covers_pool(pool) => Ok(Verdict::Run(words)),
                    _ => Err(refuse(format!(
                        "`zpool get` of a pool none of this key's datasets ({}) is on",
                        self.datasets.join(", ")
                    ))),
                }
            }
            ["zfs", sub @ ("get" | "list"), rest @ ..] => {
                let value_flags = if *sub == "get" { "dtos" } else { "dtosS" };
                let positional = self.positionals(rest, value_flags)?;
                let names: &[&str] = if *sub == "get" {
                    positional.get(1..).unwrap_or(&[])
                } else {
                    &positional
                };
                if names.is_empty() {
                    return Err(refuse(format!(
                        "`zfs {sub}` without a dataset: this key reads only {}",
                        self.datasets.join(", ")
                    )));
                }
                self.all_covered(names)?;
                Ok(Verdict::Run(words))
            }
            ["zfs", "send", rest @ ..] => {
                let positional = self.positionals(rest, "iIt")?;
                let mut names: Vec<&str> = positional.clone();
                let mut token = false;
                let mut i = 0;
                while i < rest.len() {
                    let word = rest[i];
                    if word.starts_with('-') && word.len() > 1 {
                        let flags = &word[1..];
                        for (at, flag) in flags.char_indices() {
                            if !"nvPwcLephbDRiIt".contains(flag) {
                                return Err(refuse(format!("`zfs send -{flag}` is not allowed on a send-only key")));
                            }
                            if "iIt".contains(flag) {
                                if at + 1 != flags.len() {
                                    return Err(refuse(format!("`-{flag}` must end its option group")));
                                }
                                let value = rest.get(i + 1).copied().ok_or_else(|| refuse(format!("`zfs send -{flag}` without its value")))?;
                                if flag == 't' {
                                    token = true;
                                } else {
                                    names.push(value);
                                }
                                i += 1;
                            }
                        }
                    }
                    i += 1;
                }
                if names.is_empty() && !token {
                    return Err(refuse("`zfs send` of nothing"));
                }
                self.all_covered(&names)?;
                Ok(Verdict::Run(words))
            }
            ["zfs", "bookmark", snapshot, bookmark] if self.bookmark => {
                if !snapshot.contains('@') || !bookmark.contains('#') {
                    return Err(refuse("`zfs bookmark` takes a snapshot and a bookmark name"));
                }
                self.all_covered(&[snapshot, bookmark])?;
                Ok(Verdict::Run(words))
            }
            [] => Err(refuse("an empty command (an interactive shell is not allowed on a send-only key)")),
            [program, sub, ..] if *program == "zfs" || *program == "zpool" => Err(refuse(format!(
                "`{program} {sub}` is not allowed on a send-only key: it may only list, read properties of, send{} {}",
                if self.bookmark { " and bookmark" } else { "" },
                self.datasets.join(", ")
            ))),
            [program, ..] => Err(refuse(format!(
                "`{program}` is not allowed on a send-only key (only zfs send, get, list{} of {})",
                if self.bookmark { ", bookmark" } else { "" },
                self.datasets.join(", ")
            ))),
        }
    }

    /// The positional words of `rest`, skipping option groups (`-Hp`) and
    /// the value of the last flag of a group when it is in `value_flags`.
    fn positionals<'a>(
        &self,
        rest: &[&'a str],
        value_flags: &str,
    ) -> Result<Vec<&'a str>, Refused> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < rest.len() {
            let word = rest[i];
            if word.starts_with('-') && word.len() > 1 {
                if word[1..]
                    .chars()
                    .last()
                    .is_some_and(|f| value_flags.contains(f))
                {
                    i += 1;
                }
            } else {
                out.push(word);
            }
            i += 1;
        }
        Ok(out)
    }

    fn all_covered(&self, names: &[&str]) -> Result<(), Refused> {
        match names.iter().find(|n| !self.covers(n)) {
            None => Ok(()),
            Some(name) => Err(refuse(format!(
                "{name} is not one of this key's datasets ({}) or below one",
                self.datasets.join(", ")
            ))),
        }
    }
}

fn words_are_names(words: &[&str]) -> bool {
    words.iter().all(|w| {
        !w.is_empty()
            && w.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> GatePolicy {
        GatePolicy {
            datasets: vec!["tank/services".into()],
            bookmark: true,
        }
    }

    fn run(line: &str) -> Vec<String> {
        match policy().decide(line) {
            Ok(Verdict::Run(argv)) => argv,
            other => panic!("{line}: {other:?}"),
        }
    }

    fn refused(line: &str) -> String {
        match policy().decide(line) {
            Err(r) => r.what,
            other => panic!("{line} passed: {other:?}"),
        }
    }

    #[test]
    fn what_syncoid_runs_on_a_pull_source_passes() {
        // Recorded from syncoid 2.2.0 pulling over ssh (OpenZFS guest).
        assert_eq!(policy().decide("exit"), Ok(Verdict::Answer(0)));
        assert_eq!(policy().decide("echo -n"), Ok(Verdict::Answer(0)));
        assert_eq!(policy().decide("command -v lzop"), Ok(Verdict::Answer(1)));
        assert_eq!(
            run("zpool get -o value -H feature@extensible_dataset 'tank'"),
            [
                "zpool",
                "get",
                "-o",
                "value",
                "-H",
                "feature@extensible_dataset",
                "tank"
            ]
        );
        run("zfs get -H syncoid:sync 'tank/services/sonarr'");
        run("zfs get -Hpd 1 -t snapshot guid,creation 'tank/services/sonarr'");
        run("zfs get -Hpd 1 -t bookmark guid,creation 'tank/services/sonarr'");
        run("zfs send -nvP -I 'tank/services/sonarr@a' 'tank/services/sonarr@b'");
        assert_eq!(
            run(" zfs send  -I 'tank/services/sonarr'@'a' 'tank/services/sonarr'@'b'"),
            [
                "zfs",
                "send",
                "-I",
                "tank/services/sonarr@a",
                "tank/services/sonarr@b"
            ]
        );
        run("zfs send -w -i 'tank/services/sonarr'#'a' 'tank/services/sonarr'@'b'");
        run("zfs send -t 1-abc-def");
        run("zfs bookmark 'tank/services/sonarr'@'b' 'tank/services/sonarr'#'b'");
    }

    #[test]
    fn anything_that_changes_or_escapes_is_refused() {
        assert!(refused("zfs destroy -r tank/services").contains("`zfs destroy` is not allowed"));
        assert!(refused("zfs rollback -r tank/services@a").contains("not allowed"));
        assert!(refused("zfs receive -F tank/services").contains("not allowed"));
        assert!(refused("zfs snapshot tank/services@x").contains("not allowed"));
        assert!(refused("zfs set readonly=off tank/services").contains("not allowed"));
        assert!(refused("sh").contains("`sh` is not allowed"));
        assert!(refused("").contains("interactive shell"));
        assert!(refused("zfs send tank/services@a | sh").contains("'|'"));
        assert!(refused("zfs send tank/services@a; zfs destroy tank/x").contains("';'"));
        assert!(refused("zfs send $(id)").contains("'$'"));
        assert!(refused("zfs send \"tank/services@a\"").contains("'\"'"));
        assert!(refused("zfs send tank/servicesx@a").contains("not one of this key's datasets"));
        assert!(refused("zfs send tank/other@a").contains("not one of this key's datasets"));
        assert!(refused("zfs send -I tank/other@a tank/services@b").contains("tank/other@a"));
        assert!(refused("zfs get -H name tank").contains("tank is not one"));
        assert!(refused("zfs list").contains("without a dataset"));
        assert!(refused("zpool get all otherpool").contains("zpool get"));
        assert!(refused("zfs send 'tank/services@a\nb'").contains("control character"));
        assert!(refused("zfs send 'tank/services@a").contains("unterminated"));
        assert!(refused("zfs send -Ix tank/services@a tank/services@b").contains("must end"));
        let no_bookmark = GatePolicy {
            bookmark: false,
            ..policy()
        };
        assert!(no_bookmark
            .decide("zfs bookmark tank/services@b tank/services#b")
            .is_err());
    }
}
