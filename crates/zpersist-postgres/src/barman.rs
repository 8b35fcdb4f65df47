//! Object storage through barman-cloud (Debian's barman-cli-cloud,
//! nixpkgs' barman): WAL archiving and fetching, base backups, their list,
//! restoring one, and deleting by a retention policy.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use zpersist_core::pitr::contract::S3Repository;
use zpersist_core::pitr::BaseBackup;

use crate::cluster::Pg;
use crate::local::Fetched;
use crate::run::{Call, PgError};

pub struct Barman<'a> {
    pub s3: &'a S3Repository,
    /// The cluster's user: barman-cloud-backup reads the data directory
    /// through PostgreSQL, and restored files must belong to the cluster.
    pub run_as: String,
    pub timeout: Duration,
}

impl Barman<'_> {
    fn label(&self) -> String {
        format!("{} server {}", self.s3.destination, self.s3.server_name)
    }

    fn environment(&self) -> Result<BTreeMap<String, String>, PgError> {
        let Some(file) = &self.s3.environment_file else {
            return Ok(BTreeMap::new());
        };
        let text = fs::read_to_string(file).map_err(|e| PgError::io("reading the S3 credentials", Path::new(file), &e, "the file named by repository.s3.environmentFile must exist and be readable by the cluster's user"))?;
        Ok(zpersist_host::environment::parse_environment(&text))
    }

    fn call(&self, program: &str, args: Vec<String>, limit: Duration) -> Result<Call, PgError> {
        let program = match &self.s3.barman_bin {
            Some(dir) => Path::new(dir).join(program).display().to_string(),
            None => program.to_string(),
        };
        let mut argv = vec![program];
        if let Some(url) = &self.s3.endpoint_url {
            argv.extend(["--endpoint-url".into(), url.clone()]);
        }
        argv.extend(args);
        let mut call = Call::new(argv, limit);
        call.env = self.environment()?;
        call.run_as = Some(self.run_as.clone());
        Ok(call)
    }

    fn place(&self) -> Vec<String> {
        vec![self.s3.destination.clone(), self.s3.server_name.clone()]
    }

    /// archive_command: uploads the segment at `path`.
    pub fn wal_archive(&self, path: &Path) -> Result<(), PgError> {
        let mut args = self.place();
        args.push(path.display().to_string());
        self.call("barman-cloud-wal-archive", args, self.timeout)?
            .run("archiving WAL to object storage", &self.label(), "check the endpoint, the bucket and the credentials; PostgreSQL retries until it works, keeping the WAL in pg_wal meanwhile")
            .map(|_| ())
    }

    /// restore_command: downloads `name` to `dest`. barman-cloud-wal-restore
    /// exits 1 both for "not archived" and for a missing bucket: the
    /// message tells them apart.
    pub fn wal_restore(&self, name: &str, dest: &Path) -> Result<Fetched, PgError> {
        let mut args = self.place();
        args.extend([name.to_string(), dest.display().to_string()]);
        let call = self.call("barman-cloud-wal-restore", args, self.timeout)?;
        let what = "restoring WAL from object storage";
        let help = "check the endpoint, the bucket and the credentials; recovery cannot go on without the archive";
        let (status, _, stderr) = call.run_unchecked(what, &self.label(), help)?;
        match status {
            Some(0) => Ok(Fetched::Restored),
            Some(1) if !stderr.contains("does not exist") || stderr.contains("WAL file") => {
                Ok(Fetched::Missing)
            }
            _ => Err(PgError::new(
                what,
                self.label(),
                format!(
                    "barman-cloud-wal-restore failed (exit status {}): {}",
                    status.map_or("signal".into(), |c| c.to_string()),
                    stderr.trim()
                ),
                help,
            )),
        }
    }

    /// Whether the bucket holds no WAL of this server
    /// (`barman-cloud-check-wal-archive`: exit 0 for an empty archive).
    /// WAL there is `Ok(false)`; any other failure (unreachable endpoint,
    /// credentials) an error.
    pub fn wal_archive_is_empty(&self) -> Result<bool, PgError> {
        let call = self.call("barman-cloud-check-wal-archive", self.place(), self.timeout)?;
        let what = "checking the WAL archive in object storage";
        let help = "check the endpoint, the bucket and the credentials";
        let (status, _, stderr) = call.run_unchecked(what, &self.label(), help)?;
        match status {
            Some(0) => Ok(true),
            _ if stderr.contains("Expected empty archive") => Ok(false),
            _ => Err(PgError::new(
                what,
                self.label(),
                format!(
                    "barman-cloud-check-wal-archive failed (exit status {}): {}",
                    status.map_or("signal".into(), |c| c.to_string()),
                    stderr.trim()
                ),
                help,
            )),
        }
    }

    /// A base backup of the running cluster, uploaded.
    pub fn backup(&self, pg: &Pg, limit: Duration) -> Result<(), PgError> {
        let mut args = vec![
            "-h".into(),
            pg.socket_dir.clone(),
            "-p".into(),
            pg.port.to_string(),
            "-U".into(),
            pg.user.clone(),
            "-d".into(),
            pg.database.clone(),
        ];
        args.extend(self.place());
        let mut call = self.call("barman-cloud-backup", args, limit)?;
        call.stream_stderr = true;
        call.run(
            "taking a base backup to object storage",
            &self.label(),
            "check that the cluster runs, and the endpoint, bucket and credentials",
        )
        .map(|_| ())
    }

    /// The completed base backups (status DONE).
    pub fn list(&self) -> Result<Vec<BaseBackup>, PgError> {
        let mut args = vec!["--format".into(), "json".into()];
        args.extend(self.place());
        let out = self
            .call("barman-cloud-backup-list", args, self.timeout)?
            .run(
                "listing base backups in object storage",
                &self.label(),
                "check the endpoint, the bucket and the credentials",
            )?;
        parse_list(&out).map_err(|e| {
            PgError::new(
                "reading barman-cloud-backup-list's output",
                self.label(),
                e,
                "is this barman-cli-cloud 3.x?",
            )
        })
    }

    /// Downloads backup `id` into `dest` (which must exist, empty).
    pub fn restore(&self, id: &str, dest: &Path, limit: Duration) -> Result<(), PgError> {
        let mut args = self.place();
        args.extend([id.to_string(), dest.display().to_string()]);
        self.call("barman-cloud-restore", args, limit)?
            .run(
                "downloading a base backup from object storage",
                &self.label(),
                "check the endpoint, the bucket, the credentials and the target's free space",
            )
            .map(|_| ())
    }

    /// Deletes backups (and the WAL only they need) beyond `policy`
    /// (barman's syntax: `REDUNDANCY 3`, `RECOVERY WINDOW OF 14 DAYS`).
    pub fn delete_by_policy(&self, policy: &str) -> Result<String, PgError> {
        let mut args = vec!["--retention-policy".into(), policy.to_string()];
        args.extend(self.place());
        self.call("barman-cloud-backup-delete", args, self.timeout)?
            .run("pruning object storage", &self.label(), "check the endpoint, the bucket and the credentials; nothing a kept backup needs is deleted by barman")
    }
}

