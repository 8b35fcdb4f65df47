//! Native ZFS encryption end to end (issue 20), on real OpenZFS 2.4 in the
//! Debian guest of zpersist_e2e::guest (zfs-fuse has no encryption), one
//! guest for every test here: encrypted datasets created and inherited, an
//! existing unencrypted dataset reported as drift with the way to move it,
//! a locked dataset (key not loaded, its mountpoint directory empty
//! beneath) never taken for an empty one by zpersist-check-mounted or
//! preseed.
//!
//! Where qemu cannot start the guest, every test here returns after one
//! loud line saying why (zpersist_e2e::guest::Guest::shared).

use serde_json::json;
use zpersist_e2e::guest::{Guest, GuestPool};
use zpersist_e2e::runbook::Runbook;

fn guest() -> Option<&'static Guest> {
    Guest::shared()
}

/// A 32-byte raw key in the pool's scratch directory; its `file://` URL.
fn key_file(guest: &Guest, pool: &GuestPool, name: &str) -> (String, String) {
    let path = pool.scratch(name);
    guest.sh_ok(&format!(
        "mkdir -p \"$(dirname {path})\" && head -c 32 /dev/urandom >{path} && chmod 0400 {path}"
    ));
    let url = format!("file://{path}");
    (path, url)
}

#[test]
fn encrypted_datasets_are_created_and_inherited_and_an_unencrypted_one_is_drift_never_fixed() {
    let Some(guest) = guest() else { return };
    let pool = GuestPool::new(guest, "enc");
    let (_, key) = key_file(guest, &pool, "secure.key");
    let (secure, app, plain, under_plain) = (
        pool.ds("secure"),
        pool.ds("secure/app"),
        pool.ds("plain"),
        pool.ds("plain/child"),
    );
    let encryption = json!({
        "encryption": "aes-256-gcm", "keyformat": "raw", "keylocation": key,
    });
    let plan = json!({
        "version": 1, "pool": pool.name,
        "datasets": [
            { "name": secure, "mountpoint": format!("{}/secure", pool.mnt()), "properties": encryption },
            { "name": app, "properties": { "atime": "off" }, "mode": "0750" },
        ],
    });
    let run = pool.ensure(&plan);
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(guest.get(&secure, "encryption"), "aes-256-gcm");
    assert_eq!(guest.get(&secure, "encryptionroot"), secure);
    assert_eq!(guest.get(&secure, "keystatus"), "available");
    assert_eq!(guest.get(&secure, "keylocation"), key);
    // The child inherits the parent's root: one key for both.
    assert_eq!(guest.get(&app, "encryption"), "aes-256-gcm");
    assert_eq!(guest.get(&app, "encryptionroot"), secure);
    assert_eq!(guest.get(&app, "keystatus"), "available");
    assert_eq!(guest.get(&app, "mounted"), "yes");
    // The parent is created before the child, each with its own create.
    let creates: Vec<&String> = run
        .calls_named("create")
        .into_iter()
        .map(|argv| argv.last().unwrap())
        .collect();
    assert_eq!(creates, [&secure, &app], "{run:#?}");

    // In shape: nothing to do, no mutating zfs call.
    let again = pool.ensure(&plan);
    assert_eq!(again.code, 0, "{again:#?}");
    assert!(again.mutating_calls().is_empty(), "{:?}", again.zfs_calls);

    // An existing unencrypted dataset where the plan declares encryption:
    // drift, reported with the way to move the data, never "fixed"; its
    // declared child is not created (it would be unencrypted).
    guest.zfs(&[
        "create",
        "-o",
        &format!("mountpoint={}/plain", pool.mnt()),
        &plain,
    ]);
    guest.sh_ok(&format!("echo data >{}/plain/file", pool.mnt()));
    let plan = json!({
        "version": 1, "pool": pool.name,
        "datasets": [
            { "name": plain, "mountpoint": format!("{}/plain", pool.mnt()), "properties": encryption },
            { "name": under_plain, "properties": { "atime": "off" } },
        ],
    });
    let run = pool.ensure(&plan);
    assert_eq!(run.code, 1, "{run:#?}");
    assert_eq!(guest.get(&plain, "encryption"), "off");
    assert!(
        !guest.exists(&under_plain),
        "{under_plain} was created unencrypted"
    );
    assert!(
        run.stdout.contains(&format!(
            "{plain}: `encryption` is `off` but the plan says `aes-256-gcm`"
        )),
        "{run:#?}"
    );
    assert!(
        run.stdout
            .contains("ZFS cannot encrypt an existing dataset")
            && run.stdout.contains("migrate-to-dataset"),
        "{run:#?}"
    );
    assert!(
        run.stdout.contains(&format!(
            "{under_plain}: not created, because its parent {plain} is not encrypted"
        )),
        "{run:#?}"
    );
    // Only reads: no zfs set of keylocation on an unencrypted dataset, no create.
    assert!(run.mutating_calls().is_empty(), "{:?}", run.zfs_calls);
    assert_eq!(
        guest.run_ok(&["cat", &format!("{}/plain/file", pool.mnt())]),
        "data\n"
    );
}

