//! The naming and property rules of [`crate::name`], [`crate::property`]
//! and [`crate::plan`] as data, for the NixOS module: `nix/lib/rules.json`
//! is this module's [`nix_rules_json`], and `nix/lib/rules.nix` applies it
//! to the options, so an evaluation refuses exactly what [`Plan::parse`]
//! would refuse at switch time. The tables below are the ones the checks
//! use (or, for character sets, are computed from the checks' own
//! predicates); tests/e2e/tests/nix_rules.rs fails when the committed file
//! is stale and checks, value by value, that Nix and Rust agree.
//!
//! Character sets are POSIX bracket expressions (what Nix's `builtins.match`
//! takes), sizes above what a Nix integer holds are decimal strings, and
//! the NUL character, which no Nix string can hold, is left out of the
//! character lists.
//!
//! [`Plan::parse`]: crate::Plan::parse

use std::collections::BTreeMap;

use serde::Serialize;

use crate::name::{
    is_name_char, is_pool_first_char, MAX_NAME_LEN, RESERVED_COMPONENTS, RESERVED_POOL_PREFIXES,
    SNAPSHOT_SEPARATORS,
};
use crate::plan::{
    CANMOUNT_NEVER, CANMOUNT_VALUES, MAX_MOUNTPOINT_LEN, MODE_DIGITS, MOUNTPOINT_KEYWORDS,
    MOUNTPOINT_RESERVED_COMPONENTS, OWNER_FORBIDDEN_CHARS,
};
use crate::property::{
    compression_values, human_size, is_user_property_char, Shape, CREATE_ONLY,
    FORBIDDEN_VALUE_CHARS, NATIVE, PLAN_FIELDS, READ_ONLY, SIZE_UNITS, SMALLEST_BLOCK,
    USER_PROPERTY_MAX_NAME_LEN, USER_PROPERTY_MAX_VALUE_LEN,
};

/// How to regenerate the file, written into it.
pub const REGENERATE: &str = "UPDATE_RULES=1 cargo test -p zpersist-e2e --test nix_rules";

/// Everything `nix/lib/rules.json` holds.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NixRules {
    #[serde(rename = "_generated")]
    pub generated: String,
    pub names: NameRules,
    pub mountpoints: MountpointRules,
    pub canmount: CanmountRules,
    pub modes: ModeRules,
    pub owners: OwnerRules,
    pub properties: PropertyRules,
    pub sizes: SizeRules,
    pub counts: CountRules,
    pub preseed: PreseedRules,
}

/// [`crate::preseed::dataset_length_problem`]: a preseeded dataset's full
/// name is at most `maxDatasetLength` bytes, so that the names preseed
/// derives from it (`<name>.zpersist-empty-<time>`, `<name>.zpersist-preseed`)
/// and their snapshots fit ZFS's limit.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PreseedRules {
    pub max_dataset_length: usize,
}

/// [`crate::name::name_problem`], applied to a full dataset name in this
/// order: empty, longer than `maxLength` bytes, a snapshot separator, then
/// each component (empty, reserved, a character outside `character`), then
/// the pool (its first character, a reserved prefix).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NameRules {
    pub max_length: usize,
    pub snapshot_separators: Vec<String>,
    pub reserved_components: Vec<&'static str>,
    /// One character of a component.
    pub character: String,
    /// The first character of a pool name.
    pub pool_first_character: String,
    pub reserved_pool_prefixes: Vec<&'static str>,
}

/// [`crate::plan::mountpoint_problem`]: no control character, a keyword
/// or a path starting with `/`, no reserved component, at most
/// `maxLength` bytes.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MountpointRules {
    pub keywords: Vec<&'static str>,
    pub reserved_components: Vec<&'static str>,
    pub max_length: usize,
    /// Every character `char::is_control` refuses but NUL, in UTF-8.
    pub control_characters: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CanmountRules {
    pub values: Vec<&'static str>,
    /// Datasets with this `canmount` are never mounted: they may share a
    /// path with another dataset (a parent and the child that mounts where
    /// it would). Every other pair on one path is refused, counting paths
    /// inherited from declared ancestors.
    pub may_share_mountpoint: &'static str,
}

/// [`crate::ownership::parse_mode`]: this many octal digits.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModeRules {
    pub min_digits: usize,
    pub max_digits: usize,
}

/// An owner or group is a name: not empty, not a number Rust's `u32`
/// parser takes (an optional `+`, digits, at most `numericIdMax`), none
/// of `forbiddenCharacters`, no control character.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnerRules {
    pub forbidden_characters: Vec<String>,
    pub numeric_id_max: String,
}

