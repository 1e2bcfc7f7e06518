//! Quarantine for records that cannot be read: with a `[rejects]` table, each bad record goes
//! to a rejects file (NDJSON, one object per record: file, position, reason, raw text), written
//! atomically and published with the run's other outputs, and the run goes on; `max_rejects`
//! turns too many of them into a failed run that publishes nothing.

use std::collections::BTreeMap;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use super::IfEmpty;
use super::file::{FileSink, FileSinkConfig};
use crate::codecs::FormatConfig;
use crate::codecs::ndjson::NdjsonOptions;
use crate::config::{Invalid, Validate};
use crate::record::{Batch, FieldName, Record, Reject, Text, Value};
use crate::state::IfExists;
use crate::template::PathTemplate;

/// Where bad records go, and how many a run may have.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectsConfig {
    /// The rejects file, as a path template like a file sink's (`{pipeline}`, `{run_date}`,
    /// `{run_ts}`, `{source_stem}`), e.g. `"rejects/{pipeline}-{run_ts}.ndjson"`. Written as
    /// NDJSON, one object per bad record with `file`, `line`, `column`, `record`, `field`,
    /// `reason` and `raw`; only when there are rejects. Required.
    pub path: String,
    /// The most rejects a run may have and still publish: a count (`100`) or a percentage of
    /// the records read (`"5%"`). Past it the run fails and publishes nothing. Default: no
    /// limit.
    pub max_rejects: Option<MaxRejects>,
}

impl Validate for RejectsConfig {
    fn problems(&self) -> Vec<Invalid> {
        match PathTemplate::parse(&self.path) {
            Ok(_) => Vec::new(),
            Err(message) => vec![Invalid::new("path", message)],
        }
    }
}

/// A limit on rejects: a count, or a percentage of all records read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaxRejects {
    Count(u64),
    Percent(f64),
}

impl MaxRejects {
    /// Whether `rejects` out of `total` records (rejects included) is past the limit.
    pub fn exceeded(self, rejects: u64, total: u64) -> bool {
        match self {
            MaxRejects::Count(max) => rejects > max,
            MaxRejects::Percent(max) => total > 0 && rejects as f64 * 100.0 > max * total as f64,
        }
    }
}

impl fmt::Display for MaxRejects {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MaxRejects::Count(max) => write!(f, "{max}"),
            MaxRejects::Percent(max) => write!(f, "\"{max}%\""),
        }
    }
}

const MAX_REJECTS_EXPECTED: &str = "a count like 100 or a percentage like \"5%\"";