/// An encrypted service dataset with data, its key then unloaded: not
/// mounted, `keystatus=unavailable`, and its mountpoint directory beneath
/// empty, exactly what an empty dataset's unmounted path looks like.
struct Locked {
    guest: &'static Guest,
    pool: GuestPool,
    replica: GuestPool,
    ds: String,
    mountpoint: String,
    key_path: String,
    copy: String,
}

impl Locked {
    fn new(guest: &'static Guest, tag: &str) -> Locked {
        let pool = GuestPool::new(guest, tag);
        let replica = GuestPool::new(guest, &format!("{tag}rep"));
        let (key_path, key) = key_file(guest, &pool, "sonarr.key");
        let ds = pool.ds("services/sonarr");
        let mountpoint = format!("{}/var/lib/sonarr", pool.mnt());
        guest.zfs(&["create", "-p", &pool.ds("services")]);
        guest.zfs(&[
            "create",
            "-o",
            "encryption=aes-256-gcm",
            "-o",
            "keyformat=raw",
            "-o",
            &format!("keylocation={key}"),
            "-o",
            &format!("mountpoint={mountpoint}"),
            &ds,
        ]);
        guest.sh_ok(&format!(
            "printf 'database v1' >{mountpoint}/sonarr.db && printf secret-plaintext-marker >{mountpoint}/config.xml"
        ));
        guest.zfs(&["snapshot", &format!("{ds}@first")]);
        let copy = replica.ds("backup/sonarr");
        guest.zfs(&["create", "-p", &replica.ds("backup")]);
        guest.sh_ok(&format!("zfs send -w {ds}@first | zfs receive -u {copy}"));
        let f = Locked {
            guest,
            pool,
            replica,
            ds,
            mountpoint,
            key_path,
            copy,
        };
        f.lock();
        f
    }

    fn lock(&self) {
        self.guest.zfs(&["unmount", &self.ds]);
        self.guest.zfs(&["unload-key", &self.ds]);
        self.guest.run_ok(&["mkdir", "-p", &self.mountpoint]);
        assert_eq!(self.guest.get(&self.ds, "keystatus"), "unavailable");
        assert_eq!(self.guest.get(&self.ds, "mounted"), "no");
        assert_eq!(
            self.guest.run_ok(&["ls", "-A", &self.mountpoint]).trim(),
            ""
        );
    }
}

