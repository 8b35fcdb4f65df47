//! Running programs, the one way zpersist does it (docs/architecture.md):
//!
//! - a [`Command`] is an argv (never a shell string), run [here or over the
//!   pinned ssh](Location) with the same code, so the typed ZFS API in
//!   zpersist-zfs works on either;
//! - its output is captured ([`Command::run`], [`Command::output`]) or
//!   streamed line by line to a callback ([`Command::stream`]), for
//!   progress;
//! - two commands make a [`Pipeline`] (`zfs send | zfs receive`, either side
//!   over ssh): the bytes go from one to the other through a kernel pipe,
//!   never through this process's memory, and both exit statuses are
//!   checked: the error names the side that failed;
//! - a wall-clock limit kills the whole process group, so what a child
//!   started (a shell's `sleep`, curl's resolver, the other side of a
//!   pipe) dies with it and cannot hold the wait open;
//! - every failure is one [`ProcessError`]: the argv, where it ran, how it
//!   ended (could not start, exit status with the tail of its stderr, or
//!   killed at the limit) and what to do about it.
//!
//! Commands are shown with [`display_argv`], zpersist-ssh's POSIX shell
//! quoting: what a message shows is what the remote shell receives.

mod command;
mod error;
mod location;
mod pipeline;
mod run;

pub use command::{Command, Output, Stream};
pub use error::{Failure, ProcessError};
pub use location::Location;
pub use pipeline::Pipeline;
pub use zpersist_ssh::{shell_quote, SshTarget};

use std::ffi::OsStr;
use std::time::Duration;

/// `argv` as a command line for a POSIX shell, each word quoted as needed:
/// the form every message shows a command in, and the very line ssh hands
/// a remote shell. Bytes that are not UTF-8 show as U+FFFD.
pub fn display_argv<S: AsRef<OsStr>>(argv: &[S]) -> String {
    zpersist_ssh::remote_command(argv)
}

/// `limit` as messages say it: `3 s`, `2.5 s`.
pub fn seconds(limit: Duration) -> String {
    format!("{} s", limit.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_read_as_seconds() {
        assert_eq!(seconds(Duration::from_secs(3)), "3 s");
        assert_eq!(seconds(Duration::from_millis(2500)), "2.5 s");
    }

    #[test]
    fn commands_are_shown_as_a_shell_would_take_them() {
        assert_eq!(
            display_argv(&["zfs", "set", "a b=c", "tank/x"]),
            "zfs set 'a b=c' tank/x"
        );
        assert_eq!(
            display_argv(&["printf", "%s", "it's $x"]),
            r"printf '%s' 'it'\''s $x'"
        );
    }
}
