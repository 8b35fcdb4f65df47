//! Each configured delivery as an argv plus the bytes for its stdin
//! (planned purely), and running them (no shell anywhere): all at once,
//! each bounded by its own limit, so that one that fails or hangs never
//! keeps the event from the others.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use zpersist_core::Diagnostic;
use zpersist_process::{seconds, Command, Failure};

use crate::context::{Context, Email, Ntfy, Webhook};
use crate::event::Event;

/// How much longer than its own `--max-time` curl may run before it is
/// killed: curl's own message (which says whether it could not connect or
/// the server did not answer) comes first, the kill is the backstop.
const CURL_KILL_MARGIN: Duration = Duration::from_secs(2);

/// One delivery, ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    /// "command", "ntfy", "webhook" or "email".
    pub name: &'static str,
    pub argv: Vec<String>,
    pub stdin: Vec<u8>,
    /// Where it goes, for messages (never a secret).
    pub destination: String,
    /// When it is killed if it has not finished.
    pub limit: Duration,
    /// The configured limit, as messages name it.
    pub timeout: Duration,
}

/// The curl flags every HTTP delivery uses: fail on HTTP errors, quiet but
/// with errors shown, bounded in time (the whole transfer, connecting
/// included).
fn curl_base(curl: &str, timeout: Duration) -> Vec<String> {
    [
        curl,
        "--fail",
        "--silent",
        "--show-error",
        "--max-time",
        &timeout.as_secs_f64().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// ntfy: the text body, title/priority/tags as headers. `token_header_file`
/// holds "Authorization: Bearer ..." (curl reads it with `-H @FILE`, so the
/// token never appears in an argv).
pub fn ntfy(
    ntfy: &Ntfy,
    event: &Event,
    token_header_file: Option<&str>,
    timeout: Duration,
) -> Planned {
    let url = format!("{}/{}", ntfy.url.trim_end_matches('/'), ntfy.topic);
    let mut argv = curl_base(&ntfy.curl, timeout);
    for header in [
        format!("Title: {}", event.title()),
        format!("Priority: {}", ntfy.priority),
        "Tags: warning,zpersist".to_string(),
    ] {
        argv.push("-H".into());
        argv.push(header);
    }
    if let Some(file) = token_header_file {
        argv.push("-H".into());
        argv.push(format!("@{file}"));
    }
    argv.extend(["--data-binary".into(), "@-".into(), url.clone()]);
    Planned {
        name: "ntfy",
        argv,
        stdin: event.text().into_bytes(),
        destination: url,
        limit: timeout + CURL_KILL_MARGIN,
        timeout,
    }
}

/// webhook: the event JSON as a POST body.
pub fn webhook(webhook: &Webhook, event: &Event, timeout: Duration) -> Planned {
    let mut argv = curl_base(&webhook.curl, timeout);
    argv.extend([
        "-X".into(),
        "POST".into(),
        "-H".into(),
        "Content-Type: application/json".into(),
        "--data-binary".into(),
        "@-".into(),
        webhook.url.clone(),
    ]);
    Planned {
        name: "webhook",
        argv,
        stdin: event.json().into_bytes(),
        destination: webhook.url.clone(),
        limit: timeout + CURL_KILL_MARGIN,
        timeout,
    }
}

/// email: a plain-text message with the event JSON at the end, for
/// `sendmail -t` (recipients from the headers).
pub fn email(email: &Email, event: &Event, timeout: Duration) -> Planned {
    let message = format!(
        "From: {}\nTo: {}\nSubject: [zpersist] {}\nContent-Type: text/plain; charset=utf-8\n\n{}\n-- \nevent: {}\n",
        email.from,
        email.to.join(", "),
        event.title(),
        event.text(),
        event.json()
    );
    Planned {
        name: "email",
        argv: vec![email.sendmail.clone(), "-t".into(), "-i".into()],
        stdin: message.into_bytes(),
        destination: email.to.join(", "),
        limit: timeout,
        timeout,
    }
}

/// The command: the event JSON on stdin.
pub fn command(argv: &[String], event: &Event, timeout: Duration) -> Planned {
    Planned {
        name: "command",
        argv: argv.to_vec(),
        stdin: event.json().into_bytes(),
        destination: argv[0].clone(),
        limit: timeout,
        timeout,
    }
}

/// A private file holding the ntfy Authorization header (mode 0600, a
/// name no one can guess or take first: created with O_EXCL by the
/// `tempfile` crate), removed on drop.
pub struct TokenHeader {
    file: tempfile::NamedTempFile,
}

impl TokenHeader {
    pub fn path(&self) -> &Path {
        self.file.path()
    }
}

fn token_header(token_file: &str) -> Result<TokenHeader, Diagnostic> {
    let token = std::fs::read_to_string(token_file).map_err(|e| {
        Diagnostic::new(format!(
            "ntfy delivery: cannot read the ntfy token file {token_file}: {e}"
        ))
        .with_help(
            "check zpersist.notify.ntfy.tokenFile and that the file exists when the unit runs",
        )
    })?;
    let unwritable = |e: std::io::Error| {
        Diagnostic::new(format!(
            "ntfy delivery: cannot write the ntfy header file in {}: {e}",
            std::env::temp_dir().display()
        ))
        .with_help("the notification unit needs a writable /tmp")
    };
    let mut file = tempfile::Builder::new()
        .prefix("zpersist-notify-")
        .suffix(".header")
        .tempfile()
        .map_err(unwritable)?;
    writeln!(file, "Authorization: Bearer {}", token.trim()).map_err(unwritable)?;
    file.flush().map_err(unwritable)?;
    Ok(TokenHeader { file })
}

/// Every configured delivery for `event`, and why any could not be
/// planned (e.g. an unreadable token file). The returned guard keeps the
/// ntfy header file until the deliveries ran.
pub fn plan_all(
    context: &Context,
    event: &Event,
) -> (Vec<Planned>, Vec<Diagnostic>, Option<TokenHeader>) {
    let d = &context.delivery;
    let timeout = context.timeout();
    let mut planned = Vec::new();
    let mut errors = Vec::new();
    let mut guard = None;
    if let Some(c) = &d.command {
        planned.push(command(&c.argv, event, timeout));
    }
    if let Some(n) = &d.ntfy {
        match n.token_file.as_deref().map(token_header).transpose() {
            Ok(header) => {
                planned.push(ntfy(
                    n,
                    event,
                    header.as_ref().and_then(|h| h.path().to_str()),
                    timeout,
                ));
                guard = header;
            }
            Err(e) => errors.push(e),
        }
    }
    if let Some(w) = &d.webhook {
        planned.push(webhook(w, event, timeout));
    }
    if let Some(e) = &d.email {
        planned.push(email(e, event, timeout));
    }
    (planned, errors, guard)
}

/// Runs one delivery, killing it (and what it started) at its limit;
/// `Err` says what failed and what to do.
pub fn run(planned: &Planned) -> Result<(), Diagnostic> {
    let help = match planned.name {
        "command" => "check zpersist.notify.command: it must be executable and exit 0 after reading the event from stdin",
        "ntfy" => "check zpersist.notify.ntfy (url, topic, token) and that the host reaches the server",
        "webhook" => "check zpersist.notify.webhook.url and that the host reaches it",
        _ => "check zpersist.notify.email.sendmail and the mail system's log",
    };
    let result = Command::from_argv(&planned.argv)
        .stdin_bytes(planned.stdin.clone())
        .timeout(planned.limit)
        .run();
    let Err(e) = result else { return Ok(()) };
    let (what, help) = match &e.failure {
        Failure::NotStarted(reason) => (
            format!("{} delivery: {reason}", planned.name),
            help.into(),
        ),
        Failure::TimedOut { .. } => (
            format!(
                "{} delivery to {} did not finish within {}; it was killed",
                planned.name,
                planned.destination,
                seconds(planned.timeout)
            ),
            format!("{help}; each delivery must end within zpersist.notify.timeoutSeconds (raise it if it needs longer)"),
        ),
        Failure::Exited { .. } => (
            format!(
                "{} delivery to {} {}",
                planned.name,
                planned.destination,
                e.outcome()
            ),
            help.into(),
        ),
    };
    Err(Diagnostic::new(what).with_help(help))
}

/// Runs every delivery at once, each with its own limit, and hands each
/// result to `report` as soon as that delivery ends: a slow or hung one
/// delays no other.
pub fn run_all(planned: &[Planned], mut report: impl FnMut(&Planned, Result<(), Diagnostic>)) {
    std::thread::scope(|scope| {
        let (done, finished) = std::sync::mpsc::channel();
        for p in planned {
            let done = done.clone();
            scope.spawn(move || {
                let _ = done.send((p, run(p)));
            });
        }
        drop(done);
        for (p, result) in finished {
            report(p, result);
        }
    });
}