#[test]
fn a_locked_dataset_is_never_empty_check_mounted_fails_and_preseed_refuses_untouched() {
    let Some(guest) = guest() else { return };
    let f = Locked::new(guest, "lock");
    let check = guest.run_recorded(
        &guest.binary("zpersist-check-mounted"),
        &["sonarr", &f.ds, &f.mountpoint],
        &[],
    );
    assert_eq!(check.code, 1, "{check:#?}");
    assert!(
        check.stderr.starts_with(&format!(
            "error: {} is locked: its encryption key is not loaded (keystatus: unavailable, encryption root {}); not starting sonarr, which would write to the directory beneath\n",
            f.ds, f.ds
        )),
        "{check:#?}"
    );
    assert!(
        check
            .stderr
            .contains(&format!(
                "help: load the key (`zfs load-key {}`, which reads the key at file://{}) and mount it (`zfs mount {}`)",
                f.ds, f.key_path, f.ds
            )),
        "{check:#?}"
    );

    // zpersist-status: locked, with its keystatus, not "not mounted".
    let dir = f.pool.scratch("status");
    guest.write(
        &format!("{dir}/services.json"),
        json!({ "version": 1, "pool": f.pool.name, "services": {
            "sonarr": { "dataset": f.ds, "mountpoint": f.mountpoint } } })
        .to_string()
        .as_bytes(),
    );
    let status = |extra: &[&str]| {
        let mut args = vec!["--config", dir.as_str()];
        args.extend(extra);
        guest.run_recorded(&guest.binary("zpersist-status"), &args, &[])
    };
    let st = status(&[]);
    assert_eq!(st.code, 1, "{st:#?}");
    let said = format!("{}{}", st.stdout, st.stderr);
    assert!(
        said.contains(&format!(
            "{} is locked: its encryption key is not loaded (keystatus: unavailable, encryption root {}); sonarr stays down",
            f.ds, f.ds
        )) && said.contains(&format!("zfs load-key {}", f.ds)),
        "{st:#?}"
    );
    let j = status(&["--json"]);
    let doc: serde_json::Value = serde_json::from_str(&j.stdout).expect("JSON");
    assert!(
        doc.to_string().contains(r#""key":"locked""#),
        "{}",
        j.stdout
    );

    // ensure-datasets neither mounts it nor creates in it nor owns the
    // directory beneath.
    let plan = json!({
        "version": 1, "pool": f.pool.name,
        "datasets": [
            { "name": f.ds, "mountpoint": f.mountpoint, "owner": "daemon", "mode": "0750",
              "properties": { "encryption": "aes-256-gcm", "keyformat": "raw",
                              "keylocation": format!("file://{}", f.key_path) } },
            { "name": format!("{}/cache", f.ds) },
        ],
    });
    let run = f.pool.ensure(&plan);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.stdout.contains(&format!(
            "{} is locked: its encryption key is not loaded",
            f.ds
        )) && run.stdout.contains(&format!("{}/cache is locked", f.ds))
            && run.stdout.contains(&format!("zfs load-key {}", f.ds)),
        "{run:#?}"
    );
    assert!(run.mutating_calls().is_empty(), "{:?}", run.zfs_calls);
    assert_eq!(
        guest.run_ok(&["stat", "-c", "%u %a", &f.mountpoint]).trim(),
        "0 755"
    );

    let state = f.pool.scratch("state");
    guest.run_ok(&["mkdir", "-p", &state]);
    let plan = json!({
        "version": 1, "service": "sonarr", "dataset": f.ds, "mountpoint": f.mountpoint,
        "sources": [
            { "replica": { "target": "usb", "host": null, "dataset": f.copy } },
            { "local": {} },
        ],
        "stateDir": state, "timeoutSeconds": 30,
    });
    let path = f.pool.write_plan("preseed.json", &plan);
    let run = guest.run_recorded(&guest.binary("preseed-restore"), &["--plan", &path], &[]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.stderr.contains(&format!("{} is locked", f.ds))
            && run.stderr.contains(&format!("zfs load-key {}", f.ds))
            && run.stderr.contains(&f.key_path),
        "{run:#?}"
    );
    assert!(run.mutating_calls().is_empty(), "{:?}", run.zfs_calls);
    // Still locked, still there, nothing swapped in.
    assert_eq!(guest.get(&f.ds, "keystatus"), "unavailable");
    assert_eq!(guest.get(&f.ds, "com.zpersist:preseed"), "-");
    let names = guest.zfs(&["list", "-H", "-o", "name", "-r", &f.pool.ds("services")]);
    assert_eq!(names.lines().count(), 2, "{names}");
    let _ = &f.replica;
}

