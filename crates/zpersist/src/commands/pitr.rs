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
    let mut options = zpersist_ops::pitr::restore::Options::new(&contract, &path);
    options.start = args.start;
    options.archive = args.archive;
    if let Some(port) = args.port {
        options.port = port;
    }
    match zpersist_ops::pitr::restore::restore(&contract, &args.to, &args.into, &options) {
        Ok(report) => {
            if reporter.json() {
                reporter.document(&report);
            } else {
                for line in report.lines() {
                    println!("{line}");
                }
            }
            ExitCode::SUCCESS
        }
        Err(failure) => failure.exit(&mut reporter),
    }
}

pub fn drill(cx: &Context) -> ExitCode {
    let mut reporter = cx.reporter("zpersist pitr drill");
    let path = cx.config.file("pitr.json");
    let contract = match zpersist_ops::pitr::load_contract(&path, &mut reporter) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match zpersist_ops::pitr::drill::run(&contract, &path) {
        Ok(report) => {
            if reporter.json() {
                reporter.document(&report);
            } else {
                for line in report.lines() {
                    println!("{line}");
                }
            }
            ExitCode::SUCCESS
        }
        Err(failure) => failure.exit(&mut reporter),
    }
}
