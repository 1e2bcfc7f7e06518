//! `cast`: gives fields the types a destination needs, with the same casts as a source's
//! `schema` (`codecs::types`), for records that come typed wrongly or not at all (a JSON API's
//! amounts as strings, an epoch's date as text) and for times that need a zone. A value that
//! does not cast is never passed on as it was without being asked: by default its record is
//! refused (the rejects, or the run fails naming the record and field).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use super::{Refusals, Refused};
use crate::codecs::types::{FieldType, NameOrTable, TypeName, TypeWithFormat, Zone, cast};
use crate::config::{Invalid, Validate};
use crate::error::StageError;
use crate::record::{Batch, Value};
use crate::stage::Transform;

/// Casts fields to types: `fields = { total = "decimal", qty = "integer", shipped_at = { type =
/// "timestamp", format = "%d.%m.%Y %H:%M", timezone = "Europe/Berlin" } }`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CastConfig {
    /// Field = type: `string`, `integer`, `float`, `decimal` (exact, kept as its digits; a
    /// float becomes the decimal of its shortest text, `0.1` -> `0.1`), `bool`, `timestamp`,
    /// `datetime` (without an offset), `date`; or a table `{ type = "timestamp", format =
    /// "%d.%m.%Y %H:%M", timezone = "Europe/Berlin", convert_to = "UTC", on_error = "null" }`.
    /// Text is read as a source's `schema` reads it; a typed value converts when nothing is
    /// lost (an integer to a decimal, `2.00` to the integer 2, a timestamp to its date), and
    /// does not cast when something would be (`1.50` to an integer: never truncated). Null
    /// stays null; a record without the field is left as it is. Required.
    pub fields: BTreeMap<String, CastField>,
    /// What a value that does not cast does: `"reject"` (its record is refused: into the
    /// rejects with `[rejects]`, naming the record number, the field and why, else the run
    /// fails), `"null"` (the value becomes null) or `"keep"` (the value stays as it was, of
    /// its old type). A field's own `on_error` wins. Values made null or kept are counted in
    /// the run's warnings, per field, with the first one's record and reason. Default
    /// `"reject"`.
    #[serde(default)]
    pub on_error: OnError,
}

/// A field's type: a name, or a table with options.
#[derive(Debug, Clone, JsonSchema)]
#[serde(untagged)]
pub enum CastField {
    Plain(TypeName),
    WithOptions(CastOptions),
}

impl<'de> Deserialize<'de> for CastField {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match NameOrTable::deserialize(deserializer)? {
            NameOrTable::Name(name) => CastField::Plain(name),
            NameOrTable::Table(options) => CastField::WithOptions(options),
        })
    }
}

/// A field's type with options.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CastOptions {
    /// The type. Required.
    #[serde(rename = "type")]
    pub name: TypeName,
    /// For `timestamp`, `datetime` and `date` given as text: how it is written, in `strftime`
    /// notation (`%d.%m.%Y %H:%M`; `%z` for an offset). Default: ISO 8601 / RFC 3339.
    pub format: Option<String>,
    /// For numbers given as text: the character before the fraction, e.g. `","` for
    /// `1.249,90`. Default `.`.
    pub decimal_separator: Option<char>,
    /// For numbers given as text: a character grouping thousands, removed before reading, e.g.
    /// `"."` for `1.249,90`. Default: none.
    pub thousands_separator: Option<char>,
    /// For `timestamp`, `datetime` and `date`: the IANA zone that times without an offset are
    /// in, e.g. `"Europe/Berlin"`; such a time becomes a timestamp with the zone's offset at
    /// that instant. A local time the zone skips (spring forward, `2024-03-31 02:30` in
    /// Berlin) or has twice (fall back, `2024-10-27 02:30`) does not cast. Default: none.
    pub timezone: Option<Zone>,
    /// For `timestamp`, `datetime` and `date`: the zone to move timestamps to, `"UTC"` or an
    /// IANA name; a `datetime` or `date` is then the time of day or the day there. Default:
    /// none (offsets stay as they are).
    pub convert_to: Option<Zone>,
    /// What a value of this field that does not cast does, as the transform's `on_error`.
    /// Default: the transform's.
    pub on_error: Option<OnError>,
}

/// What a value that does not cast does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Its record is refused: a reject with `[rejects]`, else the run fails.
    #[default]
    Reject,
    /// The value becomes null.
    Null,
    /// The value stays as it was.
    Keep,
}