/// The key unit's command (`zpersist-load-key ROOT`, the ExecStart of
/// zpersist-load-key-<root>.service in tests/e2e/tests/snapshots/
/// nix_encryption__encryption_key_units.snap) with its key file present and
/// absent: a missing optional key keeps its one service down (locked), the
/// other service's dataset is loaded, mounted by ensure-datasets and
/// passes its mount check.
#[test]
fn the_key_unit_loads_a_present_key_and_a_missing_optional_key_keeps_only_its_service_down() {
    let Some(guest) = guest() else { return };
    let pool = GuestPool::new(guest, "keys");
    let (key_path, key) = key_file(guest, &pool, "app.key");
    let (spare_path, spare_key) = key_file(guest, &pool, "spare.key");
    let (app, spare) = (pool.ds("app"), pool.ds("spare"));
    let (app_at, spare_at) = (
        format!("{}/srv/app", pool.mnt()),
        format!("{}/srv/spare", pool.mnt()),
    );
    let plan = json!({
        "version": 1, "pool": pool.name,
        "datasets": [
            { "name": app, "mountpoint": app_at,
              "properties": { "encryption": "aes-256-gcm", "keyformat": "raw", "keylocation": key } },
            { "name": format!("{app}/db") },
            { "name": spare, "mountpoint": spare_at,
              "properties": { "encryption": "aes-256-gcm", "keyformat": "raw", "keylocation": spare_key } },
        ],
    });
    let run = pool.ensure(&plan);
    assert_eq!(run.code, 0, "{run:#?}");
    guest.sh_ok(&format!(
        "echo app >{app_at}/data && echo spare >{spare_at}/data"
    ));
    // A reboot, as far as keys go: everything unmounted and locked; the
    // optional key's file is not there (the USB stick is out).
    for ds in [&app, &spare] {
        guest.zfs(&["unmount", ds]);
        guest.zfs(&["unload-key", ds]);
    }
    guest.run_ok(&["mv", &spare_path, &format!("{spare_path}.away")]);

    let load = |ds: &str| guest.run_recorded(&guest.binary("zpersist-load-key"), &[ds], &[]);
    let run = load(&app);
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(run.stdout, format!("loaded the key of {app} from {key}\n"));
    assert_eq!(guest.get(&app, "keystatus"), "available");
    assert_eq!(guest.get(&format!("{app}/db"), "keystatus"), "available");
    // Again: loaded already, nothing changes.
    let again = load(&app);
    assert_eq!(again.code, 0, "{again:#?}");
    assert_eq!(
        again.stdout,
        format!("the key of {app} is loaded; nothing to do\n")
    );
    assert!(again.mutating_calls().is_empty(), "{:?}", again.zfs_calls);

    let missing = load(&spare);
    assert_eq!(missing.code, 1, "{missing:#?}");
    assert_eq!(
        missing.stderr.lines().next().unwrap(),
        format!("error: {spare}'s key file {spare_path} is missing, so its datasets stay locked and the services on them stay down")
    );
    assert!(
        missing.mutating_calls().is_empty(),
        "{:?}",
        missing.zfs_calls
    );
    assert_eq!(guest.get(&spare, "keystatus"), "unavailable");
    let _ = &key_path;

    // zpersist-datasets after the key units: the loaded root's datasets
    // mounted, the locked one reported, nothing done to it.
    let run = pool.ensure(&plan);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.stdout.contains(&format!("{spare} is locked")),
        "{run:#?}"
    );
    assert_eq!(guest.get(&app, "mounted"), "yes");
    assert_eq!(guest.run_ok(&["cat", &format!("{app_at}/data")]), "app\n");
    let check = |service: &str, ds: &str, at: &str| {
        guest.run_recorded(
            &guest.binary("zpersist-check-mounted"),
            &[service, ds, at],
            &[],
        )
    };
    assert_eq!(check("app", &app, &app_at).code, 0);
    let down = check("spare", &spare, &spare_at);
    assert_eq!(down.code, 1, "{down:#?}");
    assert!(
        down.stderr.contains(&format!("{spare} is locked")),
        "{down:#?}"
    );

    // The key back: loaded, mounted, up.
    guest.run_ok(&["mv", &format!("{spare_path}.away"), &spare_path]);
    assert_eq!(load(&spare).code, 0);
    let run = pool.ensure(&plan);
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(check("spare", &spare, &spare_at).code, 0);
}

/// A root's sshd in the guest on 127.0.0.1:2222, a key for it, and the
/// syncoid arguments the module renders for an ssh target (pinned host
/// key, batch mode); started once per guest.
fn guest_sshd(guest: &Guest) -> Vec<String> {
    guest.sh_ok(
        "set -e
if ! [ -e /root/.ssh/zpersist-enc ]; then
  ssh-keygen -A >/dev/null
  mkdir -p /run/sshd /root/.ssh && chmod 0700 /root/.ssh
  ssh-keygen -q -t ed25519 -N '' -f /root/.ssh/zpersist-enc
  cat /root/.ssh/zpersist-enc.pub >>/root/.ssh/authorized_keys
  /usr/sbin/sshd -p 2222 -o ListenAddress=127.0.0.1 -o PermitRootLogin=prohibit-password -o PasswordAuthentication=no
  printf '[127.0.0.1]:2222 %s\\n' \"$(cut -d' ' -f1,2 /etc/ssh/ssh_host_ed25519_key.pub)\" >/root/.ssh/zpersist-enc-known
fi",
    );
    [
        "--sshkey=/root/.ssh/zpersist-enc",
        "--sshport=2222",
        "--sshoption=UserKnownHostsFile=/root/.ssh/zpersist-enc-known",
        "--sshoption=StrictHostKeyChecking=yes",
        "--sshoption=BatchMode=yes",
    ]
    .map(String::from)
    .to_vec()
}

