//! What ZFS properties exist, which can be set, which only at creation, and
//! what their values look like. Values are checked here before any `zfs`
//! command runs, and normalised so a declared `16K` compares equal to the
//! `16384` that `zfs get -p` prints.

/// Properties that can only be given at `zfs create`: an existing dataset
/// that differs is reported, never changed.
pub const CREATE_ONLY: &[&str] = &[
    "encryption",
    "keyformat",
    "pbkdf2iters",
    "casesensitivity",
    "normalization",
    "utf8only",
    "volblocksize",
];

/// Properties ZFS computes; declaring one is a mistake in the plan.
pub const READ_ONLY: &[&str] = &[
    "available",
    "avail",
    "clones",
    "compressratio",
    "createtxg",
    "creation",
    "defer_destroy",
    "encryptionroot",
    "filesystem_count",
    "guid",
    "keystatus",
    "logicalreferenced",
    "logicalused",
    "mounted",
    "objsetid",
    "origin",
    "receive_resume_token",
    "redact_snaps",
    "referenced",
    "refer",
    "refcompressratio",
    "snapshot_count",
    "snapshots_changed",
    "type",
    "used",
    "usedbychildren",
    "usedbydataset",
    "usedbyrefreservation",
    "usedbysnapshots",
    "userrefs",
    "written",
];

/// Properties with their own field in the plan.
pub const PLAN_FIELDS: &[&str] = &["mountpoint", "canmount"];

/// The shape a native property's value must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One of a fixed set of words, spelled exactly (ZFS compares with
    /// strcmp: `OFF` is refused).
    OneOf(&'static [&'static str]),
    /// A byte size like `20G`, or `none` (stored as 0).
    SizeOrNone,
    /// A power-of-two byte size between the bounds.
    BlockSize { min: u64, max: u64 },
    /// A power-of-two byte size, or 0 to turn the feature off.
    BlockSizeOrZero { max: u64 },
    /// A whole number, or `none`.
    CountOrNone,
    /// A whole number.
    Count,
    /// The compression property's algorithms, levels included.
    Compression,
    /// Free text ZFS interprets itself (sharenfs options, SELinux contexts...).
    Text,
}

const ON_OFF: &[&str] = &["on", "off"];

/// The smallest block ZFS writes; block sizes are powers of two from here.
pub const SMALLEST_BLOCK: u64 = 512;

/// Characters no property value may hold: `zfs get` prints one value per
/// line, tab-separated.
pub const FORBIDDEN_VALUE_CHARS: [char; 4] = ['\t', '\n', '\r', '\0'];

/// Longest user property name and value ZFS takes, in bytes.
pub const USER_PROPERTY_MAX_NAME_LEN: usize = 256;
pub const USER_PROPERTY_MAX_VALUE_LEN: usize = 8192;

/// A character a user property name may hold.
pub fn is_user_property_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, ':' | '-' | '.' | '_')
}

/// The `compression` words without a level.
const COMPRESSION_WORDS: &[&str] = &[
    "on",
    "off",
    "lz4",
    "lzjb",
    "zle",
    "gzip",
    "zstd",
    "zstd-fast",
];
/// The levels of `gzip-N`, `zstd-N` and `zstd-fast-N`.
const GZIP_LEVELS: std::ops::RangeInclusive<u32> = 1..=9;
const ZSTD_LEVELS: std::ops::RangeInclusive<u32> = 1..=19;
const ZSTD_FAST_LEVELS: &[u32] = &[
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 500, 1000,
];

/// Every value of `compression` ZFS takes, spelled as ZFS spells it (it
/// compares the strings: `zstd-01` is refused).
pub fn compression_values() -> &'static [String] {
    static VALUES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    VALUES.get_or_init(|| {
        COMPRESSION_WORDS
            .iter()
            .map(|w| w.to_string())
            .chain(GZIP_LEVELS.map(|n| format!("gzip-{n}")))
            .chain(ZSTD_LEVELS.map(|n| format!("zstd-{n}")))
            .chain(ZSTD_FAST_LEVELS.iter().map(|n| format!("zstd-fast-{n}")))
            .collect()
    })
}

