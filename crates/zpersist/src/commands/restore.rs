//! `zpersist restore SERVICE [--dry-run] [--from SOURCE] [--replace]`: a
//! restore by hand, through preseed's journaled sibling swap
//! (`zpersist_ops::preseed` with `by_hand`): data there is refused unless
//! `--replace`, which moves it aside (kept, never destroyed).

use std::process::ExitCode;
use std::time::Duration;

use zpersist_core::contract::Diagnostic;
use zpersist_ops::config::PRESEED_PLAN_HELP;
use zpersist_ops::preseed::{self, sources};

use crate::cli::RestoreArgs;
use crate::Context;

pub fn run(cx: &Context, args: RestoreArgs) -> ExitCode {
    let mut reporter = cx.reporter("zpersist restore");
    let plan = match cx.config.restore_plan(&args.service) {
        Ok(plan) => plan,
        Err(problems) => {
            return reporter.bad_input(&problems, PRESEED_PLAN_HELP, "nothing was touched")
        }
    };
    if let Some(from) = &args.from {
        if let Err((error, help)) = sources::source_index(&plan, from) {
            reporter.abort(&Diagnostic::new(error).with_help(help));
            return ExitCode::from(2);
        }
    }
    let options = preseed::Options {
        dry_run: args.dry_run,
        lock_timeout: Duration::from_secs(args.lock_timeout),
        text: !cx.json,
        from: args.from,
        replace: args.replace,
        by_hand: true,
    };
    preseed::run(&plan, &options).print(&mut reporter, "zpersist restore")
}
