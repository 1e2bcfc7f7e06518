//! `unnest`: one record per element of an array field (an order's lines become order lines),
//! with the parent's fields copied into each, for outputs that have one row per line item.
//! The children of a batch's records are built in memory: the batch grows by its elements
//! (1,024 orders of 100 lines each become 102,400 records before the sinks).

use std::collections::HashSet;

use schemars::JsonSchema;
use serde::Deserialize;

use super::{Refusals, Refused};
use crate::config::{Invalid, Validate};
use crate::error::StageError;
use crate::record::{Batch, FieldName, Record, Value};
use crate::stage::{RunContext, Transform};

/// One record per element: `field = "lines"`, `prefix = "line."`, `keep = ["order_id"]`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UnnestConfig {
    /// The array field. Each element makes one record, in the array's place: an object's
    /// fields become fields, any other element (a number, text, null) is the value under this
    /// field's name. A value that is neither an array nor null refuses the record. Required.
    pub field: String,
    /// Put before the names of an element object's fields (`"line."` makes `line.sku`).
    /// Default: none.
    pub prefix: Option<String>,
    /// The parent fields copied into every child, kept in the parent's order. Default: every
    /// other field. An element field with the name of a copied parent field refuses the record
    /// (set a `prefix`).
    pub keep: Option<Vec<String>>,
    /// What a record whose array is empty, null or missing becomes: `"keep"` (one record of
    /// its copied fields alone) or `"drop"` (none). Default `"keep"`, so that no parent
    /// disappears unless the pipeline says so.
    #[serde(default)]
    pub empty: Empty,
}

/// What becomes of a record without elements.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Empty {
    /// One record of its copied fields.
    #[default]
    Keep,
    /// No record.
    Drop,
}

impl Validate for UnnestConfig {
    fn problems(&self) -> Vec<Invalid> {
        let mut problems = Vec::new();
        if self.field.is_empty() {
            problems.push(Invalid::new(
                "field",
                "`field` is empty: name the array field to unnest",
            ));
        }
        if let Some(keep) = &self.keep {
            let mut seen = HashSet::new();
            for name in keep {
                if !seen.insert(name) {
                    problems.push(Invalid::new("keep", format!("`{name}` is listed twice")));
                }
                if *name == self.field {
                    problems.push(Invalid::new(
                        "keep",
                        format!(
                            "`{name}` is the field unnested: its elements take its place, remove it from `keep`"
                        ),
                    ));
                }
            }
        }
        problems
    }
}

pub struct Unnest {
    field: FieldName,
    prefix: String,
    keep: Option<HashSet<String>>,
    empty: Empty,
    refusals: Refusals,
}

impl Unnest {
    pub fn new(config: &UnnestConfig, cx: &RunContext) -> Self {
        Unnest {
            field: FieldName::from(config.field.as_str()),
            prefix: config.prefix.clone().unwrap_or_default(),
            keep: config
                .keep
                .as_ref()
                .map(|keep| keep.iter().cloned().collect()),
            empty: config.empty,
            refusals: Refusals::new(cx),
        }
    }

    fn copied(&self, name: &str) -> bool {
        name != &*self.field && self.keep.as_ref().is_none_or(|keep| keep.contains(name))
    }

    /// The name an element's field `name` gets.
    fn element_name(&self, name: &FieldName) -> FieldName {
        if self.prefix.is_empty() {
            name.clone()
        } else {
            FieldName::from(format!("{}{name}", self.prefix))
        }
    }

    /// Why `record` cannot be unnested, if it cannot.
    fn problem(&self, record: &Record) -> Option<(String, String)> {
        let field = &self.field;
        let items = match record.get(field) {
            None | Some(Value::Null) => return None,
            Some(Value::Array(items)) => items,
            Some(other) => {
                return Some((
                    field.to_string(),
                    format!(
                        "`{field}` is {}, not an array: `unnest` takes an array (or null)",
                        kind(other)
                    ),
                ));
            }
        };
        for item in items {
            let Value::Object(element) = item else {
                continue;
            };
            for name in element.names() {
                let name = format!("{}{name}", self.prefix);
                if self.copied(&name) && record.get(&name).is_some() {
                    return Some((
                        name.clone(),
                        format!(
                            "`{field}`: an element's `{name}` would overwrite the record's `{name}`: set a `prefix` (`prefix = \"{field}.\"`) or leave `{name}` out of `keep`"
                        ),
                    ));
                }
            }
        }
        None
    }
}

