//! zpersist-notify: run by `zpersist-notify@<unit>.service` (the OnFailure
//! hook) to report that <unit> failed. The deliveries run at once, each
//! killed at its limit (`timeoutSeconds`), so one that fails or hangs keeps
//! the event from no other. Exit 0: every delivery succeeded; 1: a delivery
//! failed or timed out (the others still ran); 2: bad arguments or context
//! file (nothing was delivered).

use std::process::ExitCode;

use clap::Parser;
use zpersist_notify::context::Context;
use zpersist_notify::{deliver, event, journal, time};

#[derive(Parser)]
#[command(
    version,
    about = "Report a failed unit to the configured command, ntfy, webhook and email"
)]
struct Args {
    /// The unit that failed (the template's instance, %i).
    #[arg(long)]
    failed_unit: String,
    /// The context file the NixOS module renders.
    #[arg(long, default_value = "/etc/zpersist/notify-context.json")]
    context: String,
    /// The journalctl to read the unit's journal with.
    #[arg(long, default_value = "journalctl")]
    journalctl: String,
    /// Print the event and the planned deliveries; deliver nothing.
    #[arg(long)]
    dry_run: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let text = match std::fs::read_to_string(&args.context) {
        Ok(text) => text,
        Err(e) => {
            eprintln!(
                "error: cannot read the notification context {}: {e}",
                args.context
            );
            eprintln!("help: it is rendered by the zpersist NixOS module (zpersist.notify); rebuild the system, or pass --context FILE");
            return ExitCode::from(2);
        }
    };
    let context = match Context::parse(&text) {
        Ok(context) => context,
        Err(e) => {
            eprintln!(
                "error: {} is not a valid notification context: {e}",
                args.context
            );
            eprintln!("help: the file comes from the zpersist NixOS module; a zpersist-notify of the same version reads it");
            return ExitCode::from(2);
        }
    };
    let tail = journal::tail(
        &args.journalctl,
        &args.failed_unit,
        context.journal_lines,
        context.timeout(),
    );
    let event = event::build(
        &context,
        &args.failed_unit,
        tail,
        &time::rfc3339(time::now()),
    );

    if !context.delivers() {
        eprintln!(
            "error: no delivery is configured; the failure of {} is only in the journal",
            args.failed_unit
        );
        eprintln!("help: set zpersist.notify.command, .ntfy.url, .webhook.url or .email.to");
        println!("{}", event.json());
        return ExitCode::from(1);
    }
    let (planned, plan_errors, _token_header) = deliver::plan_all(&context, &event);
    if args.dry_run {
        println!("{}", event.json());
        for p in &planned {
            println!("{}: {:?}", p.name, p.argv);
        }
        return ExitCode::SUCCESS;
    }
    let mut failed = false;
    for e in &plan_errors {
        failed = true;
        eprintln!("error: {} delivery: {}", e.name, e.error);
        eprintln!("help: {}", e.help);
    }
    deliver::run_all(&planned, |p, result| match result {
        Ok(()) => eprintln!(
            "notified {} of the failure of {} ({})",
            p.name, event.unit, p.destination
        ),
        Err((error, help)) => {
            failed = true;
            eprintln!("error: {error}");
            eprintln!("help: {help}");
        }
    });
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
