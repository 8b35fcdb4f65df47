#!/usr/bin/env bash
# Puts the flake.lock's `nixpkgs-lib` tree into the Nix store when it is not
# there, from the vendored tarball in ../shared/vendor (test machines reach
# no GitHub, and a new machine's store is empty). The tarball is checked
# against the lock's narHash before anything is added. With the tree already
# in the store this does nothing; where there is no vendored tarball either,
# it says so and leaves fetching to Nix (which downloads where there is
# network). Safe to run again.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
vendor_dir=${ZPERSIST_VENDOR_DIR:-$repo/../shared/vendor}
[ -d "$vendor_dir" ] && vendor_dir=$(cd "$vendor_dir" && pwd)
nix_cmd=(nix --extra-experimental-features nix-command)

# The locked attributes of the nixpkgs-lib input (rev, narHash).
locked=$(nix-instantiate --eval --strict --json --option substituters '' \
    --argstr lockFile "$repo/flake.lock" --expr '{ lockFile }:
      let lock = builtins.fromJSON (builtins.readFile lockFile);
          locked = lock.nodes.${lock.nodes.${lock.root}.inputs.nixpkgs-lib}.locked;
      in locked.rev + " " + locked.narHash' 2>/dev/null | tr -d '"') || true
read -r rev nar_hash <<<"$locked" || true
if [ -z "${nar_hash:-}" ]; then
    echo "error: cannot read the nixpkgs-lib input's rev and narHash from $repo/flake.lock" >&2
    exit 1
fi

# fetchTree stores a tree with a narHash at this fixed-output path, named `source`.
base32=$("${nix_cmd[@]}" hash to-base32 "$nar_hash" 2>/dev/null)
store_path=$(nix-store --print-fixed-path --recursive sha256 "$base32" source 2>/dev/null)
if nix-store --check-validity "$store_path" 2>/dev/null; then
    exit 0
fi

tarball="$vendor_dir/nixpkgs-lib-$rev.tar.gz"
if [ ! -f "$tarball" ]; then
    echo "nixpkgs-lib $rev is not in the Nix store and $tarball does not exist; Nix will try to download it (this fails without network)" >&2
    exit 0
fi

tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
tar -xzf "$tarball" -C "$tree"
actual=$("${nix_cmd[@]}" hash path "$tree" 2>/dev/null)
if [ "$actual" != "$nar_hash" ]; then
    echo "error: $tarball holds a tree with narHash $actual, but flake.lock locks nixpkgs-lib $rev at $nar_hash; replace the tarball with that exact rev (see $vendor_dir/README.md)" >&2
    exit 1
fi
added=$("${nix_cmd[@]}" store add-path --name source "$tree" 2>/dev/null)
if [ "$added" != "$store_path" ]; then
    echo "error: adding $tarball to the store gave $added, expected $store_path" >&2
    exit 1
fi
echo "seeded the Nix store with nixpkgs-lib $rev from $tarball ($store_path)"
