//! The one runner under [`Command`](crate::Command) and
//! [`Pipeline`](crate::Pipeline): spawns one command or two joined by a
//! kernel pipe, feeds stdin, reads stdout and every stderr on threads, and
//! waits at most until a deadline. When the deadline passes, the whole
//! process group is killed (SIGKILL), so what the children started dies
//! with them and cannot hold their output pipes open.

use std::io::{self, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdout, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::error::STDERR_TAIL_BYTES;
use crate::Stream;

/// How long to wait, after killing, for the killed processes to be reaped
/// and their pipes to close. A process that left the group and still holds
/// a pipe is abandoned after this, not waited for.
const REAP_GRACE: Duration = Duration::from_secs(2);

/// Where output goes while the children run.
pub(crate) enum Sink<'a> {
    /// Kept whole, to be returned.
    Capture,
    /// Handed over line by line as it arrives (`\n` or `\r` ends a line);
    /// only the tail of each stderr is kept.
    Lines(&'a mut dyn FnMut(Stream, &str)),
}

/// How the children ended.
pub(crate) struct Ended {
    /// Each child's status, `None` when it was abandoned after the kill.
    pub statuses: Vec<Option<ExitStatus>>,
    /// The last child's stdout (empty when streamed).
    pub stdout: Vec<u8>,
    /// Each child's stderr (its tail when streamed).
    pub stderrs: Vec<Vec<u8>>,
    pub timed_out: bool,
}

enum Event {
    Data(Source, Vec<u8>),
    Eof(Source),
    Exit(usize, io::Result<ExitStatus>),
    /// The pump moved this many more bytes from the first command to the
    /// second.
    Pumped(u64),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    Stdout,
    Stderr(usize),
    /// The pump between two commands (its end only).
    Pump,
}

/// Runs `commands` (one, or two with the first's stdout piped into the
/// second's stdin; each with `true` to let its stderr through to ours), `stdin` going to the first. With `pumped`, the bytes
/// between the two go through this process (a pump thread) instead of a
/// kernel pipe, and `pumped` hears the running total after each chunk.
/// `Err((index, error))` when one cannot be started (any started before it
/// is killed and reaped).
pub(crate) fn run(
    commands: Vec<(std::process::Command, bool)>,
    stdin: Option<Vec<u8>>,
    limit: Option<Duration>,
    mut sink: Sink<'_>,
    mut pumped: Option<&mut dyn FnMut(u64)>,
) -> Result<Ended, (usize, io::Error)> {
    let count = commands.len();
    let deadline = limit.map(|limit| Instant::now() + limit);
    let mut group: Option<i32> = None;
    let mut children: Vec<Child> = Vec::new();
    let mut between: Option<ChildStdout> = None;
    for (index, (mut command, inherit_stderr)) in commands.into_iter().enumerate() {
        match between.take() {
            Some(pipe) => command.stdin(Stdio::from(pipe)),
            None if index > 0 || stdin.is_some() => command.stdin(Stdio::piped()),
            None => command.stdin(Stdio::null()),
        };
        command.stdout(Stdio::piped()).stderr(if inherit_stderr {
            Stdio::inherit()
        } else {
            Stdio::piped()
        });
        if limit.is_some() {
            // The first child leads a new group, the second joins it.
            command.process_group(group.unwrap_or(0));
        }
        match command.spawn() {
            Ok(mut child) => {
                group.get_or_insert(child.id() as i32);
                if index + 1 < count && pumped.is_none() {
                    between = child.stdout.take();
                }
                children.push(child);
            }
            Err(e) => {
                for mut started in children {
                    let _ = started.kill();
                    let _ = started.wait();
                }
                return Err((index, e));
            }
        }
    }

    let (events, received) = mpsc::channel();
    if let (Some(bytes), Some(mut pipe)) = (stdin, children[0].stdin.take()) {
        // A child that exits without reading makes this fail (EPIPE): its
        // status says what happened.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        });
    }
    let mut open = 0;
    let last = children.len() - 1;
    if pumped.is_some() && last == 1 {
        if let (Some(from), Some(to)) = (children[0].stdout.take(), children[1].stdin.take()) {
            pump(from, to, events.clone());
            open += 1;
        }
    }
    if let Some(stdout) = children[last].stdout.take() {
        read_into(stdout, Source::Stdout, events.clone());
        open += 1;
    }
    for (index, mut child) in children.into_iter().enumerate() {
        if let Some(stderr) = child.stderr.take() {
            read_into(stderr, Source::Stderr(index), events.clone());
            open += 1;
        }
        let events = events.clone();
        std::thread::spawn(move || {
            let _ = events.send(Event::Exit(index, child.wait()));
        });
        open += 1;
    }
    drop(events);

    let mut ended = Ended {
        statuses: vec![None; count],
        stdout: Vec::new(),
        stderrs: vec![Vec::new(); count],
        timed_out: false,
    };
    let mut partial: Vec<Vec<u8>> = vec![Vec::new(); count + 1];
    let mut wait_until = deadline;
    while open > 0 {
        let event = match wait_until {
            None => received.recv().ok(),
            Some(at) => match received.recv_timeout(at.saturating_duration_since(Instant::now())) {
                Ok(event) => Some(event),
                Err(mpsc::RecvTimeoutError::Timeout) if ended.timed_out => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    ended.timed_out = true;
                    kill_group(group);
                    wait_until = Some(Instant::now() + REAP_GRACE);
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => None,
            },
        };
        let Some(event) = event else { break };
        match event {
            Event::Data(source, bytes) => match &mut sink {
                Sink::Capture => match source {
                    Source::Stdout => ended.stdout.extend_from_slice(&bytes),
                    Source::Stderr(i) => ended.stderrs[i].extend_from_slice(&bytes),
                    Source::Pump => {}
                },
                Sink::Lines(on_line) => {
                    if let Source::Stderr(i) = source {
                        keep_tail(&mut ended.stderrs[i], &bytes);
                    }
                    let slot = slot(source);
                    partial[slot].extend_from_slice(&bytes);
                    hand_over_lines(&mut partial[slot], stream(source), &mut **on_line, false);
                }
            },
            Event::Eof(source) => {
                if let Sink::Lines(on_line) = &mut sink {
                    let slot = slot(source);
                    hand_over_lines(&mut partial[slot], stream(source), &mut **on_line, true);
                }
                open -= 1;
            }
            Event::Exit(index, status) => {
                ended.statuses[index] = status.ok();
                open -= 1;
            }
            Event::Pumped(total) => {
                if let Some(pumped) = pumped.as_mut() {
                    pumped(total);
                }
            }
        }
    }
    Ok(ended)
}

fn slot(source: Source) -> usize {
    match source {
        Source::Stdout | Source::Pump => 0,
        Source::Stderr(i) => i + 1,
    }
}

fn stream(source: Source) -> Stream {
    match source {
        Source::Stdout | Source::Pump => Stream::Stdout,
        Source::Stderr(_) => Stream::Stderr,
    }
}

/// Copies `from` into `to` on a thread of its own until `from` ends or
/// `to` stops taking (the receiving side exited: the sending side then
/// gets SIGPIPE on its next write), saying how much has gone through.
fn pump(
    mut from: impl Read + Send + 'static,
    mut to: impl Write + Send + 'static,
    events: mpsc::Sender<Event>,
) {
    std::thread::spawn(move || {
        let mut buffer = vec![0; 1 << 20];
        let mut total: u64 = 0;
        loop {
            match from.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => {
                    if to.write_all(&buffer[..n]).is_err() {
                        break;
                    }
                    total += n as u64;
                    if events.send(Event::Pumped(total)).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        drop(to);
        drop(from);
        let _ = events.send(Event::Eof(Source::Pump));
    });
}

/// Reads `pipe` to its end on a thread of its own, sending what arrives.
fn read_into(mut pipe: impl Read + Send + 'static, source: Source, events: mpsc::Sender<Event>) {
    std::thread::spawn(move || {
        let mut buffer = vec![0; 64 * 1024];
        loop {
            match pipe.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => {
                    if events
                        .send(Event::Data(source, buffer[..n].to_vec()))
                        .is_err()
                    {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let _ = events.send(Event::Eof(source));
    });
}

/// Calls `on_line` for every complete line in `buffer` (and the rest, at
/// the end), removing them.
fn hand_over_lines(
    buffer: &mut Vec<u8>,
    stream: Stream,
    on_line: &mut dyn FnMut(Stream, &str),
    at_end: bool,
) {
    let mut start = 0;
    for i in 0..buffer.len() {
        if buffer[i] == b'\n' || buffer[i] == b'\r' {
            if i > start {
                on_line(stream, &String::from_utf8_lossy(&buffer[start..i]));
            }
            start = i + 1;
        }
    }
    if at_end && start < buffer.len() {
        on_line(stream, &String::from_utf8_lossy(&buffer[start..]));
        start = buffer.len();
    }
    buffer.drain(..start);
}

/// Appends `bytes`, keeping at most twice the tail an error shows.
fn keep_tail(kept: &mut Vec<u8>, bytes: &[u8]) {
    kept.extend_from_slice(bytes);
    let most = 2 * STDERR_TAIL_BYTES;
    if kept.len() > most {
        kept.drain(..kept.len() - most);
    }
}

/// Kills the children's process group. (A group id stays taken while any
/// member lives, so it cannot name another group meanwhile.)
fn kill_group(group: Option<i32>) {
    if let Some(group) = group {
        // SAFETY: kill(2) only sends a signal; it touches no memory of
        // ours. The first child leads the group (process_group(0)).
        unsafe {
            libc::kill(-group, libc::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_end_at_newlines_and_carriage_returns() {
        let mut seen = Vec::new();
        let mut on_line = |_: Stream, line: &str| seen.push(line.to_string());
        let mut buffer = b"a\r\nb\rc\npart".to_vec();
        hand_over_lines(&mut buffer, Stream::Stdout, &mut on_line, false);
        assert_eq!(buffer, b"part");
        hand_over_lines(&mut buffer, Stream::Stdout, &mut on_line, true);
        assert_eq!(seen, ["a", "b", "c", "part"]);
    }
}
