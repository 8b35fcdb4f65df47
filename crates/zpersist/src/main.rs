//! `zpersist`: one front for the operator (docs/cli.md). Each subcommand
//! is a thin dispatch over `zpersist-ops` in `commands/<name>.rs`; the
//! command line itself is data in `cli.rs`, from which the completions
//! and the man page are generated. Exit codes: 0 done, 1 failed or needs
//! a person, 2 bad arguments or configuration (nothing touched).

mod cli;
mod commands;

use std::process::ExitCode;

use clap::Parser;
use cli::{Cli, Command, ConfigCommand, DatasetsCommand, PitrCommand};
use zpersist_ops::config::ConfigDir;
use zpersist_report::Reporter;

/// What every subcommand gets: the configuration directory and how to report.
pub struct Context {
    pub config: ConfigDir,
    pub json: bool,
}

impl Context {
    pub fn reporter(&self, name: &'static str) -> Reporter {
        Reporter::new(name, self.json)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let cx = Context {
        config: ConfigDir::new(&cli.config_dir),
        json: cli.json,
    };
    match cli.command {
        Command::Status(args) => commands::status::run(&cx, args),
        Command::Restore(args) => commands::restore::run(&cx, args),
        Command::Drill(args) => commands::drill::run(&cx, args),
        Command::Migrate(args) => commands::migrate::run(&cx, args),
        Command::Pitr { command } => match command {
            PitrCommand::Restore(args) => commands::pitr::restore(&cx, args),
            PitrCommand::Drill => commands::pitr::drill(&cx),
        },
        Command::Config {
            command: ConfigCommand::Check,
        } => commands::config::check(&cx),
        Command::Datasets {
            command: DatasetsCommand::Apply(args),
        } => commands::datasets::apply(&cx, args),
        Command::Completions(args) => commands::completions::run(args),
        Command::Man => commands::man::run(),
        Command::Preseed(args) => commands::preseed::run(&cx, args),
    }
}
