//! zpersist-notify with real tools: a real syncoid failure (a target whose
//! ssh port is closed) reported through the exact ExecStart of the
//! generated `zpersist-notify@.service` (the store path of the binary and
//! the /etc path of the context replaced by the cargo-built binary and a
//! file holding the context the module renders, %i by the failed unit as
//! systemd expands it); and the ntfy/webhook adapters through the real curl
//! against an HTTP listener in the test, email through a sendmail stand-in.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use camino::{Utf8Path, Utf8PathBuf};
use serde_json::{json, Value};
use zpersist_e2e::nix::eval_expr;
use zpersist_e2e::pool::{zfs, TestPool};
use zpersist_e2e::syncoid::syncoid;
use zpersist_e2e::timed::Running;

fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_zpersist-notify")
}

fn script(path: &Utf8Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn scratch_dir(tag: &str) -> Utf8PathBuf {
    let dir = Utf8PathBuf::from(format!(
        "/tmp/zpersist-tests/notify-{tag}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_failing_syncoid_target_reaches_the_notify_command_through_the_generated_unit() {
    let pool = TestPool::new("notify");
    zfs(&["create", "-p", &pool.ds("services/sonarr")]);
    zfs(&["create", &pool.ds("nas")]);
    let events = pool.scratch("events.json");
    let command = pool.scratch("record-event");
    // The command gets the event on stdin and its argument from commandArgs.
    script(&command, r#"cat > "$1""#);

    let module = format!(
        r#"{{
  networking.hostName = "forge";
  zpersist.pool = "{pool}";
  zpersist.datasets."services/sonarr".replicateTo = [ "nas" ];
  zpersist.replication.targets.nas = {{
    host = "127.0.0.1"; port = 1; user = "root"; dataset = "{pool}/nas";
    sshKey = "/run/zpersist-test-sshd/client_ed25519"; hostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAITEST";
  }};
  zpersist.notify = {{ command = "{command}"; commandArgs = [ "{events}" ]; journalLines = 20; }};
}}"#,
        pool = pool.name
    );
    let eval = eval_expr(&format!(
        r#"let
  lib = import ./tests/nix/lib.nix;
  e = import ./tests/nix/eval.nix {{ inherit lib; extraModule = {module}; }};
in {{
  argv = import ./tests/nix/syncoid-argv.nix {{ inherit lib; syncoid = e.config.services.syncoid; }};
  onFailure = e.config.systemd.services."syncoid-services-sonarr-to-nas".onFailure;
  execStart = e.config.systemd.services."zpersist-notify@".serviceConfig.ExecStart;
  context = e.config.zpersist.notify.internal.context;
  contextText = e.config.environment.etc."zpersist/notify-context.json".text;
  failed = e.failedAssertions;
}}"#
    ));
    assert_eq!(eval["failed"], json!([]));
    assert_eq!(eval["onFailure"], json!(["zpersist-notify@%n.service"]));
    let context_text = eval["contextText"].as_str().unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(context_text).unwrap(),
        eval["context"]
    );

    // The real failure: syncoid cannot reach the target.
    let argv: Vec<String> = eval["argv"]["services-sonarr-to-nas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    let (succeeded, _) = syncoid(&argv[1..]);
    assert!(!succeeded, "syncoid to a closed port must fail");

    // systemd runs OnFailure=zpersist-notify@%n.service: %n is the failed
    // unit, which becomes the template's %i.
    let unit = "syncoid-services-sonarr-to-nas.service";
    let context_file = pool.scratch("notify-context.json");
    std::fs::write(&context_file, context_text).unwrap();
    let exec_start = eval["execStart"].as_str().unwrap();
    let words: Vec<String> = exec_start
        .split(' ')
        .map(|w| {
            if w.ends_with("/bin/zpersist-notify") {
                assert!(w.starts_with("/nix/store/"), "{exec_start}");
                binary().to_owned()
            } else if w == "/etc/zpersist/notify-context.json" {
                context_file.to_string()
            } else {
                w.replace("%i", unit)
            }
        })
        .collect();
    let out = zpersist_e2e::zfs_watchdog::run_bounded(
        duct::cmd(&words[0], &words[1..])
            .stdin_null()
            .stdout_capture()
            .stderr_capture(),
        exec_start,
        zpersist_e2e::zfs_watchdog::OTHER_LIMIT,
    )
    .unwrap_or_else(zpersist_e2e::zfs_watchdog::Hung::fail);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("notified command of the failure of {unit}")),
        "{stderr}"
    );

    let event: Value = serde_json::from_str(&std::fs::read_to_string(&events).unwrap()).unwrap();
    assert_eq!(event["kind"], "unit-failed");
    assert_eq!(event["host"], "forge");
    assert_eq!(event["unit"], unit);
    assert_eq!(event["datasets"], json!([pool.ds("services/sonarr")]));
    assert!(event["summary"].as_str().unwrap().starts_with(&format!(
        "replication of {} to nas",
        pool.ds("services/sonarr")
    )));
    let time = event["time"].as_str().unwrap();
    assert!(time.len() == 20 && time.ends_with('Z'), "{time}");
    // No journald here (systemd is not PID 1): the event says why the
    // journal tail is empty instead of pretending.
    if event["journal"] == json!([]) {
        assert!(
            event["journalNote"].as_str().unwrap().contains(unit),
            "{event}"
        );
    }
}

