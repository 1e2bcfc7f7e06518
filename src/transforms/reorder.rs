//! `reorder`: puts some fields first and keeps every field, for outputs whose readers look at
//! the first columns (ids, status) without a `select` that would have to list them all.

use schemars::JsonSchema;
use serde::Deserialize;

use super::field_pattern::{self, FieldPattern};
use crate::config::{Invalid, Validate};
use crate::error::StageError;
use crate::record::Batch;
use crate::stage::Transform;

/// Moves fields to the front: `fields = ["id", "status"]`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReorderConfig {
    /// The fields that come first, in this order; every other field follows in the record's
    /// order. A name a record lacks is skipped (nothing is added). An entry with `*` or `?` is
    /// a glob (`"customer.*"`): its matching fields come at its place, in the record's order.
    /// Required.
    pub fields: Vec<String>,
}

impl Validate for ReorderConfig {
    fn problems(&self) -> Vec<Invalid> {
        field_pattern::parse_list("fields", &self.fields, "list the fields that come first").1
    }
}

pub struct Reorder {
    patterns: Vec<FieldPattern>,
    /// The entries that are names.
    names: Vec<String>,
    /// Per record: the new position of each field, reused between records.
    order: Vec<usize>,
    taken: Vec<bool>,
}

impl Reorder {
    pub fn new(config: &ReorderConfig) -> Self {
        let patterns = field_pattern::parse_checked(&config.fields);
        let names = patterns
            .iter()
            .filter_map(|pattern| match pattern {
                FieldPattern::Name(name) => Some(name.clone()),
                FieldPattern::Glob(_) => None,
            })
            .collect();
        Reorder {
            patterns,
            names,
            order: Vec::new(),
            taken: Vec::new(),
        }
    }
}

impl Transform for Reorder {
    fn apply(&mut self, batch: &mut Batch) -> Result<(), StageError> {
        for record in &mut batch.records {
            let fields = record.fields_mut();
            self.order.clear();
            self.taken.clear();
            self.taken.resize(fields.len(), false);
            for pattern in &self.patterns {
                let is_name = matches!(pattern, FieldPattern::Name(_));
                for (position, (name, _)) in fields.iter().enumerate() {
                    // A glob takes no field listed by name: that one goes to its name's place.
                    if !self.taken[position]
                        && pattern.matches(name)
                        && (is_name || !self.names.iter().any(|n| n.as_str() == &**name))
                    {
                        self.taken[position] = true;
                        self.order.push(position);
                    }
                }
            }
            if self.order.iter().enumerate().all(|(i, &p)| i == p) {
                continue;
            }
            self.order
                .extend((0..fields.len()).filter(|&position| !self.taken[position]));
            let mut old: Vec<Option<_>> = std::mem::take(fields).into_iter().map(Some).collect();
            fields.extend(
                self.order
                    .iter()
                    .map(|&position| old[position].take().expect("each field once")),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::record::FieldName;

    use super::*;
    use crate::record::{Record, Value};

    fn names_after(fields: &[&str], record: &[&str]) -> Vec<String> {
        let config = ReorderConfig {
            fields: fields.iter().map(|f| f.to_string()).collect(),
        };
        assert_eq!(config.problems(), []);
        let record: Record = record
            .iter()
            .map(|n| (FieldName::from(*n), Value::String((*n).into())))
            .collect();
        let mut batch = Batch {
            records: vec![record],
            ..Batch::default()
        };
        Reorder::new(&config).apply(&mut batch).unwrap();
        let record = &batch.records[0];
        for (name, value) in record.iter() {
            assert_eq!(
                value,
                &Value::String((**name).into()),
                "values move with names"
            );
        }
        record.names().map(|n| n.to_string()).collect()
    }

    #[test]
    fn listed_fields_first_then_the_rest_in_order() {
        assert_eq!(
            names_after(
                &["id", "status", "missing"],
                &["note", "status", "total", "id"]
            ),
            ["id", "status", "note", "total"]
        );
        assert_eq!(names_after(&["a"], &["a", "b"]), ["a", "b"]);
        assert_eq!(names_after(&["x"], &[]), Vec::<String>::new());
    }

    #[test]
    fn a_glob_brings_its_fields_and_leaves_named_ones_to_their_place() {
        assert_eq!(
            names_after(
                &["line.*", "id", "line.sku"],
                &["total", "line.qty", "id", "line.sku", "line.ünit"]
            ),
            ["line.qty", "line.ünit", "id", "line.sku", "total"]
        );
    }
}
