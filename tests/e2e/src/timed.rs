//! A binary a test starts and expects to end by itself, within bounds: the
//! test bounds its own wait (a regression that hangs fails the test rather
//! than hanging it) and checks how long the run took.

use std::ops::Range;
use std::process::Output;
use std::time::{Duration, Instant};

/// How long a test waits for a run that should end by itself.
pub const TEST_LIMIT: Duration = Duration::from_secs(60);

/// A started run.
pub struct Running {
    handle: duct::Handle,
    pub started: Instant,
    what: String,
}

/// A run that ended: its output and how long it took.
pub struct Ended {
    pub output: Output,
    pub elapsed: Duration,
}

impl Running {
    /// Starts `expression` (stdout and stderr captured, unchecked); `what`
    /// names it in failures.
    pub fn start(expression: duct::Expression, what: &str) -> Running {
        let started = Instant::now();
        let handle = expression
            .stdout_capture()
            .stderr_capture()
            .unchecked()
            .start()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        Running {
            handle,
            started,
            what: what.to_owned(),
        }
    }

    /// Waits at most [`TEST_LIMIT`]; a run still going then is killed and
    /// fails the test.
    pub fn finish(self) -> Ended {
        let Some(output) = self.handle.wait_timeout(TEST_LIMIT).unwrap() else {
            let _ = self.handle.kill();
            panic!("{} was still running after {TEST_LIMIT:?}", self.what);
        };
        let ended = Ended {
            output: output.clone(),
            elapsed: self.started.elapsed(),
        };
        eprintln!(
            "{} ended after {:?}:\n{}",
            self.what,
            ended.elapsed,
            ended.stderr()
        );
        ended
    }
}

impl Ended {
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// Checks that the run exited with `code` after a time in `took`;
    /// returns its stderr.
    pub fn assert_exit(&self, code: i32, took: Range<Duration>) -> String {
        let stderr = self.stderr();
        assert!(
            took.contains(&self.elapsed),
            "took {:?}, not within {took:?}: {stderr}",
            self.elapsed
        );
        assert_eq!(self.output.status.code(), Some(code), "{stderr}");
        stderr
    }
}
