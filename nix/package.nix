# The Rust workspace (ensure-datasets, migrate-to-dataset, replication-lag,
# zpersist-notify, zpersist-check-mounted, and the binaries later issues
# add), built with nixpkgs' rustPlatform from Cargo.lock.
{
  lib,
  rustPlatform,
}:
let
  root = ../.;
in
rustPlatform.buildRustPackage {
  pname = "zpersist";
  version = (lib.importTOML (root + "/Cargo.toml")).workspace.package.version;

  # Only what cargo needs: a change to docs, Nix files or target/ does not
  # rebuild the package.
  src = lib.fileset.toSource {
    inherit root;
    fileset = lib.fileset.unions [
      (root + "/Cargo.toml")
      (root + "/Cargo.lock")
      (root + "/crates")
      (root + "/tests/e2e") # a workspace member; cargo needs its manifest
    ];
  };
  cargoLock.lockFile = root + "/Cargo.lock";

  # The test crate drives real zfs-fuse pools and Nix; it is not part of what
  # users run. The crates' integration tests (tests/*.rs) need real pools,
  # sshd and sanoid too, none of which exist in the build sandbox: the
  # package's check runs the unit tests only (pure: no pool, no network).
  cargoBuildFlags = [
    "--workspace"
    "--exclude"
    "zpersist-e2e"
  ];
  cargoTestFlags = [
    "--workspace"
    "--exclude"
    "zpersist-e2e"
    "--lib"
    "--bins"
  ];

  meta = {
    description = "Declarative ZFS datasets for NixOS services";
    license = lib.licenses.mit;
    mainProgram = "ensure-datasets";
    platforms = lib.platforms.linux;
  };
}
