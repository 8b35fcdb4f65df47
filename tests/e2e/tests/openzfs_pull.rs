//! Pull replication that a compromised source cannot erase (issue 21), on
//! real OpenZFS 2.4 in the Debian guest of zpersist_e2e::guest: two
//! "hosts" in one guest, each a pool of its own (`pforge`, the source;
//! `pnas`, the backup host), each with an sshd on loopback with its
//! pinned host key. nas pulls with syncoid as nixpkgs' unit runs it, with
//! the arguments nix/modules/replication-pull.nix gives it; forge's puller
//! key is forced to zpersist-pull-gate with the send-only delegation
//! `zpersist.replication.pullers` grants.
//!
//! Where qemu cannot start the guest, every test here returns after one
//! loud line saying why (zpersist_e2e::guest::Guest::shared).

use zpersist_e2e::guest::{Guest, GuestPool};

/// What zpersist.replication.pullers grants the puller on each dataset.
const PULLER_ALLOW: &str = "send,hold,bookmark";

/// syncoid's arguments for a pull, as nix/modules/replication-pull.nix
/// writes them (but for the key and known_hosts paths).
fn pull_args(port: u16, key: &str, known_hosts: &str) -> Vec<String> {
    [
        "--no-sync-snap",
        "--no-rollback",
        "--create-bookmark",
        "--compress=none",
        &format!("--sshport={port}"),
        &format!("--sshoption=UserKnownHostsFile={known_hosts}"),
        "--sshoption=StrictHostKeyChecking=yes",
        "--sshoption=BatchMode=yes",
        "--sshoption=ConnectTimeout=20",
        "--sshkey",
        key,
        "--sendoptions",
        "",
        "--recvoptions",
        "u o readonly=on",
        "--no-privilege-elevation",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The two hosts: the pools, the users, the sshd instances, the keys.
struct Hosts {
    guest: &'static Guest,
    forge: GuestPool,
    nas: GuestPool,
    dir: String,
    /// forge's sshd port; nas's is the next one.
    port: u16,
    /// The puller's user on forge, the restore user on nas.
    puller: String,
    restorer: String,
}

impl Hosts {
    /// The two hosts of one test: pools `<tag>forge` and `<tag>nas`,
    /// sshd on `port` (forge) and `port + 1` (nas).
    fn new(guest: &'static Guest, tag: &str, port: u16) -> Hosts {
        let forge = GuestPool::new(guest, &format!("{tag}forge"));
        let nas = GuestPool::new(guest, &format!("{tag}nas"));
        let dir = format!("/var/tmp/zpersist-pull-{tag}");
        let (puller, restorer) = (format!("zpull{tag}"), format!("zrestore{tag}"));
        let gate = guest.binary("zpersist-pull-gate");
        guest.sh_ok(&format!(
            r#"set -e
D={dir}
rm -rf $D; mkdir -p $D/forge $D/nas /run/sshd
# forge's puller: no password, a shell it never gets (the key is forced).
id {puller} >/dev/null 2>&1 || useradd -m -s /bin/sh {puller}
usermod -p '*' {puller}
# nas's restore user (preseed on a rebuilt forge reads through it).
id {restorer} >/dev/null 2>&1 || useradd -m -s /bin/sh {restorer}
usermod -p '*' {restorer}
# nas's pull key (on nas only), forge's own keys (what a thief of forge has).
ssh-keygen -q -t ed25519 -N '' -f $D/nas/pull-key
ssh-keygen -q -t ed25519 -N '' -f $D/forge/restore-key
ssh-keygen -q -t ed25519 -N '' -f $D/forge/host-key
ssh-keygen -q -t ed25519 -N '' -f $D/nas/host-key
ssh-keygen -q -t ed25519 -N '' -f $D/forge/root-key
for u in {puller} {restorer}; do mkdir -p /home/$u/.ssh; done
echo "restrict,command=\"{gate} --dataset {fsvc} --bookmark --zfs /usr/sbin/zfs --zpool /usr/sbin/zpool\" $(cat $D/nas/pull-key.pub)" >/home/{puller}/.ssh/authorized_keys
echo "restrict,command=\"{gate} --dataset {nbackup} --zfs /usr/sbin/zfs --zpool /usr/sbin/zpool\" $(cat $D/forge/restore-key.pub)" >/home/{restorer}/.ssh/authorized_keys
for u in {puller} {restorer}; do chown -R $u /home/$u/.ssh; chmod 700 /home/$u/.ssh; chmod 600 /home/$u/.ssh/authorized_keys; done
for h in forge nas; do
  port={sport}; [ $h = nas ] && port={nport}
  user={puller}; [ $h = nas ] && user={restorer}
  printf 'Port %s\nListenAddress 127.0.0.1\nHostKey %s\nPidFile %s\nUsePAM no\nAllowUsers %s\nAuthorizedKeysFile .ssh/authorized_keys\n' \
    $port $D/$h/host-key $D/$h/sshd.pid $user >$D/$h/sshd_config
  /usr/sbin/sshd -f $D/$h/sshd_config
done
echo "[127.0.0.1]:{sport} $(cut -d' ' -f1,2 $D/forge/host-key.pub)" >$D/nas/known_hosts
echo "[127.0.0.1]:{nport} $(cut -d' ' -f1,2 $D/nas/host-key.pub)" >$D/forge/known_hosts
"#,
            fsvc = forge.ds("services"),
            nbackup = nas.ds("backup/forge"),
            sport = port,
            nport = port + 1,
        ));
        // forge: a service's data, its policy snapshots, the puller's delegation.
        guest.zfs(&["create", &forge.ds("services")]);
        guest.zfs(&["create", &forge.ds("services/app")]);
        guest.zfs(&["allow", "-u", &puller, PULLER_ALLOW, &forge.ds("services")]);
        // nas: the replica tree, empty levels unmountable.
        guest.zfs(&[
            "create",
            "-p",
            "-o",
            "canmount=off",
            &nas.ds("backup/forge/services"),
        ]);
        // nas's restore key reads the replica tree, and nothing else.
        guest.zfs(&["allow", "-u", &restorer, "send", &nas.ds("backup/forge")]);
        Hosts {
            guest,
            forge,
            nas,
            dir,
            port,
            puller,
            restorer,
        }
    }

    fn source(&self) -> String {
        self.forge.ds("services/app")
    }

    fn replica(&self) -> String {
        self.nas.ds("backup/forge/services/app")
    }

    /// One pull, as nas's syncoid unit runs it: syncoid, then (when it
    /// succeeded) the unit's ExecStartPost, zpersist-pull-base.
    fn pull(&self) -> zpersist_e2e::container::Output {
        let out = self.syncoid(&[]);
        if out.success() {
            let base = self.guest.binary("zpersist-pull-base");
            self.guest
                .run_ok(&[&base, "--source", "forge", &self.replica()]);
        }
        out
    }

    /// syncoid's argv for one pull, `extra` arguments first.
    fn syncoid_argv(&self, extra: &[&str]) -> Vec<String> {
        let mut argv = vec!["syncoid".to_owned()];
        argv.extend(extra.iter().map(|s| s.to_string()));
        argv.extend(pull_args(
            self.port,
            &format!("{}/nas/pull-key", self.dir),
            &format!("{}/nas/known_hosts", self.dir),
        ));
        argv.push(format!("{}@127.0.0.1:{}", self.puller, self.source()));
        argv.push(self.replica());
        argv
    }

    fn syncoid(&self, extra: &[&str]) -> zpersist_e2e::container::Output {
        let argv = self.syncoid_argv(extra);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        self.guest.run(&argv)
    }

    /// A policy snapshot of the source, with data written first.
    fn policy_snapshot(&self, name: &str, data: &str) {
        let file = format!("{}/services/app/data.txt", self.forge.mnt());
        self.guest.write(&file, data.as_bytes());
        self.guest
            .zfs(&["snapshot", &format!("{}@{name}", self.source())]);
    }

    /// Every snapshot, bookmark and dataset below nas's replica tree with
    /// its guid.
    fn nas_guids(&self) -> String {
        self.guest.zfs(&[
            "list",
            "-H",
            "-p",
            "-o",
            "name,guid",
            "-t",
            "all",
            "-r",
            &self.nas.ds("backup"),
        ])
    }

    /// `ssh` from forge to nas's sshd with one of forge's keys, running
    /// `command` (stdin from `stdin_file` when given).
    fn as_forge(
        &self,
        key: &str,
        user: &str,
        command: &str,
        stdin_file: Option<&str>,
    ) -> zpersist_e2e::container::Output {
        let ssh = format!(
            "ssh -i {d}/forge/{key} -p {nport} -o UserKnownHostsFile={d}/forge/known_hosts -o StrictHostKeyChecking=yes -o BatchMode=yes -o ConnectTimeout=20 {user}@127.0.0.1",
            d = self.dir,
            nport = self.port + 1,
        );
        let script = match stdin_file {
            Some(file) => format!("{ssh} '{command}' <{file}"),
            None => format!("{ssh} '{command}' </dev/null"),
        };
        self.guest.sh(&script)
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for h in ["forge", "nas"] {
            let _ = self.guest.sh(&format!(
                "kill $(cat {}/{h}/sshd.pid) 2>/dev/null",
                self.dir
            ));
        }
    }
}

#[test]
fn a_compromised_source_cannot_erase_or_rewrite_what_the_backup_host_pulled() {
    let Some(guest) = Guest::shared() else { return };
    let hosts = Hosts::new(guest, "p", 2222);
    let (source, replica) = (hosts.source(), hosts.replica());

    eprintln!("pull: hosts set up");
    // Replicate by pull: a full, then an incremental.
    hosts.policy_snapshot("autosnap_2026-12-06_00:00:00_daily", "day 1\n");
    let first = hosts.pull();
    assert!(first.success(), "the first pull failed: {first:#?}");
    hosts.policy_snapshot("autosnap_2026-12-07_00:00:00_daily", "day 2\n");
    let second = hosts.pull();
    assert!(second.success(), "the incremental pull failed: {second:#?}");
    assert_eq!(
        guest.get(&replica, "readonly"),
        "on",
        "received datasets are read-only"
    );
    // The base is bookmarked on the source (syncoid --create-bookmark,
    // through the gate's `zfs bookmark`).
    let bookmarks = guest.zfs(&["list", "-H", "-o", "name", "-t", "bookmark", &source]);
    assert!(
        bookmarks.contains("#autosnap_2026-12-07_00:00:00_daily"),
        "the newest pulled snapshot is bookmarked on forge: {bookmarks}"
    );
    // The base is held on nas, and only the newest: a stray destroy (or
    // nas's own pruning) cannot take it.
    let holds = guest.sh_ok(&format!(
        "zfs holds -H $(zfs list -H -o name -t snapshot {replica})"
    ));
    assert!(
        holds.contains("@autosnap_2026-12-07_00:00:00_daily\tzpersist-base-forge")
            && !holds.contains("@autosnap_2026-12-06_00:00:00_daily\tzpersist-base-forge"),
        "the hold moved to the newest pulled snapshot: {holds}"
    );
    let stray = guest.run(&[
        "zfs",
        "destroy",
        &format!("{replica}@autosnap_2026-12-07_00:00:00_daily"),
    ]);
    assert!(
        !stray.success(),
        "the held base cannot be destroyed: {stray:#?}"
    );
    let before = hosts.nas_guids();
    assert!(
        before.contains("@autosnap_2026-12-07_00:00:00_daily"),
        "{before}"
    );

    eprintln!("pull: replicated; the attack");
    // The attack, as root on forge.
    // 1. Roll back and write garbage; snapshots dated a year ahead.
    guest.zfs(&[
        "rollback",
        "-r",
        &format!("{source}@autosnap_2026-12-06_00:00:00_daily"),
    ]);
    guest.write(
        &format!("{}/services/app/data.txt", hosts.forge.mnt()),
        b"ENCRYPTED BY RANSOMWARE\n",
    );
    guest.sh_ok("date -s \"$(date -d '+1 year')\" >/dev/null");
    let future = guest.sh(&format!(
        "zfs snapshot {source}@autosnap_2027-12-08_00:00:00_daily && zfs snapshot {source}@autosnap_2027-12-09_00:00:00_daily"
    ));
    guest.sh_ok("date -s \"$(date -d '-1 year')\" >/dev/null");
    assert!(future.success(), "{future:#?}");
    // The next pull must not replay the rollback onto nas: it fails, and says so.
    let after_rollback = hosts.pull();
    assert!(
        !after_rollback.success(),
        "a pull from a rolled-back source must fail (reported), not roll the replica back: {after_rollback:#?}"
    );
    assert_eq!(
        hosts.nas_guids(),
        before,
        "nas's replica changed after pulling from a rolled-back source"
    );

    eprintln!("pull: rollback not replayed");
    // 2. Destroy every snapshot and bookmark forge has.
    guest.sh_ok(&format!(
        "zfs list -H -o name -t snapshot,bookmark {source} | while read s; do zfs destroy \"$s\"; done"
    ));
    guest.zfs(&[
        "snapshot",
        &format!("{source}@autosnap_2026-12-08_00:00:00_daily"),
    ]);
    let after_destroy = hosts.pull();
    assert!(
        !after_destroy.success(),
        "a pull from a source with no common snapshot must fail (reported), never destroy the replica: {after_destroy:#?}"
    );
    assert_eq!(
        hosts.nas_guids(),
        before,
        "nas's replica changed after pulling from a source that destroyed its history"
    );

    // 3. Every key forge holds, against nas: forge's own host key and root
    //    key (nas does not know them) and the restore key (send-only).
    let rewritten = format!("{}/forge/rewritten.zfs", hosts.dir);
    guest.sh_ok(&format!(
        "zfs send {source}@autosnap_2026-12-08_00:00:00_daily >{rewritten}"
    ));
    eprintln!("pull: destroyed history not replayed; forge's keys against nas");
    let attempts = [
        format!("zfs destroy -r {replica}"),
        format!("zfs rollback -r {replica}@autosnap_2026-12-06_00:00:00_daily"),
        format!("zfs receive -F {replica}"),
        "sh -c id".to_owned(),
        format!("zfs set readonly=off {replica}"),
        format!(
            "zfs destroy {replica}@autosnap_2026-12-06_00:00:00_daily; zfs destroy -r {replica}"
        ),
        String::new(),
    ];
    // The restore key with every command; forge's other keys (which nas
    // does not know) with one, as each user.
    let mut tries: Vec<(&str, &str, &str)> = attempts
        .iter()
        .map(|c| ("restore-key", hosts.restorer.as_str(), c.as_str()))
        .collect();
    for key in ["host-key", "root-key", "restore-key"] {
        for user in ["root", hosts.puller.as_str(), hosts.restorer.as_str()] {
            if !(key == "restore-key" && user == hosts.restorer) {
                tries.push((key, user, attempts[0].as_str()));
            }
        }
    }
    for (key, user, command) in tries {
        {
            {
                let stdin = command.contains("receive").then_some(rewritten.as_str());
                let out = hosts.as_forge(key, user, command, stdin);
                assert!(
                    !out.success(),
                    "`{command}` as {user} with forge's {key} succeeded on nas: {out:#?}"
                );
                if key == "restore-key" && user == hosts.restorer {
                    assert!(
                        out.stderr.contains("zpersist-pull-gate: ")
                            || out.stderr.contains("error: refused"),
                        "the restore key's refusal says why: {out:#?}"
                    );
                }
            }
        }
    }
    assert_eq!(
        hosts.nas_guids(),
        before,
        "nas's replica changed after forge's keys were tried on it"
    );

    // The restore key still reads the replica: it can only send.
    let restore = hosts.as_forge(
        "restore-key",
        &hosts.restorer,
        &format!("zfs send {replica}@autosnap_2026-12-07_00:00:00_daily"),
        None,
    );
    assert!(
        restore.success(),
        "the restore key sends the replica: {restore:#?}"
    );

    // The target's retention, the next day, on its own clock: a
    // prune-only sanoid template (what replication-pull.nix writes for
    // `keep`), keeping what its policy says.
    guest.write(
        &format!("{}/nas/sanoid/sanoid.conf", hosts.dir),
        format!(
            "[{replica}]\n\tuse_template = pull_forge\n\n[template_pull_forge]\n\tautosnap = no\n\tautoprune = yes\n\thourly = 0\n\tdaily = 1\n\tmonthly = 0\n\tyearly = 0\n"
        )
        .as_bytes(),
    );
    let prune = guest.sh(&format!(
        "mkdir -p {d}/nas/cache {d}/nas/run; cp /usr/share/sanoid/sanoid.defaults.conf {d}/nas/sanoid/ 2>/dev/null || cp /etc/sanoid/sanoid.defaults.conf {d}/nas/sanoid/; \
         faketime '2026-12-10 12:00:00' sanoid --configdir={d}/nas/sanoid --cache-dir={d}/nas/cache --run-dir={d}/nas/run --prune-snapshots --verbose",
        d = hosts.dir
    ));
    assert!(prune.success(), "the target's prune run failed: {prune:#?}");
    let kept = guest.zfs(&["list", "-H", "-o", "name", "-t", "snapshot", &replica]);
    assert!(
        kept.contains("@autosnap_2026-12-07_00:00:00_daily") && !kept.contains("@autosnap_2026-12-06_00:00:00_daily"),
        "daily = 1 keeps the newest daily snapshot the target received and prunes the older one: {kept}\n{prune:#?}"
    );
}

/// A hardened push target (`receiveOnly`): with the delegation it writes
/// (`create,mount,receive,canmount,send`) the receiving user cannot
/// destroy or roll back the replica; syncoid with `--no-rollback
/// --no-sync-snap` still replicates incrementally; and, as
/// docs/replication.md says, `receive` alone still lets it `receive -F`
/// (OpenZFS 2.4.4 delegates no `receive:append`).
#[test]
fn a_receive_only_push_target_refuses_destroy_and_rollback_but_not_a_forced_receive() {
    let Some(guest) = Guest::shared() else { return };
    let src = GuestPool::new(guest, "hsrc");
    let dst = GuestPool::new(guest, "hdst");
    guest.sh_ok("id zrecv >/dev/null 2>&1 || useradd -m -s /bin/sh zrecv");
    let (ds, root) = (src.ds("app"), dst.ds("backup"));
    let replica = format!("{root}/app");
    guest.zfs(&["create", &ds]);
    guest.zfs(&["create", "-o", "canmount=off", &root]);
    guest.zfs(&[
        "allow",
        "-u",
        "zrecv",
        "create,mount,receive,canmount,send",
        &root,
    ]);
    let allowed = guest.zfs(&["allow", &root]);
    assert!(allowed.contains("zrecv"), "{allowed}");
    let help = guest.sh("zfs allow 2>&1");
    assert!(
        !help.stdout.contains("receive:append") && !help.stderr.contains("receive:append"),
        "this OpenZFS delegates receive:append: use it for receiveOnly targets: {help:#?}"
    );
    let as_zrecv = |script: &str| {
        guest.run(&[
            "setpriv",
            "--reuid=zrecv",
            "--regid=zrecv",
            "--init-groups",
            "sh",
            "-c",
            script,
        ])
    };
    for snap in ["a", "b"] {
        guest.zfs(&["snapshot", &format!("{ds}@{snap}")]);
        // syncoid with the hardened target's arguments (both sides local,
        // as root: the delegation is checked below with the user's own
        // commands).
        guest.sh_ok(&format!(
            "syncoid --no-rollback --no-sync-snap --no-privilege-elevation --recvoptions=u {ds} {replica}"
        ));
    }
    let destroy = as_zrecv(&format!("zfs destroy {replica}@a"));
    assert!(
        !destroy.success(),
        "destroy passed for a receive-only user: {destroy:#?}"
    );
    let rollback = as_zrecv(&format!("zfs rollback -r {replica}@a"));
    assert!(
        !rollback.success(),
        "rollback passed for a receive-only user: {rollback:#?}"
    );
    let snaps = guest.zfs(&["list", "-H", "-o", "name", "-t", "snapshot", &replica]);
    assert!(snaps.contains("@a") && snaps.contains("@b"), "{snaps}");
    // The trade-off: `receive` permits -F, which drops @b from the replica
    // when the stream does not carry it.
    guest.zfs(&["rollback", "-r", &format!("{ds}@a")]);
    guest.zfs(&["snapshot", &format!("{ds}@c")]);
    let forced = guest.sh(&format!(
        "zfs send -i {ds}@a {ds}@c | setpriv --reuid=zrecv --regid=zrecv --init-groups zfs receive -u -F {replica}"
    ));
    let after = guest.zfs(&["list", "-H", "-o", "name", "-t", "snapshot", &replica]);
    assert!(
        forced.success() && !after.contains("@b"),
        "docs/replication.md says a receive grant still permits receive -F; it did not here: {forced:#?} {after}"
    );
}

/// A pull cut mid-stream (syncoid and its pipeline killed) resumes on the
/// next run through the forced command (`zfs send -t TOKEN`), and the base
/// hold lands on the resumed snapshot.
#[test]
fn an_interrupted_pull_resumes_through_the_gate() {
    let Some(guest) = Guest::shared() else { return };
    let hosts = Hosts::new(guest, "r", 2232);
    let (source, replica) = (hosts.source(), hosts.replica());
    guest.sh_ok(&format!(
        "head -c 25165824 /dev/urandom >{}/services/app/blob && sync",
        hosts.forge.mnt()
    ));
    let snap = "autosnap_2026-12-06_00:00:00_daily";
    guest.zfs(&["snapshot", &format!("{source}@{snap}")]);
    let argv = hosts.syncoid_argv(&["--target-bwlimit=2m"]);
    let line = argv
        .iter()
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let killed = guest.sh(&format!(
        "setsid {line} >/tmp/pull-killed.log 2>&1 & p=$!; \
         for i in $(seq 1 300); do [ \"$(zfs get -H -o value receive_resume_token {replica} 2>/dev/null)\" != '' ] && zfs list {replica} >/dev/null 2>&1 && break; sleep 0.2; done; \
         sleep 3; /usr/bin/kill -KILL -- -$p; wait $p; sleep 2; true"
    ));
    assert!(killed.success(), "{killed:#?}");
    let token = guest.get(&replica, "receive_resume_token");
    assert!(
        token != "-" && token.len() > 20,
        "the cut pull left a resume token on {replica}: {token:?}\n{}",
        guest.run_ok(&["cat", "/tmp/pull-killed.log"])
    );
    let resumed = hosts.pull();
    assert!(resumed.success(), "{resumed:#?}");
    let said = format!("{}{}", resumed.stdout, resumed.stderr);
    assert!(
        said.contains("Resuming interrupted zfs send/receive"),
        "{said}"
    );
    assert_eq!(guest.get(&replica, "receive_resume_token"), "-");
    assert_eq!(
        guest.get(&format!("{replica}@{snap}"), "guid"),
        guest.get(&format!("{source}@{snap}"), "guid")
    );
    let holds = guest.zfs(&["holds", "-H", &format!("{replica}@{snap}")]);
    assert!(holds.contains("zpersist-base-forge"), "{holds}");
}