/// [`crate::property::property_name_problem`] and
/// [`crate::property::value_problem`].
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PropertyRules {
    /// Properties with a field of their own in the plan.
    pub plan_fields: Vec<&'static str>,
    pub read_only: Vec<&'static str>,
    /// Settable, but only by `zfs create`.
    pub create_only: Vec<&'static str>,
    /// Settable native properties and the shape of their values.
    pub native: BTreeMap<&'static str, ShapeRule>,
    /// Every value of the `compression` shape.
    pub compression: Vec<String>,
    /// No value holds one of these (NUL left out).
    pub forbidden_value_characters: Vec<String>,
    /// A name with a colon is a user property.
    pub user: UserPropertyRules,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserPropertyRules {
    pub max_name_length: usize,
    /// One character of a user property name; it may not start with `:`.
    pub name_character: String,
    pub max_value_length: usize,
}

/// [`Shape`] as data.
#[derive(Debug, Serialize)]
#[serde(tag = "shape", rename_all = "camelCase")]
pub enum ShapeRule {
    /// Exactly one of `values`.
    OneOf {
        values: Vec<&'static str>,
    },
    /// A size, or `none`.
    SizeOrNone,
    /// A size that is a power of two from `min` to `max` bytes.
    BlockSize {
        min: u64,
        max: u64,
        description: String,
    },
    /// `0`, or a size that is a power of two from `min` to `max` bytes.
    BlockSizeOrZero {
        min: u64,
        max: u64,
        description: String,
    },
    /// A count, or `none`.
    CountOrNone,
    Count,
    /// One of `properties.compression`.
    Compression,
    /// Anything but the empty string.
    Text,
}

/// [`crate::property::parse_size`]: a number (digits with at most one `.`,
/// not first) and a suffix. The suffix, in either case and with an
/// optional trailing `B`, is one of `units`; a `.` needs a unit other than
/// bytes. The whole part times 2^shift must fit in 64 bits (at most
/// `maxWhole` of the unit); with a fraction, whole and fraction are added
/// as 64-bit floats (`whole * 2^shift + 0.fraction * 2^shift`, each term
/// rounded to a float, then the sum) and must stay below 2^64.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SizeRules {
    pub units: Vec<SizeUnit>,
    pub byte_suffix: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SizeUnit {
    pub suffix: &'static str,
    pub shift: u32,
    /// `u64::MAX >> shift`, in decimal.
    pub max_whole: String,
}

/// [`crate::property::parse_count`]: decimal digits, at most `max`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CountRules {
    pub max: String,
}

/// The rules as data.
pub fn nix_rules() -> NixRules {
    let strings = |chars: &[char]| -> Vec<String> {
        chars
            .iter()
            .filter(|&&c| c != '\0')
            .map(|c| c.to_string())
            .collect()
    };
    NixRules {
        generated: format!(
            "Generated from crates/zpersist-core/src/rules.rs; do not edit. Regenerate with: {REGENERATE}"
        ),
        names: NameRules {
            max_length: MAX_NAME_LEN,
            snapshot_separators: strings(&SNAPSHOT_SEPARATORS),
            reserved_components: RESERVED_COMPONENTS.to_vec(),
            character: bracket_expression(is_name_char),
            pool_first_character: bracket_expression(is_pool_first_char),
            reserved_pool_prefixes: RESERVED_POOL_PREFIXES.to_vec(),
        },
        mountpoints: MountpointRules {
            keywords: MOUNTPOINT_KEYWORDS.to_vec(),
            reserved_components: MOUNTPOINT_RESERVED_COMPONENTS.to_vec(),
            max_length: MAX_MOUNTPOINT_LEN,
            control_characters: (1..=char::MAX as u32)
                .filter_map(char::from_u32)
                .filter(|c| c.is_control())
                .map(String::from)
                .collect(),
        },
        canmount: CanmountRules {
            values: CANMOUNT_VALUES.to_vec(),
            may_share_mountpoint: CANMOUNT_NEVER,
        },
        modes: ModeRules {
            min_digits: *MODE_DIGITS.start(),
            max_digits: *MODE_DIGITS.end(),
        },
        owners: OwnerRules {
            forbidden_characters: strings(&OWNER_FORBIDDEN_CHARS),
            numeric_id_max: u32::MAX.to_string(),
        },
        properties: PropertyRules {
            plan_fields: PLAN_FIELDS.to_vec(),
            read_only: READ_ONLY.to_vec(),
            create_only: CREATE_ONLY.to_vec(),
            native: NATIVE
                .iter()
                .map(|&(name, shape)| (name, shape_rule(shape)))
                .collect(),
            compression: compression_values().to_vec(),
            forbidden_value_characters: strings(&FORBIDDEN_VALUE_CHARS),
            user: UserPropertyRules {
                max_name_length: USER_PROPERTY_MAX_NAME_LEN,
                name_character: bracket_expression(is_user_property_char),
                max_value_length: USER_PROPERTY_MAX_VALUE_LEN,
            },
        },
        sizes: SizeRules {
            units: SIZE_UNITS
                .iter()
                .map(|&(suffix, shift)| SizeUnit {
                    suffix,
                    shift,
                    max_whole: (u64::MAX >> shift).to_string(),
                })
                .collect(),
            byte_suffix: "B",
        },
        counts: CountRules {
            max: u64::MAX.to_string(),
        },
        preseed: PreseedRules {
            max_dataset_length: crate::preseed::MAX_PRESEED_DATASET_LEN,
        },
    }
}

