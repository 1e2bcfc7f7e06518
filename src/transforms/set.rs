//! `set`: writes fields from constants and from text templates over the record and the run
//! (`"{first} {last}"`, `"{run_ts}"`, `"{source}"`), so a delivery can say where and when it was
//! loaded without a script around the pipeline. Templates are read at validation, so a typo in
//! a run value's name is a config error, not an empty column.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::{MapAccess, Visitor};

use crate::config::{Invalid, Validate};
use crate::error::StageError;
use crate::record::{Batch, FieldName, Record, Value};
use crate::stage::{RunContext, Transform};
use crate::template::{Piece, Unbalanced, pieces};

/// The run values a template may use, with what they stand for.
pub const RUN_VALUES: &[(&str, &str)] = &[
    ("run_id", "the run's id, as in the run report"),
    (
        "run_ts",
        "the run's start, RFC 3339 in local time (`2024-08-01T02:05:00+02:00`)",
    ),
    (
        "run_date",
        "the run's start date, local time (`2024-08-01`)",
    ),
    ("pipeline", "the pipeline's name"),
    (
        "source",
        "where the batch came from: the file's path or the page's URL; empty when the source does not say",
    ),
];

/// Sets fields: `fields = { source_system = "cratejoy", full_name = "{first} {last}",
/// loaded_at = "{run_ts}", priority = 3 }`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetConfig {
    /// Field name = value. A field the record has is replaced in place; a new one is added at
    /// the end, in the order written here. Every template reads the record as it came in, not
    /// the values this `set` writes.
    ///
    /// A number, bool, date-time, array or table is written as that type (`priority = 3` is an
    /// integer). Text is a template: `{name}` is the record's field `name` as text (a number
    /// as written, a nested value as JSON), empty when the field is null or missing; `{run_id}`,
    /// `{run_ts}` (RFC 3339, local time), `{run_date}`, `{pipeline}` and `{source}` (the file's
    /// path or the page's URL) are the run's, and win over fields of the same name, which are
    /// written `{field:run_id}`. `{{` and `}}` are literal braces. A template that is one field
    /// alone (`"{id}"`) copies the value with its type: an integer stays an integer, and a
    /// missing field gives null. Text inside an array or table is taken as it is. Required.
    #[serde(deserialize_with = "in_written_order")]
    #[schemars(with = "BTreeMap<String, SetValue>")]
    pub fields: Vec<(String, SetValue)>,
}

/// A value `set` writes: a template (text) or a constant of another TOML type.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum SetValue {
    Text(String),
    Integer(i64),
    Float(f64),
    Bool(bool),
    /// A TOML date-time: with an offset a timestamp, without one a local date-time, a date.
    Datetime(#[schemars(with = "String")] toml::value::Datetime),
    Array(Vec<SetValue>),
    Table(BTreeMap<String, SetValue>),
}

/// A TOML table's entries in the order the file writes them.
fn in_written_order<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<(String, SetValue)>, D::Error> {
    struct Entries;
    impl<'de> Visitor<'de> for Entries {
        type Value = Vec<(String, SetValue)>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a table of field names and values")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            // TOML tables come sorted by key: their spans give the written order back.
            let mut entries: Vec<(String, toml::Spanned<SetValue>)> = Vec::new();
            while let Some(entry) = map.next_entry()? {
                entries.push(entry);
            }
            entries.sort_by_key(|(_, value)| value.span().start);
            Ok(entries
                .into_iter()
                .map(|(name, value)| (name, value.into_inner()))
                .collect())
        }
    }
    deserializer.deserialize_map(Entries)
}