/// `zfs send` of a snapshot, with `flags`, grepped for `needle` in the
/// guest: whether the stream's bytes hold it.
fn stream_holds(guest: &Guest, flags: &str, snapshot: &str, needle: &str) -> bool {
    guest
        .sh(&format!(
            "zfs send {flags} {snapshot} | grep -c -a -F {needle}"
        ))
        .stdout
        .trim()
        != "0"
}

#[test]
fn replication_sends_encrypted_datasets_raw_locally_and_over_ssh_and_no_target_can_read_them() {
    let Some(guest) = guest() else { return };
    let pool = GuestPool::new(guest, "raw");
    let replica = GuestPool::new(guest, "rawrep");
    let (_, key) = key_file(guest, &pool, "secure.key");
    let secure = pool.ds("secure");
    let marker = "zpersist-plaintext-marker-issue-20";
    let plan = json!({
        "version": 1, "pool": pool.name,
        "datasets": [
            { "name": secure, "mountpoint": format!("{}/secure", pool.mnt()),
              "properties": { "encryption": "aes-256-gcm", "keyformat": "raw", "keylocation": key } },
        ],
    });
    assert_eq!(pool.ensure(&plan).code, 0);
    guest.sh_ok(&format!(
        "for i in $(seq 1 200); do echo {marker} $i; done >{}/secure/notes.txt",
        pool.mnt()
    ));
    let first = format!("{secure}@autosnap_2026-12-01_00:00:00_hourly");
    guest.zfs(&["snapshot", &first]);
    // The control: a plain send (what syncoid does without -w) carries
    // the plaintext; the raw one does not.
    assert!(stream_holds(guest, "", &first, marker));
    assert!(!stream_holds(guest, "-w", &first, marker));

    // Unencrypted parents on the target, as the module creates them.
    guest.zfs(&["create", "-p", &replica.ds("usb")]);
    guest.zfs(&["create", "-p", &replica.ds("nas/forge")]);
    let ssh = guest_sshd(guest);
    // The module's argv: `--sendoptions=w` for an encrypted dataset,
    // `--recvoptions=u`, an identifier per target.
    let syncoid = |extra: &[String], target: &str| {
        let mut argv: Vec<String> = [
            "syncoid",
            "--no-sync-snap",
            "--no-privilege-elevation",
            "--sendoptions=w",
            "--recvoptions=u",
        ]
        .map(String::from)
        .to_vec();
        argv.extend(extra.iter().cloned());
        argv.extend([secure.clone(), target.to_string()]);
        let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
        let out = guest.run(&refs);
        assert!(out.success(), "{argv:?}: {out:#?}");
    };
    let local = replica.ds("usb/secure");
    let remote = replica.ds("nas/forge/secure");
    syncoid(&["--identifier=usb".into()], &local);
    let mut over_ssh = ssh.clone();
    over_ssh.push("--identifier=nas".into());
    syncoid(&over_ssh, &format!("root@127.0.0.1:{remote}"));

    // An incremental after new data, raw too.
    guest.sh_ok(&format!(
        "echo {marker} later >>{}/secure/notes.txt",
        pool.mnt()
    ));
    let second = format!("{secure}@autosnap_2026-12-01_01:00:00_hourly");
    guest.zfs(&["snapshot", &second]);
    syncoid(&["--identifier=usb".into()], &local);
    syncoid(&over_ssh, &format!("root@127.0.0.1:{remote}"));

    for copy in [&local, &remote] {
        // Its own encryption root, below an unencrypted parent; the key is
        // not there and was never asked for; not mounted.
        assert_eq!(guest.get(copy, "encryption"), "aes-256-gcm", "{copy}");
        assert_eq!(guest.get(copy, "encryptionroot"), *copy, "{copy}");
        assert_eq!(guest.get(copy, "keystatus"), "unavailable", "{copy}");
        assert_eq!(guest.get(copy, "mounted"), "no", "{copy}");
        let parent = copy.rsplit_once('/').unwrap().0;
        assert_eq!(guest.get(parent, "encryption"), "off", "{parent}");
        let snaps = guest.zfs(&[
            "list",
            "-H",
            "-t",
            "snapshot",
            "-o",
            "name",
            "-s",
            "createtxg",
            copy,
        ]);
        assert!(snaps.contains("01:00:00_hourly"), "{snaps}");
        // No plaintext to be had: it cannot be mounted without the key,
        // and even a plain send from the target is refused (or carries
        // nothing readable).
        let mount = guest.run(&["zfs", "mount", copy]);
        assert!(
            !mount.success(),
            "{copy} mounted without its key: {mount:#?}"
        );
        let newest = format!("{copy}@autosnap_2026-12-01_01:00:00_hourly");
        assert!(!stream_holds(guest, "-w", &newest, marker), "{newest}");
        assert!(!stream_holds(guest, "", &newest, marker), "{newest}");
        let grep = guest.sh(&format!(
            "grep -r -l -F {marker} /mnt/pools/rawrep 2>/dev/null"
        ));
        assert_eq!(grep.stdout.trim(), "", "plaintext on the target");
    }
}