/// A value's kind, for messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Decimal(_) => "a decimal",
        Value::String(_) => "text",
        Value::Timestamp(_) | Value::DateTime(_) => "a date-time",
        Value::Date(_) => "a date",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Transform for Unnest {
    fn apply(&mut self, batch: &mut Batch) -> Result<(), StageError> {
        let refused: Vec<Refused> = batch
            .records
            .iter()
            .enumerate()
            .filter_map(|(index, record)| {
                self.problem(record).map(|(field, reason)| Refused {
                    index,
                    field: Some(field),
                    reason,
                })
            })
            .collect();
        self.refusals.set_aside(batch, refused)?;
        let numbered = batch.numbers.len() == batch.records.len();
        let parents = std::mem::take(&mut batch.records);
        let numbers = std::mem::take(&mut batch.numbers);
        let mut children = Vec::with_capacity(parents.len());
        let mut child_numbers = Vec::with_capacity(if numbered { parents.len() } else { 0 });
        for (index, mut parent) in parents.into_iter().enumerate() {
            let fields = std::mem::take(parent.fields_mut());
            let place = fields.iter().position(|(name, _)| *name == self.field);
            let mut items = Vec::new();
            let mut before = Vec::new();
            let mut after = Vec::new();
            for (position, (name, value)) in fields.into_iter().enumerate() {
                if Some(position) == place {
                    if let Value::Array(array) = value {
                        items = array;
                    }
                } else if self.copied(&name) {
                    match place {
                        Some(place) if position > place => after.push((name, value)),
                        _ => before.push((name, value)),
                    }
                }
            }
            let copies = items.len().max(match self.empty {
                Empty::Keep => 1,
                Empty::Drop => 0,
            });
            if numbered {
                child_numbers.extend(std::iter::repeat_n(numbers[index], copies));
            }
            if items.is_empty() {
                if copies == 1 {
                    children.push(before.into_iter().chain(after).collect());
                }
                continue;
            }
            for item in items {
                let mut child = Record::with_capacity(before.len() + after.len() + 1);
                for (name, value) in &before {
                    child.push(name.clone(), value.clone());
                }
                match item {
                    Value::Object(mut element) => {
                        for (name, value) in std::mem::take(element.fields_mut()) {
                            child.push(self.element_name(&name), value);
                        }
                    }
                    scalar => child.push(self.field.clone(), scalar),
                }
                for (name, value) in &after {
                    child.push(name.clone(), value.clone());
                }
                children.push(child);
            }
        }
        batch.records = children;
        batch.numbers = child_numbers;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transforms::testing::*;

    fn int(i: i64) -> Value {
        Value::Integer(i)
    }

    fn line(sku: &str, qty: i64) -> Value {
        Value::Object(record(&[("sku", text(sku)), ("qty", int(qty))]))
    }

    fn unnest(toml_text: &str, records: Vec<Record>, quarantine: bool) -> Result<Batch, String> {
        let config: UnnestConfig = toml::from_str(toml_text).unwrap();
        assert_eq!(config.problems(), []);
        let cx = RunContext {
            quarantine,
            ..RunContext::new("p", std::path::Path::new("."))
        };
        let mut batch = batch_from("in/orders.json", records);
        Unnest::new(&config, &cx)
            .apply(&mut batch)
            .map_err(|e| e.to_string())?;
        Ok(batch)
    }

    fn orders() -> Vec<Record> {
        vec![
            record(&[
                ("order_id", int(1)),
                ("lines", Value::Array(vec![line("A", 2), line("ß", 1)])),
                ("customer", text("Zoë")),
            ]),
            record(&[
                ("order_id", int(2)),
                ("lines", Value::Array(vec![])),
                ("customer", text("Li")),
            ]),
            record(&[("order_id", int(3)), ("customer", text("Ann"))]),
            record(&[
                ("order_id", int(4)),
                ("lines", Value::Array(vec![text("gift"), Value::Null])),
                ("customer", Value::Null),
            ]),
        ]
    }

    #[test]
    fn one_record_per_element_in_the_arrays_place_with_the_parents_number() {
        let batch = unnest(r#"field = "lines""#, orders(), false).unwrap();
        assert_eq!(
            batch.records,
            [
                record(&[
                    ("order_id", int(1)),
                    ("sku", text("A")),
                    ("qty", int(2)),
                    ("customer", text("Zoë"))
                ]),
                record(&[
                    ("order_id", int(1)),
                    ("sku", text("ß")),
                    ("qty", int(1)),
                    ("customer", text("Zoë"))
                ]),
                record(&[("order_id", int(2)), ("customer", text("Li"))]),
                record(&[("order_id", int(3)), ("customer", text("Ann"))]),
                record(&[
                    ("order_id", int(4)),
                    ("lines", text("gift")),
                    ("customer", Value::Null)
                ]),
                record(&[
                    ("order_id", int(4)),
                    ("lines", Value::Null),
                    ("customer", Value::Null)
                ]),
            ]
        );
        assert_eq!(batch.numbers, [1, 1, 2, 3, 4, 4]);
    }

    #[test]
    fn prefix_keep_and_dropping_the_empty() {
        let batch = unnest(
            r#"field = "lines"
prefix = "line."
keep = ["order_id"]
empty = "drop""#,
            orders(),
            false,
        )
        .unwrap();
        assert_eq!(
            batch.records,
            [
                record(&[
                    ("order_id", int(1)),
                    ("line.sku", text("A")),
                    ("line.qty", int(2))
                ]),
                record(&[
                    ("order_id", int(1)),
                    ("line.sku", text("ß")),
                    ("line.qty", int(1))
                ]),
                record(&[("order_id", int(4)), ("lines", text("gift"))]),
                record(&[("order_id", int(4)), ("lines", Value::Null)]),
            ]
        );
        assert_eq!(batch.numbers, [1, 1, 4, 4]);
    }

    #[test]
    fn a_clash_or_a_value_that_is_no_array_refuses_the_record() {
        let clash = record(&[
            ("sku", text("parent")),
            ("lines", Value::Array(vec![line("A", 1)])),
        ]);
        assert_eq!(
            unnest(r#"field = "lines""#, vec![clash.clone()], false).unwrap_err(),
            "in/orders.json: record 1: `lines`: an element's `sku` would overwrite the record's `sku`: set a `prefix` (`prefix = \"lines.\"`) or leave `sku` out of `keep`; a `[rejects]` table sets such records aside and lets the run go on"
        );
        let not_an_array = record(&[("lines", text("A,B"))]);
        let batch = unnest(
            r#"field = "lines""#,
            vec![clash.clone(), not_an_array, orders().remove(0)],
            true,
        )
        .unwrap();
        let rejects: Vec<(Option<u64>, String)> = batch
            .rejects
            .iter()
            .map(|r| (r.position.record, r.reason.clone()))
            .collect();
        assert_eq!(
            rejects,
            [
                (
                    Some(1),
                    "`lines`: an element's `sku` would overwrite the record's `sku`: set a `prefix` (`prefix = \"lines.\"`) or leave `sku` out of `keep`".to_string()
                ),
                (
                    Some(2),
                    "`lines` is text, not an array: `unnest` takes an array (or null)".to_string()
                ),
            ]
        );
        assert_eq!(batch.numbers, [3, 3]);
        let kept_apart = unnest(
            r#"field = "lines"
keep = ["order_id"]"#,
            vec![clash],
            false,
        )
        .unwrap();
        assert_eq!(
            kept_apart.records,
            [record(&[("sku", text("A")), ("qty", int(1))])]
        );
    }

    #[test]
    fn without_numbers_children_have_none() {
        let cx = RunContext::new("p", std::path::Path::new("."));
        let config: UnnestConfig = toml::from_str(r#"field = "lines""#).unwrap();
        let mut batch = Batch {
            records: orders(),
            ..Batch::default()
        };
        Unnest::new(&config, &cx).apply(&mut batch).unwrap();
        assert_eq!(batch.records.len(), 6);
        assert!(batch.numbers.is_empty());
    }

    #[test]
    fn keeping_the_unnested_field_is_invalid() {
        let config: UnnestConfig = toml::from_str(
            r#"field = "lines"
keep = ["lines", "id", "id"]"#,
        )
        .unwrap();
        let messages: Vec<String> = config.problems().into_iter().map(|p| p.message).collect();
        assert_eq!(
            messages,
            [
                "`lines` is the field unnested: its elements take its place, remove it from `keep`",
                "`id` is listed twice"
            ]
        );
    }
}
