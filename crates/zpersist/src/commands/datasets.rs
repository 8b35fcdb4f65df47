//! `zpersist datasets apply`.

use std::process::ExitCode;

use crate::cli::DatasetsApplyArgs;
use crate::Context;

pub fn apply(cx: &Context, args: DatasetsApplyArgs) -> ExitCode {
    let _ = args;
    let mut reporter = cx.reporter("zpersist");
    reporter.fail(
        "this subcommand is not wired to its operation yet",
        "run the binary of the same flow (docs/cli.md)",
    );
    reporter.exit_code()
}
