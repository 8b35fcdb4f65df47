//! Is a directory in use: ask systemd about units when it answers
//! ([`unit_state`]), and independently look through /proc for any process
//! whose working directory, root, executable, open files or memory maps
//! lie in given directories ([`processes_using`]); filesystems mounted at
//! or below a directory ([`mounts_within`]). The answers are zpersist-core
//! facts, for the binaries' decisions.

use std::fs;

pub use zpersist_core::facts::{Mount, ProcessUse, UnitState};

use crate::path::within;

/// How long `systemctl is-active` may take.
pub const SYSTEMCTL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// `systemctl is-active UNIT`, read as running, stopped or unknown (no
/// systemctl, no answer in time, or an answer that is not a state).
pub fn unit_state(unit: &str) -> UnitState {
    let Ok(systemctl) = which::which("systemctl") else {
        return UnitState::Unknown("systemctl is not installed".into());
    };
    // Bounded: a systemd that does not answer (a hung D-Bus) is an unknown
    // state, never a wait without end.
    let output = zpersist_process::Command::from_argv(&["systemctl", "is-active", "--", unit])
        .program_path(systemctl)
        .timeout(SYSTEMCTL_TIMEOUT)
        .output();
    let output = match output {
        Ok(output) => output,
        Err(e) if e.timed_out() => {
            return UnitState::Unknown(format!(
                "systemctl did not answer within {} s",
                SYSTEMCTL_TIMEOUT.as_secs()
            ))
        }
        Err(e) => {
            return UnitState::Unknown(format!("systemctl could not be run: {}", e.message()))
        }
    };
    let state = String::from_utf8_lossy(&output.stdout).trim().to_string();
    match state.as_str() {
        "active" | "activating" | "deactivating" | "reloading" | "refreshing" => {
            UnitState::Running(state)
        }
        "inactive" | "failed" | "unknown" | "dead" => UnitState::Stopped(state),
        _ => {
            let stderr = String::from_utf8_lossy(&output.stderr);
            UnitState::Unknown(
                stderr
                    .lines()
                    .next()
                    .unwrap_or("systemctl gave no answer")
                    .to_string(),
            )
        }
    }
}

/// Every process but this one whose command line (its arguments, as
/// bytes) `matches` says yes to.
pub fn processes_running(matches: impl Fn(&[&[u8]]) -> bool) -> Vec<u32> {
    let me = std::process::id();
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let cmdline = fs::read(entry.path().join("cmdline")).ok()?;
            let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
            (pid != me && matches(&args)).then_some(pid)
        })
        .collect()
}

/// Sends SIGTERM to each of `pids` and waits, at most `wait`, for them to
/// be gone; whether they all are.
pub fn stop_processes(pids: &[u32], wait: std::time::Duration) -> bool {
    for &pid in pids {
        // SAFETY: kill(2) on a pid; a pid that is gone is ESRCH, ignored.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGTERM);
        }
    }
    let alive = || {
        pids.iter()
            .any(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists())
    };
    let deadline = std::time::Instant::now() + wait;
    while alive() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    !alive()
}

/// Every process (but this one) using something in `dirs` (given as /proc
/// shows them: see [`crate::path::resolved`]). Processes that vanish while
/// being looked at are skipped.
pub fn processes_using(dirs: &[String]) -> Vec<ProcessUse> {
    let me = std::process::id();
    let mut users = Vec::new();
    let Ok(proc_entries) = fs::read_dir("/proc") else {
        return users;
    };
    for entry in proc_entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let base = entry.path();
        let command = fs::read_to_string(base.join("comm"))
            .map(|c| c.trim().to_string())
            .unwrap_or_else(|_| "?".into());
        let mut held = Vec::new();
        for link in ["cwd", "root", "exe"] {
            if let Ok(target) = fs::read_link(base.join(link)) {
                held.push((link.to_string(), target.to_string_lossy().into_owned()));
            }
        }
        if let Ok(fds) = fs::read_dir(base.join("fd")) {
            for fd in fds.flatten() {
                if let Ok(target) = fs::read_link(fd.path()) {
                    held.push((
                        format!("fd {}", fd.file_name().to_string_lossy()),
                        target.to_string_lossy().into_owned(),
                    ));
                }
            }
        }
        if let Ok(maps) = fs::read_to_string(base.join("maps")) {
            for line in maps.lines() {
                // address perms offset dev inode   path
                if let Some(path) = line.split_whitespace().nth(5) {
                    if path.starts_with('/') {
                        let path = line[line.find(path).unwrap_or(0)..].to_string();
                        held.push(("mmap".into(), path));
                    }
                }
            }
        }
        for (what, target) in held {
            let target = target.trim_end_matches(" (deleted)");
            // A process's root "/" is every directory's ancestor, not a user.
            if what == "root" && target == "/" {
                continue;
            }
            if dirs.iter().any(|dir| within(target, dir)) {
                users.push(ProcessUse {
                    pid,
                    command: command.clone(),
                    what: format!("{what} {target}"),
                });
                break;
            }
        }
    }
    users.sort_by_key(|u| u.pid);
    users
}

