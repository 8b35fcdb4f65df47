//! The typed `zpool` API: a pool's health (`zpool list -H -o name,health`,
//! parsable on OpenZFS and zfs-fuse alike) and its last scan (`zpool
//! status`'s `scan:` line, `scrub:` on zfs-fuse, run with `TZ=UTC` so its
//! dates read as UTC), each call bounded by the timeout. The answers are
//! zpersist-core's [`PoolFacts`]; judging them is
//! `zpersist_core::status::pools`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use zpersist_core::status::pools::{PoolFacts, Scan};
use zpersist_process::{Command, Failure, ProcessError};

use crate::ZfsError;

/// `zpool` on this host.
#[derive(Debug, Clone)]
pub struct Zpool {
    program: PathBuf,
    timeout: Option<Duration>,
}

impl Zpool {
    /// Finds `zpool` on PATH.
    pub fn from_path() -> Result<Zpool, ZfsError> {
        let program = which::which("zpool").map_err(|e| ProcessError {
            argv: vec!["zpool".into()],
            place: None,
            failure: Failure::NotStarted(format!(
                "cannot find `zpool` on PATH ({e}); install ZFS (or start zfs-fuse) and try again"
            )),
            help: "install ZFS (or start zfs-fuse) and make sure `zpool` is on PATH".into(),
            pipeline: None,
        })?;
        Ok(Zpool {
            program,
            timeout: None,
        })
    }

    /// This zpool with every run killed after `limit`.
    pub fn with_timeout(self, limit: Duration) -> Zpool {
        Zpool {
            timeout: Some(limit),
            ..self
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("zpool")
            .args(args.iter().copied())
            .program_path(&self.program)
            // zpool prints dates in local time, words in the locale's.
            .env("TZ", "UTC")
            .env("LC_ALL", "C");
        if let Some(limit) = self.timeout {
            command = command.timeout(limit);
        }
        command
    }

    fn run(&self, args: &[&str]) -> Result<String, ZfsError> {
        let command = self.command(args);
        let output = command.output()?;
        if output.status.success() {
            Ok(output.stdout_text())
        } else {
            Err(command.failed(output.status, output.stderr_text().as_bytes()))
        }
    }

    /// The health of every imported pool, by name (`ONLINE`, `DEGRADED`,
    /// `FAULTED`, `UNAVAIL`, ...): one call.
    pub fn healths(&self) -> Result<BTreeMap<String, String>, ZfsError> {
        let out = self.run(&["list", "-H", "-o", "name,health"])?;
        Ok(out
            .lines()
            .filter_map(|l| {
                let (name, health) = l.split_once('\t')?;
                Some((name.to_string(), health.trim().to_string()))
            })
            .collect())
    }

    /// One pool's health; `None` when it is not imported.
    pub fn health(&self, pool: &str) -> Result<Option<String>, ZfsError> {
        Ok(self.healths()?.remove(pool))
    }

    /// Health and last scan of each of `pools` (two calls however many):
    /// `None` for a pool that is not imported.
    pub fn pools(&self, pools: &[String]) -> Result<BTreeMap<String, Option<PoolFacts>>, ZfsError> {
        let healths = self.healths()?;
        let present: Vec<&str> = pools
            .iter()
            .filter(|p| healths.contains_key(p.as_str()))
            .map(String::as_str)
            .collect();
        let mut scans = if present.is_empty() {
            BTreeMap::new()
        } else {
            let mut args = vec!["status"];
            args.extend(&present);
            parse_status(&self.run(&args)?)
        };
        Ok(pools
            .iter()
            .map(|p| {
                let facts = healths.get(p).map(|health| {
                    let (scan, data_errors) = scans.remove(p).unwrap_or((
                        Scan::Unknown {
                            line: "zpool status printed no scan line".into(),
                        },
                        None,
                    ));
                    PoolFacts {
                        health: health.clone(),
                        scan,
                        data_errors,
                    }
                });
                (p.clone(), facts)
            })
            .collect())
    }
}

/// Per pool in `zpool status` output: its last scan, and its `errors:`
/// line unless it is `No known data errors`.
pub fn parse_status(text: &str) -> BTreeMap<String, (Scan, Option<String>)> {
    let mut out = BTreeMap::new();
    let mut current: Option<(String, Option<Scan>, Option<String>)> = None;
    let mut flush = |c: Option<(String, Option<Scan>, Option<String>)>| {
        if let Some((name, scan, errors)) = c {
            // OpenZFS 2.x prints no scan line at all for a pool that was
            // never scrubbed nor resilvered (zfs-fuse: `none requested`).
            let scan = scan.unwrap_or(Scan::None);
            out.insert(name, (scan, errors));
        }
    };
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(name) = trimmed.strip_prefix("pool: ") {
            flush(current.take());
            current = Some((name.trim().to_string(), None, None));
        } else if let Some((_, scan, errors)) = current.as_mut() {
            if let Some(rest) = trimmed
                .strip_prefix("scan: ")
                .or_else(|| trimmed.strip_prefix("scrub: "))
            {
                *scan = Some(parse_scan(rest.trim()));
            } else if let Some(rest) = trimmed.strip_prefix("errors: ") {
                let rest = rest.trim();
                if rest != "No known data errors" {
                    *errors = Some(rest.to_string());
                }
            }
        }
    }
    flush(current.take());
    out
}

