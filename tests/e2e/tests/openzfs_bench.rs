//! Benchmark, not a test (benches/openzfs runs it; ignored otherwise): the
//! benches' ratios on real OpenZFS in the guest (zpersist_e2e::guest), under
//! TCG, so absolute times are the emulator's; the ratios are the point.
//!
//! 1. ensure-datasets at steady state against one raw `zfs get` of the same
//!    datasets and properties (median of ROUNDS);
//! 2. preseed-restore from a local replica pool against a raw
//!    `zfs send | zfs receive -u` of the same snapshot (ZPERSIST_BENCH_MIB,
//!    default 1024);
//! 3. the cost of resuming a transfer cut at half (`receive -s`, then
//!    `send -t TOKEN`) against the uncut transfer.

use std::time::Instant;

use serde_json::json;
use zpersist_e2e::guest::{Guest, GuestPool};

const ROUNDS: usize = 3;

fn timed(f: impl FnOnce()) -> f64 {
    let start = Instant::now();
    f();
    start.elapsed().as_secs_f64()
}

fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

#[test]
#[ignore = "a benchmark: benches/openzfs runs it"]
fn bench_on_openzfs() {
    let Some(guest) = Guest::shared() else { return };
    let mib: u64 = std::env::var("ZPERSIST_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    println!("OpenZFS in the guest: {}", guest.zfs_version);

    // 1. ensure-datasets at steady state.
    let pool = GuestPool::new(guest, "bench");
    let n = 20;
    let mut datasets = vec![json!({ "name": pool.ds("svc"), "canmount": "off" })];
    for i in 0..n {
        datasets.push(json!({ "name": pool.ds(&format!("svc/s{i}")),
            "properties": { "recordsize": "16K", "compression": "zstd", "atime": "off", "com.zpersist:backup": "hourly" },
            "owner": "daemon", "group": "daemon", "mode": "0750" }));
    }
    let plan = pool.write_plan(
        "plan.json",
        &json!({ "version": 1, "pool": pool.name, "datasets": datasets }),
    );
    let lock = pool.scratch("lock");
    let bin = guest.binary("ensure-datasets");
    let ensure = || guest.run_ok(&[&bin, "--plan", &plan, "--lock-file", &lock]);
    ensure();
    let names: Vec<String> = (0..n).map(|i| pool.ds(&format!("svc/s{i}"))).collect();
    let mut get = vec![
        "zfs",
        "get",
        "-H",
        "-p",
        "-o",
        "name,property,value,source",
        "recordsize,compression,atime,com.zpersist:backup,mountpoint,canmount,mounted",
    ];
    get.extend(names.iter().map(String::as_str));
    let ensure_s = median((0..ROUNDS).map(|_| timed(|| drop(ensure()))).collect());
    let get_s = median(
        (0..ROUNDS)
            .map(|_| timed(|| drop(guest.run_ok(&get))))
            .collect(),
    );
    let spawns = guest
        .run_recorded(&bin, &["--plan", &plan, "--lock-file", &lock], &[])
        .zfs_calls
        .len();
    println!(
        "ensure-datasets steady state, {n} datasets: {ensure_s:.2} s ({spawns} zfs spawn), one raw zfs get {get_s:.2} s: ratio {:.2}x",
        ensure_s / get_s
    );
    drop(pool);

    // 2. preseed from a replica against raw send | receive.
    let src = GuestPool::new(guest, "bsrc");
    let rep = GuestPool::new(guest, "brep");
    let ds = src.ds("svc/app");
    let mountpoint = format!("{}/app", src.mnt());
    guest.zfs(&[
        "create",
        "-p",
        "-o",
        &format!("mountpoint={mountpoint}"),
        &ds,
    ]);
    guest.sh_ok(&format!(
        "head -c {} /dev/urandom >{mountpoint}/blob && sync",
        mib << 20
    ));
    let snap = format!("{ds}@autosnap_2026-11-01_00:00:00_hourly");
    guest.zfs(&["snapshot", &snap]);
    guest.zfs(&["create", &rep.ds("backup")]);
    let copy = rep.ds("backup/app");
    let raw_s = timed(|| {
        guest.sh_ok(&format!("zfs send {snap} | zfs receive -u {copy}"));
    });
    guest.zfs(&["destroy", &snap]);
    guest.sh_ok(&format!("rm -f {mountpoint}/blob && sync"));
    let state = src.scratch("state");
    guest.run_ok(&["mkdir", "-p", &state]);
    let preseed_plan = src.write_plan(
        "preseed.json",
        &json!({ "version": 1, "service": "app", "dataset": ds, "mountpoint": mountpoint,
            "owner": "root", "group": "root", "mode": "0750", "properties": {},
            "sources": [ { "replica": { "target": "usb", "host": null, "dataset": copy } } ],
            "stateDir": state, "timeoutSeconds": 600 }),
    );
    let preseed_bin = guest.binary("preseed-restore");
    let preseed_s = timed(|| {
        guest.run_ok(&[&preseed_bin, "--plan", &preseed_plan]);
    });
    println!(
        "preseed from a local replica, {mib} MiB: {preseed_s:.1} s, raw zfs send | zfs receive -u {raw_s:.1} s: ratio {:.2}x",
        preseed_s / raw_s
    );

    // 3. resuming a transfer cut at half.
    let copy_snap = format!("{copy}@autosnap_2026-11-01_00:00:00_hourly");
    let cut = rep.ds("backup/cut");
    let half = (mib << 20) / 2;
    let first_half_s = timed(|| {
        guest.sh_ok(&format!(
            "zfs send {copy_snap} | head -c {half} | zfs receive -s -u {cut}; true"
        ));
    });
    let token = guest.get(&cut, "receive_resume_token");
    assert_ne!(token, "-", "the cut receive left a token");
    let resume_s = timed(|| {
        guest.sh_ok(&format!("zfs send -t {token} | zfs receive -s -u {cut}"));
    });
    println!(
        "a transfer cut at half: first half {first_half_s:.1} s, resuming the rest {resume_s:.1} s, against the whole {raw_s:.1} s: resume costs {:.2}x the uncut transfer in all, the rest alone {:.2}x",
        (first_half_s + resume_s) / raw_s,
        resume_s / raw_s
    );
}