/// The unit suffixes of a size, each with its power of two (`K` is 2^10);
/// they may be written in either case and followed by `B`.
pub const SIZE_UNITS: &[(&str, u32)] = &[
    ("", 0),
    ("K", 10),
    ("M", 20),
    ("G", 30),
    ("T", 40),
    ("P", 50),
    ("E", 60),
];

/// A whole number as ZFS reads one: decimal digits only (no sign, no
/// spaces), within 64 bits.
pub fn parse_count(value: &str) -> Option<u64> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// Settable native properties of filesystems on OpenZFS 2.x, and their shapes.
pub const NATIVE: &[(&str, Shape)] = &[
    (
        "aclinherit",
        Shape::OneOf(&[
            "discard",
            "noallow",
            "restricted",
            "passthrough",
            "passthrough-x",
        ]),
    ),
    (
        "aclmode",
        Shape::OneOf(&["discard", "groupmask", "passthrough", "restricted"]),
    ),
    (
        "acltype",
        Shape::OneOf(&["off", "noacl", "nfsv4", "posix", "posixacl"]),
    ),
    ("atime", Shape::OneOf(ON_OFF)),
    (
        "casesensitivity",
        Shape::OneOf(&["sensitive", "insensitive", "mixed"]),
    ),
    (
        "checksum",
        Shape::OneOf(&[
            "on",
            "off",
            "fletcher2",
            "fletcher4",
            "sha256",
            "noparity",
            "sha512",
            "skein",
            "edonr",
            "blake3",
        ]),
    ),
    ("compression", Shape::Compression),
    ("context", Shape::Text),
    ("copies", Shape::OneOf(&["1", "2", "3"])),
    (
        "dedup",
        Shape::OneOf(&[
            "on",
            "off",
            "verify",
            "sha256",
            "sha256,verify",
            "sha512",
            "sha512,verify",
            "skein",
            "skein,verify",
            "edonr,verify",
            "blake3",
            "blake3,verify",
        ]),
    ),
    ("defcontext", Shape::Text),
    ("devices", Shape::OneOf(ON_OFF)),
    ("direct", Shape::OneOf(&["standard", "always", "disabled"])),
    (
        "dnodesize",
        Shape::OneOf(&["legacy", "auto", "1k", "2k", "4k", "8k", "16k"]),
    ),
    (
        "encryption",
        Shape::OneOf(&[
            "off",
            "on",
            "aes-128-ccm",
            "aes-192-ccm",
            "aes-256-ccm",
            "aes-128-gcm",
            "aes-192-gcm",
            "aes-256-gcm",
        ]),
    ),
    ("exec", Shape::OneOf(ON_OFF)),
    ("filesystem_limit", Shape::CountOrNone),
    ("fscontext", Shape::Text),
    ("keyformat", Shape::OneOf(&["raw", "hex", "passphrase"])),
    ("keylocation", Shape::Text),
    ("logbias", Shape::OneOf(&["latency", "throughput"])),
    ("mlslabel", Shape::Text),
    ("nbmand", Shape::OneOf(ON_OFF)),
    (
        "normalization",
        Shape::OneOf(&["none", "formC", "formD", "formKC", "formKD"]),
    ),
    ("overlay", Shape::OneOf(ON_OFF)),
    ("pbkdf2iters", Shape::Count),
    ("prefetch", Shape::OneOf(&["all", "none", "metadata"])),
    ("primarycache", Shape::OneOf(&["all", "none", "metadata"])),
    ("quota", Shape::SizeOrNone),
    ("readonly", Shape::OneOf(ON_OFF)),
    (
        "recordsize",
        Shape::BlockSize {
            min: 512,
            max: 16 << 20,
        },
    ),
    (
        "redundant_metadata",
        Shape::OneOf(&["all", "most", "some", "none"]),
    ),
    ("refquota", Shape::SizeOrNone),
    ("refreservation", Shape::SizeOrNone),
    ("relatime", Shape::OneOf(ON_OFF)),
    ("reservation", Shape::SizeOrNone),
    ("rootcontext", Shape::Text),
    ("secondarycache", Shape::OneOf(&["all", "none", "metadata"])),
    ("setuid", Shape::OneOf(ON_OFF)),
    ("sharenfs", Shape::Text),
    ("sharesmb", Shape::Text),
    ("snapdev", Shape::OneOf(&["hidden", "visible"])),
    ("snapdir", Shape::OneOf(&["hidden", "visible"])),
    ("snapshot_limit", Shape::CountOrNone),
    (
        "special_small_blocks",
        Shape::BlockSizeOrZero { max: 16 << 20 },
    ),
    ("sync", Shape::OneOf(&["standard", "always", "disabled"])),
    ("utf8only", Shape::OneOf(ON_OFF)),
    (
        "volblocksize",
        Shape::BlockSize {
            min: 512,
            max: 128 << 10,
        },
    ),
    (
        "volmode",
        Shape::OneOf(&["default", "full", "geom", "dev", "none"]),
    ),
    ("vscan", Shape::OneOf(ON_OFF)),
    ("xattr", Shape::OneOf(&["on", "off", "sa", "dir"])),
    ("zoned", Shape::OneOf(ON_OFF)),
];

