//! The few values paging needs from a JSON page (`/count`, `/next`, `/meta/cursor`), read in
//! one pass that builds nothing else: the records beside them are skipped, not built (they are
//! decoded once, by the codec). The result is a sparse copy of the document holding only the
//! wanted values, so JSON pointers find them as in the whole.

use std::fmt;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::codecs::json::pointer_path;

/// The document `bytes` with only the values at `pointers` in it.
pub(super) fn sparse(bytes: &[u8], pointers: &[&str]) -> Result<Value, serde_json::Error> {
    let paths: Vec<Vec<String>> = pointers.iter().map(|p| pointer_path(p)).collect();
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let sparse = Wanted {
        paths: paths.iter().map(Vec::as_slice).collect(),
    }
    .deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(sparse.unwrap_or(Value::Null))
}

/// The rest of each wanted path below the value being read.
struct Wanted<'p> {
    paths: Vec<&'p [String]>,
}

impl<'p> Wanted<'p> {
    /// The paths that go on below `key`.
    fn below(&self, key: &str) -> Wanted<'p> {
        Wanted {
            paths: self
                .paths
                .iter()
                .filter(|path| path.first().is_some_and(|first| first == key))
                .map(|path| &path[1..])
                .collect(),
        }
    }
}

impl<'de> DeserializeSeed<'de> for Wanted<'_> {
    /// `None` where nothing wanted is found.
    type Value = Option<Value>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Option<Value>, D::Error> {
        if self.paths.iter().any(|path| path.is_empty()) {
            // A wanted value, whole (and anything wanted inside it).
            return serde::Deserialize::deserialize(d).map(Some);
        }
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Wanted<'_> {
    type Value = Option<Value>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<Value>, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let below = self.below(&key);
            if below.paths.is_empty() {
                map.next_value::<IgnoredAny>()?;
            } else if let Some(value) = map.next_value_seed(below)? {
                object.insert(key, value);
            }
        }
        Ok(Some(Value::Object(object)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<Value>, A::Error> {
        let mut items = Vec::new();
        loop {
            let below = self.below(&items.len().to_string());
            let item = if below.paths.is_empty() {
                seq.next_element::<IgnoredAny>()?.map(|_| None)
            } else {
                seq.next_element_seed(below)?
            };
            match item {
                Some(value) => items.push(value.unwrap_or(Value::Null)),
                None => break,
            }
        }
        Ok(Some(Value::Array(items)))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Option<Value>, E> {
        Ok(None)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Option<Value>, E> {
        Ok(None)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Option<Value>, E> {
        Ok(None)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Option<Value>, E> {
        Ok(None)
    }

    fn visit_str<E>(self, _: &str) -> Result<Option<Value>, E> {
        Ok(None)
    }

    fn visit_unit<E>(self) -> Result<Option<Value>, E> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_the_wanted_values_are_kept_and_pointers_find_them() {
        let page = json!({
            "count": 250,
            "next": "https://api.example.com/x?offset=50",
            "results": [{"id": 1, "a": [1, 2]}, {"id": 2}],
            "meta": {"cursor": {"next": "c-2"}, "other": [1, {"x": 1}]},
            "list": [{"k": "first"}, {"k": "second"}],
        });
        let bytes = page.to_string().into_bytes();
        let pointers = [
            "/count",
            "/next",
            "/meta/cursor/next",
            "/list/1/k",
            "/absent/x",
        ];
        let sparse = sparse(&bytes, &pointers).unwrap();
        for pointer in pointers {
            assert_eq!(sparse.pointer(pointer), page.pointer(pointer), "{pointer}");
        }
        assert_eq!(
            sparse.pointer("/results/0/id"),
            None,
            "records are not built"
        );
        assert!(super::sparse(b"{\"count\": 1,", &["/count"]).is_err());
    }

    /// JSON values up to a few levels deep, with keys from a small set so pointers hit.
    fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "[a-c~/ ]{0,4}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map("[a-c~/]{1,2}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn pointers_find_in_the_sparse_copy_what_they_find_in_the_whole(
            document in json_value(),
            pointers in proptest::collection::vec("(/([a-c]|~0|~1|[0-3]){1,3})", 1..4),
        ) {
            let bytes = document.to_string().into_bytes();
            let wanted: Vec<&str> = pointers.iter().map(String::as_str).collect();
            let sparse = sparse(&bytes, &wanted).unwrap();
            for pointer in &wanted {
                proptest::prop_assert_eq!(sparse.pointer(pointer), document.pointer(pointer), "{}", pointer);
            }
        }
    }
}
