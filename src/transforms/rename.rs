//! `rename`: gives fields new names, keeping their position.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use super::describe_record;
use crate::config::{Invalid, Validate};
use crate::error::StageError;
use crate::record::{Batch, FieldName};
use crate::stage::Transform;

/// Renames fields: `fields = { identifier = "order_id", cust = "customer_id" }`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameConfig {
    /// Old name = new name. A record without an old name is left as it is; a record that
    /// already has a field with the new name is an error (one of the two values would be lost).
    /// Required.
    pub fields: BTreeMap<String, String>,
}

impl Validate for RenameConfig {
    fn problems(&self) -> Vec<Invalid> {
        let mut problems = Vec::new();
        if self.fields.is_empty() {
            problems.push(Invalid::new(
                "fields",
                "`fields` is empty: name at least one field to rename",
            ));
        }
        let mut targets = std::collections::HashSet::new();
        for new in self.fields.values() {
            if !targets.insert(new) {
                problems.push(Invalid::new(
                    "fields",
                    format!("two fields are renamed to `{new}`"),
                ));
            }
        }
        problems
    }
}

pub struct Rename {
    renames: Vec<(String, FieldName)>,
    /// Per record: (field position, index into `renames`), reused between records.
    moves: Vec<(usize, usize)>,
}

impl Rename {
    pub fn new(config: &RenameConfig) -> Self {
        Rename {
            renames: config
                .fields
                .iter()
                .map(|(old, new)| (old.clone(), FieldName::from(new.as_str())))
                .collect(),
            moves: Vec::new(),
        }
    }
}

impl Transform for Rename {
    fn apply(&mut self, batch: &mut Batch) -> Result<(), StageError> {
        for index in 0..batch.records.len() {
            let fields = batch.records[index].fields_mut();
            // Find every field first, then rename: `{ a = "b", b = "a" }` swaps.
            self.moves.clear();
            for (rename, (old, _)) in self.renames.iter().enumerate() {
                if let Some(position) = fields.iter().position(|(name, _)| **name == **old) {
                    self.moves.push((position, rename));
                }
            }
            for &(_, rename) in &self.moves {
                let (old, new) = &self.renames[rename];
                let clash = fields.iter().enumerate().any(|(position, (name, _))| {
                    name == new && !self.moves.iter().any(|&(moved, _)| moved == position)
                });
                if clash {
                    return Err(StageError::Refused(format!(
                        "cannot rename `{old}` to `{new}` in {}: it already has a `{new}` field",
                        describe_record(batch, index)
                    )));
                }
            }
            for &(position, rename) in &self.moves {
                fields[position].0 = self.renames[rename].1.clone();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Record, Value};

    fn record(fields: &[(&str, i64)]) -> Record {
        fields
            .iter()
            .map(|(n, v)| (FieldName::from(*n), Value::Integer(*v)))
            .collect()
    }

    fn rename(pairs: &[(&str, &str)]) -> Rename {
        Rename::new(&RenameConfig {
            fields: pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        })
    }

    #[test]
    fn renames_in_place_and_swaps() {
        let mut batch = Batch {
            records: vec![record(&[("a", 1), ("b", 2), ("c", 3)])],
            ..Batch::default()
        };
        rename(&[("a", "b"), ("b", "a")]).apply(&mut batch).unwrap();
        let names: Vec<&str> = batch.records[0].names().map(|n| &**n).collect();
        assert_eq!(names, ["b", "a", "c"]);
        assert_eq!(batch.records[0].get("b"), Some(&Value::Integer(1)));
    }

    #[test]
    fn a_clash_is_an_error() {
        let mut batch = Batch {
            records: vec![record(&[("a", 1), ("b", 2)])],
            ..Batch::default()
        };
        let err = rename(&[("a", "b")]).apply(&mut batch).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot rename `a` to `b` in record 1 of its batch: it already has a `b` field"
        );
    }
}