/// The shape of a settable native property, if it is one.
pub fn native_shape(property: &str) -> Option<Shape> {
    NATIVE
        .iter()
        .find(|(name, _)| *name == property)
        .map(|(_, shape)| *shape)
}

/// A user property has a colon in its name (`module:name`).
pub fn is_user_property(property: &str) -> bool {
    property.contains(':')
}

pub fn is_create_only(property: &str) -> bool {
    CREATE_ONLY.contains(&property)
}

/// Why a property name cannot be declared, if it cannot.
pub fn property_name_problem(property: &str) -> Option<String> {
    if PLAN_FIELDS.contains(&property) {
        return Some(format!(
            "`{property}` has its own field in the plan; move it out of `properties`"
        ));
    }
    if READ_ONLY.contains(&property) {
        return Some(format!("`{property}` is read-only: ZFS computes it"));
    }
    if is_user_property(property) {
        if property.len() > USER_PROPERTY_MAX_NAME_LEN {
            return Some(format!(
                "user property names are at most {USER_PROPERTY_MAX_NAME_LEN} bytes; `{property}` is longer"
            ));
        }
        if property.starts_with(':') {
            return Some(format!("user property `{property}` needs a module before its colon (e.g. `com.example:{}`)", property.trim_start_matches(':')));
        }
        if let Some(bad) = property.chars().find(|&c| !is_user_property_char(c)) {
            return Some(format!(
                "user property `{property}` has {bad:?}; ZFS allows lowercase letters, digits and `: - . _`"
            ));
        }
        return None;
    }
    if native_shape(property).is_none() {
        return Some(format!(
            "`{property}` is not a settable ZFS property; a user property needs a colon (e.g. `com.example:{property}`)"
        ));
    }
    None
}

/// Why a value does not fit a property, if it does not.
pub fn value_problem(property: &str, value: &str) -> Option<String> {
    if value.contains(FORBIDDEN_VALUE_CHARS) {
        return Some("values cannot contain tabs, newlines or NUL".into());
    }
    if is_user_property(property) {
        return (value.len() > USER_PROPERTY_MAX_VALUE_LEN).then(|| {
            format!("user property values are at most {USER_PROPERTY_MAX_VALUE_LEN} bytes")
        });
    }
    let shape = native_shape(property)?;
    let ok = match shape {
        Shape::OneOf(words) => words.contains(&value),
        Shape::SizeOrNone => value == "none" || parse_size(value).is_some(),
        Shape::BlockSize { min, max } => {
            parse_size(value).is_some_and(|n| n.is_power_of_two() && n >= min && n <= max)
        }
        Shape::BlockSizeOrZero { max } => parse_size(value)
            .is_some_and(|n| n == 0 || (n.is_power_of_two() && n >= SMALLEST_BLOCK && n <= max)),
        Shape::CountOrNone => value == "none" || parse_count(value).is_some(),
        Shape::Count => parse_count(value).is_some(),
        Shape::Compression => compression_values().iter().any(|v| v == value),
        Shape::Text => !value.is_empty(),
    };
    if ok {
        return None;
    }
    Some(match shape {
        Shape::OneOf(words) => format!("`{value}` is not one of {}", words.join(", ")),
        Shape::SizeOrNone => format!("`{value}` is not a size like `512M`, `20G` or `none`"),
        Shape::BlockSize { min, max } => format!(
            "`{value}` is not a power of two from {} to {}",
            human_size(min),
            human_size(max)
        ),
        Shape::BlockSizeOrZero { max } => format!(
            "`{value}` is not 0 or a power of two from {} to {}",
            human_size(SMALLEST_BLOCK),
            human_size(max)
        ),
        Shape::CountOrNone => format!("`{value}` is not a whole number or `none`"),
        Shape::Count => format!("`{value}` is not a whole number"),
        Shape::Compression => format!(
            "`{value}` is not a compression ZFS knows (on, off, lz4, zstd, zstd-1..19, zstd-fast, zstd-fast-N, gzip, gzip-1..9, zle, lzjb)"
        ),
        Shape::Text => "the value is empty".into(),
    })
}

