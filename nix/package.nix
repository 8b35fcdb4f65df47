# The Rust workspace (`zpersist`, the operator's front, and the binaries the
# units run: ensure-datasets, preseed-restore, zpersist-drill, ...), built
# with nixpkgs' rustPlatform from Cargo.lock.
{
  lib,
  stdenv,
  rustPlatform,
  installShellFiles,
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

  # `zpersist`'s man page and shell completions, generated from its own
  # command-line definitions (`zpersist man`, `zpersist completions SHELL`),
  # into share/man/man1 and share/{bash-completion,zsh,fish}.
  nativeBuildInputs = [ installShellFiles ];
  postInstall = lib.optionalString (stdenv.buildPlatform.canExecute stdenv.hostPlatform) ''
    $out/bin/zpersist man > zpersist.1
    installManPage zpersist.1
    installShellCompletion --cmd zpersist \
      --bash <($out/bin/zpersist completions bash) \
      --zsh <($out/bin/zpersist completions zsh) \
      --fish <($out/bin/zpersist completions fish)
  '';

  meta = {
    description = "Declarative ZFS datasets for NixOS services";
    license = lib.licenses.mit;
    mainProgram = "zpersist";
    platforms = lib.platforms.linux;
  };
}
