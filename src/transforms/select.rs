//! `select`: keeps the listed fields, in the listed order, so outputs have stable columns.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::config::{Invalid, Validate};
use crate::error::StageError;
use crate::record::{Batch, FieldName, Record, Value};
use crate::stage::Transform;

/// Keeps only the listed fields: `fields = ["order_id", "total"]`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SelectConfig {
    /// The fields to keep, in output order. A field a record lacks becomes null, so every
    /// record has the same fields. Required.
    pub fields: Vec<String>,
}

impl Validate for SelectConfig {
    fn problems(&self) -> Vec<Invalid> {
        let mut problems = Vec::new();
        if self.fields.is_empty() {
            problems.push(Invalid::new(
                "fields",
                "`fields` is empty: list the fields to keep",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for field in &self.fields {
            if !seen.insert(field) {
                problems.push(Invalid::new("fields", format!("`{field}` is listed twice")));
            }
        }
        problems
    }
}

pub struct Select {
    fields: Vec<FieldName>,
}

impl Select {
    pub fn new(config: &SelectConfig) -> Self {
        Select {
            fields: config
                .fields
                .iter()
                .map(|f| Arc::from(f.as_str()))
                .collect(),
        }
    }
}

impl Transform for Select {
    fn apply(&mut self, batch: &mut Batch) -> Result<(), StageError> {
        for record in &mut batch.records {
            let mut selected = Record::with_capacity(self.fields.len());
            for field in &self.fields {
                let value = record.remove(field).unwrap_or(Value::Null);
                selected.push(field.clone(), value);
            }
            *record = selected;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_listed_fields_in_order_and_fills_missing_with_null() {
        let record: Record = [("a", 1), ("b", 2), ("c", 3)]
            .iter()
            .map(|(n, v)| (Arc::from(*n), Value::Integer(*v)))
            .collect();
        let mut batch = Batch {
            records: vec![record],
            ..Batch::default()
        };
        Select::new(&SelectConfig {
            fields: vec!["c".into(), "a".into(), "z".into()],
        })
        .apply(&mut batch)
        .unwrap();
        let fields: Vec<(String, Value)> = batch.records[0]
            .iter()
            .map(|(n, v)| (n.to_string(), v.clone()))
            .collect();
        assert_eq!(
            fields,
            [
                ("c".into(), Value::Integer(3)),
                ("a".into(), Value::Integer(1)),
                ("z".into(), Value::Null)
            ]
        );
    }
}