/// An encrypted service dataset, declared with a key file of its own and
/// made by ensure-datasets, filled by `fill` (given its mountpoint),
/// snapshotted and sent raw to a local replica pool.
struct Replicated {
    pool: GuestPool,
    replica: GuestPool,
    ds: String,
    mountpoint: String,
    key_path: String,
    key: String,
    copy: String,
    plan: serde_json::Value,
}

impl Replicated {
    fn new(guest: &'static Guest, tag: &str, fill: impl FnOnce(&str)) -> Replicated {
        let pool = GuestPool::new(guest, tag);
        let replica = GuestPool::new(guest, &format!("{tag}rep"));
        let (key_path, key) = key_file(guest, &pool, "sonarr.key");
        let ds = pool.ds("sonarr");
        let mountpoint = format!("{}/var/lib/sonarr", pool.mnt());
        let plan = json!({
            "version": 1, "pool": pool.name,
            "datasets": [
                { "name": ds, "mountpoint": mountpoint,
                  "properties": { "encryption": "aes-256-gcm", "keyformat": "raw", "keylocation": key } },
            ],
        });
        assert_eq!(pool.ensure(&plan).code, 0);
        fill(&mountpoint);
        let snap = format!("{ds}@autosnap_2026-12-01_00:00:00_hourly");
        guest.zfs(&["snapshot", &snap]);
        guest.zfs(&["create", "-p", &replica.ds("backup")]);
        let copy = replica.ds("backup/sonarr");
        guest.sh_ok(&format!("zfs send -w {snap} | zfs receive -u {copy}"));
        Replicated {
            pool,
            replica,
            ds,
            mountpoint,
            key_path,
            key,
            copy,
            plan,
        }
    }
}

/// An encrypted service dataset with data, replicated raw to a local
/// replica pool, then lost: the pool's dataset made again, empty, by
/// ensure-datasets with the same declared key file (a replaced disk).
struct Lost {
    guest: &'static Guest,
    pool: GuestPool,
    _replica: GuestPool,
    ds: String,
    mountpoint: String,
    key_path: String,
    key: String,
    copy: String,
    plan: serde_json::Value,
}

impl Lost {
    fn new(guest: &'static Guest, tag: &str) -> Lost {
        let r = Replicated::new(guest, tag, |mountpoint| {
            guest.sh_ok(&format!(
                "printf 'database v1' >{mountpoint}/sonarr.db && printf '<v>1</v>' >{mountpoint}/config.xml"
            ));
        });
        assert_eq!(guest.get(&r.copy, "keystatus"), "unavailable");
        // Lost, and declared again: empty, encrypted with the same key.
        guest.zfs(&["destroy", "-r", &r.ds]);
        assert_eq!(r.pool.ensure(&r.plan).code, 0);
        assert_eq!(guest.get(&r.ds, "keystatus"), "available");
        Lost {
            guest,
            pool: r.pool,
            _replica: r.replica,
            ds: r.ds,
            mountpoint: r.mountpoint,
            key_path: r.key_path,
            key: r.key,
            copy: r.copy,
            plan: r.plan,
        }
    }

    fn preseed(&self) -> zpersist_e2e::pool::Recorded {
        let state = self.pool.scratch("state");
        self.guest.run_ok(&["mkdir", "-p", &state]);
        let plan = json!({
            "version": 1, "service": "sonarr", "dataset": self.ds, "mountpoint": self.mountpoint,
            "sources": [ { "replica": { "target": "usb", "host": null, "dataset": self.copy } } ],
            "stateDir": state, "timeoutSeconds": 60,
        });
        let path = self.pool.write_plan("preseed.json", &plan);
        let run = self.guest.run_logged(
            &self.guest.binary("preseed-restore"),
            &["--plan", &path],
            &[],
        );
        // Receives only into its sibling, destroys nothing, never rolls back.
        let sibling = format!("{}.zpersist-preseed", self.ds);
        for argv in &run.zfs_calls {
            match argv[0].as_str() {
                "destroy" | "rollback" | "promote" => panic!("preseed ran zfs {argv:?}"),
                "receive" | "recv" => assert_eq!(argv.last(), Some(&sibling), "{argv:?}"),
                _ => {}
            }
        }
        run
    }
}

