//! `zpersist pitr restore --to TIME --into DIR [--start]` and `zpersist
//! pitr drill`: PostgreSQL's point-in-time recovery over the contract
//! CONFIG_DIR/pitr.json (the flows of `zpersist_ops::pitr`).

use std::process::ExitCode;

use crate::cli::PitrRestoreArgs;
use crate::Context;

pub fn restore(cx: &Context, args: PitrRestoreArgs) -> ExitCode {
    let mut reporter = cx.reporter("zpersist pitr restore");
    zpersist_ops::pitr::restore_from(
        &mut reporter,
        &cx.config.file("pitr.json"),
        &args.to,
        &args.into,
        args.start,
        args.archive,
        args.port,
    )
}

pub fn drill(cx: &Context) -> ExitCode {
    let mut reporter = cx.reporter("zpersist pitr drill");
    zpersist_ops::pitr::drill_from(&mut reporter, &cx.config.file("pitr.json"))
}
