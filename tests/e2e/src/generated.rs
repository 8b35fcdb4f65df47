//! Files generated from the code and committed (docs/options.md from the
//! module's options, nix/lib/rules.json from zpersist-core's rules): a test
//! fails when the committed file is stale, and rewrites it when asked.

use crate::repo_root;

/// Fails when `path` (relative to the repository) does not hold `fresh`;
/// with the environment variable `update` set, writes `fresh` there
/// instead. `regenerate` is the command that does that, for the message.
pub fn assert_up_to_date(path: &str, fresh: &str, update: &str, regenerate: &str) {
    let file = repo_root().join(path);
    if std::env::var_os(update).is_some() {
        std::fs::write(&file, fresh).unwrap_or_else(|e| panic!("write {file}: {e}"));
        return;
    }
    let committed = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(
        committed == fresh,
        "{path} is stale: regenerate it with\n  {regenerate}\nand commit the result."
    );
}