/// What a template's placeholder stands for.
enum Placeholder<'a> {
    Run(&'a str),
    Field(&'a str),
}

/// `placeholder` (the text between the braces) read, or what to write instead.
fn placeholder(placeholder: &str) -> Result<Placeholder<'_>, String> {
    if let Some(field) = placeholder.strip_prefix("field:") {
        return match field {
            "" => Err("`{field:}` names no field: write `{field:NAME}`".to_string()),
            field => Ok(Placeholder::Field(field)),
        };
    }
    if placeholder.is_empty() {
        return Err(
            "`{}` names nothing: write `{NAME}` for a field, `{{}}` for literal braces".into(),
        );
    }
    if RUN_VALUES.iter().any(|(name, _)| *name == placeholder) {
        return Ok(Placeholder::Run(placeholder));
    }
    // A near miss of a run value is most likely a typo, which would otherwise be an empty
    // column: it must be spelt as a field to mean one.
    let near = RUN_VALUES
        .iter()
        .find(|(name, _)| strsim::osa_distance(name, placeholder) <= 1)
        .map(|(name, _)| *name);
    match near {
        Some(near) => Err(format!(
            "`{{{placeholder}}}` is not a run value: did you mean `{{{near}}}`? A field of that name is written `{{field:{placeholder}}}`"
        )),
        None if placeholder.starts_with("run_") => {
            let known: Vec<String> = RUN_VALUES.iter().map(|(n, _)| format!("{{{n}}}")).collect();
            Err(format!(
                "`{{{placeholder}}}` is not a run value (known: {}); a field of that name is written `{{field:{placeholder}}}`",
                known.join(", ")
            ))
        }
        None => Ok(Placeholder::Field(placeholder)),
    }
}

