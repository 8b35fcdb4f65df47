//! How far each replication target is behind, measured on the target:
//! the newest snapshot it holds against the newest local one.
//!
//! - [`config`]: /etc/zpersist/replication.json as the NixOS module renders it;
//! - [`listing`]: the snapshots here and on a target (zpersist-zfs's typed
//!   listing at the target's `Location`: here, or over the pinned ssh);
//! - [`report`]: the measurements and the Prometheus textfile (pure).
//!
//! The comparison itself is zpersist-core's `replication::measure`.

pub mod config;
pub mod listing;
pub mod report;

use std::collections::BTreeMap;
use std::time::Duration;

use zpersist_core::replication as measure;
use zpersist_process::seconds;
use zpersist_zfs::Zfs;

use config::{Config, TargetLocation, DEFAULT_TIMEOUT_SECONDS};
use report::Measurement;

/// What a run overrides of the config.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Kill a zfs or ssh call that takes longer than this many seconds
    /// (the config's `timeoutSeconds` otherwise, else 60).
    pub timeout: Option<u64>,
}

/// Measures every dataset of `config` on its target, in order, telling
/// `progress` a line before each. A failed check is a measurement with its
/// error and help (the others still run); a target a call timed out on is
/// not asked again in this run.
pub fn measure_all(
    config: &Config,
    options: &Options,
    mut progress: impl FnMut(String),
) -> Vec<Measurement> {
    let identifiers: Vec<String> = config
        .targets
        .values()
        .map(|t| t.identifier.clone())
        .collect();
    let timeout = Duration::from_secs(
        options
            .timeout
            .or(config.timeout_seconds)
            .unwrap_or(DEFAULT_TIMEOUT_SECONDS),
    );
    let total = config.datasets.len();
    // Found once; when zfs is missing every check fails with that message.
    // Every zfs and ssh call is killed at `timeout`.
    let zfs = Zfs::from_path().map(|zfs| zfs.with_timeout(timeout));
    // Targets a call timed out on, with the check it was for (source,
    // target dataset): the rest of their checks are skipped, so that a hung
    // target costs one timeout per run, not one per dataset.
    let mut hung: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut measurements = Vec::new();
    for (i, pair) in config.datasets.iter().enumerate() {
        let target = &config.targets[&pair.target];
        progress(format!(
            "[{}/{total}] {} on {} ...",
            i + 1,
            pair.source,
            pair.target
        ));
        let mut m = Measurement {
            source: pair.source.clone(),
            target: pair.target.clone(),
            target_dataset: pair.target_dataset.clone(),
            newest_local: None,
            newest_on_target: None,
            lag_seconds: None,
            error: None,
            no_common_snapshot: None,
            help: None,
        };
        let location = target
            .location(timeout)
            .expect("the contract refuses a target that is neither local nor remote");
        if let Some((source, dataset)) = hung.get(&pair.target) {
            m.error = Some(format!(
                "not checked: a call for {dataset} on {location} did not finish within {} earlier in this run",
                seconds(timeout)
            ));
            m.help = Some(format!(
                "see the error for {source} -> {}; its other checks are skipped until the next run",
                pair.target
            ));
            measurements.push(m);
            continue;
        }
        let listings = listing::local(&zfs, &pair.source).and_then(|local| {
            listing::on_target(&zfs, &location, &target.dataset, &pair.target_dataset)
                .map(|on_target| (local, on_target))
                .inspect_err(|failure| {
                    if failure.timed_out {
                        hung.insert(
                            pair.target.clone(),
                            (pair.source.clone(), pair.target_dataset.clone()),
                        );
                    }
                })
        });
        match listings {
            Ok((local, on_target)) => {
                let (l, r, lag) = measure::measure(
                    &target.identifier,
                    &identifiers,
                    &local,
                    on_target.as_deref().unwrap_or_default(),
                );
                if r.is_none() {
                    let (why, help) = report::no_common_snapshot(
                        &pair.source,
                        &pair.target,
                        &pair.target_dataset,
                        &location.to_string(),
                        &local,
                        on_target.as_deref(),
                    );
                    m.no_common_snapshot = Some(why);
                    m.help = Some(help);
                }
                m.newest_local = l;
                m.newest_on_target = r;
                m.lag_seconds = lag;
            }
            Err(failure) => {
                m.error = Some(failure.error);
                m.help = Some(failure.help);
            }
        }
        measurements.push(m);
    }

    measurements
}
