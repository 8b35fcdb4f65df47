//! `zpersist man`: the man page (roff), generated from the command line's
//! definitions (cli.rs); the Nix package installs it as zpersist.1.

use std::io::Write;
use std::process::ExitCode;

use clap::CommandFactory;

use crate::cli::Cli;

pub fn run() -> ExitCode {
    let mut page = Vec::new();
    let rendered = clap_mangen::Man::new(Cli::command()).render(&mut page);
    match rendered.and_then(|()| std::io::stdout().write_all(&page)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "{}",
                zpersist_report::render_error(
                    &format!("zpersist man: cannot write the man page: {e}"),
                    "check that stdout is writable",
                )
            );
            ExitCode::FAILURE
        }
    }
}