/// An HTTP request: request line, headers, body.
type Request = (String, Vec<String>, String);

/// One HTTP request to a listener on loopback.
fn serve_once(listener: TcpListener) -> std::thread::JoinHandle<Request> {
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut request_line = String::new();
        reader.read_line(&mut request_line).unwrap();
        let mut headers = Vec::new();
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let line = line.trim_end().to_owned();
            if line.is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
            headers.push(line);
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let mut stream = stream;
        stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .unwrap();
        (
            request_line.trim_end().to_owned(),
            headers,
            String::from_utf8(body).unwrap(),
        )
    })
}

fn context(dir: &Utf8Path, delivery: Value) -> Utf8PathBuf {
    let path = dir.join("context.json");
    let ctx = json!({
        "version": 1, "host": "forge", "journalLines": 5,
        "units": { "sanoid.service": { "datasets": ["tank/a", "tank/b"], "summary": "sanoid snapshots on forge" } },
        "delivery": { "command": null, "ntfy": null, "webhook": null, "email": null }
    });
    let mut ctx = ctx;
    for (k, v) in delivery.as_object().unwrap() {
        ctx["delivery"][k] = v.clone();
    }
    std::fs::write(&path, ctx.to_string()).unwrap();
    path
}

fn notify(context: &Utf8Path) -> (i32, String) {
    let out = zpersist_e2e::zfs_watchdog::run_bounded(
        duct::cmd(
            binary(),
            [
                "--failed-unit",
                "sanoid.service",
                "--context",
                context.as_str(),
            ],
        )
        .stdin_null()
        .stdout_capture()
        .stderr_capture(),
        "zpersist-notify --failed-unit sanoid.service",
        zpersist_e2e::zfs_watchdog::OTHER_LIMIT,
    )
    .unwrap_or_else(zpersist_e2e::zfs_watchdog::Hung::fail);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn webhook_posts_the_event_json_and_ntfy_publishes_with_the_token_from_its_file() {
    let dir = scratch_dir("http");
    let webhook = TcpListener::bind("127.0.0.1:0").unwrap();
    let ntfy = TcpListener::bind("127.0.0.1:0").unwrap();
    let webhook_url = format!("http://{}/hook", webhook.local_addr().unwrap());
    let ntfy_url = format!("http://{}", ntfy.local_addr().unwrap());
    let token = dir.join("ntfy-token");
    std::fs::write(&token, "tk_secret\n").unwrap();
    let webhook_request = serve_once(webhook);
    let ntfy_request = serve_once(ntfy);
    let ctx = context(
        &dir,
        json!({
            "webhook": { "url": webhook_url, "curl": "curl" },
            "ntfy": { "url": ntfy_url, "topic": "alerts", "priority": "high", "tokenFile": token.as_str(), "curl": "curl" }
        }),
    );
    let (code, stderr) = notify(&ctx);
    assert_eq!(code, 0, "{stderr}");

    let (line, headers, body) = webhook_request.join().unwrap();
    assert_eq!(line, "POST /hook HTTP/1.1");
    assert!(
        headers
            .iter()
            .any(|h| h.eq_ignore_ascii_case("content-type: application/json")),
        "{headers:?}"
    );
    let event: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(event["unit"], "sanoid.service");
    assert_eq!(event["datasets"], json!(["tank/a", "tank/b"]));

    let (line, headers, body) = ntfy_request.join().unwrap();
    assert_eq!(line, "POST /alerts HTTP/1.1");
    assert!(
        headers.contains(&"Authorization: Bearer tk_secret".to_string()),
        "{headers:?}"
    );
    assert!(
        headers.contains(&"Title: sanoid.service failed on forge".to_string()),
        "{headers:?}"
    );
    assert!(
        headers.contains(&"Priority: high".to_string()),
        "{headers:?}"
    );
    assert!(body.contains("datasets: tank/a, tank/b"), "{body}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn email_goes_through_sendmail_t_with_the_event() {
    let dir = scratch_dir("mail");
    let sendmail = dir.join("sendmail");
    let mail = dir.join("mail.txt");
    script(
        &sendmail,
        &format!(r#"echo "$@" > "{mail}.args"; cat > "{mail}""#),
    );
    let ctx = context(
        &dir,
        json!({ "email": { "to": ["admin@example.org"], "from": "zpersist@forge", "sendmail": sendmail.as_str() } }),
    );
    let (code, stderr) = notify(&ctx);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        std::fs::read_to_string(format!("{mail}.args")).unwrap(),
        "-t -i\n"
    );
    let text = std::fs::read_to_string(&mail).unwrap();
    assert!(text.starts_with("From: zpersist@forge\nTo: admin@example.org\nSubject: [zpersist] sanoid.service failed on forge\n"), "{text}");
    assert!(text.contains("\"unit\":\"sanoid.service\""), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_failing_delivery_is_exit_1_and_the_others_still_run() {
    let dir = scratch_dir("fail");
    let good = dir.join("good");
    let bad = dir.join("bad");
    let out = dir.join("event.json");
    script(&bad, "echo 'pager unreachable' >&2; exit 3");
    script(&good, &format!(r#"cat > "{out}""#));
    // The command fails; email (through a working "sendmail") still goes.
    let ctx = context(
        &dir,
        json!({ "command": { "argv": [bad.as_str()] }, "email": { "to": ["a@b"], "from": "z@f", "sendmail": good.as_str() } }),
    );
    let (code, stderr) = notify(&ctx);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!("error: command delivery to {bad} failed")),
        "{stderr}"
    );
    assert!(stderr.contains("pager unreachable"), "{stderr}");
    assert!(
        stderr.contains("help: check zpersist.notify.command"),
        "{stderr}"
    );
    assert!(std::fs::read_to_string(&out)
        .unwrap()
        .contains("Subject: [zpersist] sanoid.service failed"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_context_is_exit_2_and_delivers_nothing() {
    let dir = scratch_dir("bad");
    let path = dir.join("context.json");
    std::fs::write(&path, r#"{"version": 2, "host": "h", "delivery": {}}"#).unwrap();
    let (code, stderr) = notify(&path);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("version 2 is not supported"), "{stderr}");
    let (code, stderr) = notify(&dir.join("missing.json"));
    assert_eq!(code, 2);
    assert!(
        stderr.contains("cannot read the notification context"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Whether a process whose argv is exactly `argv` is running.
fn running(argv: &[&str]) -> bool {
    let wanted: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .any(|p| std::fs::read(p.path().join("cmdline")).is_ok_and(|c| c == wanted))
}

/// A webhook on loopback answering one request: its URL, and when and what
/// it received.
fn timed_webhook() -> (String, Receiver<(Instant, Request)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let request = serve_once(listener);
    let (arrived, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let request = request.join().unwrap();
        let _ = arrived.send((Instant::now(), request));
    });
    (url, receiver)
}

/// A server on loopback that accepts every connection, reads the request
/// and never answers.
fn silent_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut open = Vec::new();
        for stream in listener.incoming().flatten() {
            open.push(stream);
        }
    });
    url
}

/// Starts zpersist-notify on `ctx` with `timeoutSeconds` set.
fn start_notify_with_timeout(ctx: &Utf8Path, seconds: u64) -> Running {
    let mut text: Value = serde_json::from_str(&std::fs::read_to_string(ctx).unwrap()).unwrap();
    text["timeoutSeconds"] = seconds.into();
    std::fs::write(ctx, text.to_string()).unwrap();
    Running::start(
        duct::cmd(
            binary(),
            ["--failed-unit", "sanoid.service", "--context", ctx.as_str()],
        ),
        "zpersist-notify",
    )
}

/// A run with a channel that hangs ends at about the 3 s limit, failed.
const ABOUT_3_S: std::ops::Range<Duration> = Duration::from_secs(3)..Duration::from_secs(6);

/// The webhook hears about the failure promptly, whatever the others do.
fn assert_webhook_got_the_event_promptly(started: Instant, arrived: &Receiver<(Instant, Request)>) {
    let (at, (line, _, body)) = arrived
        .recv_timeout(Duration::from_secs(20))
        .expect("the webhook got no request within 20 s");
    assert!(
        at - started < Duration::from_secs(2),
        "the webhook waited {:?}",
        at - started
    );
    assert_eq!(line, "POST /hook HTTP/1.1");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["unit"],
        "sanoid.service"
    );
}

#[test]
fn a_hanging_command_is_killed_at_its_timeout_and_does_not_hold_back_the_webhook() {
    let dir = scratch_dir("hang");
    let (url, arrived) = timed_webhook();
    // A command that never ends (a pager waiting on a dead server), listed
    // first: the webhook must not wait for it.
    let hang = ["sleep", "3599"];
    let ctx = context(
        &dir,
        json!({ "command": { "argv": hang }, "webhook": { "url": url, "curl": "curl" } }),
    );
    let run = start_notify_with_timeout(&ctx, 3);
    assert_webhook_got_the_event_promptly(run.started, &arrived);
    // The run ends at about the command's timeout, not the command's end.
    let stderr = run.finish().assert_exit(1, ABOUT_3_S);
    assert!(
        stderr
            .contains("error: command delivery to sleep did not finish within 3 s; it was killed"),
        "{stderr}"
    );
    assert!(
        stderr.contains("help: check zpersist.notify.command")
            && stderr.contains("zpersist.notify.timeoutSeconds"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "notified webhook of the failure of sanoid.service ({url})"
        )),
        "{stderr}"
    );
    assert!(!running(&hang), "the hung command was left running");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_ntfy_server_that_never_answers_times_out_in_curl_and_does_not_hold_back_the_webhook() {
    let dir = scratch_dir("hangntfy");
    let (url, arrived) = timed_webhook();
    let ntfy = silent_server();
    // ntfy is delivered before the webhook in the old sequential order.
    let ctx = context(
        &dir,
        json!({
            "ntfy": { "url": ntfy, "topic": "alerts", "priority": "high", "curl": "curl" },
            "webhook": { "url": url, "curl": "curl" }
        }),
    );
    let run = start_notify_with_timeout(&ctx, 3);
    assert_webhook_got_the_event_promptly(run.started, &arrived);
    let stderr = run.finish().assert_exit(1, ABOUT_3_S);
    // curl's own --max-time ends it, with curl's words for what happened.
    assert!(
        stderr.contains(&format!("error: ntfy delivery to {ntfy}/alerts failed (exit status: 28): curl: (28) Operation timed out")),
        "{stderr}"
    );
    assert!(stderr.contains("notified webhook"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
