# The pinned ssh of zpersist's replication, for pushes (replication.nix) and
# pulls (replication-pull.nix) alike.
{ lib }:
rec {
  # Every ssh connection gives up on a peer that does not answer: at
  # connect time, and when it goes silent later (keepalives every 15 s, 3
  # unanswered ones end it). The same values as zpersist-ssh's
  # (crates/zpersist-ssh/src/lib.rs), which replication-lag uses.
  deadPeerOptions = [
    "ConnectTimeout=20"
    "ServerAliveInterval=15"
    "ServerAliveCountMax=3"
  ];

  # syncoid's ssh options (one argv element each: nixpkgs quotes each
  # extraArgs entry as one argument): the port, the pinned host key in a
  # file only these connections read, no prompt, dead peers dropped.
  syncoidArgs =
    { port, knownHosts }:
    [
      "--sshport=${toString port}"
      "--sshoption=UserKnownHostsFile=${knownHosts}"
      "--sshoption=StrictHostKeyChecking=yes"
      "--sshoption=BatchMode=yes"
    ]
    ++ map (o: "--sshoption=${o}") deadPeerOptions;

  # A known_hosts line: `host key` for port 22, `[host]:port key` otherwise.
  knownHostsLine = host: port: key: (if port == 22 then host else "[${host}]:${toString port}") + " " + key;

  # Whether a string looks like a public host key ("TYPE BASE64 [comment]").
  isHostKey = key: builtins.match "(ssh-[a-z0-9]+|ecdsa-sha2-nistp[0-9]+|sk-[a-z0-9@.-]+) [A-Za-z0-9+/]+=*( .*)?" key != null;

  # nixpkgs' syncoid unit has ProtectHome=true: these are hidden from it
  # even when bound into its RootDirectory.
  hiddenFromSyncoid = [
    "/root/"
    "/home/"
    "/run/user/"
  ];
}
