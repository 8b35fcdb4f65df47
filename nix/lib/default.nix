# Pure helpers shared by the modules and the tests. Only nixpkgs' lib is
# needed, so everything here evaluates with Nix 2.8 and no nixpkgs.
{ lib }:
{
  names = import ./names.nix { inherit lib; };
  rules = import ./rules.nix { inherit lib; };
  properties = import ./properties.nix { inherit lib; };
  plan = import ./plan.nix { inherit lib; };
  docs = import ./docs.nix { inherit lib; };
  inheritance = import ./inheritance.nix { inherit lib; };
  hardening = import ./hardening.nix { inherit lib; };
  unit = import ./unit.nix { inherit lib; };
  systemd = import ./systemd.nix { inherit lib; };
  ssh = import ./ssh.nix { inherit lib; };
  encryption = import ./encryption.nix { inherit lib; };

  # The failed assertions of services, one per message `problemsOf name
  # service` gives for each of `services` (an attrset by name).
  serviceAssertions =
    problemsOf: services:
    lib.concatMap (
      name:
      map (message: {
        assertion = false;
        inherit message;
      }) (problemsOf name services.${name})
    ) (lib.attrNames services);
}