#[test]
fn preseed_restores_an_encrypted_dataset_from_a_raw_replica_with_its_own_key() {
    let Some(guest) = guest() else { return };
    let f = Lost::new(guest, "prenc");
    let run = f.preseed();
    assert_eq!(run.code, 0, "{run:#?}");
    // Sent raw: the replica's key is never loaded.
    assert!(
        run.calls_named("send")
            .iter()
            .all(|argv| argv.contains(&"-w".to_string())),
        "{run:#?}"
    );
    assert_eq!(guest.get(&f.copy, "keystatus"), "unavailable");
    // Restored as it was: encrypted, its own root, the declared key.
    assert_eq!(
        guest.run_ok(&["cat", &format!("{}/sonarr.db", f.mountpoint)]),
        "database v1"
    );
    assert_eq!(guest.get(&f.ds, "encryption"), "aes-256-gcm");
    assert_eq!(guest.get(&f.ds, "encryptionroot"), f.ds);
    assert_eq!(guest.get(&f.ds, "keystatus"), "available");
    assert_eq!(guest.get(&f.ds, "keylocation"), f.key);
    assert_eq!(guest.get(&f.ds, "mounted"), "yes");
    assert_eq!(guest.get(&f.ds, "com.zpersist:preseed"), "restored");
    assert!(guest
        .get(&f.ds, "com.zpersist:preseed-source")
        .starts_with("replica:usb:"));
    // It opens with the declared key after a reboot, too.
    guest.zfs(&["unmount", &f.ds]);
    guest.zfs(&["unload-key", &f.ds]);
    guest.zfs(&["load-key", &f.ds]);
    guest.zfs(&["mount", &f.ds]);
    assert_eq!(
        guest.run_ok(&["cat", &format!("{}/config.xml", f.mountpoint)]),
        "<v>1</v>"
    );
    // The plan is in shape.
    let again = f.pool.ensure(&f.plan);
    assert_eq!(again.code, 0, "{again:#?}");
}

#[test]
fn preseed_of_an_encrypted_dataset_whose_key_file_is_missing_stops_naming_the_key() {
    let Some(guest) = guest() else { return };
    let f = Lost::new(guest, "prnokey");
    guest.run_ok(&["mv", &f.key_path, &format!("{}.away", f.key_path)]);
    let run = f.preseed();
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.stderr.contains(&format!(
            "{} is encrypted (encryption root {}) and its key file {} is missing",
            f.ds, f.ds, f.key_path
        )),
        "{run:#?}"
    );
    assert!(
        run.calls_named("receive").is_empty() && run.calls_named("rename").is_empty(),
        "{:?}",
        run.zfs_calls
    );
    assert_eq!(guest.get(&f.ds, "com.zpersist:preseed"), "-");
    assert_eq!(
        guest.run_ok(&["ls", "-A", &f.mountpoint]).trim(),
        "",
        "nothing was swapped in"
    );
}

