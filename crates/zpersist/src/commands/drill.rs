//! `zpersist drill [SERVICE] [--source LABEL]`: restore each source's
//! freshest point into a scratch dataset, check it, measure RPO and RTO
//! (`zpersist_ops::drill`); without SERVICE, every drilled service in turn.

use std::process::ExitCode;
use std::time::Duration;

use zpersist_core::contract::Diagnostic;
use zpersist_core::drill::DrillPlan;
use zpersist_ops::config::{read_plan, DRILL_PLAN_HELP};
use zpersist_ops::drill;
use zpersist_ops::preseed::sources;

use crate::cli::DrillArgs;
use crate::Context;

pub fn run(cx: &Context, args: DrillArgs) -> ExitCode {
    let mut reporter = cx.reporter("zpersist drill");
    let services = match (&args.plan, &args.service) {
        (Some(_), _) => vec![String::new()],
        (None, Some(service)) => vec![service.clone()],
        (None, None) => cx.config.planned_services("drill"),
    };
    if services.is_empty() {
        reporter.abort(
            &Diagnostic::new(format!(
                "no service is drilled here ({} holds no plan); nothing was touched",
                cx.config.file("drill").display()
            ))
            .with_help(
                "declare zpersist.services.<name>.drill.enable = true and rebuild (docs/drill.md)",
            ),
        );
        return ExitCode::from(2);
    }
    // Every plan read (and the source checked) before any drill runs.
    let mut plans = Vec::new();
    for service in &services {
        let plan = match &args.plan {
            Some(path) => read_plan::<DrillPlan>(path),
            None => cx.config.drill_plan(service),
        };
        match plan {
            Ok(plan) => plans.push(plan),
            Err(problems) => {
                return reporter.bad_input(&problems, DRILL_PLAN_HELP, "nothing was touched")
            }
        }
    }
    if let Some(only) = &args.source {
        for plan in &plans {
            if let Err((error, help)) = sources::source_index(&plan.preseed, only) {
                reporter.abort(&Diagnostic::new(error).with_help(help));
                return ExitCode::from(2);
            }
        }
    }
    let options = drill::Options {
        only: args.source,
        lock_timeout: Duration::from_secs(args.lock_timeout),
        text: !cx.json,
    };
    let one = args.plan.is_some() || args.service.is_some();
    let results: Vec<_> = plans
        .iter()
        .map(|plan| drill::run(plan, &options))
        .collect();
    // One service: its result; every one: a list of them.
    if cx.json {
        match results.as_slice() {
            [result] if one => reporter.document(result),
            all => reporter.document(&all),
        }
    }
    let mut failed = false;
    for result in &results {
        for (error, help) in drill::failures(result) {
            reporter.fail(error, help);
        }
        failed |= !result.success;
        if result.success && !cx.json {
            println!("{}", drill::success_line(result, "zpersist drill"));
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
