//! Listing a dataset's snapshots on real ZFS (zfs-fuse), here and on
//! "another host": the same `Zfs::snapshots` at `Location::Ssh`, over the
//! loopback sshd that tests/env/start-sshd.sh starts. The dataset name has
//! a space, so the remote run also proves the quoting for the remote shell.

use std::time::Duration;

use zpersist_e2e::pool::{zfs, TestPool};
use zpersist_e2e::sshd;
use zpersist_process::Location;
use zpersist_zfs::Zfs;

fn test_sshd() -> Location {
    sshd::require();
    Location::Ssh(sshd::target(Duration::from_secs(30)))
}

#[test]
fn snapshots_are_listed_oldest_first_here_and_over_ssh_alike() {
    let pool = TestPool::new("snaps");
    let dataset = pool.ds("my data");
    zfs(&["create", &dataset]);
    zfs(&["create", &format!("{dataset}/child")]);
    zfs(&["snapshot", &format!("{dataset}@first")]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    zfs(&["snapshot", "-r", &format!("{dataset}@second")]);

    let local = Zfs::from_path()
        .unwrap()
        .snapshots(&dataset)
        .unwrap()
        .unwrap();
    let names: Vec<&str> = local.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["first", "second"],
        "children's snapshots are not listed"
    );
    assert!(local[0].creation < local[1].creation);
    assert_ne!(local[0].guid, local[1].guid);
    assert!(
        local[0].guid.chars().all(|c| c.is_ascii_digit()),
        "{}",
        local[0].guid
    );

    let remote = Zfs::at(test_sshd())
        .unwrap()
        .snapshots(&dataset)
        .unwrap_or_else(|e| {
            panic!(
                "{e}\nhelp: {} (tests/env/start-sshd.sh starts the test sshd)",
                e.help
            )
        });
    assert_eq!(remote, Some(local));
}

#[test]
fn a_missing_dataset_is_none_here_and_over_ssh() {
    let pool = TestPool::new("nosnaps");
    let missing = pool.ds("never replicated");
    assert_eq!(Zfs::from_path().unwrap().snapshots(&missing).unwrap(), None);
    let remote = Zfs::at(test_sshd()).unwrap();
    assert_eq!(remote.snapshots(&missing).unwrap(), None);
    assert!(!remote.exists(&missing).unwrap());
    assert!(remote.exists(&pool.name).unwrap());
}