/// One line of mountinfo: `id parent major:minor root MOUNTPOINT options
/// [optional fields...] - FSTYPE SOURCE superoptions`.
fn parse_mountinfo_line(line: &str) -> Option<Mount> {
    let (before, after) = line.split_once(" - ")?;
    let mut before = before.split(' ').skip(2);
    let device = before.next()?;
    let root = before.next()?;
    let mountpoint = before.next()?;
    let mut after = after.split(' ');
    let fstype = after.next()?;
    let source = after.next()?;
    Some(Mount {
        mountpoint: unescape_mount_path(mountpoint),
        fstype: unescape_mount_path(fstype),
        source: unescape_mount_path(source),
        root: unescape_mount_path(root),
        device: device.to_string(),
    })
}

fn mount_table() -> std::io::Result<Vec<Mount>> {
    Ok(fs::read_to_string("/proc/self/mountinfo")?
        .lines()
        .filter_map(parse_mountinfo_line)
        .collect())
}

/// `major:minor` of a `st_dev`, as mountinfo writes it (Linux's encoding).
fn device_name(dev: u64) -> String {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & 0xffff_f000);
    let minor = (dev & 0xff) | ((dev >> 12) & 0xffff_ff00);
    format!("{major}:{minor}")
}

/// The filesystem whose files `path` really shows: among the mounts whose
/// device is the path's own `st_dev`, the deepest one at or above the
/// (resolved) path. Another filesystem mounted over a dataset's path (a
/// tmpfs, a stray bind mount) is what this returns, whatever zfs says of
/// the dataset's `mounted`: decide with [`Mount::is_zfs_dataset`] and
/// `zpersist_core::mounted::path_view`.
pub fn mount_showing(path: &std::path::Path) -> std::io::Result<Mount> {
    use std::os::unix::fs::MetadataExt;
    let resolved = fs::canonicalize(path)?;
    let device = device_name(fs::metadata(&resolved)?.dev());
    let resolved = resolved.to_string_lossy().into_owned();
    mount_table()?
        .into_iter()
        .filter(|mount| mount.device == device && within(&resolved, &mount.mountpoint))
        // Later lines were mounted later: among equals the last one is on top.
        .fold(None::<Mount>, |best, mount| match best {
            Some(b) if b.mountpoint.len() > mount.mountpoint.len() => Some(b),
            _ => Some(mount),
        })
        .ok_or_else(|| {
            std::io::Error::other(format!(
                "no filesystem in /proc/self/mountinfo has {resolved}'s device {device}"
            ))
        })
}

/// Filesystems mounted at or below `dir` (from /proc/self/mountinfo).
pub fn mounts_within(dir: &str) -> Vec<Mount> {
    mount_table()
        .unwrap_or_default()
        .into_iter()
        .filter(|mount| within(&mount.mountpoint, dir))
        .collect()
}

/// mountinfo writes space, tab, newline and backslash as `\040`-style octal.
fn unescape_mount_path(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            if let Ok(code) = u8::from_str_radix(&field[i + 1..i + 4], 8) {
                out.push(code);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_paths_are_unescaped() {
        assert_eq!(unescape_mount_path(r"/srv/a\040b"), "/srv/a b");
        assert_eq!(unescape_mount_path("/plain"), "/plain");
    }

    #[test]
    fn mountinfo_lines_give_mountpoint_type_and_source() {
        let line = r"50 27 0:47 / /var/lib/home\040assistant rw,relatime shared:12 - tmpfs hass-state rw,size=4096k";
        assert_eq!(
            parse_mountinfo_line(line),
            Some(Mount {
                mountpoint: "/var/lib/home assistant".into(),
                fstype: "tmpfs".into(),
                source: "hass-state".into(),
                root: "/".into(),
                device: "0:47".into(),
            })
        );
        assert_eq!(parse_mountinfo_line("garbage"), None);
    }

    #[test]
    fn devices_are_written_as_mountinfo_writes_them() {
        // glibc's makedev: the minor's low byte, the major's 12 bits, then
        // the minor's and the major's high bits.
        let makedev = |major: u64, minor: u64| {
            (minor & 0xff)
                | ((major & 0xfff) << 8)
                | ((minor & !0xff) << 12)
                | ((major & !0xfff) << 32)
        };
        assert_eq!(device_name(makedev(0, 42)), "0:42");
        assert_eq!(device_name(makedev(8, 1)), "8:1");
        assert_eq!(device_name(makedev(0, 325)), "0:325");
        assert_eq!(device_name(makedev(4100, 70000)), "4100:70000");
    }

    #[test]
    fn the_root_filesystem_shows_root() {
        let mount = mount_showing(std::path::Path::new("/")).unwrap();
        assert_eq!(mount.mountpoint, "/");
    }

    #[test]
    fn a_process_with_its_cwd_inside_is_found() {
        let dir = std::env::temp_dir().join(format!("zpersist-inuse-{}", std::process::id()));
        fs::create_dir_all(dir.join("sub")).unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .current_dir(dir.join("sub"))
            .spawn()
            .unwrap();
        let dir_s = dir.to_string_lossy().into_owned();
        let users = processes_using(std::slice::from_ref(&dir_s));
        child.kill().unwrap();
        child.wait().unwrap();
        fs::remove_dir_all(&dir).unwrap();
        assert!(
            users
                .iter()
                .any(|u| u.pid == child.id() && u.command == "sleep" && u.what.starts_with("cwd ")),
            "{users:?}"
        );
    }
}
