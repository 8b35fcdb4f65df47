//! A dataset's mount on real ZFS (zfs-fuse, whose unmount is asynchronous:
//! a mount right after an unmount or a move is often "busy"): state,
//! unmount, mount, move, each retried while busy; and the space limits
//! named after a quota.

use zpersist_e2e::pool::{get, zfs, TestPool};
use zpersist_zfs::dataset::{
    dataset_state, mount_retrying, move_mountpoint, unmount_retrying, DatasetState, MountError,
};
use zpersist_zfs::space::{available, space_limits, tightest_limit};
use zpersist_zfs::Zfs;

#[test]
fn a_dataset_is_unmounted_mounted_and_moved_however_busy_zfs_is() {
    let pool = TestPool::new("mount");
    let zfs_ = Zfs::from_path().unwrap();
    let dataset = pool.ds("svc");
    let first = pool.scratch("first");
    let second = pool.scratch("second");
    zfs(&["create", "-o", &format!("mountpoint={first}"), &dataset]);
    std::fs::write(first.join("data"), "kept").unwrap();
    assert_eq!(
        dataset_state(&zfs_, &dataset).unwrap(),
        Some(DatasetState {
            mountpoint: first.to_string(),
            mounted: true
        })
    );
    assert_eq!(dataset_state(&zfs_, &pool.ds("none")).unwrap(), None);

    // Several rounds back to back: each mount follows an unmount at once.
    for _ in 0..3 {
        unmount_retrying(&zfs_, &dataset).unwrap();
        assert_eq!(get(&dataset, "mounted"), "no");
        unmount_retrying(&zfs_, &dataset).unwrap();
        mount_retrying(&zfs_, &dataset).unwrap();
        assert_eq!(get(&dataset, "mounted"), "yes");
        mount_retrying(&zfs_, &dataset).unwrap();
    }
    move_mountpoint(&zfs_, &dataset, second.as_str()).unwrap();
    assert_eq!(get(&dataset, "mountpoint"), second.as_str());
    assert_eq!(get(&dataset, "mounted"), "yes");
    assert_eq!(
        std::fs::read_to_string(second.join("data")).unwrap(),
        "kept"
    );
    move_mountpoint(&zfs_, &dataset, second.as_str()).unwrap();

    let missing = pool.ds("none");
    for result in [
        mount_retrying(&zfs_, &missing),
        unmount_retrying(&zfs_, &missing),
        move_mountpoint(&zfs_, &missing, first.as_str()),
    ] {
        match result {
            Err(e @ MountError::Missing(_)) => {
                assert_eq!(e.to_string(), format!("dataset {missing} does not exist"))
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn the_tightest_space_limit_is_named_with_its_remedy() {
    let pool = TestPool::new("space");
    let zfs_ = Zfs::from_path().unwrap();
    let parent = pool.ds("limited");
    let child = pool.ds("limited/child");
    zfs(&["create", "-o", "quota=3M", &parent]);
    zfs(&["create", "-o", "quota=10M", &child]);
    let limits = space_limits(&zfs_, &child);
    // The child's quota, the parent's, the pool's free space.
    assert_eq!(limits.len(), 3, "{limits:?}");
    let tightest = tightest_limit(&zfs_, &child).unwrap();
    assert!(
        tightest
            .description
            .starts_with(&format!("the quota of {parent} is 3.0 MiB")),
        "{tightest:?}"
    );
    assert!(tightest
        .help
        .contains(&format!("zfs set quota=SIZE {parent}")));
    assert!(available(&zfs_, &pool.name).unwrap().unwrap() > 0);
    assert_eq!(available(&zfs_, &pool.ds("none")).unwrap(), None);
}