/// Parses a ZFS size (`512`, `16K`, `1.5G`, `20GB`, `4k`) into bytes, as
/// strictly as ZFS does: no spaces anywhere, no sign, and nothing that
/// overflows 64 bits (`16E`, `17179869184G`, `15.999999E`).
pub fn parse_size(value: &str) -> Option<u64> {
    let digits_end = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(value.len());
    let (number, suffix) = value.split_at(digits_end);
    if number.is_empty() || number.starts_with('.') || number.matches('.').count() > 1 {
        return None;
    }
    let suffix = suffix.to_ascii_uppercase();
    let unit = suffix.strip_suffix('B').unwrap_or(&suffix);
    let shift = SIZE_UNITS
        .iter()
        .find(|(suffix, _)| *suffix == unit)
        .map(|&(_, shift)| shift)?;
    if suffix == "B" || (unit.is_empty() && number.contains('.')) {
        // `12B` is fine for ZFS, `1.5` bytes is not.
        return if number.contains('.') {
            None
        } else {
            number.parse().ok()
        };
    }
    match number.split_once('.') {
        None => number.parse::<u64>().ok()?.checked_mul(1u64 << shift),
        Some((whole, fraction)) => {
            let whole: u64 = whole.parse().ok()?;
            let fraction: f64 = format!("0.{fraction}").parse().ok()?;
            let bytes = whole.checked_mul(1u64 << shift)?;
            // ZFS computes the value in floating point and refuses it above
            // 2^64 - 1; the f64 bound below is exactly 2^64.
            let total = bytes as f64 + fraction * (1u64 << shift) as f64;
            if total >= 18_446_744_073_709_551_616.0 {
                return None;
            }
            bytes.checked_add((fraction * (1u64 << shift) as f64) as u64)
        }
    }
}