impl Validate for SetConfig {
    fn problems(&self) -> Vec<Invalid> {
        let mut problems = Vec::new();
        if self.fields.is_empty() {
            problems.push(Invalid::new(
                "fields",
                "`fields` is empty: name at least one field to set",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (name, value) in &self.fields {
            let key = format!("fields.{name}");
            if !seen.insert(name) {
                problems.push(Invalid::new(&key, format!("`{name}` is set twice")));
            }
            let SetValue::Text(template) = value else {
                continue;
            };
            match pieces(template) {
                Err(Unbalanced::LoneClose) => problems.push(Invalid::new(
                    &key,
                    "unmatched `}` (write `}}` for a literal brace)",
                )),
                Err(Unbalanced::Unclosed) => problems.push(Invalid::new(
                    &key,
                    "unclosed `{` (write `{{` for a literal brace)",
                )),
                Ok(pieces) => {
                    for piece in pieces {
                        if let Piece::Placeholder(text) = piece
                            && let Err(message) = placeholder(&text)
                        {
                            problems.push(Invalid::new(&key, message));
                        }
                    }
                }
            }
        }
        problems
    }
}

/// A piece of a template ready to render: the run's values are text already.
enum Part {
    Text(String),
    Source,
    Field(String),
}

enum Compiled {
    Constant(Value),
    /// A template that is one field alone: the value as it is.
    Copy(String),
    Template(Vec<Part>),
}

pub struct Set {
    fields: Vec<(FieldName, Compiled)>,
    /// Per record: the values to write, reused between records.
    values: Vec<Value>,
}

impl Set {
    pub fn new(config: &SetConfig, cx: &RunContext) -> Self {
        let run_value = |name: &str| match name {
            "run_id" => cx.run_id.clone(),
            "run_ts" => cx
                .started_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
            "run_date" => cx.started_at.format("%Y-%m-%d").to_string(),
            "pipeline" => cx.pipeline.clone(),
            other => unreachable!("`{other}` is not a run value known at build"),
        };
        let fields = config
            .fields
            .iter()
            .map(|(name, value)| {
                let compiled = match value {
                    SetValue::Text(template) => {
                        let pieces = pieces(template).expect("validated template");
                        let mut parts: Vec<Part> = Vec::with_capacity(pieces.len());
                        for piece in &pieces {
                            let part = match piece {
                                Piece::Text(text) => Part::Text(text.clone()),
                                Piece::Placeholder(text) => {
                                    match placeholder(text).expect("validated placeholder") {
                                        Placeholder::Run("source") => Part::Source,
                                        Placeholder::Run(run) => Part::Text(run_value(run)),
                                        Placeholder::Field(field) => Part::Field(field.to_string()),
                                    }
                                }
                            };
                            match (parts.last_mut(), part) {
                                (Some(Part::Text(before)), Part::Text(text)) => {
                                    before.push_str(&text)
                                }
                                (_, part) => parts.push(part),
                            }
                        }
                        match parts.as_mut_slice() {
                            [Part::Field(field)] => Compiled::Copy(std::mem::take(field)),
                            [] => Compiled::Constant(Value::String("".into())),
                            [Part::Text(text)] => {
                                Compiled::Constant(Value::String(text.as_str().into()))
                            }
                            _ => Compiled::Template(parts),
                        }
                    }
                    constant => Compiled::Constant(constant_value(constant)),
                };
                (FieldName::from(name.as_str()), compiled)
            })
            .collect();
        Set {
            fields,
            values: Vec::new(),
        }
    }
}

/// A constant as a record value; text is taken as it is.
fn constant_value(value: &SetValue) -> Value {
    match value {
        SetValue::Text(text) => Value::String(text.as_str().into()),
        SetValue::Integer(i) => Value::Integer(*i),
        SetValue::Float(f) => Value::Float(*f),
        SetValue::Bool(b) => Value::Bool(*b),
        SetValue::Datetime(datetime) => datetime_value(datetime),
        SetValue::Array(items) => Value::Array(items.iter().map(constant_value).collect()),
        SetValue::Table(fields) => Value::Object(
            fields
                .iter()
                .map(|(name, value)| (FieldName::from(name.as_str()), constant_value(value)))
                .collect(),
        ),
    }
}

/// A TOML date-time as the record model's type for it: an offset date-time a timestamp, a
/// local one a date-time, a date a date, a time of day alone its text.
fn datetime_value(datetime: &toml::value::Datetime) -> Value {
    let text = datetime.to_string();
    match (datetime.date, datetime.time, datetime.offset) {
        (Some(_), Some(_), Some(_)) => chrono::DateTime::parse_from_rfc3339(&text)
            .map_or_else(|_| Value::String(text.into()), Value::Timestamp),
        (Some(_), Some(_), None) => text
            .parse::<chrono::NaiveDateTime>()
            .map_or_else(|_| Value::String(text.as_str().into()), Value::DateTime),
        (Some(_), None, _) => text
            .parse::<chrono::NaiveDate>()
            .map_or_else(|_| Value::String(text.as_str().into()), Value::Date),
        _ => Value::String(text.into()),
    }
}

impl Compiled {
    fn evaluate(&self, record: &Record, source: &str) -> Value {
        match self {
            Compiled::Constant(value) => value.clone(),
            Compiled::Copy(field) => record.get(field).cloned().unwrap_or(Value::Null),
            Compiled::Template(parts) => {
                let mut text = crate::record::Text::default();
                for part in parts {
                    match part {
                        Part::Text(piece) => text.push_str(piece),
                        Part::Source => text.push_str(source),
                        Part::Field(field) => {
                            if let Some(value) = record.get(field).and_then(Value::to_text) {
                                text.push_str(&value);
                            }
                        }
                    }
                }
                Value::String(text)
            }
        }
    }
}

impl Transform for Set {
    fn apply(&mut self, batch: &mut Batch) -> Result<(), StageError> {
        let source = batch
            .origin
            .as_ref()
            .map_or("", |origin| origin.path.as_str());
        for record in &mut batch.records {
            self.values.clear();
            for (_, compiled) in &self.fields {
                self.values.push(compiled.evaluate(record, source));
            }
            for ((name, _), value) in self.fields.iter().zip(self.values.drain(..)) {
                record.insert(name.clone(), value);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::TimeZone;

    use super::*;
    use crate::record::Origin;
    use crate::transforms::testing::*;

    fn config(toml_text: &str) -> SetConfig {
        toml::from_str(toml_text).unwrap()
    }

    fn context() -> RunContext {
        let mut cx = RunContext::new("orders", std::path::Path::new("."));
        cx.run_id = "20240801T020500-abcdef".into();
        cx.started_at = chrono::Local
            .from_local_datetime(
                &chrono::NaiveDate::from_ymd_opt(2024, 8, 1)
                    .unwrap()
                    .and_hms_opt(2, 5, 0)
                    .unwrap(),
            )
            .unwrap();
        cx
    }

    fn apply(config: &SetConfig, records: Vec<Record>, origin: Option<&str>) -> Vec<Record> {
        assert_eq!(config.problems(), []);
        let mut batch = Batch {
            records,
            origin: origin.map(|path| Arc::new(Origin { path: path.into() })),
            ..Batch::default()
        };
        Set::new(config, &context()).apply(&mut batch).unwrap();
        batch.records
    }

    #[test]
    fn constants_keep_their_type_and_new_fields_come_in_written_order() {
        let config = config(
            r#"fields = { zeta = "cratejoy", priority = 3, paid = true, rate = 0.5, day = 2024-08-01, at = 2024-08-01T10:00:00+02:00, local = 2024-08-01T10:00:00, tags = ["a", 1], meta = { by = "{x}" }, id = "new" }"#,
        );
        let out = apply(
            &config,
            vec![record(&[("id", Value::Integer(7)), ("x", text("y"))])],
            None,
        );
        let at = chrono::DateTime::parse_from_rfc3339("2024-08-01T10:00:00+02:00").unwrap();
        let day = chrono::NaiveDate::from_ymd_opt(2024, 8, 1).unwrap();
        assert_eq!(
            out,
            [record(&[
                ("id", text("new")),
                ("x", text("y")),
                ("zeta", text("cratejoy")),
                ("priority", Value::Integer(3)),
                ("paid", Value::Bool(true)),
                ("rate", Value::Float(0.5)),
                ("day", Value::Date(day)),
                ("at", Value::Timestamp(at)),
                ("local", Value::DateTime(day.and_hms_opt(10, 0, 0).unwrap())),
                ("tags", Value::Array(vec![text("a"), Value::Integer(1)])),
                ("meta", Value::Object(record(&[("by", text("{x}"))]))),
            ])]
        );
    }

    #[test]
    fn templates_read_fields_and_the_run() {
        let config = config(
            r#"fields = { full_name = "{first} {last}", loaded_at = "{run_ts}", day = "{run_date}", run = "{run_id}/{pipeline}", batch_file = "{source}", own = "{field:source}", braces = "{{{first}}}", amount = "{total} €" }"#,
        );
        let out = apply(
            &config,
            vec![record(&[
                ("first", text("Zoë")),
                ("last", Value::Null),
                ("source", text("shop")),
                ("total", Value::Decimal("12345678901234567890.10".into())),
            ])],
            Some("in/orders.csv"),
        );
        let loaded_at = context()
            .started_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, false);
        assert!(loaded_at.starts_with("2024-08-01T02:05:00"));
        assert_eq!(
            out[0]
                .iter()
                .skip(4)
                .map(|(n, v)| (n.to_string(), v.clone()))
                .collect::<Vec<_>>(),
            [
                ("full_name".to_string(), text("Zoë ")),
                ("loaded_at".to_string(), text(&loaded_at)),
                ("day".to_string(), text("2024-08-01")),
                ("run".to_string(), text("20240801T020500-abcdef/orders")),
                ("batch_file".to_string(), text("in/orders.csv")),
                ("own".to_string(), text("shop")),
                ("braces".to_string(), text("{Zoë}")),
                ("amount".to_string(), text("12345678901234567890.10 €")),
            ]
        );
    }

    #[test]
    fn a_lone_field_placeholder_copies_the_value_and_a_missing_one_is_null() {
        let config = config(r#"fields = { ref = "{id}", gone = "{absent}", where = "{source}" }"#);
        let out = apply(&config, vec![record(&[("id", Value::Integer(42))])], None);
        assert_eq!(
            out,
            [record(&[
                ("id", Value::Integer(42)),
                ("ref", Value::Integer(42)),
                ("gone", Value::Null),
                ("where", text("")),
            ])]
        );
    }

    #[test]
    fn bad_templates_are_config_errors_saying_what_to_write() {
        let config = config(
            r#"fields = { a = "{first", b = "x}", c = "{run_dat}", d = "{run_day}", e = "{}", f = "{field:}", g = "{run_date}" }"#,
        );
        let problems: Vec<(String, String)> = config
            .problems()
            .into_iter()
            .map(|p| (p.key, p.message))
            .collect();
        let expected = [
            ("fields.a", "unclosed `{` (write `{{` for a literal brace)"),
            ("fields.b", "unmatched `}` (write `}}` for a literal brace)"),
            (
                "fields.c",
                "`{run_dat}` is not a run value: did you mean `{run_date}`? A field of that name is written `{field:run_dat}`",
            ),
            (
                "fields.d",
                "`{run_day}` is not a run value (known: {run_id}, {run_ts}, {run_date}, {pipeline}, {source}); a field of that name is written `{field:run_day}`",
            ),
            (
                "fields.e",
                "`{}` names nothing: write `{NAME}` for a field, `{{}}` for literal braces",
            ),
            (
                "fields.f",
                "`{field:}` names no field: write `{field:NAME}`",
            ),
        ];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(k, m)| (k.to_string(), m.to_string()))
            .collect();
        assert_eq!(problems, expected);
    }
}
