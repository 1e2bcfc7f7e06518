//! `drop`: removes fields by name or glob (`"internal_*"`), for when listing what to keep
//! (`select`) would mean listing everything else.

use schemars::JsonSchema;
use serde::Deserialize;

use super::field_pattern::{self, FieldPattern};
use crate::config::{Invalid, Validate};
use crate::error::StageError;
use crate::record::Batch;
use crate::stage::Transform;

/// Removes fields: `fields = ["internal_*", "note"]`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DropConfig {
    /// The fields to remove. An entry with `*` or `?` is a glob (`"internal_*"`; `[...]` is a
    /// character class in it) and removes every field it matches; other entries are names. A
    /// field a record lacks is fine. Required.
    pub fields: Vec<String>,
}

impl Validate for DropConfig {
    fn problems(&self) -> Vec<Invalid> {
        field_pattern::parse_list("fields", &self.fields, "list the fields to remove").1
    }
}

pub struct Drop {
    patterns: Vec<FieldPattern>,
}

impl Drop {
    pub fn new(config: &DropConfig) -> Self {
        Drop {
            patterns: field_pattern::parse_checked(&config.fields),
        }
    }
}

impl Transform for Drop {
    fn apply(&mut self, batch: &mut Batch) -> Result<(), StageError> {
        for record in &mut batch.records {
            record
                .fields_mut()
                .retain(|(name, _)| !self.patterns.iter().any(|p| p.matches(name)));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::record::FieldName;

    use super::*;
    use crate::record::{Record, Value};

    #[test]
    fn removes_names_and_globs_and_ignores_missing_fields() {
        let record: Record = ["id", "internal_score", "note", "internal_ß", "total"]
            .iter()
            .map(|n| (FieldName::from(*n), Value::Null))
            .collect();
        let mut batch = Batch {
            records: vec![record, Record::new()],
            ..Batch::default()
        };
        let config = DropConfig {
            fields: vec!["internal_*".into(), "note".into(), "absent".into()],
        };
        assert_eq!(config.problems(), []);
        Drop::new(&config).apply(&mut batch).unwrap();
        let names: Vec<&str> = batch.records[0].names().map(|n| &**n).collect();
        assert_eq!(names, ["id", "total"]);
        assert!(batch.records[1].is_empty());
    }
}
