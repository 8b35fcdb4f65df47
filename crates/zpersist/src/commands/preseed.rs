//! `zpersist preseed --plan FILE` (hidden): what a service's preseed unit
//! runs before it starts, as preseed-restore does.

use std::process::ExitCode;
use std::time::Duration;

use zpersist_core::preseed::PreseedPlan;
use zpersist_ops::config::{read_plan, PRESEED_PLAN_HELP};
use zpersist_ops::preseed;

use crate::cli::PreseedArgs;
use crate::Context;

pub fn run(cx: &Context, args: PreseedArgs) -> ExitCode {
    let mut reporter = cx.reporter("zpersist preseed");
    let plan = match read_plan::<PreseedPlan>(&args.plan) {
        Ok(plan) => plan,
        Err(problems) => {
            return reporter.bad_input(&problems, PRESEED_PLAN_HELP, "nothing was touched")
        }
    };
    let options = preseed::Options {
        dry_run: args.dry_run,
        lock_timeout: Duration::from_secs(args.lock_timeout),
        text: !cx.json,
        ..preseed::Options::default()
    };
    preseed::run(&plan, &options).print(&mut reporter, "zpersist preseed")
}
