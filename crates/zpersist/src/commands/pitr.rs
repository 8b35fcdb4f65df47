//! `zpersist pitr restore --to TIME --into DIR [--start]` and `zpersist
//! pitr drill`: PostgreSQL's point-in-time recovery over the contract
//! CONFIG_DIR/pitr.json (the flows of `zpersist_ops::pitr`).

use std::process::ExitCode;

use crate::cli::PitrRestoreArgs;
use crate::Context;

pub fn restore(cx: &Context, args: PitrRestoreArgs) -> ExitCode {
    let mut reporter = cx.reporter("zpersist pitr restore");
    let path = cx.config.file("pitr.json");
    let contract = match zpersist_ops::pitr::load_contract(&path, &mut reporter) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let options = zpersist_ops::pitr::restore::Options::asked(
        &contract,
        &path,
        args.start,
        args.archive,
        args.port,
    );
    zpersist_ops::pitr::finish(
        &mut reporter,
        zpersist_ops::pitr::restore::restore(&contract, &args.to, &args.into, &options),
        zpersist_ops::pitr::restore::RestoreReport::lines,
    )
}

pub fn drill(cx: &Context) -> ExitCode {
    let mut reporter = cx.reporter("zpersist pitr drill");
    let path = cx.config.file("pitr.json");
    let contract = match zpersist_ops::pitr::load_contract(&path, &mut reporter) {
        Ok(c) => c,
        Err(code) => return code,
    };
    zpersist_ops::pitr::finish(
        &mut reporter,
        zpersist_ops::pitr::drill::run(&contract, &path),
        zpersist_ops::pitr::drill::DrillReport::lines,
    )
}