#[derive(Deserialize)]
struct List {
    backups_list: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    backup_id: String,
    status: String,
    begin_time: Option<String>,
    end_time: Option<String>,
    begin_wal: Option<String>,
    end_wal: Option<String>,
    timeline: Option<u32>,
    backup_label: Option<String>,
    xlog_segment_size: Option<u64>,
}

/// barman-cloud-backup-list --format json, completed backups only. barman
/// prints begin and end times without their zone (`Mon Nov 30 14:04:41
/// 2026`, the server's zone); the backup label's `START TIME` has it, and
/// the difference, rounded to a quarter hour, is the zone's offset.
pub fn parse_list(text: &str) -> Result<Vec<BaseBackup>, String> {
    let list: List = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for entry in list.backups_list {
        if entry.status != "DONE" {
            continue;
        }
        let field = |v: Option<String>, name: &str| {
            v.ok_or_else(|| format!("backup {} has no {name}", entry.backup_id))
        };
        let begin = ctime(&field(entry.begin_time.clone(), "begin_time")?)?;
        let end = ctime(&field(entry.end_time.clone(), "end_time")?)?;
        let offset = entry
            .backup_label
            .as_deref()
            .and_then(label_start_time)
            .map(|utc| ((begin - utc) as f64 / 900.0).round() as i64 * 900)
            .unwrap_or(0);
        out.push(BaseBackup {
            id: entry.backup_id.clone(),
            start_time: begin - offset,
            end_time: end - offset + 1,
            start_wal: field(entry.begin_wal, "begin_wal")?,
            end_wal: field(entry.end_wal, "end_wal")?,
            timeline: entry.timeline.unwrap_or(1),
            end_micros: None,
            end_lsn: None,
            segment_size: entry.xlog_segment_size.unwrap_or(16 << 20),
        });
    }
    Ok(out)
}

