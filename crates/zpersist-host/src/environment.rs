//! Environment files (`NAME=value` lines), read as systemd's
//! EnvironmentFile= reads them: restic's and barman-cloud's credentials.

use std::collections::BTreeMap;

/// `NAME=value` lines as systemd's EnvironmentFile= reads them: blank
/// lines and `#`/`;` comments skipped, `export ` and quotes allowed.
pub fn parse_environment(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .filter_map(|l| {
            let l = l.strip_prefix("export ").unwrap_or(l);
            let (name, value) = l.split_once('=')?;
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(value);
            Some((name.trim().to_string(), value.to_string()))
        })
        .collect()
}
