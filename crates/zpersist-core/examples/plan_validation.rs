//! Benchmark (not a test): how `Plan::parse` (JSON + validation) grows with
//! the number of declared datasets. Baseline in the same run: serde_json
//! reading the same text into a `Value`, which any reader must pay. Run by
//! `benches/plan-validation`.

use std::time::{Duration, Instant};

use zpersist_core::Plan;

/// A plan of `n` datasets in groups of 100, each group a `canmount=off`
/// parent with its own mountpoint and the children inheriting from it, so
/// every mountpoint is found by walking up to a declared ancestor.
fn plan_text(n: usize) -> String {
    let mut datasets = Vec::with_capacity(n + n / 100 + 1);
    for group in 0..n.div_ceil(100) {
        datasets.push(format!(
            r#"{{"name":"tank/g{group}","mountpoint":"/srv/g{group}","canmount":"off"}}"#
        ));
    }
    for i in 0..n {
        datasets.push(format!(
            r#"{{"name":"tank/g{}/s{i}","properties":{{"recordsize":"16K","compression":"on","com.zpersist:backup":"hourly"}},"owner":"daemon","mode":"0750"}}"#,
            i / 100
        ));
    }
    format!(
        r#"{{"version":1,"pool":"tank","datasets":[{}]}}"#,
        datasets.join(",")
    )
}

fn best_of(rounds: usize, mut f: impl FnMut()) -> Duration {
    (0..rounds)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed()
        })
        .min()
        .unwrap()
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("sizes are whole numbers"))
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10_000, 20_000, 40_000, 100_000]
    } else {
        sizes
    };
    println!(
        "{:>8}  {:>12}  {:>14}  {:>16}  {:>12}",
        "datasets", "json (ms)", "parse+validate", "per dataset (us)", "vs json"
    );
    for n in sizes {
        let text = plan_text(n);
        let json = best_of(3, || {
            let value: serde_json::Value = serde_json::from_str(&text).unwrap();
            std::hint::black_box(value);
        });
        let validate = best_of(3, || {
            let plan = Plan::parse(&text).expect("the generated plan is valid");
            std::hint::black_box(plan);
        });
        println!(
            "{n:>8}  {:>12.1}  {:>14.1}  {:>16.2}  {:>11.1}x",
            json.as_secs_f64() * 1e3,
            validate.as_secs_f64() * 1e3,
            validate.as_secs_f64() * 1e6 / n as f64,
            validate.as_secs_f64() / json.as_secs_f64()
        );
    }
}
