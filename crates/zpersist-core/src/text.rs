//! Text that came from a user, made safe to print on one line; sizes as
//! people read them.

use std::borrow::Cow;

/// `text` with control characters escaped (`\n`, `\t`, `\u{1b}`...), so a
/// name or path holding a newline prints on one line and cannot forge a
/// second message; anything else is left as it is.
pub fn shown(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A Prometheus label value, escaped (backslash, double quote, newline).
pub fn prometheus_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A size in bytes as people read it: `512 B`, `1.5 KiB`, `2.0 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if bytes >= 1 << shift {
            return format!("{:.1} {unit}", bytes as f64 / (1u64 << shift) as f64);
        }
    }
    format!("{bytes} B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(8 << 20), "8.0 MiB");
    }

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(shown("tank/a\nerror: forged"), "tank/a\\nerror: forged");
        assert_eq!(shown("a\tb\u{1b}[31m"), "a\\tb\\u{1b}[31m");
        assert_eq!(shown("/srv/été 'x'"), "/srv/été 'x'");
        assert!(matches!(shown("plain"), Cow::Borrowed(_)));
    }
}