/// `START TIME: 2026-11-30 14:04:43 UTC` (or `+01`, `CET` is not read).
fn label_start_time(label: &str) -> Option<i64> {
    let line = label
        .split("\\n")
        .chain(label.lines())
        .find_map(|l| l.trim_start_matches('\'').strip_prefix("START TIME: "))?;
    let (date_time, zone) = line.trim().rsplit_once(' ')?;
    let offset = match zone {
        "UTC" | "GMT" => "Z".to_string(),
        z if (z.starts_with('+') || z.starts_with('-')) && z.len() == 3 => format!("{z}:00"),
        _ => return None,
    };
    zpersist_core::time::parse_rfc3339(&format!("{}{offset}", date_time.replace(' ', "T"))).ok()
}

/// `Mon Nov 30 14:04:41 2026`, read as UTC.
fn ctime(text: &str) -> Result<i64, String> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let bad = || format!("`{text}` is not a time like `Mon Nov 30 14:04:41 2026`");
    if parts.len() != 5 {
        return Err(bad());
    }
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = months.iter().position(|m| *m == parts[1]).ok_or_else(bad)? + 1;
    let day: u32 = parts[2].parse().map_err(|_| bad())?;
    zpersist_core::time::parse_rfc3339(&format!("{}-{month:02}-{day:02}T{}Z", parts[4], parts[3]))
        .map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_as_barman_cli_cloud_3_4_prints_it() {
        let text = r#"{"backups_list": [{"backup_label": "'START WAL LOCATION: 0/800028 (file 000000010000000000000008)\\nCHECKPOINT LOCATION: 0/800060\\nBACKUP METHOD: streamed\\nBACKUP FROM: primary\\nSTART TIME: 2026-11-30 14:04:43 UTC\\nLABEL: Barman backup cloud 20261130T140440\\nSTART TIMELINE: 1\\n'", "begin_time": "Mon Nov 30 14:04:41 2026", "begin_wal": "000000010000000000000008", "end_time": "Mon Nov 30 14:04:45 2026", "end_wal": "000000010000000000000008", "status": "DONE", "timeline": 1, "backup_id": "20261130T140440"},
            {"backup_id": "20261130T150000", "status": "FAILED"}]}"#;
        let list = parse_list(text).unwrap();
        assert_eq!(list.len(), 1);
        let b = &list[0];
        assert_eq!(b.id, "20261130T140440");
        assert_eq!(
            zpersist_core::time::rfc3339(b.start_time),
            "2026-11-30T14:04:41Z"
        );
        assert_eq!(
            zpersist_core::time::rfc3339(b.end_time),
            "2026-11-30T14:04:46Z"
        );
        assert_eq!(b.start_wal, "000000010000000000000008");
        let shifted = text
            .replace("14:04:43 UTC", "14:04:43 +01")
            .replace("[{", "[{\"x\":0,");
        let shifted = shifted.replace(r#""x":0,"#, "");
        let b = &parse_list(&shifted).unwrap()[0];
        assert_eq!(
            zpersist_core::time::rfc3339(b.start_time),
            "2026-11-30T13:04:41Z"
        );
    }
}
