//! ZFS dataset names: checked against ZFS's own rules before anything runs.

/// ZFS's limit for a full dataset name (ZFS_MAX_DATASET_NAME_LEN is 256 with the NUL).
pub const MAX_NAME_LEN: usize = 255;

/// Characters that start a snapshot's or a bookmark's part of a name.
pub const SNAPSHOT_SEPARATORS: [char; 2] = ['@', '#'];

/// Components that cannot name a dataset (they name directories).
pub const RESERVED_COMPONENTS: [&str; 2] = [".", ".."];

/// Pool names starting with these are refused: they are vdev keywords.
pub const RESERVED_POOL_PREFIXES: [&str; 5] = ["mirror", "raidz", "draid", "spare", "log"];

/// A character a name component may hold: ASCII letters and digits, and
/// `_ - . :` and space.
pub fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | ' ')
}

/// A character a pool name may start with.
pub fn is_pool_first_char(c: char) -> bool {
    c.is_ascii_alphabetic()
}

/// Why ZFS would refuse a dataset name.
pub fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("the name is empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Some(format!(
            "the name is {} bytes long; ZFS allows at most {MAX_NAME_LEN}",
            name.len()
        ));
    }
    if name.contains(SNAPSHOT_SEPARATORS) {
        return Some("`@` and `#` belong to snapshot and bookmark names, not datasets".into());
    }
    for component in name.split('/') {
        if component.is_empty() {
            return Some("it has an empty component (a leading, trailing or doubled `/`)".into());
        }
        if RESERVED_COMPONENTS.contains(&component) {
            return Some(format!("the component `{component}` is reserved"));
        }
        if let Some(bad) = component.chars().find(|&c| !is_name_char(c)) {
            return Some(format!(
                "the character {bad:?} is not allowed (only letters, digits, `_ - . :` and space)"
            ));
        }
    }
    let pool = pool_of(name);
    if !pool.starts_with(is_pool_first_char) {
        return Some(format!("the pool name `{pool}` must start with a letter"));
    }
    if RESERVED_POOL_PREFIXES
        .iter()
        .any(|reserved| pool.starts_with(reserved))
    {
        return Some(format!(
            "the pool name `{pool}` starts with a word ZFS reserves"
        ));
    }
    None
}

/// The pool part of a dataset name.
pub fn pool_of(name: &str) -> &str {
    name.split('/').next().unwrap_or(name)
}

/// The parent dataset, or `None` for a pool's root dataset.
pub fn parent_of(name: &str) -> Option<&str> {
    name.rsplit_once('/').map(|(parent, _)| parent)
}

/// How many `/` deep a dataset is: the pool's root dataset is 0.
pub fn depth_of(name: &str) -> usize {
    name.matches('/').count()
}

/// `name` is `ancestor` itself or lies below it.
pub fn is_within(name: &str, ancestor: &str) -> bool {
    name == ancestor
        || name
            .strip_prefix(ancestor)
            .is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_zfs_accepts() {
        for ok in ["tank", "tank/services/sonarr", "rpool/a b", "t/x:y.z_-1"] {
            assert_eq!(name_problem(ok), None, "{ok}");
        }
    }

    #[test]
    fn refuses_what_zfs_refuses() {
        for bad in [
            "",
            "tank/",
            "/tank",
            "tank//a",
            "tank/a@snap",
            "tank/a#b",
            "tank/ä",
            "1tank",
            "mirror1/a",
            "tank/..",
            "tank/a\tb",
        ] {
            assert!(name_problem(bad).is_some(), "{bad:?} should be refused");
        }
        assert!(name_problem(&format!("tank/{}", "a".repeat(300))).is_some());
    }

    #[test]
    fn relations() {
        assert_eq!(parent_of("tank/a/b"), Some("tank/a"));
        assert_eq!(parent_of("tank"), None);
        assert!(is_within("tank/a/b", "tank/a"));
        assert!(!is_within("tank/ab", "tank/a"));
        assert_eq!(depth_of("tank/a/b"), 2);
    }
}
