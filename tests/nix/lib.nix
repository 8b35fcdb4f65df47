# nixpkgs' lib exactly as flake.lock pins the `nixpkgs-lib` input, without
# evaluating the flake: builtins.fetchTree with the locked attributes (rev,
# narHash, lastModified) finds the tree in the store by its hash, so this
# needs no network once the tree is there (and downloads it, checked against
# narHash, where there is network). Needs `--extra-experimental-features flakes`
# on Nix 2.8 for fetchTree.
let
  lock = builtins.fromJSON (builtins.readFile ../../flake.lock);
  node = lock.nodes.${lock.nodes.${lock.root}.inputs.nixpkgs-lib};
  src = builtins.fetchTree node.locked;
in
import (src + "/lib")
