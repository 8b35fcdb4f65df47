//! `zfs get` of a dataset's snapshots, locally or on a target over ssh.
//! Argv vectors only; the remote command is quoted for the remote shell
//! (ssh always hands the remote side one command line).

use std::io::ErrorKind;

use crate::config::Target;
use crate::snapshots::{self, Snapshot};

/// `zfs get ...` arguments listing the snapshots of `dataset`.
pub fn get_args(dataset: &str) -> Vec<String> {
    [
        "get",
        "-H",
        "-p",
        "-o",
        "name,property,value",
        "-d",
        "1",
        "creation,guid",
        dataset,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The ssh argv running `zfs get` for `dataset` on `target`: the pinned
/// known_hosts file only, strict host key checking, the target's key.
pub fn ssh_argv(target: &Target, dataset: &str) -> Vec<String> {
    let remote: Vec<String> = std::iter::once("zfs".to_string())
        .chain(get_args(dataset))
        .map(|a| shell_quote(&a))
        .collect();
    let mut argv: Vec<String> = [
        "-o",
        "BatchMode=yes",
        "-o",
        &format!("UserKnownHostsFile={}", target.known_hosts),
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "ConnectTimeout=20",
        "-i",
        &target.ssh_key,
        "-p",
        &target.port.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    argv.push(format!("{}@{}", target.user, target.host));
    argv.push("--".into());
    argv.push(remote.join(" "));
    argv
}

/// Single-quotes `arg` for a POSIX shell unless it is plainly safe.
pub fn shell_quote(arg: &str) -> String {
    if !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:,=@+".contains(c))
    {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

/// What listing a dataset's snapshots found.
pub enum Listing {
    Snapshots(Vec<Snapshot>),
    /// The dataset does not exist (never replicated).
    Missing,
}

fn run(program: &str, args: &[String], dataset: &str, where_: &str) -> Result<Listing, String> {
    let output = duct::cmd(program, args)
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run()
        .map_err(|e| {
            if e.kind() == ErrorKind::NotFound {
                format!("{program} is not on PATH")
            } else {
                format!("cannot run {program}: {e}")
            }
        })?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        if stderr.contains("does not exist") {
            return Ok(Listing::Missing);
        }
        return Err(format!(
            "listing the snapshots of {dataset} {where_} failed ({}): {}",
            output.status,
            stderr.trim()
        ));
    }
    snapshots::parse(dataset, &String::from_utf8_lossy(&output.stdout)).map(Listing::Snapshots)
}

pub fn local(dataset: &str) -> Result<Listing, String> {
    run("zfs", &get_args(dataset), dataset, "on this host")
}

pub fn remote(target: &Target, dataset: &str) -> Result<Listing, String> {
    run(
        "ssh",
        &ssh_argv(target, dataset),
        dataset,
        &format!("on {}@{}:{}", target.user, target.host, target.port),
    )
}
