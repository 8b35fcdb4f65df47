//! Reading the JSON files the NixOS modules write, strictly: serde_json
//! keeps the last of two equal keys, so `"pool"` given twice would silently
//! pick one. Here a duplicate key anywhere in the document is an error that
//! names the key and where it stands.

use std::collections::BTreeSet;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// Parses `text` as JSON, refusing a key that appears twice in one object.
pub fn parse_strict(text: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str::<NoDuplicateKeys>(text).map_err(|e| e.to_string())?;
    serde_json::from_str(text).map_err(|e| e.to_string())
}

/// Accepts any JSON value whose objects have no repeated key.
struct NoDuplicateKeys;

impl<'de> Deserialize<'de> for NoDuplicateKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NoDuplicateKeys)
    }
}

impl<'de> Visitor<'de> for NoDuplicateKeys {
    type Value = NoDuplicateKeys;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_unit<E>(self) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self, A::Error> {
        while seq.next_element::<NoDuplicateKeys>()?.is_some() {}
        Ok(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self, A::Error> {
        let mut seen = BTreeSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format!(
                    "the key {} is given twice in one object; JSON readers disagree on which one counts, so remove one",
                    crate::shown(&format!("`{key}`"))
                )));
            }
            map.next_value::<NoDuplicateKeys>()?;
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_key_is_refused_at_any_depth() {
        let top = parse_strict(r#"{"pool":"a","pool":"b"}"#).unwrap_err();
        assert!(top.contains("`pool` is given twice"), "{top}");
        assert!(top.contains("line 1"), "{top}");
        let nested = parse_strict(r#"{"d":[{"p":{"x":"1","x":"2"}}]}"#).unwrap_err();
        assert!(nested.contains("`x` is given twice"), "{nested}");
    }

    #[test]
    fn equal_keys_in_different_objects_are_fine() {
        let value = parse_strict(r#"{"a":{"n":1},"b":{"n":2},"c":[1,"x",null,true,1.5]}"#).unwrap();
        assert_eq!(value["b"]["n"], 2);
    }

    #[test]
    fn syntax_errors_still_say_where() {
        assert!(parse_strict("{").unwrap_err().contains("line 1"));
    }
}