/// docs/runbooks/rotate-key.md, every block, in the guest: the key of an
/// encryption root changed, raw incrementals before and after it into a
/// local replica pool, the replica restored on a clean pool with the new
/// key (and refused with the old one), the contents compared.
#[test]
fn the_key_rotation_runbook_runs_and_the_replica_restores_with_the_new_key_only() {
    let Some(guest) = guest() else { return };
    let pool = GuestPool::new(guest, "rot");
    let usb = GuestPool::new(guest, "rotusb");
    let clean = GuestPool::new(guest, "rotclean");
    let (key_path, key) = key_file(guest, &pool, "secure.key");
    let source = pool.ds("secure");
    let plan = json!({
        "version": 1, "pool": pool.name,
        "datasets": [
            { "name": source, "mountpoint": format!("{}/secure", pool.mnt()),
              "properties": { "encryption": "aes-256-gcm", "keyformat": "raw", "keylocation": key } },
        ],
    });
    assert_eq!(pool.ensure(&plan).code, 0);
    guest.sh_ok(&format!(
        "seq 1 5000 >{m}/secure/numbers && printf 'before\\n' >{m}/secure/when",
        m = pool.mnt()
    ));
    // The replica as syncoid made it: a raw full send, under an
    // unencrypted parent.
    let replica = usb.ds("forge/secure");
    guest.zfs(&["create", "-p", &usb.ds("forge")]);
    let first = format!("{source}@autosnap_2026-12-01_00:00:00_hourly");
    guest.zfs(&["snapshot", &first]);
    guest.sh_ok(&format!("zfs send -w {first} | zfs receive -u {replica}"));
    guest.sh_ok(&format!("printf 'after\\n' >>{}/secure/when", pool.mnt()));

    let rb = Runbook::load_skipping("rotate-key.md", &[]);
    let settings = format!(
        "SOURCE={source}\nKEY={key_path}\nREPLICA={replica}\nCLEAN_POOL={}\n",
        clean.name
    );
    let ran = rb.run_in_guest(guest, &settings, None, std::time::Duration::from_secs(600));
    assert!(
        ran.ok,
        "{}: failed; the last ### line names the block:\n{}",
        rb.path, ran.output
    );
    assert!(
        ran.output
            .contains("the replica restores with the new key, and only with it"),
        "{}",
        ran.output
    );
    // The source opens with the new key at the declared location, the old
    // key is gone, the replica stays locked and holds both snapshots.
    assert_eq!(guest.get(&source, "keylocation"), key);
    guest.zfs(&["unmount", &source]);
    guest.zfs(&["unload-key", &source]);
    guest.zfs(&["load-key", &source]);
    guest.zfs(&["mount", &source]);
    assert!(!guest
        .run(&["test", "-e", &format!("{key_path}.old")])
        .success());
    assert_eq!(guest.get(&replica, "keystatus"), "unavailable");
    let snaps = guest.zfs(&["list", "-H", "-t", "snapshot", "-o", "name", &replica]);
    assert!(
        snaps.contains("@rotate-before-") && snaps.contains("@rotate-after-"),
        "{snaps}"
    );
    assert!(!guest.exists(&clean.ds("rotate-check")));
    // ensure-datasets: in shape with the rotated key.
    let again = pool.ensure(&plan);
    assert_eq!(again.code, 0, "{again:#?}");
}

/// zpersist-drill of an encrypted dataset: its raw replica (locked there)
/// and its local snapshots are restored raw into the scratch copy, which
/// is unlocked with the live root's key, checked, and cleaned up.
#[test]
fn a_drill_restores_an_encrypted_dataset_from_its_raw_replica_and_local_snapshots() {
    let Some(guest) = guest() else { return };
    let Replicated {
        pool,
        replica: _replica,
        ds,
        mountpoint,
        copy,
        ..
    } = Replicated::new(guest, "drenc", |mountpoint| {
        guest.run_ok(&[
            "sqlite3",
            &format!("{mountpoint}/sonarr.db"),
            "CREATE TABLE series(id INTEGER PRIMARY KEY, title TEXT);
         INSERT INTO series(title) VALUES ('one'), ('two');",
        ]);
    });
    let state = pool.scratch("drill-state");
    let drill = json!({
        "version": 1, "service": "sonarr", "profile": "sonarr",
        "preseed": {
            "version": 1, "service": "sonarr", "dataset": ds, "mountpoint": mountpoint,
            "sources": [
                { "replica": { "target": "usb", "host": null, "dataset": copy } },
                { "local": {} },
            ],
            "stateDir": pool.scratch("preseed-state"), "timeoutSeconds": 120,
        },
        "sqlite": ["sonarr.db"],
        "check": ["test", "-s", "sonarr.db"],
        "checkTimeoutSeconds": 60,
        "stateDir": state,
        "textfile": pool.scratch("textfile/zpersist-drill-sonarr.prom"),
        "scratchRoot": pool.scratch("run-drill"),
    });
    let path = pool.write_plan("drill.json", &drill);
    let run = guest.run_logged(&guest.binary("zpersist-drill"), &["--plan", &path], &[]);
    zpersist_e2e::assertions::drill_left_the_live_dataset_untouched(&ds, &run);
    assert_eq!(run.code, 0, "{run:#?}");
    let result: serde_json::Value =
        serde_json::from_str(&guest.run_ok(&["cat", &format!("{state}/sonarr.json")])).unwrap();
    zpersist_e2e::assertions::drill_passed_for_every_source(&result, &["replica:usb", "local"]);
    assert!(
        run.calls_named("send")
            .iter()
            .all(|argv| argv.contains(&"-w".to_string())),
        "{run:#?}"
    );
    assert_eq!(guest.get(&copy, "keystatus"), "unavailable");
    assert_eq!(guest.get(&ds, "keystatus"), "available");
}
