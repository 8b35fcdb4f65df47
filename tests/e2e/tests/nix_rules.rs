//! One rule set for ZFS names and properties: zpersist-core's checks are
//! the reference, `nix/lib/rules.json` is their data
//! (zpersist_core::rules), and `nix/lib/rules.nix` applies that data to the
//! module's options. This file fails when the committed rules.json is stale,
//! and checks that an evaluation of the modules (Nix 2.8, the flake-locked
//! lib) and `Plan::parse` accept and refuse the same things.

use zpersist_e2e::nix;

/// nix/lib/rules.json is generated from zpersist-core; this fails when it
/// is stale. Regenerate with
/// `UPDATE_RULES=1 cargo test -p zpersist-e2e --test nix_rules`.
#[test]
fn rules_json_is_up_to_date() {
    let path = nix::repo_root().join("nix/lib/rules.json");
    let fresh = zpersist_core::rules::nix_rules_json();
    if std::env::var_os("UPDATE_RULES").is_some() {
        std::fs::write(&path, &fresh).expect("write nix/lib/rules.json");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "nix/lib/rules.json is stale (zpersist-core's rules changed): regenerate it with\n  \
         {}\nand commit the result.",
        zpersist_core::rules::REGENERATE
    );
}
