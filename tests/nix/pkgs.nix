# A stand-in for nixpkgs: just what the modules use, with fixed store paths so
# that snapshots do not depend on a nixpkgs revision.
let
  stub = name: {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
  };
in
{
  zpersist = stub "zpersist";
  sanoid = stub "sanoid";
  zfs = stub "zfs-user";
  curl = stub "curl";
  openssh = stub "openssh";
  restic = stub "restic";
  sqlite = stub "sqlite";
  rsync = stub "rsync";
  getent = stub "getent";
  barman = stub "barman";
  util-linux = stub "util-linux";
  # builtins.toFile gives a real, content-addressed store path; it refuses
  # names containing '/', which the modules never use.
  writeText = name: text: builtins.toFile name text;
  writeShellScript = name: text: builtins.toFile name ("#!/bin/sh\n" + text);
  callPackage = _: _: throw "tests/nix/pkgs.nix: callPackage is not available in the stub pkgs";
}
