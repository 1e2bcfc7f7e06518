//! `select`: keeps the listed fields, in the listed order, so outputs have stable columns; a
//! glob (`"customer.*"`) keeps a family of fields without listing each (after `flatten`).

use schemars::JsonSchema;
use serde::Deserialize;

use super::field_pattern::{self, FieldPattern};
use crate::config::{Invalid, Validate};
use crate::error::StageError;
use crate::record::{Batch, FieldName, Record, Value};
use crate::stage::Transform;

/// Keeps only the listed fields: `fields = ["order_id", "customer.*", "total"]`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SelectConfig {
    /// The fields to keep, in output order. A name a record lacks becomes null, so every
    /// record has the same fields. An entry with `*` or `?` is a glob (`"customer.*"`,
    /// `"*_id"`; `[...]` is a character class in it): it keeps the matching fields at its place
    /// in the list, in the record's order, and none when nothing matches; a field listed by
    /// name is kept at its name's place, and one that two globs match at the first one's.
    /// Required.
    pub fields: Vec<String>,
}

impl Validate for SelectConfig {
    fn problems(&self) -> Vec<Invalid> {
        field_pattern::parse_list("fields", &self.fields, "list the fields to keep").1
    }
}

enum Entry {
    Name(FieldName),
    Glob(glob::Pattern),
}

pub struct Select {
    entries: Vec<Entry>,
    /// The names listed as names, which globs leave to them.
    names: Vec<FieldName>,
    /// Per record: which of its fields are taken already, reused between records.
    taken: Vec<bool>,
}

impl Select {
    pub fn new(config: &SelectConfig) -> Self {
        let entries: Vec<Entry> = field_pattern::parse_checked(&config.fields)
            .into_iter()
            .map(|pattern| match pattern {
                FieldPattern::Name(name) => Entry::Name(FieldName::from(name.as_str())),
                FieldPattern::Glob(glob) => Entry::Glob(glob),
            })
            .collect();
        let names = entries
            .iter()
            .filter_map(|entry| match entry {
                Entry::Name(name) => Some(name.clone()),
                Entry::Glob(_) => None,
            })
            .collect();
        Select {
            entries,
            names,
            taken: Vec::new(),
        }
    }
}

impl Transform for Select {
    fn apply(&mut self, batch: &mut Batch) -> Result<(), StageError> {
        for record in &mut batch.records {
            let fields = record.fields_mut();
            self.taken.clear();
            self.taken.resize(fields.len(), false);
            let mut selected = Record::with_capacity(self.entries.len());
            for entry in &self.entries {
                match entry {
                    Entry::Name(name) => {
                        let value = match fields.iter().position(|(field, _)| field == name) {
                            Some(position) => {
                                self.taken[position] = true;
                                std::mem::replace(&mut fields[position].1, Value::Null)
                            }
                            None => Value::Null,
                        };
                        selected.push(name.clone(), value);
                    }
                    Entry::Glob(glob) => {
                        for (position, (field, value)) in fields.iter_mut().enumerate() {
                            if !self.taken[position]
                                && glob.matches(field)
                                && !self.names.contains(field)
                            {
                                self.taken[position] = true;
                                selected.push(field.clone(), std::mem::replace(value, Value::Null));
                            }
                        }
                    }
                }
            }
            *record = selected;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(fields: &[(&str, i64)]) -> Record {
        fields
            .iter()
            .map(|(n, v)| (FieldName::from(*n), Value::Integer(*v)))
            .collect()
    }

    fn select(fields: &[&str], records: Vec<Record>) -> Vec<Vec<(String, Value)>> {
        let config = SelectConfig {
            fields: fields.iter().map(|f| f.to_string()).collect(),
        };
        assert_eq!(config.problems(), []);
        let mut batch = Batch {
            records,
            ..Batch::default()
        };
        Select::new(&config).apply(&mut batch).unwrap();
        batch
            .records
            .iter()
            .map(|r| r.iter().map(|(n, v)| (n.to_string(), v.clone())).collect())
            .collect()
    }

    fn int(name: &str, value: i64) -> (String, Value) {
        (name.to_string(), Value::Integer(value))
    }

    #[test]
    fn keeps_listed_fields_in_order_and_fills_missing_with_null() {
        let out = select(
            &["c", "a", "z"],
            vec![record(&[("a", 1), ("b", 2), ("c", 3)])],
        );
        assert_eq!(
            out,
            [vec![
                int("c", 3),
                int("a", 1),
                ("z".to_string(), Value::Null)
            ]]
        );
    }

    #[test]
    fn a_glob_keeps_matching_fields_in_record_order_at_its_place() {
        let out = select(
            &["id", "customer.*", "total"],
            vec![
                record(&[
                    ("customer.name", 1),
                    ("total", 2),
                    ("id", 3),
                    ("note", 4),
                    ("customer.city", 5),
                ]),
                record(&[("id", 6)]),
            ],
        );
        assert_eq!(
            out,
            [
                vec![
                    int("id", 3),
                    int("customer.name", 1),
                    int("customer.city", 5),
                    int("total", 2)
                ],
                vec![int("id", 6), ("total".to_string(), Value::Null)]
            ]
        );
    }

    #[test]
    fn a_name_wins_over_a_glob_and_the_first_glob_over_later_ones() {
        let out = select(
            &["*_id", "order_id", "c*"],
            vec![record(&[
                ("order_id", 1),
                ("customer_id", 2),
                ("größe_id", 3),
                ("city", 4),
            ])],
        );
        assert_eq!(
            out,
            [vec![
                int("customer_id", 2),
                int("größe_id", 3),
                int("order_id", 1),
                int("city", 4)
            ]]
        );
    }

    #[test]
    fn an_empty_list_is_invalid() {
        let problems = SelectConfig { fields: vec![] }.problems();
        assert_eq!(
            problems,
            [Invalid::new(
                "fields",
                "`fields` is empty: list the fields to keep"
            )]
        );
    }
}