impl CastField {
    /// The type as a source's `schema` would give it, and this field's `on_error`.
    fn parts(&self) -> (FieldType, Option<OnError>) {
        match self {
            CastField::Plain(name) => (FieldType::Plain(*name), None),
            CastField::WithOptions(options) => (
                FieldType::WithFormat(TypeWithFormat {
                    name: options.name,
                    format: options.format.clone(),
                    decimal_separator: options.decimal_separator,
                    thousands_separator: options.thousands_separator,
                    timezone: options.timezone,
                    convert_to: options.convert_to,
                }),
                options.on_error,
            ),
        }
    }
}

impl Validate for CastConfig {
    fn problems(&self) -> Vec<Invalid> {
        let mut problems = Vec::new();
        if self.fields.is_empty() {
            problems.push(Invalid::new(
                "fields",
                "`fields` is empty: name at least one field and its type, e.g. `fields = { total = \"decimal\" }`",
            ));
        }
        for (field, cast_field) in &self.fields {
            if let Some(problem) = cast_field.parts().0.problem() {
                problems.push(Invalid::new(format!("fields.{field}"), problem));
            }
        }
        problems
    }
}

/// One field to cast.
struct FieldCast {
    name: String,
    field_type: FieldType,
    on_error: OnError,
    /// Values that did not cast and were made null or kept (`on_error`), for the warning.
    misfits: u64,
    /// The first of them: where, and why.
    first_misfit: Option<String>,
}

pub struct Cast {
    fields: Vec<FieldCast>,
    refusals: Refusals,
}

impl Cast {
    pub fn new(config: &CastConfig, refusals: Refusals) -> Self {
        Cast {
            fields: config
                .fields
                .iter()
                .map(|(name, cast_field)| {
                    let (field_type, on_error) = cast_field.parts();
                    FieldCast {
                        name: name.clone(),
                        field_type,
                        on_error: on_error.unwrap_or(config.on_error),
                        misfits: 0,
                        first_misfit: None,
                    }
                })
                .collect(),
            refusals,
        }
    }
}

impl Transform for Cast {
    fn apply(&mut self, batch: &mut Batch) -> Result<(), StageError> {
        let mut refused = Vec::new();
        // Per record: (field position, its new value), set only once the record is known
        // not refused, so a refused record goes to the rejects as it came.
        let mut casts: Vec<(usize, Value)> = Vec::new();
        for (index, record) in batch.records.iter_mut().enumerate() {
            casts.clear();
            let mut refusal = None;
            for (position, (name, value)) in record.iter().enumerate() {
                let Some(field) = self.fields.iter_mut().find(|field| *field.name == **name) else {
                    continue;
                };
                match cast(value, &field.field_type) {
                    Ok(typed) => casts.push((position, typed)),
                    Err(reason) => match field.on_error {
                        OnError::Reject => {
                            refusal = Some(Refused {
                                index,
                                field: Some(field.name.clone()),
                                reason: format!("`{}`: {reason}", field.name),
                            });
                            break;
                        }
                        OnError::Null | OnError::Keep => {
                            field.misfits += 1;
                            if field.first_misfit.is_none() {
                                let record = match batch.numbers.get(index) {
                                    Some(number) => format!("record {number}"),
                                    None => format!("record {} of its batch", index + 1),
                                };
                                let file = batch
                                    .origin
                                    .as_ref()
                                    .map_or(String::new(), |origin| format!(" of {}", origin.path));
                                field.first_misfit = Some(format!("{record}{file}: {reason}"));
                            }
                            if field.on_error == OnError::Null {
                                casts.push((position, Value::Null));
                            }
                        }
                    },
                }
            }
            match refusal {
                Some(refusal) => refused.push(refusal),
                None => {
                    let fields = record.fields_mut();
                    for (position, typed) in casts.drain(..) {
                        fields[position].1 = typed;
                    }
                }
            }
        }
        self.refusals.set_aside(batch, refused)
    }

    fn take_warnings(&mut self) -> Vec<String> {
        let mut warnings = Vec::new();
        for field in &mut self.fields {
            let Some(first) = field.first_misfit.take() else {
                continue;
            };
            let done = match field.on_error {
                OnError::Null => "written as null",
                _ => "kept as they were",
            };
            warnings.push(format!(
                "`{}`: {} values did not cast and were {done} (`on_error`); the first: {first}",
                field.name,
                std::mem::take(&mut field.misfits)
            ));
        }
        warnings
    }
}

#[cfg(test)]
mod tests {
    use crate::record::FieldName;

    use super::*;
    use crate::record::Record;
    use crate::stage::RunContext;
    use crate::transforms::testing::*;

