//! `flatten`: nested objects become flat fields (`customer.address.city`), so JSON from an API
//! fits a CSV or a spreadsheet with one column per leaf instead of a JSON blob per cell.

use schemars::JsonSchema;
use serde::Deserialize;

use super::{Refusals, Refused};
use crate::config::{Invalid, Validate};
use crate::error::StageError;
use crate::record::{Batch, FieldName, Value};
use crate::stage::{RunContext, Transform};

/// Flattens nested objects: `{ customer = { name = "Zoë" } }` becomes `customer.name`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FlattenConfig {
    /// What joins a parent's name and a child's. A name made twice (a record with `a.b` and
    /// `a = { b = 1 }`) refuses the record: to the rejects with `[rejects]`, else the run
    /// fails naming it. Default `"."`.
    #[serde(default = "default_separator")]
    pub separator: String,
    /// What becomes of arrays: `"json"` (the array as one field of compact JSON text, as CSV
    /// cells show it anyway) or `"index"` (a field per element: `items.0.sku`, `items.1.sku`).
    /// Default `"json"`.
    #[serde(default)]
    pub arrays: Arrays,
    /// The fields to flatten (top-level names). Default: every field.
    pub fields: Option<Vec<String>>,
}

fn default_separator() -> String {
    ".".to_string()
}

/// What `flatten` does with arrays.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Arrays {
    /// The array as compact JSON text.
    #[default]
    Json,
    /// A field per element, named by its index from 0.
    Index,
}

impl Validate for FlattenConfig {
    fn problems(&self) -> Vec<Invalid> {
        let mut problems = Vec::new();
        if self.separator.is_empty() {
            problems.push(Invalid::new(
                "separator",
                "`separator` is empty: names would run together (`ab` from `a` and `b`); write `\".\"` or `\"_\"`",
            ));
        }
        if self.fields.as_ref().is_some_and(Vec::is_empty) {
            problems.push(Invalid::new(
                "fields",
                "`fields` is empty: list the fields to flatten, or leave `fields` out to flatten all",
            ));
        }
        problems
    }
}

pub struct Flatten {
    separator: String,
    arrays: Arrays,
    fields: Option<Vec<String>>,
    refusals: Refusals,
    /// Per record: the flat names, reused between records.
    names: Vec<String>,
}

impl Flatten {
    pub fn new(config: &FlattenConfig, cx: &RunContext) -> Self {
        Flatten {
            separator: config.separator.clone(),
            arrays: config.arrays,
            fields: config.fields.clone(),
            refusals: Refusals::new(cx),
            names: Vec::new(),
        }
    }

    fn flattens(&self, name: &str, value: &Value) -> bool {
        matches!(value, Value::Object(_) | Value::Array(_))
            && self
                .fields
                .as_ref()
                .is_none_or(|fields| fields.iter().any(|f| f == name))
    }

    /// The names of the fields `value` becomes, under `prefix`, in order.
    fn leaf_names(&self, prefix: String, value: &Value, names: &mut Vec<String>) {
        match value {
            Value::Object(record) if !record.is_empty() => {
                for (name, value) in record.iter() {
                    let name = format!("{prefix}{}{name}", self.separator);
                    self.leaf_names(name, value, names);
                }
            }
            Value::Array(items) if self.arrays == Arrays::Index && !items.is_empty() => {
                for (index, value) in items.iter().enumerate() {
                    let name = format!("{prefix}{}{index}", self.separator);
                    self.leaf_names(name, value, names);
                }
            }
            _ => names.push(prefix),
        }
    }

    /// The values of the fields `value` becomes, in the order of [`Flatten::leaf_names`]: an
    /// empty object is null, an array in `json` mode its JSON text, an empty one in `index` mode null.
    fn leaf_values(
        &self,
        value: Value,
        values: &mut Vec<(FieldName, Value)>,
        names: &mut std::vec::Drain<'_, String>,
    ) {
        match value {
            Value::Object(mut record) if !record.is_empty() => {
                for (_, value) in std::mem::take(record.fields_mut()) {
                    self.leaf_values(value, values, names);
                }
            }
            Value::Array(items) if self.arrays == Arrays::Index && !items.is_empty() => {
                for value in items {
                    self.leaf_values(value, values, names);
                }
            }
            value => {
                let value = match value {
                    Value::Object(_) => Value::Null,
                    Value::Array(ref items) if items.is_empty() && self.arrays == Arrays::Index => {
                        Value::Null
                    }
                    Value::Array(_) => {
                        Value::String(value.to_text().expect("an array has text").as_ref().into())
                    }
                    value => value,
                };
                let name = names.next().expect("a name for every leaf");
                values.push((FieldName::from(name), value));
            }
        }
    }
}

