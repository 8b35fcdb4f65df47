//! Each configured delivery as an argv plus the bytes for its stdin
//! (planned purely), and running them (no shell anywhere).

use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use crate::context::{Context, Email, Ntfy, Webhook};
use crate::event::Event;

/// One delivery, ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    /// "command", "ntfy", "webhook" or "email".
    pub name: &'static str,
    pub argv: Vec<String>,
    pub stdin: Vec<u8>,
    /// Where it goes, for messages (never a secret).
    pub destination: String,
}

/// A delivery that cannot even be planned (e.g. an unreadable token file).
#[derive(Debug, Clone, PartialEq)]
pub struct PlanError {
    pub name: &'static str,
    pub error: String,
    pub help: String,
}

/// The curl flags every HTTP delivery uses: fail on HTTP errors, quiet but
/// with errors shown, bounded in time.
fn curl_base(curl: &str) -> Vec<String> {
    [
        curl,
        "--fail",
        "--silent",
        "--show-error",
        "--max-time",
        "30",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// ntfy: the text body, title/priority/tags as headers. `token_header_file`
/// holds "Authorization: Bearer ..." (curl reads it with `-H @FILE`, so the
/// token never appears in an argv).
pub fn ntfy(ntfy: &Ntfy, event: &Event, token_header_file: Option<&str>) -> Planned {
    let url = format!("{}/{}", ntfy.url.trim_end_matches('/'), ntfy.topic);
    let mut argv = curl_base(&ntfy.curl);
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
    }
}

/// webhook: the event JSON as a POST body.
pub fn webhook(webhook: &Webhook, event: &Event) -> Planned {
    let mut argv = curl_base(&webhook.curl);
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
    }
}

/// email: a plain-text message with the event JSON at the end, for
/// `sendmail -t` (recipients from the headers).
pub fn email(email: &Email, event: &Event) -> Planned {
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
    }
}

/// The command: the event JSON on stdin.
pub fn command(argv: &[String], event: &Event) -> Planned {
    Planned {
        name: "command",
        argv: argv.to_vec(),
        stdin: event.json().into_bytes(),
        destination: argv[0].clone(),
    }
}

/// A private file holding the ntfy Authorization header, removed on drop.
pub struct TokenHeader {
    pub path: PathBuf,
}

impl Drop for TokenHeader {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn token_header(token_file: &str) -> Result<TokenHeader, PlanError> {
    let token = std::fs::read_to_string(token_file).map_err(|e| PlanError {
        name: "ntfy",
        error: format!("cannot read the ntfy token file {token_file}: {e}"),
        help: "check zpersist.notify.ntfy.tokenFile and that the file exists when the unit runs"
            .into(),
    })?;
    let path = std::env::temp_dir().join(format!("zpersist-notify-{}.header", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut f| writeln!(f, "Authorization: Bearer {}", token.trim()));
    written.map_err(|e| PlanError {
        name: "ntfy",
        error: format!("cannot write {}: {e}", path.display()),
        help: "the notification unit needs a writable /tmp".into(),
    })?;
    Ok(TokenHeader { path })
}

/// Every configured delivery for `event`. The returned guard keeps the ntfy
/// header file until the deliveries ran.
pub fn plan_all(
    context: &Context,
    event: &Event,
) -> (Vec<Planned>, Vec<PlanError>, Option<TokenHeader>) {
    let d = &context.delivery;
    let mut planned = Vec::new();
    let mut errors = Vec::new();
    let mut guard = None;
    if let Some(c) = &d.command {
        planned.push(command(&c.argv, event));
    }
    if let Some(n) = &d.ntfy {
        match n.token_file.as_deref().map(token_header).transpose() {
            Ok(header) => {
                planned.push(ntfy(
                    n,
                    event,
                    header.as_ref().and_then(|h| h.path.to_str()),
                ));
                guard = header;
            }
            Err(e) => errors.push(e),
        }
    }
    if let Some(w) = &d.webhook {
        planned.push(webhook(w, event));
    }
    if let Some(e) = &d.email {
        planned.push(email(e, event));
    }
    (planned, errors, guard)
}

/// Runs one delivery; `Err` says what failed and what to do.
pub fn run(planned: &Planned) -> Result<(), (String, String)> {
    let output = duct::cmd(&planned.argv[0], &planned.argv[1..])
        .stdin_bytes(planned.stdin.clone())
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run();
    let help = match planned.name {
        "command" => "check zpersist.notify.command: it must be executable and exit 0 after reading the event from stdin",
        "ntfy" => "check zpersist.notify.ntfy (url, topic, token) and that the host reaches the server",
        "webhook" => "check zpersist.notify.webhook.url and that the host reaches it",
        _ => "check zpersist.notify.email.sendmail and the mail system's log",
    };
    match output {
        Err(e) if e.kind() == ErrorKind::NotFound => Err((
            format!("{} delivery: {} not found", planned.name, planned.argv[0]),
            help.into(),
        )),
        Err(e) => Err((
            format!(
                "{} delivery: cannot run {}: {e}",
                planned.name, planned.argv[0]
            ),
            help.into(),
        )),
        Ok(out) if !out.status.success() => Err((
            format!(
                "{} delivery to {} failed ({}): {}",
                planned.name,
                planned.destination,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            help.into(),
        )),
        Ok(_) => Ok(()),
    }
}