    fn config(toml_text: &str) -> CastConfig {
        toml::from_str(toml_text).unwrap()
    }

    fn batch(records: Vec<Vec<(&str, Value)>>) -> Batch {
        let records = records.iter().map(|fields| record(fields)).collect();
        batch_from("in/orders.csv", records)
    }

    fn quarantining() -> Refusals {
        let mut cx = RunContext::new("p", std::path::Path::new("."));
        cx.quarantine = true;
        Refusals::new(&cx)
    }

    /// Casts `value` as `type_toml` (a TOML value) says, with `on_error = "reject"`.
    fn cast_one(type_toml: &str, value: Value) -> Result<Value, String> {
        let mut cast = Cast::new(
            &config(&format!("fields = {{ v = {type_toml} }}")),
            quarantining(),
        );
        let mut batch = batch(vec![vec![("v", value)]]);
        cast.apply(&mut batch).unwrap();
        match batch.rejects.first() {
            Some(reject) => Err(reject.reason.clone()),
            None => Ok(batch.records[0].get("v").unwrap().clone()),
        }
    }

    fn timestamp(text: &str) -> Value {
        Value::Timestamp(chrono::DateTime::parse_from_rfc3339(text).unwrap())
    }

    fn naive(text: &str) -> Value {
        Value::DateTime(chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").unwrap())
    }

    fn decimal(text: &str) -> Value {
        Value::Decimal(text.into())
    }

    #[test]
    fn numbers_cast_exactly_or_not_at_all() {
        let d = "\"decimal\"";
        assert_eq!(cast_one(d, text("12.50")), Ok(decimal("12.50")));
        assert_eq!(
            cast_one(d, text("99999999999999999.99")),
            Ok(decimal("99999999999999999.99"))
        );
        assert_eq!(cast_one(d, Value::Integer(-7)), Ok(decimal("-7")));
        assert_eq!(cast_one(d, Value::Float(0.1)), Ok(decimal("0.1")));
        assert_eq!(
            cast_one(d, Value::Float(1e21)),
            Ok(decimal("1000000000000000000000"))
        );
        assert_eq!(
            cast_one(d, text("12,5")),
            Err("`v`: `12,5` is not a decimal number".into())
        );
        assert_eq!(
            cast_one(d, Value::Bool(true)),
            Err("`v`: `true` is not a decimal number".into())
        );
        let i = "\"integer\"";
        assert_eq!(cast_one(i, decimal("2.00")), Ok(Value::Integer(2)));
        assert_eq!(
            cast_one(i, decimal("1.50")),
            Err("`v`: `1.50` is not an integer".into())
        );
        assert_eq!(
            cast_one(i, text("1.50")),
            Err("`v`: `1.50` is not an integer".into())
        );
        assert_eq!(
            cast_one(i, decimal("99999999999999999999")),
            Err("`v`: `99999999999999999999` is not an integer".into())
        );
        assert_eq!(cast_one(i, Value::Float(3.0)), Ok(Value::Integer(3)));
        let f = "\"float\"";
        assert_eq!(cast_one(f, decimal("1.25")), Ok(Value::Float(1.25)));
        assert_eq!(cast_one(f, Value::Integer(3)), Ok(Value::Float(3.0)));
        assert_eq!(
            cast_one(f, Value::Integer(i64::MAX)),
            Err("`v`: `9223372036854775807` is not a number".into()),
            "an integer a float cannot hold exactly"
        );
        let b = "\"bool\"";
        assert_eq!(cast_one(b, text("Yes")), Ok(Value::Bool(true)));
        assert_eq!(cast_one(b, Value::Integer(0)), Ok(Value::Bool(false)));
        assert_eq!(
            cast_one(b, Value::Integer(2)),
            Err("`v`: `2` is not a boolean (true/false, yes/no, 1/0)".into())
        );
        let s = "\"string\"";
        assert_eq!(cast_one(s, decimal("1.50")), Ok(text("1.50")));
        assert_eq!(cast_one(s, text("Zürich 東京")), Ok(text("Zürich 東京")));
        assert_eq!(cast_one(s, Value::Null), Ok(Value::Null));
    }

    #[test]
    fn times_take_zones_and_refuse_what_a_zone_skips_or_repeats() {
        let berlin =
            r#"{ type = "timestamp", format = "%d.%m.%Y %H:%M", timezone = "Europe/Berlin" }"#;
        assert_eq!(
            cast_one(berlin, text("01.08.2024 10:30")),
            Ok(timestamp("2024-08-01T10:30:00+02:00"))
        );
        assert_eq!(
            cast_one(berlin, text("15.01.2024 10:30")),
            Ok(timestamp("2024-01-15T10:30:00+01:00"))
        );
        assert_eq!(
            cast_one(berlin, text("31.03.2024 02:30")),
            Err("`v`: `31.03.2024 02:30` does not exist in Europe/Berlin: the clocks go forward past it".into())
        );
        assert_eq!(
            cast_one(berlin, text("27.10.2024 02:30")),
            Err("`v`: `27.10.2024 02:30` is ambiguous in Europe/Berlin: the clocks go back and that time happens twice, at +02:00 and at +01:00".into())
        );
        assert_eq!(
            cast_one(berlin, text("2024-08-01")),
            Err("`v`: `2024-08-01` is not a timestamp (expected %d.%m.%Y %H:%M)".into())
        );
        // A time with an offset keeps it; `timezone` is only for those without.
        let zoned = r#"{ type = "timestamp", timezone = "Europe/Berlin" }"#;
        assert_eq!(
            cast_one(zoned, text("2024-08-01T10:30:00-04:00")),
            Ok(timestamp("2024-08-01T10:30:00-04:00"))
        );
        assert_eq!(
            cast_one(zoned, naive("2024-08-01 10:30")),
            Ok(timestamp("2024-08-01T10:30:00+02:00"))
        );
        let utc = r#"{ type = "timestamp", convert_to = "UTC" }"#;
        assert_eq!(
            cast_one(utc, text("2024-08-01T01:30:00+02:00")),
            Ok(timestamp("2024-07-31T23:30:00+00:00"))
        );
        assert_eq!(
            cast_one(utc, text("2024-08-01 10:30:00")),
            Err("`v`: `2024-08-01 10:30:00` has no UTC offset to convert to UTC from: set `timezone` to the zone it is in".into())
        );
        let new_york = r#"{ type = "timestamp", timezone = "Europe/Berlin", convert_to = "America/New_York" }"#;
        assert_eq!(
            cast_one(new_york, naive("2024-03-31 03:30")),
            Ok(timestamp("2024-03-30T21:30:00-04:00"))
        );
        let plain = "\"timestamp\"";
        assert_eq!(
            cast_one(plain, text("2024-08-01 10:30:00")),
            Ok(naive("2024-08-01 10:30")),
            "without a zone, a time without an offset stays without one"
        );
    }

    #[test]
    fn dates_and_datetimes_from_other_times() {
        let date = "\"date\"";
        assert_eq!(
            cast_one(date, timestamp("2024-08-01T23:30:00-04:00")),
            Ok(Value::Date(
                chrono::NaiveDate::from_ymd_opt(2024, 8, 1).unwrap()
            ))
        );
        assert_eq!(
            cast_one(date, text("2024-10-26T23:30:00Z")),
            Ok(Value::Date(
                chrono::NaiveDate::from_ymd_opt(2024, 10, 26).unwrap()
            ))
        );
        let berlin_date = r#"{ type = "date", convert_to = "Europe/Berlin" }"#;
        assert_eq!(
            cast_one(berlin_date, text("2024-10-26T23:30:00Z")),
            Ok(Value::Date(
                chrono::NaiveDate::from_ymd_opt(2024, 10, 27).unwrap()
            ))
        );
        assert_eq!(
            cast_one(date, text("26/10/2024")),
            Err("`v`: `26/10/2024` is not a date (expected ISO 8601, e.g. 2024-08-01)".into())
        );
        let european = r#"{ type = "date", format = "%d.%m.%Y" }"#;
        assert_eq!(
            cast_one(european, text("26.10.2024")),
            Ok(Value::Date(
                chrono::NaiveDate::from_ymd_opt(2024, 10, 26).unwrap()
            ))
        );
        let utc_date = r#"{ type = "date", convert_to = "UTC" }"#;
        assert_eq!(
            cast_one(utc_date, timestamp("2024-08-01T23:30:00-04:00")),
            Ok(Value::Date(
                chrono::NaiveDate::from_ymd_opt(2024, 8, 2).unwrap()
            ))
        );
        assert_eq!(
            cast_one(date, naive("2024-08-01 10:30")),
            Ok(Value::Date(
                chrono::NaiveDate::from_ymd_opt(2024, 8, 1).unwrap()
            ))
        );
        assert_eq!(
            cast_one(date, Value::Integer(20240801)),
            Err("`v`: `20240801` is not a date".into())
        );
        let datetime = "\"datetime\"";
        assert_eq!(
            cast_one(datetime, text("2024-08-01T10:30:00")),
            Ok(naive("2024-08-01 10:30"))
        );
        assert_eq!(
            cast_one(datetime, timestamp("2024-08-01T10:30:00+02:00")),
            Err("`v`: `2024-08-01T10:30:00+02:00` has a UTC offset (+02:00) and a datetime has none: set `convert_to` to take the time of day in a zone, or cast to `timestamp`".into())
        );
        assert_eq!(
            cast_one(datetime, text("2024-08-01")),
            Err("`v`: `2024-08-01` is a date without a time of day".into())
        );
        let local = r#"{ type = "datetime", convert_to = "Asia/Tokyo" }"#;
        assert_eq!(
            cast_one(local, timestamp("2024-08-01T10:30:00+02:00")),
            Ok(naive("2024-08-01 17:30"))
        );
    }

    #[test]
    fn on_error_null_and_keep_and_per_field() {
        let mut cast = Cast::new(
            &config(
                r#"on_error = "null"
fields = { a = "integer", b = { type = "integer", on_error = "keep" }, c = "decimal" }"#,
            ),
            quarantining(),
        );
        let mut batch = batch(vec![vec![
            ("a", text("x")),
            ("b", text("y")),
            ("c", text("1.5")),
        ]]);
        cast.apply(&mut batch).unwrap();
        assert!(batch.rejects.is_empty());
        assert_eq!(
            batch.records[0],
            [("a", Value::Null), ("b", text("y")), ("c", decimal("1.5"))]
                .into_iter()
                .map(|(n, v)| (FieldName::from(n), v))
                .collect::<Record>()
        );
    }

    #[test]
    fn a_refused_record_goes_to_the_rejects_as_it_came_with_its_number() {
        let mut cast = Cast::new(
            &config(r#"fields = { qty = "integer", total = "decimal" }"#),
            quarantining(),
        );
        let mut batch = batch(vec![
            vec![("qty", text("1")), ("total", text("1.50"))],
            vec![("qty", text("2")), ("total", text("12,5"))],
            vec![("qty", text("3")), ("note", text("no total"))],
        ]);
        cast.apply(&mut batch).unwrap();
        assert_eq!(batch.records.len(), 2);
        assert_eq!(batch.numbers, [1, 3]);
        assert_eq!(batch.records[1].get("qty"), Some(&Value::Integer(3)));
        let reject = &batch.rejects[0];
        assert_eq!(reject.file, "in/orders.csv");
        assert_eq!(reject.position.record, Some(2));
        assert_eq!(reject.position.field.as_deref(), Some("`total`"));
        assert_eq!(reject.reason, "`total`: `12,5` is not a decimal number");
        assert_eq!(reject.raw.as_deref(), Some(r#"{"qty":"2","total":"12,5"}"#));
    }

    #[test]
    fn without_rejects_the_run_fails_naming_the_record() {
        let mut cast = Cast::new(
            &config(r#"fields = { total = "decimal" }"#),
            Refusals::new(&RunContext::new("p", std::path::Path::new("."))),
        );
        let mut batch = batch(vec![
            vec![("total", text("1.5"))],
            vec![("total", text("x"))],
        ]);
        assert_eq!(
            cast.apply(&mut batch).unwrap_err().to_string(),
            "in/orders.csv: record 2: `total`: `x` is not a decimal number; a `[rejects]` table sets such records aside and lets the run go on"
        );
    }

    #[test]
    fn config_problems_say_what_to_write() {
        let problems = |text: &str| -> Vec<String> {
            config(text)
                .problems()
                .into_iter()
                .map(|p| p.to_string())
                .collect()
        };
        assert_eq!(
            problems(r#"fields = { a = { type = "integer", timezone = "UTC" } }"#),
            [
                "fields.a: `timezone` and `convert_to` are for the timestamp, datetime and date types only"
            ]
        );
        assert_eq!(
            problems("fields = {}"),
            [
                "fields: `fields` is empty: name at least one field and its type, e.g. `fields = { total = \"decimal\" }`"
            ]
        );
        let unknown_zone = toml::from_str::<CastOptions>(
            r#"type = "timestamp"
timezone = "Europe/Berln""#,
        )
        .unwrap_err();
        assert!(
            unknown_zone.message().starts_with(
                "`Europe/Berln` is not a time zone: write an IANA name such as `Europe/Berlin`"
            ),
            "{unknown_zone}"
        );
    }
}
