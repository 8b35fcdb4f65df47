//! `zpersist completions bash|zsh|fish`: generated from the command line's
//! definitions (cli.rs), so they never drift from it.

use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::{generate, shells};

use crate::cli::{Cli, CompletionsArgs, Shell};

pub fn run(args: CompletionsArgs) -> ExitCode {
    let mut command = Cli::command();
    let out = &mut std::io::stdout();
    match args.shell {
        Shell::Bash => generate(shells::Bash, &mut command, "zpersist", out),
        Shell::Zsh => generate(shells::Zsh, &mut command, "zpersist", out),
        Shell::Fish => generate(shells::Fish, &mut command, "zpersist", out),
    }
    ExitCode::SUCCESS
}
