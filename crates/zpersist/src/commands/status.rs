//! `zpersist status [SERVICE] [--textfile PATH] [--timeout SECONDS]`:
//! every service, PostgreSQL and every pool, with the last drill of each
//! (`zpersist_ops::status`), over the contracts in CONFIG_DIR.

use std::process::ExitCode;

use zpersist_ops::status;

use crate::cli::StatusArgs;
use crate::Context;

pub fn run(cx: &Context, args: StatusArgs) -> ExitCode {
    let mut reporter = cx.reporter("zpersist status");
    let options = status::Options {
        service: args.service,
        config: cx.config.dir.clone(),
        timeout: args.timeout,
    };
    match status::run(&options) {
        Ok(report) => report.print(&mut reporter, args.textfile.as_deref()),
        Err(e) => reporter.report(&e),
    }
}
