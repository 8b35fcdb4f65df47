//! `zpersist migrate SERVICE [--dry-run] [--cleanup]`: move a service's
//! existing directory into its dataset (`zpersist_ops::migrate`), the
//! service as CONFIG_DIR/services.json declares it.

use std::process::ExitCode;
use std::time::Duration;

use zpersist_ops::config::REBUILD_HELP;
use zpersist_ops::migrate;

use crate::cli::MigrateArgs;
use crate::Context;

pub fn run(cx: &Context, args: MigrateArgs) -> ExitCode {
    let mut reporter = cx.reporter("zpersist migrate");
    let target = match cx.config.service(&args.service) {
        Ok(entry) => entry.target(),
        Err(problems) => return reporter.bad_input(&problems, REBUILD_HELP, "nothing was changed"),
    };
    let options = migrate::Options {
        dry_run: args.dry_run,
        json: cx.json,
        progress_every: Duration::from_secs(2),
    };
    migrate::run(&target, &options, args.cleanup).print(&mut reporter);
    reporter.exit_code()
}
