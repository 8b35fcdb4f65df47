# Every evaluation test in Nix alone, for the flake's `checks`: throws with
# all failures, or returns a short report. The Rust tests
# (tests/e2e/tests/nix_modules.rs) run the same cases one by one and also
# snapshot the plans and units.
{
  lib ? import ./lib.nix,
}:
let
  eval = args: import ./eval.nix (args // { inherit lib; });
  cases = (eval { }).cases;
  hasInfix = lib.hasInfix;

  caseFailures = lib.concatLists (
    lib.mapAttrsToList (
      name: c:
      let
        r = eval { case = name; };
        anyHas = needle: lib.any (hasInfix needle);
      in
      if c ? expect then
        lib.optional (!anyHas c.expect r.failedAssertions) "case ${name}: no failed assertion contains: ${c.expect}"
      else if c ? expectWarning then
        lib.optional (r.failedAssertions != [ ]) "case ${name}: unexpected failed assertions: ${toString r.failedAssertions}"
        ++ lib.optional (!anyHas c.expectWarning r.warnings) "case ${name}: no warning contains: ${c.expectWarning}"
      else
        lib.optional (r.failedAssertions != [ ] || r.warnings != [ ]) "case ${name}: expected a clean evaluation"
    ) cases
  );

  hostFailures = lib.concatMap (
    host:
    let
      r = eval { inherit host; };
    in
    lib.optional (r.failedAssertions != [ ] || r.warnings != [ ]) "example host ${host} does not evaluate cleanly: ${toString (r.failedAssertions ++ r.warnings)}"
  ) [ "forge" "luna" "nas" ];

  docsFailures = lib.optional (
    builtins.readFile ../../docs/options.md != (eval { }).optionsMarkdown
  ) "docs/options.md is stale: run UPDATE_DOCS=1 cargo test -p zpersist-e2e --test nix_modules";

  failures = caseFailures ++ hostFailures ++ docsFailures;
in
if failures == [ ] then
  "ok: ${toString (builtins.length (builtins.attrNames cases))} cases, 3 example hosts, docs/options.md up to date\n"
else
  throw ("zpersist module tests failed:\n" + lib.concatStringsSep "\n" failures)