/// The text after `scan:` (OpenZFS 2.x) or `scrub:` (zfs-fuse).
pub fn parse_scan(text: &str) -> Scan {
    let date_after = |marker: &str| {
        text.split_once(marker)
            .and_then(|(_, d)| zpersist_core::time::parse_ctime(d.trim()))
    };
    let errors = || {
        text.split_once(" with ")
            .and_then(|(_, r)| r.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
    };
    let unknown = || Scan::Unknown {
        line: text.to_string(),
    };
    if text == "none requested" {
        return Scan::None;
    }
    // OpenZFS: "scrub repaired 0B in 00:00:02 with 0 errors on DATE";
    // zfs-fuse: "scrub completed after 0h0m with 0 errors on DATE".
    if text.starts_with("scrub repaired ") || text.starts_with("scrub completed ") {
        return match (date_after(" on "), errors()) {
            (Some(at), Some(errors)) => Scan::Scrubbed { at, errors },
            _ => unknown(),
        };
    }
    if text.starts_with("scrub in progress") {
        return Scan::Scrubbing {
            since: date_after(" since "),
        };
    }
    if text.starts_with("scrub canceled")
        || text.starts_with("scrub stopped")
        || text.starts_with("scrub paused")
    {
        return Scan::ScrubStopped {
            at: date_after(" on ").or_else(|| date_after(" since ")),
        };
    }
    if text.starts_with("resilvered ") || text.starts_with("resilver completed ") {
        return match errors() {
            Some(errors) => Scan::Resilvered {
                at: date_after(" on "),
                errors,
            },
            None => unknown(),
        };
    }
    if text.starts_with("resilver in progress") {
        return Scan::Resilvering {
            since: date_after(" since "),
        };
    }
    unknown()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Mon Dec  7 10:00:01 2026 UTC
    const AT: i64 = 1_796_637_601;

    #[test]
    fn openzfs_2_3_and_2_4_scan_lines() {
        assert_eq!(
            parse_scan("scrub repaired 0B in 00:00:02 with 0 errors on Mon Dec  7 10:00:01 2026"),
            Scan::Scrubbed { at: AT, errors: 0 }
        );
        assert_eq!(
            parse_scan("scrub repaired 12K in 01:02:03 with 3 errors on Mon Dec  7 10:00:01 2026"),
            Scan::Scrubbed { at: AT, errors: 3 }
        );
        // 0.8 / 2.0 printed the days too.
        assert_eq!(
            parse_scan(
                "scrub repaired 0B in 0 days 00:00:02 with 0 errors on Mon Dec  7 10:00:01 2026"
            ),
            Scan::Scrubbed { at: AT, errors: 0 }
        );
        assert_eq!(parse_scan("none requested"), Scan::None);
        assert_eq!(
            parse_scan("scrub in progress since Mon Dec  7 10:00:01 2026"),
            Scan::Scrubbing { since: Some(AT) }
        );
        assert_eq!(
            parse_scan("scrub canceled on Mon Dec  7 10:00:01 2026"),
            Scan::ScrubStopped { at: Some(AT) }
        );
        assert_eq!(
            parse_scan("scrub paused since Mon Dec  7 10:00:01 2026"),
            Scan::ScrubStopped { at: Some(AT) }
        );
        assert_eq!(
            parse_scan("resilvered 1.23M in 00:00:01 with 0 errors on Mon Dec  7 10:00:01 2026"),
            Scan::Resilvered {
                at: Some(AT),
                errors: 0
            }
        );
        assert_eq!(
            parse_scan("resilver in progress since Mon Dec  7 10:00:01 2026"),
            Scan::Resilvering { since: Some(AT) }
        );
        assert!(matches!(parse_scan("something new"), Scan::Unknown { .. }));
        assert!(matches!(
            parse_scan("scrub repaired 0B in 00:00:02 with 0 errors on yesterday"),
            Scan::Unknown { .. }
        ));
    }

    #[test]
    fn zfs_fuse_scrub_lines() {
        assert_eq!(
            parse_scan("scrub completed after 0h0m with 0 errors on Mon Dec  7 10:00:01 2026"),
            Scan::Scrubbed { at: AT, errors: 0 }
        );
        assert_eq!(
            parse_scan("scrub in progress for 0h0m, 12.34% done, 0h1m to go"),
            Scan::Scrubbing { since: None }
        );
        assert_eq!(
            parse_scan("scrub stopped after 0h0m with 0 errors on Mon Dec  7 10:00:01 2026"),
            Scan::ScrubStopped { at: Some(AT) }
        );
        assert_eq!(
            parse_scan("resilver completed after 0h0m with 0 errors on Mon Dec  7 10:00:01 2026"),
            Scan::Resilvered {
                at: Some(AT),
                errors: 0
            }
        );
        assert_eq!(
            parse_scan("resilver in progress for 0h0m, 50.00% done, 0h0m to go"),
            Scan::Resilvering { since: None }
        );
    }

    #[test]
    fn whole_status_outputs_of_several_pools() {
        let openzfs = "  pool: tank\n state: ONLINE\n  scan: scrub in progress since Mon Dec  7 10:00:01 2026\n\t1.23G / 4.56G scanned at 100M/s, 500M / 4.56G issued at 50M/s\n\t0B repaired, 10.96% done, 00:01:23 to go\nconfig:\n\n\tNAME        STATE     READ WRITE CKSUM\n\ttank        ONLINE       0     0     0\n\t  sda       ONLINE       0     0     0\n\nerrors: No known data errors\n\n  pool: usb\n state: DEGRADED\nstatus: One or more devices could not be used because the label is missing or\n\tinvalid.\naction: Replace the device using 'zpool replace'.\n   see: https://openzfs.github.io/openzfs-docs/msg/ZFS-8000-4J\n  scan: scrub repaired 0B in 00:00:02 with 0 errors on Mon Dec  7 10:00:01 2026\nconfig:\n\n\tNAME        STATE     READ WRITE CKSUM\n\tusb         DEGRADED     0     0     0\n\nerrors: 2 data errors, use '-v' for a list\n";
        let parsed = parse_status(openzfs);
        assert_eq!(parsed["tank"], (Scan::Scrubbing { since: Some(AT) }, None));
        assert_eq!(
            parsed["usb"],
            (
                Scan::Scrubbed { at: AT, errors: 0 },
                Some("2 data errors, use '-v' for a list".into())
            )
        );
        // OpenZFS 2.4.4 (seen in the guest), a pool never scrubbed: no scan line.
        let never = "  pool: sts\n state: ONLINE\nconfig:\n\n\tNAME        STATE     READ WRITE CKSUM\n\tsts         ONLINE       0     0     0\n\t  vdb       ONLINE       0     0     0\n\nerrors: No known data errors\n";
        assert_eq!(parse_status(never)["sts"], (Scan::None, None));
        let fuse = "  pool: s2probe\n state: ONLINE\n scrub: none requested\nconfig:\n\n\tNAME STATE READ WRITE CKSUM\n\nerrors: No known data errors\n";
        assert_eq!(parse_status(fuse)["s2probe"], (Scan::None, None));
    }
}
