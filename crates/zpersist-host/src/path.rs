//! What is at a path, and paths as the kernel shows them.

use std::fs;
use std::io;
use std::path::Path;

pub use zpersist_core::facts::PathState;

/// Missing, an empty or non-empty directory, or anything else (a file, a
/// symlink, something unreadable). Symlinks are not followed.
pub fn path_state(path: &str) -> PathState {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => PathState::Missing,
        Ok(meta) if meta.is_dir() => match fs::read_dir(path) {
            Ok(mut entries) => {
                if entries.next().is_none() {
                    PathState::EmptyDir
                } else {
                    PathState::NonEmptyDir
                }
            }
            Err(_) => PathState::Other,
        },
        _ => PathState::Other,
    }
}

/// The path as /proc shows it: symlinks in its parent resolved.
pub fn resolved(path: &str) -> String {
    let p = Path::new(path);
    match (
        p.parent().and_then(|d| fs::canonicalize(d).ok()),
        p.file_name(),
    ) {
        (Some(parent), Some(name)) => parent.join(name).to_string_lossy().into_owned(),
        _ => path.to_string(),
    }
}

/// `candidate` is `dir` or lies below it (whole components only).
pub fn within(candidate: &str, dir: &str) -> bool {
    candidate == dir
        || (dir == "/" && candidate.starts_with('/'))
        || candidate
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The directory holding `path` (`/` for a path without one).
pub fn parent_of(path: &str) -> &Path {
    Path::new(path).parent().unwrap_or(Path::new("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_respects_component_boundaries() {
        assert!(within("/var/lib/sonarr/x", "/var/lib/sonarr"));
        assert!(within("/var/lib/sonarr", "/var/lib/sonarr"));
        assert!(!within("/var/lib/sonarr2", "/var/lib/sonarr"));
        assert!(within("/var/lib/sonarr", "/"));
    }

    #[test]
    fn path_states_tell_missing_empty_full_and_other() {
        let dir = std::env::temp_dir().join(format!("zpersist-path-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("empty")).unwrap();
        fs::write(dir.join("file"), "x").unwrap();
        let s = |name: &str| path_state(dir.join(name).to_str().unwrap());
        assert_eq!(s("missing"), PathState::Missing);
        assert_eq!(s("empty"), PathState::EmptyDir);
        assert_eq!(s(""), PathState::NonEmptyDir);
        assert_eq!(s("file"), PathState::Other);
        fs::remove_dir_all(dir).unwrap();
    }
}
