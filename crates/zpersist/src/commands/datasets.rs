//! `zpersist datasets apply [--dry-run] [--plan FILE]`: make the pool's
//! datasets match the declared plan (`zpersist_ops::datasets`), under the
//! same lock as zpersist-datasets.service.

use std::process::ExitCode;
use std::time::Duration;

use camino::Utf8PathBuf;
use zpersist_ops::config::REBUILD_HELP;
use zpersist_ops::datasets;

use crate::cli::DatasetsApplyArgs;
use crate::Context;

pub fn apply(cx: &Context, args: DatasetsApplyArgs) -> ExitCode {
    let mut reporter = cx.reporter("zpersist datasets apply");
    let plan = match cx.config.datasets_plan(args.plan.as_deref()) {
        Ok(plan) => plan,
        Err(problems) => return reporter.bad_input(&problems, REBUILD_HELP, "nothing was changed"),
    };
    let lock_file = Utf8PathBuf::from(format!("/run/zpersist/ensure-datasets-{}.lock", plan.pool));
    let mut out = std::io::stdout().lock();
    let report = datasets::run(
        &plan,
        args.dry_run,
        &lock_file,
        Duration::from_secs(120),
        if cx.json { None } else { Some(&mut out) },
    );
    drop(out);
    if cx.json {
        reporter.document(&report);
    }
    if !report.succeeded() {
        reporter.mark_failed();
    }
    reporter.exit_code()
}
