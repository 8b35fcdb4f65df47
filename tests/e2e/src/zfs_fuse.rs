//! What zfs-fuse (pool version 23) cannot do that the plans of OpenZFS hosts
//! declare. Test-only: the plans users run keep their real values, which
//! the evaluation snapshots cover.

use serde_json::Value;

/// The largest recordsize zfs-fuse takes.
pub const MAX_RECORDSIZE: u64 = 128 << 10;

fn bytes(size: &str) -> Option<u64> {
    let (number, unit) = size.split_at(size.find(|c: char| !c.is_ascii_digit())?);
    let factor = match unit.to_ascii_uppercase().as_str() {
        "K" => 1 << 10,
        "M" => 1 << 20,
        _ => return None,
    };
    number.parse::<u64>().ok().map(|n| n * factor)
}

/// Rewrites a plan in place for zfs-fuse: lz4/zstd compression becomes
/// `on`, a recordsize over 128K becomes 128K. Everything else is applied
/// untouched.
pub fn fit_for_zfs_fuse(plan: &mut Value) {
    for dataset in plan["datasets"].as_array_mut().unwrap() {
        let Some(properties) = dataset.get_mut("properties").and_then(Value::as_object_mut) else {
            continue;
        };
        if let Some(Value::String(c)) = properties.get("compression") {
            if c.starts_with("lz4") || c.starts_with("zstd") {
                properties.insert("compression".into(), "on".into());
            }
        }
        if let Some(Value::String(size)) = properties.get("recordsize") {
            if bytes(size).is_some_and(|b| b > MAX_RECORDSIZE) {
                properties.insert("recordsize".into(), "128K".into());
            }
        }
    }
}

/// NixOS activation creates the users and groups a plan names before the
/// datasets unit runs; a test does it here, for the ones Debian lacks.
pub fn ensure_principals(plan: &Value) {
    use crate::pool::run_ok;
    for dataset in plan["datasets"].as_array().unwrap() {
        if let Some(group) = dataset.get("group").and_then(Value::as_str) {
            if run_ok("getent", &["group"])
                .lines()
                .all(|l| !l.starts_with(&format!("{group}:")))
            {
                run_ok("groupadd", &["--system", group]);
            }
        }
        if let Some(owner) = dataset.get("owner").and_then(Value::as_str) {
            if run_ok("getent", &["passwd"])
                .lines()
                .all(|l| !l.starts_with(&format!("{owner}:")))
            {
                // The user's own group when there is one, else a new one.
                let group_exists = run_ok("getent", &["group"])
                    .lines()
                    .any(|l| l.starts_with(&format!("{owner}:")));
                let mut args = vec![
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                ];
                if group_exists {
                    args.extend(["--gid", owner]);
                } else {
                    args.push("--user-group");
                }
                args.push(owner);
                run_ok("useradd", &args);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_what_zfs_fuse_lacks_is_rewritten() {
        let mut plan = json!({ "datasets": [
            { "name": "a", "properties": { "compression": "zstd-3", "recordsize": "1M", "atime": "off" } },
            { "name": "b", "properties": { "compression": "gzip", "recordsize": "16K" } },
            { "name": "c", "properties": { "recordsize": "256K", "compression": "lz4" } },
            { "name": "d" }
        ]});
        fit_for_zfs_fuse(&mut plan);
        assert_eq!(
            plan["datasets"],
            json!([
                { "name": "a", "properties": { "compression": "on", "recordsize": "128K", "atime": "off" } },
                { "name": "b", "properties": { "compression": "gzip", "recordsize": "16K" } },
                { "name": "c", "properties": { "recordsize": "128K", "compression": "on" } },
                { "name": "d" }
            ])
        );
    }
}
