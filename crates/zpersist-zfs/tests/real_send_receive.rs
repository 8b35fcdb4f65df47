//! `zfs send | zfs receive` through zpersist-process's pipeline on real ZFS
//! (zfs-fuse): here to here, and from "another host" (the loopback sshd,
//! `Location::Ssh`) to here, as preseeding from a replica will. The stream
//! never passes through the test's memory; a failing side is named.

use std::time::Duration;

use zpersist_e2e::pool::{exists, zfs, TestPool};
use zpersist_e2e::sshd;
use zpersist_process::{Location, Stream};
use zpersist_zfs::Zfs;

fn test_sshd() -> Location {
    sshd::require();
    Location::Ssh(sshd::target(Duration::from_secs(30)))
}

#[test]
fn a_snapshot_is_received_from_here_and_from_over_ssh_with_its_data() {
    let pool = TestPool::new("sendrecv");
    let source = pool.ds("source data");
    zfs(&["create", &source]);
    let payload: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(pool.mnt().join("source data/db.bin"), &payload).unwrap();
    zfs(&["snapshot", &format!("{source}@seed")]);

    let here = Zfs::from_path().unwrap();
    for (from, name) in [
        (here.clone(), "copy here"),
        (Zfs::at(test_sshd()).unwrap(), "copy over ssh"),
    ] {
        let target = pool.ds(name);
        let mut progress = Vec::new();
        from.send_to(&format!("{source}@seed"), &[], &here, &target, &["-v"])
            .timeout(Duration::from_secs(120))
            .stream(&mut |stream, line| progress.push((stream, line.to_string())))
            .unwrap_or_else(|e| panic!("{e}\n  help: {}", e.help));
        assert!(exists(&target), "{name}");
        assert!(exists(&format!("{target}@seed")), "{name}");
        assert_eq!(
            std::fs::read(pool.mnt().join(name).join("db.bin")).unwrap(),
            payload,
            "{name}"
        );
        assert!(
            progress
                .iter()
                .any(|(s, l)| *s == Stream::Stdout && l.contains("receiving")),
            "{name}: {progress:?}"
        );
    }
}

#[test]
fn a_missing_snapshot_names_the_sending_side_and_the_pipeline() {
    let pool = TestPool::new("sendfail");
    let here = Zfs::from_path().unwrap();
    let e = Zfs::at(test_sshd())
        .unwrap()
        .send_to(&pool.ds("absent@x"), &[], &here, &pool.ds("never"), &[])
        .timeout(Duration::from_secs(60))
        .run()
        .unwrap_err();
    let shown = e.to_string();
    assert!(
        shown.starts_with(&format!(
            "`zfs send {}@x` on root@127.0.0.1:{}",
            pool.ds("absent"),
            sshd::PORT
        )),
        "{shown}"
    );
    assert!(shown.contains("| zfs receive"), "{shown}");
    assert!(!exists(&pool.ds("never")));
}
