{
  description = "zpersist: declarative ZFS datasets for NixOS services";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
    # nixpkgs' lib/ alone: what the module tests evaluate with (Nix 2.8, no
    # nixpkgs). Its tree holds lib/ at the top, hence `flake = false`.
    nixpkgs-lib = {
      url = "github:nix-community/nixpkgs.lib";
      flake = false;
    };
  };

  outputs =
    {
      self,
      nixpkgs,
      nixpkgs-lib,
    }:
    let
      lib = import (nixpkgs-lib + "/lib");
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      # nixpkgs is only fetched when a per-system output is used.
      forAllSystems = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      # The module builds `pkgs.zpersist` when the overlay is applied, and
      # this checkout with the system's nixpkgs otherwise.
      nixosModules.default = ./nix/modules;
      nixosModules.zpersist = self.nixosModules.default;

      overlays.default = final: _prev: {
        zpersist = final.callPackage ./nix/package.nix { };
      };

      packages = forAllSystems (pkgs: rec {
        zpersist = pkgs.callPackage ./nix/package.nix { };
        default = zpersist;
      });

      # The module evaluation tests (assertion cases, example hosts, options
      # docs up to date), run with the locked nixpkgs-lib. They evaluate
      # while the check is instantiated; the derivation only records it.
      checks = forAllSystems (pkgs: {
        nix-modules =
          let
            results = import ./tests/nix/check.nix { inherit lib; };
          in
          pkgs.runCommand "zpersist-nix-module-tests" { passAsFile = [ "results" ]; inherit results; } ''
            cp "$resultsPath" "$out"
          '';
      });

      formatter = forAllSystems (pkgs: pkgs.nixfmt-rfc-style);

      # Evaluation entry points without nixpkgs, e.g.
      # nix eval .#lib.hostPlan.forge --json
      lib = {
        evalHost = host: import ./tests/nix/eval.nix { inherit lib host; };
        hostPlan = lib.genAttrs [ "forge" "luna" ] (host: (import ./tests/nix/eval.nix { inherit lib host; }).plan);
      };
    };
}
