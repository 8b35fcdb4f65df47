//! The one rule for declared modes and owners, wherever they are declared
//! (a plan's datasets, a service's directory).

/// How many octal digits a mode has.
pub const MODE_DIGITS: std::ops::RangeInclusive<usize> = 3..=4;

/// Characters an owner or group name cannot hold (it would be a path, a
/// `user:group` pair or two words).
pub const OWNER_FORBIDDEN_CHARS: [char; 3] = [':', '/', ' '];

/// A mode as NixOS writes one (`mode = "0750"`, systemd's tmpfiles style):
/// 3 or 4 octal digits and nothing else, so `0750` and `750` are the same
/// permission bits, and `+755`, ` 755`, `0o755`, `rwx` or `07777 ` are
/// refused rather than read some way.
pub fn parse_mode(mode: &str) -> Option<u32> {
    if !MODE_DIGITS.contains(&mode.len()) || !mode.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    u32::from_str_radix(mode, 8).ok()
}

/// Why a mode is refused, if it is.
pub fn mode_problem(mode: &str) -> Option<String> {
    parse_mode(mode)
        .is_none()
        .then(|| format!("mode `{mode}` must be 3 or 4 octal digits, like `0750`"))
}

/// Whether `who` can be an owner or group: a name, not a number, a path,
/// a `user:group` pair, two words or a control character.
pub fn is_owner_name(who: &str) -> bool {
    !(who.is_empty()
        || who.parse::<u32>().is_ok()
        || who.contains(OWNER_FORBIDDEN_CHARS)
        || who.chars().any(char::is_control))
}

/// Why `name`, declared as the owner (`what` is "owner", "user" or
/// "group"), is refused, if it is.
///
/// An owner is a user or group *name*, as NixOS declares them
/// (`users.users.sonarr`, `services.sonarr.user`), looked up on the host
/// when the directory is made: a uid or gid alone is refused, since the
/// same number means another account on another host (and NixOS
/// allocates them), and so are names no account can have (empty, with
/// `:`, `/`, a space or a control character).
pub fn owner_problem(what: &str, name: &str) -> Option<String> {
    if !is_owner_name(name) {
        Some(format!(
            "{what} `{name}` must be a user or group name, not a number or path"
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_three_or_four_octal_digits_and_nothing_else() {
        assert_eq!(parse_mode("0750"), Some(0o750));
        assert_eq!(parse_mode("755"), Some(0o755));
        assert_eq!(parse_mode("2775"), Some(0o2775));
        assert_eq!(parse_mode("7777"), Some(0o7777));
        for bad in [
            "0758", "75", "07550", "+755", "+75", " 755", "755 ", "0o75", "rwx", "", "-755",
        ] {
            assert_eq!(parse_mode(bad), None, "{bad:?}");
            assert!(mode_problem(bad).is_some(), "{bad:?}");
        }
        assert_eq!(mode_problem("0750"), None);
    }

    #[test]
    fn owners_are_names_never_numbers_or_paths() {
        for ok in [
            "sonarr", "postgres", "nobody", "media-rw", "user1", "_x", "svc.name",
        ] {
            assert_eq!(owner_problem("owner", ok), None, "{ok}");
        }
        for bad in ["", "1000", "0", "a:b", "/home/a", "a b", "a\nb", "a\tb"] {
            assert!(owner_problem("owner", bad).is_some(), "{bad:?}");
        }
        assert_eq!(
            owner_problem("group", "1000").unwrap(),
            "group `1000` must be a user or group name, not a number or path"
        );
    }
}