impl Transform for Flatten {
    fn apply(&mut self, batch: &mut Batch) -> Result<(), StageError> {
        let mut refused = Vec::new();
        let mut flat_names = std::mem::take(&mut self.names);
        for (index, record) in batch.records.iter_mut().enumerate() {
            if !record
                .iter()
                .any(|(name, value)| self.flattens(name, value))
            {
                continue;
            }
            // Every name first: a clash refuses the record as it came in.
            flat_names.clear();
            for (name, value) in record.iter() {
                if self.flattens(name, value) {
                    self.leaf_names(name.to_string(), value, &mut flat_names);
                } else {
                    flat_names.push(name.to_string());
                }
            }
            let mut seen = std::collections::HashSet::with_capacity(flat_names.len());
            if let Some(clash) = flat_names.iter().find(|name| !seen.insert(name.as_str())) {
                refused.push(Refused {
                    index,
                    field: Some(clash.clone()),
                    reason: format!(
                        "flattening makes two fields named `{clash}`: rename one of them before `flatten`, or choose another `separator`"
                    ),
                });
                continue;
            }
            let fields = record.fields_mut();
            let mut flat = Vec::with_capacity(flat_names.len());
            let mut names = flat_names.drain(..);
            for (name, value) in std::mem::take(fields) {
                if self.flattens(&name, &value) {
                    self.leaf_values(value, &mut flat, &mut names);
                } else {
                    names.next();
                    flat.push((name, value));
                }
            }
            drop(names);
            *fields = flat;
        }
        self.names = flat_names;
        self.refusals.set_aside(batch, refused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;
    use crate::transforms::testing::*;

    fn int(i: i64) -> Value {
        Value::Integer(i)
    }

    fn flatten(toml_text: &str, records: Vec<Record>, quarantine: bool) -> Result<Batch, String> {
        let config: FlattenConfig = toml::from_str(toml_text).unwrap();
        assert_eq!(config.problems(), []);
        let cx = RunContext {
            quarantine,
            ..RunContext::new("p", std::path::Path::new("."))
        };
        let mut batch = batch_from("in/orders.json", records);
        Flatten::new(&config, &cx)
            .apply(&mut batch)
            .map_err(|e| e.to_string())?;
        Ok(batch)
    }

    fn nested() -> Record {
        record(&[
            ("id", int(1)),
            (
                "customer",
                Value::Object(record(&[
                    ("name", Value::String("Zoë".into())),
                    (
                        "address",
                        Value::Object(record(&[("city", Value::String("Köln".into()))])),
                    ),
                    ("tags", Value::Array(vec![])),
                    ("extra", Value::Object(Record::new())),
                ])),
            ),
            (
                "items",
                Value::Array(vec![
                    Value::Object(record(&[("sku", Value::String("A".into()))])),
                    int(2),
                ]),
            ),
            ("total", Value::Null),
        ])
    }

    fn names_and_values(record: &Record) -> Vec<(String, String)> {
        record
            .iter()
            .map(|(n, v)| (n.to_string(), format!("{v:?}")))
            .collect()
    }

    #[test]
    fn objects_become_dotted_fields_in_place_and_arrays_json_text() {
        let batch = flatten("", vec![nested()], false).unwrap();
        assert_eq!(
            batch.records,
            [record(&[
                ("id", int(1)),
                ("customer.name", Value::String("Zoë".into())),
                ("customer.address.city", Value::String("Köln".into())),
                ("customer.tags", Value::String("[]".into())),
                ("customer.extra", Value::Null),
                ("items", Value::String(r#"[{"sku":"A"},2]"#.into())),
                ("total", Value::Null),
            ])]
        );
    }

    #[test]
    fn arrays_by_index_with_another_separator_and_only_some_fields() {
        let batch = flatten(
            r#"arrays = "index"
separator = "_"
fields = ["items"]"#,
            vec![nested()],
            false,
        )
        .unwrap();
        let names: Vec<String> = names_and_values(&batch.records[0])
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["id", "customer", "items_0_sku", "items_1", "total"]);
        assert_eq!(batch.records[0].get("items_1"), Some(&int(2)));
        let empty = flatten(
            r#"arrays = "index""#,
            vec![record(&[("items", Value::Array(vec![]))])],
            false,
        )
        .unwrap();
        assert_eq!(empty.records, [record(&[("items", Value::Null)])]);
    }

    #[test]
    fn a_name_clash_refuses_the_record_naming_the_field() {
        let clashing = record(&[
            ("a.b", int(1)),
            ("a", Value::Object(record(&[("b", int(2))]))),
        ]);
        let error =
            flatten("", vec![record(&[("x", int(0))]), clashing.clone()], false).unwrap_err();
        assert_eq!(
            error,
            "in/orders.json: record 2: flattening makes two fields named `a.b`: rename one of them before `flatten`, or choose another `separator`; a `[rejects]` table sets such records aside and lets the run go on"
        );
        let batch = flatten("", vec![clashing, nested()], true).unwrap();
        assert_eq!(batch.records.len(), 1);
        assert_eq!(batch.numbers, [2]);
        assert_eq!(batch.rejects[0].position.record, Some(1));
        assert_eq!(batch.rejects[0].position.field.as_deref(), Some("`a.b`"));
        assert_eq!(
            batch.rejects[0].raw.as_deref(),
            Some(r#"{"a.b":1,"a":{"b":2}}"#)
        );
    }

    #[test]
    fn an_empty_separator_is_invalid() {
        let config: FlattenConfig = toml::from_str(r#"separator = """#).unwrap();
        assert_eq!(
            config.problems()[0].message,
            "`separator` is empty: names would run together (`ab` from `a` and `b`); write `\".\"` or `\"_\"`"
        );
    }
}