/// A byte count as people write it: `16384` is `16K`.
pub fn human_size(bytes: u64) -> String {
    for (shift, unit) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

/// The form of a declared value that `zfs get -p` would print, so the two
/// can be compared: sizes in bytes, `none` quotas as 0, words in lowercase.
pub fn normalize(property: &str, value: &str) -> String {
    match native_shape(property) {
        Some(Shape::SizeOrNone) if value == "none" => "0".into(),
        Some(Shape::SizeOrNone | Shape::BlockSize { .. } | Shape::BlockSizeOrZero { .. }) => {
            parse_size(value).map_or_else(|| value.to_string(), |n| n.to_string())
        }
        Some(Shape::OneOf(_) | Shape::Compression) => value.to_ascii_lowercase(),
        Some(Shape::CountOrNone) if value == "18446744073709551615" => "none".into(),
        _ => value.to_string(),
    }
}

/// A value as people read it: the byte counts `zfs get -p` prints for
/// sizes become `128K`, `20G`; everything else is shown as it is.
pub fn display_value(property: &str, value: &str) -> String {
    match native_shape(property) {
        Some(Shape::SizeOrNone | Shape::BlockSize { .. } | Shape::BlockSizeOrZero { .. }) => {
            match value.parse::<u64>() {
                Ok(0) if native_shape(property) == Some(Shape::SizeOrNone) => "none".into(),
                Ok(bytes) => human_size(bytes),
                Err(_) => value.to_string(),
            }
        }
        _ => value.to_string(),
    }
}

/// Declared and observed values mean the same thing.
pub fn values_match(property: &str, declared: &str, observed: &str) -> bool {
    // `encryption=on` is "the default cipher of the ZFS that created it"
    // (aes-256-gcm on OpenZFS 2.x, aes-256-ccm before 0.8.4): any cipher.
    if property == "encryption" && declared == "on" {
        return !matches!(observed, "off" | "-" | "");
    }
    normalize(property, declared) == normalize(property, observed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("16K"), Some(16384));
        assert_eq!(parse_size("16k"), Some(16384));
        assert_eq!(parse_size("20GB"), Some(20 << 30));
        assert_eq!(parse_size("1.5G"), Some(3 << 29));
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("12B"), Some(12));
        assert!(parse_size("15.99E").is_some());
        assert_eq!(parse_size("18446744073709551615"), Some(u64::MAX));
        for bad in [
            "",
            "K",
            "1.5",
            "1..5G",
            "16X",
            "-1",
            ".5G",
            " 16K",
            "16K ",
            "16 G",
            "+5G",
            "1e3",
            "0x10",
            "16E",
            "16.5E",
            "17179869184G",
            "18446744073709551616",
        ] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }

    #[test]
    fn values_are_checked_by_shape() {
        assert_eq!(value_problem("recordsize", "16K"), None);
        assert!(value_problem("recordsize", "24K").is_some());
        assert!(value_problem("recordsize", "32M").is_some());
        assert_eq!(value_problem("quota", "none"), None);
        assert_eq!(value_problem("quota", "20G"), None);
        assert!(value_problem("quota", "lots").is_some());
        assert_eq!(value_problem("compression", "zstd-19"), None);
        assert!(value_problem("compression", "zstd-20").is_some());
        assert!(value_problem("compression", "brotli").is_some());
        // ZFS compares the names as strings.
        assert!(value_problem("compression", "zstd-01").is_some());
        assert!(value_problem("compression", "gzip-+1").is_some());
        assert_eq!(value_problem("compression", "zstd-fast-1000"), None);
        assert_eq!(value_problem("snapshot_limit", "10"), None);
        assert_eq!(value_problem("snapshot_limit", "none"), None);
        // zfs reads numbers with digits only.
        assert!(value_problem("snapshot_limit", "+5").is_some());
        assert!(value_problem("snapshot_limit", " 5").is_some());
        assert!(value_problem("pbkdf2iters", "18446744073709551616").is_some());
        assert_eq!(value_problem("atime", "off"), None);
        assert!(value_problem("atime", "maybe").is_some());
        assert_eq!(value_problem("normalization", "formD"), None);
        assert!(value_problem("com.example:note", "a\tb").is_some());
        assert_eq!(value_problem("com.example:note", "anything at all"), None);
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(property_name_problem("recordsize"), None);
        assert_eq!(property_name_problem("com.example:backup"), None);
        assert!(property_name_problem("used").unwrap().contains("read-only"));
        assert!(property_name_problem("mountpoint")
            .unwrap()
            .contains("own field"));
        assert!(property_name_problem("backup").unwrap().contains("colon"));
        assert!(property_name_problem("Com.Example:x").is_some());
        assert!(property_name_problem(":x").is_some());
    }

    #[test]
    fn parsable_sizes_are_shown_as_people_write_them() {
        assert_eq!(display_value("recordsize", "131072"), "128K");
        assert_eq!(display_value("quota", "0"), "none");
        assert_eq!(display_value("quota", "21474836480"), "20G");
        assert_eq!(display_value("quota", "1000"), "1000");
        assert_eq!(display_value("compression", "lz4"), "lz4");
    }

    #[test]
    fn declared_values_compare_with_parsable_output() {
        assert!(values_match("recordsize", "16K", "16384"));
        assert!(values_match("quota", "none", "0"));
        assert!(values_match("quota", "20G", "21474836480"));
        assert!(values_match("compression", "LZ4", "lz4"));
        assert!(!values_match("compression", "on", "off"));
        assert!(values_match("com.example:x", "a", "a"));
        assert!(!values_match("com.example:x", "A", "a"));
    }
}
