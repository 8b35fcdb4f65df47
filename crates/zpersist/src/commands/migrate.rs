//! `zpersist migrate SERVICE`.

use std::process::ExitCode;

use crate::cli::MigrateArgs;
use crate::Context;

pub fn run(cx: &Context, args: MigrateArgs) -> ExitCode {
    let _ = args;
    let mut reporter = cx.reporter("zpersist");
    reporter.fail(
        "this subcommand is not wired to its operation yet",
        "run the binary of the same flow (docs/cli.md)",
    );
    reporter.exit_code()
}
