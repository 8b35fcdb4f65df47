//! `zpersist config check`: every contract in the configuration directory
//! read by the loaders the binaries use (`zpersist_ops::config::check`),
//! what was understood printed; a broken file exits 2, each problem
//! naming the file and, where known, the field.

use std::process::ExitCode;

use zpersist_core::contract::Diagnostic;
use zpersist_ops::config::{check as check_dir, REBUILD_HELP};

use crate::Context;

pub fn check(cx: &Context) -> ExitCode {
    let mut reporter = cx.reporter("zpersist config check");
    let report = check_dir(&cx.config.dir);
    if report.files.is_empty() {
        reporter.abort(
            &Diagnostic::new(format!(
                "{}: no contract found (services.json, preseed/, drill/, ...)",
                report.dir
            ))
            .with_help(REBUILD_HELP),
        );
        return ExitCode::from(2);
    }
    let problems: Vec<Diagnostic> = report.problems().cloned().collect();
    if cx.json {
        reporter.document(&report);
    } else {
        for file in &report.files {
            let verdict = if file.problems.is_empty() {
                "ok    "
            } else {
                "broken"
            };
            println!("{verdict} {} ({})", file.file, file.kind);
            for line in &file.understood {
                println!("         {line}");
            }
        }
        for file in &report.unknown {
            println!("unread {file} (not a file zpersist reads)");
        }
    }
    if problems.is_empty() {
        if !cx.json {
            println!(
                "zpersist config check: {}: {} file(s) understood",
                report.dir,
                report.files.len()
            );
        }
        return ExitCode::SUCCESS;
    }
    for problem in &problems {
        let mut problem = problem.clone();
        if problem.help.is_none() {
            problem.help = Some(REBUILD_HELP.into());
        }
        reporter.error(&problem);
    }
    ExitCode::from(2)
}