impl<'de> Deserialize<'de> for MaxRejects {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MaxVisitor;
        impl Visitor<'_> for MaxVisitor {
            type Value = MaxRejects;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(MAX_REJECTS_EXPECTED)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<MaxRejects, E> {
                u64::try_from(v)
                    .map(MaxRejects::Count)
                    .map_err(|_| E::custom(format!("expected {MAX_REJECTS_EXPECTED}")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<MaxRejects, E> {
                Ok(MaxRejects::Count(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<MaxRejects, E> {
                v.strip_suffix('%')
                    .and_then(|n| n.trim().parse::<f64>().ok())
                    .filter(|p| (0.0..=100.0).contains(p))
                    .map(MaxRejects::Percent)
                    .ok_or_else(|| {
                        E::custom(format!("expected {MAX_REJECTS_EXPECTED}, found `{v}`"))
                    })
            }
        }
        deserializer.deserialize_any(MaxVisitor)
    }
}

impl JsonSchema for MaxRejects {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "MaxRejects".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A count (100) or a percentage of the records read (\"5%\").",
            "anyOf": [
                { "type": "integer", "minimum": 0 },
                { "type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?%$" }
            ]
        })
    }
}

/// The rejects of a run: written to their file as they come, counted by reason.
pub struct RejectsFile {
    pub sink: FileSink,
    pub total: u64,
    /// Of `total`, the records the source could not read (the others were read, then refused
    /// by a transform or a receiver): `max_rejects = "N%"` is a share of all records, read or
    /// not.
    pub unreadable: u64,
    pub by_reason: BTreeMap<String, u64>,
    /// The first reject, for the message when there are too many.
    pub first: Option<String>,
    names: [FieldName; 7],
}

impl RejectsFile {
    pub fn new(
        config: &RejectsConfig,
        cx: &crate::stage::RunContext,
    ) -> Result<Self, crate::error::StageError> {
        let sink = FileSink::new(
            &FileSinkConfig {
                path: config.path.clone(),
                format: Some(FormatConfig::Ndjson(NdjsonOptions::default())),
                if_exists: IfExists::Replace,
                encoding: None,
                // Published only when there are rejects.
                if_empty: IfEmpty::Skip,
            },
            cx,
        )?;
        Ok(RejectsFile {
            sink,
            total: 0,
            unreadable: 0,
            by_reason: BTreeMap::new(),
            first: None,
            names: ["file", "line", "column", "record", "field", "reason", "raw"]
                .map(FieldName::from),
        })
    }

    /// [`take`](Self::take) for the records the source could not read.
    pub fn take_unreadable(&mut self, batch: &mut Batch) -> Batch {
        self.unreadable += batch.rejects.len() as u64;
        self.take(batch)
    }

    /// Counts the rejects of `batch` and turns them into records for the rejects file.
    pub fn take(&mut self, batch: &mut Batch) -> Batch {
        let rejects = std::mem::take(&mut batch.rejects);
        let mut records = Vec::with_capacity(rejects.len());
        for reject in rejects {
            self.total += 1;
            *self.by_reason.entry(reject.reason.clone()).or_default() += 1;
            if self.first.is_none() {
                self.first = Some(format!(
                    "{}: {}: {}",
                    reject.file, reject.position, reject.reason
                ));
            }
            records.push(self.record(reject));
        }
        Batch {
            records,
            origin: batch.origin.clone(),
            ..Batch::default()
        }
    }

    fn record(&self, reject: Reject) -> Record {
        let number = |n: Option<u64>| n.map_or(Value::Null, |n| Value::Integer(n as i64));
        let text = |t: Option<String>| t.map_or(Value::Null, |t| Value::String(Text::from(t)));
        let values = [
            Value::String(Text::from(reject.file)),
            number(reject.position.line),
            number(reject.position.column),
            number(reject.position.record),
            text(reject.position.field.map(field_name)),
            Value::String(Text::from(reject.reason)),
            text(reject.raw),
        ];
        let mut record = Record::with_capacity(values.len());
        for (name, value) in self.names.iter().zip(values) {
            record.push(name.clone(), value);
        }
        record
    }
}

/// The field's name for machines: positions name a field for people (`` `name` (column 2) ``).
fn field_name(field: String) -> String {
    match field
        .strip_prefix('`')
        .and_then(|rest| rest.split_once('`'))
    {
        Some((name, _)) => name.to_string(),
        None => field,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_count_and_percent() {
        assert!(!MaxRejects::Count(2).exceeded(2, 10));
        assert!(MaxRejects::Count(2).exceeded(3, 10));
        assert!(!MaxRejects::Percent(5.0).exceeded(5, 100));
        assert!(MaxRejects::Percent(5.0).exceeded(6, 100));
        assert!(!MaxRejects::Percent(0.0).exceeded(0, 0));
        let parse = |text: &str| {
            toml::from_str::<RejectsConfig>(&format!("path = \"r.ndjson\"\nmax_rejects = {text}"))
                .map(|c| c.max_rejects)
        };
        assert_eq!(parse("7").unwrap(), Some(MaxRejects::Count(7)));
        assert_eq!(parse("\"2.5%\"").unwrap(), Some(MaxRejects::Percent(2.5)));
        let error = parse("\"lots\"").unwrap_err().to_string();
        assert!(
            error.contains("expected a count like 100 or a percentage like \"5%\", found `lots`"),
            "{error}"
        );
    }
}