/// The text of `nix/lib/rules.json`. Every control character is written
/// as a `\u` escape (serde_json leaves U+007F to U+009F raw), so the file
/// holds printable text only.
pub fn nix_rules_json() -> String {
    let pretty = serde_json::to_string_pretty(&nix_rules()).expect("the rules serialize");
    let mut text = String::with_capacity(pretty.len() + 256);
    for c in pretty.chars() {
        if c.is_control() && c != '\n' {
            text.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            text.push(c);
        }
    }
    text.push('\n');
    text
}

fn shape_rule(shape: Shape) -> ShapeRule {
    let blocks = |min: u64, max: u64| {
        format!(
            "a power of two from {} to {}",
            human_size(min),
            human_size(max)
        )
    };
    match shape {
        Shape::OneOf(words) => ShapeRule::OneOf {
            values: words.to_vec(),
        },
        Shape::SizeOrNone => ShapeRule::SizeOrNone,
        Shape::BlockSize { min, max } => ShapeRule::BlockSize {
            min,
            max,
            description: blocks(min, max),
        },
        Shape::BlockSizeOrZero { max } => ShapeRule::BlockSizeOrZero {
            min: SMALLEST_BLOCK,
            max,
            description: format!("0 or {}", blocks(SMALLEST_BLOCK, max)),
        },
        Shape::CountOrNone => ShapeRule::CountOrNone,
        Shape::Count => ShapeRule::Count,
        Shape::Compression => ShapeRule::Compression,
        Shape::Text => ShapeRule::Text,
    }
}

/// A POSIX bracket expression matching one character: exactly the ones
/// `allowed` accepts, which must all be printable ASCII. Runs of letters or
/// digits become ranges; `-` goes last, where it is literal.
fn bracket_expression(allowed: fn(char) -> bool) -> String {
    assert!(
        (0..=char::MAX as u32)
            .filter_map(char::from_u32)
            .filter(|&c| allowed(c))
            .all(|c| c.is_ascii_graphic() || c == ' '),
        "only printable ASCII characters are expressed"
    );
    let chars: Vec<char> = (' '..='~').filter(|&c| allowed(c)).collect();
    for special in ['[', ']', '\\', '^'] {
        assert!(
            !chars.contains(&special),
            "{special:?} would need care in a bracket expression"
        );
    }
    let class = |c: char| {
        if c.is_ascii_digit() {
            1
        } else if c.is_ascii_uppercase() {
            2
        } else if c.is_ascii_lowercase() {
            3
        } else {
            0
        }
    };
    let mut out = String::from("[");
    let mut i = 0;
    while i < chars.len() {
        let start = chars[i];
        let mut end = start;
        while class(start) != 0
            && i + 1 < chars.len()
            && class(chars[i + 1]) == class(start)
            && chars[i + 1] as u32 == end as u32 + 1
        {
            i += 1;
            end = chars[i];
        }
        if start == '-' {
            // Written last.
        } else if end as u32 >= start as u32 + 2 {
            out.push(start);
            out.push('-');
            out.push(end);
        } else {
            out.push(start);
            if end != start {
                out.push(end);
            }
        }
        i += 1;
    }
    if chars.contains(&'-') {
        out.push('-');
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn character_sets_are_bracket_expressions_of_the_predicates() {
        assert_eq!(bracket_expression(is_name_char), "[ .0-9:A-Z_a-z-]");
        assert_eq!(bracket_expression(is_pool_first_char), "[A-Za-z]");
        assert_eq!(bracket_expression(is_user_property_char), "[.0-9:_a-z-]");
    }

    #[test]
    fn the_data_holds_the_tables_the_checks_use() {
        let rules = nix_rules();
        assert_eq!(rules.sizes.units[0].max_whole, u64::MAX.to_string());
        assert_eq!(rules.sizes.units[6].max_whole, "15");
        assert!(rules
            .properties
            .compression
            .contains(&"zstd-fast-1000".to_string()));
        assert_eq!(rules.mountpoints.control_characters.len(), 31 + 1 + 32);
        assert!(matches!(
            rules.properties.native["recordsize"],
            ShapeRule::BlockSize {
                min: 512,
                max: 16_777_216,
                ..
            }
        ));
        let text = nix_rules_json();
        assert!(!text.contains("\\u0000"), "no NUL for Nix");
        assert!(text.contains("\\u009f"));
        assert!(!text.chars().any(|c| c.is_control() && c != '\n'));
    }
}
