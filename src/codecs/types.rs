//! Types for formats that have none. CSV cells and XML text are strings; a source can give
//! them types, either by inference (`infer_types = true`: each value that reads as a number,
//! boolean, date or timestamp becomes one) or by a per-field `schema` that says what each named
//! field must be. A value the schema cannot cast is a bad record: it goes to the rejects (with
//! its file, record number and field), or fails the run.
//!
//! Inference looks at each value on its own (no column statistics), so it streams; it leaves
//! alone what would lose information: `007` stays text (a code, not the number 7), `1.50` becomes
//! an exact decimal, not a float.
//!
//! The same casts serve the `cast` transform, which also converts values that already have a
//! type (an integer to a decimal, a timestamp to a date) wherever nothing is lost, and time
//! zones: `timezone` says which IANA zone a time without an offset is in (a local time the
//! zone skips or repeats at a DST change is an error, never a guess), `convert_to` moves a
//! timestamp to another zone's offset.

use std::collections::BTreeMap;

use chrono::format::{Item, StrftimeItems};
use chrono::offset::LocalResult;
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, Offset, TimeZone};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::error::{CodecError, Malformed, Position};
use crate::record::{Record, Reject, Text, Value};

/// What a field's values must be: `"integer"`, or `{ type = "timestamp", format = "%d/%m/%Y
/// %H:%M" }`.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[serde(untagged)]
pub enum FieldType {
    Plain(TypeName),
    WithFormat(TypeWithFormat),
}

impl<'de> Deserialize<'de> for FieldType {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match NameOrTable::deserialize(deserializer)? {
            NameOrTable::Name(name) => FieldType::Plain(name),
            NameOrTable::Table(typed) => FieldType::WithFormat(typed),
        })
    }
}

/// A type given by its name (`"decimal"`) or by a table (`{ type = "timestamp", ... }`). Read
/// by hand rather than as an untagged enum, so that a mistake in the table (an unknown key, a
/// time zone misspelled) is reported as itself, not as "did not match any variant".
pub enum NameOrTable<T> {
    Name(TypeName),
    Table(T),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for NameOrTable<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Either<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Either<T> {
            type Value = NameOrTable<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "a type such as \"decimal\", or a table such as { type = \"timestamp\", format = \"%d.%m.%Y %H:%M\" }",
                )
            }
            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Self::Value, E> {
                use serde::de::IntoDeserializer;
                TypeName::deserialize(name.into_deserializer()).map(NameOrTable::Name)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                table: A,
            ) -> Result<Self::Value, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(table))
                    .map(NameOrTable::Table)
            }
        }
        deserializer.deserialize_any(Either(std::marker::PhantomData))
    }
}

/// A type with options.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TypeWithFormat {
    /// The type.
    #[serde(rename = "type")]
    pub name: TypeName,
    /// For `timestamp` and `date`: how the text is written, in `strftime` notation
    /// (`%d/%m/%Y %H:%M`; `%z` for an offset). Default: ISO 8601 / RFC 3339.
    pub format: Option<String>,
    /// For numbers: the character before the fraction, e.g. `","` for `1.249,90`. Default `.`.
    pub decimal_separator: Option<char>,
    /// For numbers: a character grouping thousands, removed before reading, e.g. `"."` for
    /// `1.249,90` or `"'"` for `1'249.90`. Default: none.
    pub thousands_separator: Option<char>,
    /// For `timestamp`, `datetime` and `date`: the IANA time zone that times without an offset
    /// are in, e.g. `"Europe/Berlin"`: such a time becomes a timestamp with the zone's offset
    /// at that instant (`2024-08-01 10:30` -> `2024-08-01T10:30:00+02:00`). A local time that
    /// the zone skips (spring forward) or has twice (fall back) does not fit. Times with an
    /// offset keep theirs. Default: none (a time without an offset stays without one).
    pub timezone: Option<Zone>,
    /// For `timestamp`, `datetime` and `date`: the zone to move timestamps to, `"UTC"` or an
    /// IANA name (`2024-08-01T10:30:00+02:00` -> `2024-08-01T08:30:00+00:00`); a `datetime` or
    /// `date` is then the time of day or the day in that zone. A time without an offset (and no
    /// `timezone`) does not fit. Default: none (the offset stays as it is).
    pub convert_to: Option<Zone>,
}

/// An IANA time zone, named in a pipeline file as `"Europe/Berlin"` or `"UTC"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[schemars(transparent)]
pub struct Zone(#[schemars(with = "String")] pub chrono_tz::Tz);

impl<'de> Deserialize<'de> for Zone {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map(Zone).map_err(|_| {
            serde::de::Error::custom(format!(
                "`{name}` is not a time zone: write an IANA name such as `Europe/Berlin`, `America/New_York` or `UTC`"
            ))
        })
    }
}

/// The types a field can be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TypeName {
    /// Text as it is; other values as their text.
    String,
    /// A whole number within ±9223372036854775807.
    Integer,
    /// A binary floating-point number (`1.5`, `-2e3`).
    Float,
    /// An exact decimal number (`1234.50`): no digit is lost.
    Decimal,
    /// `true`/`false`, `yes`/`no`, `y`/`n`, `t`/`f`, `1`/`0`, in any case.
    Bool,
    /// A date and time: with an offset when the text has one (or `timezone` gives one), else
    /// without.
    Timestamp,
    /// A date and time of day without an offset (`2024-08-01T10:30:00`).
    Datetime,
    /// A calendar date.
    Date,
}

impl TypeName {
    /// The type as messages name what does not fit it: "`x` is not {}".
    fn described(self) -> &'static str {
        match self {
            TypeName::String => "text",
            TypeName::Integer => "an integer",
            TypeName::Float => "a number",
            TypeName::Decimal => "a decimal number",
            TypeName::Bool => "a boolean (true/false, yes/no, 1/0)",
            TypeName::Timestamp => "a timestamp",
            TypeName::Datetime => "a date and time",
            TypeName::Date => "a date",
        }
    }

    fn is_time(self) -> bool {
        matches!(
            self,
            TypeName::Timestamp | TypeName::Datetime | TypeName::Date
        )
    }
}

impl FieldType {
    fn name(&self) -> TypeName {
        match self {
            FieldType::Plain(name) => *name,
            FieldType::WithFormat(typed) => typed.name,
        }
    }

    fn format(&self) -> Option<&str> {
        match self {
            FieldType::Plain(_) => None,
            FieldType::WithFormat(typed) => typed.format.as_deref(),
        }
    }

    fn zones(&self) -> (Option<chrono_tz::Tz>, Option<chrono_tz::Tz>) {
        match self {
            FieldType::Plain(_) => (None, None),
            FieldType::WithFormat(typed) => (
                typed.timezone.map(|zone| zone.0),
                typed.convert_to.map(|zone| zone.0),
            ),
        }
    }

    /// `text` with the configured separators made plain (`1.249,90` -> `1249.90`). Thousands
    /// separators are accepted only between groups of three digits before the fraction, so
    /// that `1,249.90` read with a decimal comma is refused, not taken for 1.24990. `None` when
    /// the text does not fit the separators.
    fn plain_number<'t>(&self, text: &'t str) -> Option<std::borrow::Cow<'t, str>> {
        let FieldType::WithFormat(typed) = self else {
            return Some(text.into());
        };
        let decimal = typed.decimal_separator.unwrap_or('.');
        if decimal != '.' && text.contains('.') && typed.thousands_separator != Some('.') {
            return None;
        }
        let Some(thousands) = typed.thousands_separator else {
            return Some(text.replacen(decimal, ".", 1).into());
        };
        let (whole, fraction) = match text.split_once(decimal) {
            Some((whole, fraction)) => (whole, Some(fraction)),
            None => (text, None),
        };
        let unsigned = whole.trim_start_matches(['-', '+']);
        let mut groups = unsigned.split(thousands);
        let first_fits = groups.next().is_some_and(|g| (1..=3).contains(&g.len()));
        let grouped = unsigned.contains(thousands);
        if grouped && !(first_fits && groups.all(|g| g.len() == 3)) {
            return None;
        }
        let mut plain: String = whole.chars().filter(|&c| c != thousands).collect();
        if let Some(fraction) = fraction {
            plain.push('.');
            plain.push_str(fraction);
        }
        Some(plain.into())
    }

    /// What is wrong with it, for `validate`.
    pub fn problem(&self) -> Option<String> {
        if let FieldType::WithFormat(typed) = self
            && (typed.decimal_separator.is_some() || typed.thousands_separator.is_some())
        {
            if !matches!(
                typed.name,
                TypeName::Integer | TypeName::Float | TypeName::Decimal
            ) {
                return Some(
                    "the separators are for the integer, float and decimal types only".into(),
                );
            }
            if typed.decimal_separator.is_some()
                && typed.decimal_separator == typed.thousands_separator
            {
                return Some("`decimal_separator` and `thousands_separator` must differ".into());
            }
        }
        if self.zones() != (None, None) && !self.name().is_time() {
            return Some(
                "`timezone` and `convert_to` are for the timestamp, datetime and date types only"
                    .into(),
            );
        }
        let format = self.format()?;
        if !self.name().is_time() {
            return Some("`format` is for the timestamp, datetime and date types only".into());
        }
        if StrftimeItems::new(format).any(|item| matches!(item, Item::Error)) {
            return Some(format!("`{format}` is not a valid strftime format"));
        }
        None
    }
}

/// A value that does not fit its field's type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CastError {
    pub field: String,
    pub reason: String,
}

/// Gives a source's records their types.
#[derive(Debug, Clone, Default)]
pub struct Typing {
    infer: bool,
    schema: BTreeMap<String, FieldType>,
}

impl Typing {
    /// `None` when neither inference nor a schema is asked for: records stay as decoded.
    pub fn new(infer: bool, schema: Option<&BTreeMap<String, FieldType>>) -> Option<Self> {
        let schema = schema.cloned().unwrap_or_default();
        (infer || !schema.is_empty()).then_some(Typing { infer, schema })
    }

    /// Types `record` in place: the schema's fields are cast (the first that cannot be is the
    /// error, and the record is left as it was), and, with inference, the other text values
    /// are read for what they look like.
    pub fn apply(&self, record: &mut Record) -> Result<(), CastError> {
        if !self.schema.is_empty() {
            let mut casts = Vec::new();
            for (index, (name, value)) in record.iter().enumerate() {
                if let Some(field_type) = self.schema.get(&**name) {
                    let typed = cast(value, field_type).map_err(|reason| CastError {
                        field: name.to_string(),
                        reason,
                    })?;
                    casts.push((index, typed));
                }
            }
            let fields = record.fields_mut();
            for (index, typed) in casts {
                fields[index].1 = typed;
            }
        }
        if self.infer {
            for (name, value) in record.fields_mut() {
                if let Value::String(text) = value
                    && !self.schema.contains_key(&**name)
                    && let Some(typed) = infer(text)
                {
                    *value = typed;
                }
            }
        }
        Ok(())
    }
}

impl Typing {
    /// Types `records`, just decoded from `file` and numbered from `first + 1` there. One
    /// whose value does not fit goes to `rejects` when `quarantine`; otherwise the first is
    /// the error (a bad record, with its file, number and field).
    pub fn apply_to_decoded(
        &self,
        records: &mut Vec<Record>,
        file: &str,
        first: u64,
        quarantine: bool,
        rejects: &mut Vec<Reject>,
    ) -> Result<(), CodecError> {
        let mut number = first;
        let mut failure = None;
        records.retain_mut(|record| {
            number += 1;
            if failure.is_some() {
                return true;
            }
            let Err(cast) = self.apply(record) else {
                return true;
            };
            let mut raw = Vec::new();
            crate::record::json::write_nested_record(&mut raw, record);
            let reject = Reject {
                file: file.to_string(),
                position: Position {
                    record: Some(number),
                    field: Some(format!("`{}`", cast.field)),
                    ..Position::default()
                },
                reason: cast.reason,
                raw: Some(String::from_utf8_lossy(&raw).into_owned()),
            };
            if quarantine {
                rejects.push(reject);
                return false;
            }
            failure = Some(reject);
            true
        });
        match failure {
            None => Ok(()),
            Some(reject) => Err(CodecError::BadRecord {
                malformed: Box::new(Malformed {
                    file: reject.file,
                    position: reject.position,
                    message: reject.reason,
                    hint: None,
                }),
                raw: reject.raw,
            }),
        }
    }
}

/// What `text` reads as, when it is unambiguously more than text.
pub fn infer(text: &str) -> Option<Value> {
    let bytes = text.as_bytes();
    let first = *bytes.first()?;
    if first.is_ascii_digit() || first == b'-' {
        // `-0` would be written back as `0`.
        if is_integer(text) && text != "-0" {
            return text.parse().ok().map(Value::Integer);
        }
        if is_decimal(text) {
            return Some(Value::Decimal(text.into()));
        }
        return parse_time(text, None, TypeName::Timestamp)
            .ok()
            .map(Moment::into_value);
    }
    match text {
        "true" => Some(Value::Bool(true)),
        "false" => Some(Value::Bool(false)),
        _ => None,
    }
}

/// `-?(0|[1-9][0-9]*)`: no leading zero (`007` is a code), no sign but minus.
fn is_integer(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
}

/// `-?(0|[1-9][0-9]*)\.[0-9]+`.
fn is_decimal(text: &str) -> bool {
    match text.split_once('.') {
        Some((whole, fraction)) => {
            is_integer(whole)
                && !fraction.is_empty()
                && fraction.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

/// `value` as a value of `field_type`, or what is wrong with it (without the field's name).
/// Null stays null. Text is read; a value that already has a type is converted where nothing
/// is lost (an integer to a decimal, `2.00` to the integer 2), refused where something would be
/// (`1.50` to an integer: never truncated).
pub fn cast(value: &Value, field_type: &FieldType) -> Result<Value, String> {
    let name = field_type.name();
    if name.is_time() {
        return cast_time(value, field_type);
    }
    let text = match value {
        Value::Null => return Ok(Value::Null),
        Value::String(text) => text,
        typed => return convert(typed, name),
    };
    let refuse = || Err(format!("`{text}` is not {}", name.described()));
    let Some(plain) = field_type.plain_number(text.trim()) else {
        return refuse();
    };
    let trimmed = plain.as_ref();
    match name {
        TypeName::String => Ok(Value::String(text.clone())),
        TypeName::Integer => match trimmed.parse::<i64>() {
            Ok(number) => Ok(Value::Integer(number)),
            Err(_) => refuse(),
        },
        TypeName::Float => match trimmed.parse::<f64>() {
            Ok(number) if number.is_finite() => Ok(Value::Float(number)),
            _ => refuse(),
        },
        TypeName::Decimal => {
            let unsigned = trimmed.strip_prefix(['-', '+']).unwrap_or(trimmed);
            let digits = unsigned.replacen('.', "", 1);
            if !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit())
                && !unsigned.starts_with('.')
                && !unsigned.ends_with('.')
            {
                Ok(Value::Decimal(Text::from(trimmed.trim_start_matches('+'))))
            } else {
                refuse()
            }
        }
        TypeName::Bool => match trimmed.to_ascii_lowercase().as_str() {
            "true" | "yes" | "y" | "t" | "1" => Ok(Value::Bool(true)),
            "false" | "no" | "n" | "f" | "0" => Ok(Value::Bool(false)),
            _ => refuse(),
        },
        TypeName::Timestamp | TypeName::Datetime | TypeName::Date => cast_time(value, field_type),
    }
}

/// A typed value given to a non-time field of type `name`: kept when it is one, converted when
/// that loses nothing.
fn convert(value: &Value, name: TypeName) -> Result<Value, String> {
    /// Integers up to this size convert to a float exactly (2^53).
    const EXACT_IN_FLOAT: i64 = 1 << 53;
    Ok(match (name, value) {
        (TypeName::String, value) => match value.to_text() {
            Some(text) => Value::String(Text::from(text.as_ref())),
            None => Value::Null,
        },
        (TypeName::Integer, Value::Integer(i)) => Value::Integer(*i),
        (TypeName::Integer, Value::Float(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
            Value::Integer(*f as i64)
        }
        (TypeName::Integer, Value::Decimal(d)) => match integer_of_decimal(d) {
            Some(i) => Value::Integer(i),
            None => return Err(misfit(value, name)),
        },
        (TypeName::Float, Value::Float(f)) => Value::Float(*f),
        (TypeName::Float, Value::Integer(i)) if i.abs() <= EXACT_IN_FLOAT => {
            Value::Float(*i as f64)
        }
        (TypeName::Float, Value::Decimal(d)) => match d.parse::<f64>() {
            Ok(f) if f.is_finite() => Value::Float(f),
            _ => return Err(misfit(value, name)),
        },
        (TypeName::Decimal, Value::Decimal(d)) => Value::Decimal(d.clone()),
        (TypeName::Decimal, Value::Integer(i)) => Value::Decimal(Text::from(i.to_string())),
        // `Display` writes the shortest text that reads back as the same float, never with an
        // exponent (`1e21` is `1000000000000000000000`).
        (TypeName::Decimal, Value::Float(f)) if f.is_finite() => {
            Value::Decimal(Text::from(f.to_string()))
        }
        (TypeName::Bool, Value::Bool(b)) => Value::Bool(*b),
        (TypeName::Bool, Value::Integer(i @ (0 | 1))) => Value::Bool(*i == 1),
        _ => return Err(misfit(value, name)),
    })
}

/// "`1.50` is not an integer".
fn misfit(value: &Value, name: TypeName) -> String {
    format!(
        "`{}` is not {}",
        value.to_text().unwrap_or_default(),
        name.described()
    )
}

/// The integer a decimal's text is when its fraction is all zeros (`12.00`), within i64.
fn integer_of_decimal(decimal: &str) -> Option<i64> {
    let (whole, fraction) = decimal.split_once('.').unwrap_or((decimal, ""));
    fraction
        .bytes()
        .all(|b| b == b'0')
        .then(|| whole.parse().ok())
        .flatten()
}

/// A time read from a value, before it is made the type asked for.
enum Moment {
    /// With a UTC offset.
    Zoned(DateTime<FixedOffset>),
    /// A date and time of day without an offset.
    Local(NaiveDateTime),
    Day(NaiveDate),
}

impl Moment {
    fn into_value(self) -> Value {
        match self {
            Moment::Zoned(at) => Value::Timestamp(at),
            Moment::Local(at) => Value::DateTime(at),
            Moment::Day(day) => Value::Date(day),
        }
    }
}

/// `value` given to a `timestamp`, `datetime` or `date` field: read (text by `format`), put in
/// `timezone` when it has no offset, moved to `convert_to`, then made the type.
fn cast_time(value: &Value, field_type: &FieldType) -> Result<Value, String> {
    let name = field_type.name();
    let (timezone, convert_to) = field_type.zones();
    let moment = match value {
        Value::Null => return Ok(Value::Null),
        Value::Timestamp(at) => Moment::Zoned(*at),
        Value::DateTime(at) => Moment::Local(*at),
        Value::Date(day) => Moment::Day(*day),
        Value::String(text) => parse_time(text.trim(), field_type.format(), name)
            .map_err(|expected| format!("`{text}` is not {} ({expected})", name.described()))?,
        other => return Err(misfit(other, name)),
    };
    let shown = || value.to_text().unwrap_or_default();
    let moment = match (moment, timezone) {
        (Moment::Local(at), Some(zone)) => {
            Moment::Zoned(in_zone(at, zone).map_err(|why| format!("`{}` {why}", shown()))?)
        }
        (moment, _) => moment,
    };
    let moment = match (moment, convert_to) {
        (Moment::Zoned(at), Some(zone)) => Moment::Zoned(at.with_timezone(&zone).fixed_offset()),
        (Moment::Local(_), Some(zone)) => {
            return Err(format!(
                "`{}` has no UTC offset to convert to {zone} from: set `timezone` to the zone it is in",
                shown()
            ));
        }
        (moment, _) => moment,
    };
    let without_time = || format!("`{}` is a date without a time of day", shown());
    Ok(match (name, moment) {
        (TypeName::Date, Moment::Zoned(at)) => Value::Date(at.date_naive()),
        (TypeName::Date, Moment::Local(at)) => Value::Date(at.date()),
        (TypeName::Datetime, Moment::Zoned(at)) if convert_to.is_some() => {
            Value::DateTime(at.naive_local())
        }
        (TypeName::Datetime, Moment::Zoned(at)) => {
            return Err(format!(
                "`{}` has a UTC offset ({}) and a datetime has none: set `convert_to` to take the time of day in a zone, or cast to `timestamp`",
                shown(),
                at.offset()
            ));
        }
        (TypeName::Datetime | TypeName::Timestamp, Moment::Day(_))
            if name == TypeName::Datetime || timezone.is_some() || convert_to.is_some() =>
        {
            return Err(without_time());
        }
        (_, moment) => moment.into_value(),
    })
}

/// The instant a local time in `zone` is; an error for a time the zone skips or repeats.
fn in_zone(at: NaiveDateTime, zone: chrono_tz::Tz) -> Result<DateTime<FixedOffset>, String> {
    match zone.from_local_datetime(&at) {
        LocalResult::Single(instant) => Ok(instant.fixed_offset()),
        LocalResult::Ambiguous(first, second) => Err(format!(
            "is ambiguous in {zone}: the clocks go back and that time happens twice, at {} and at {}",
            first.offset().fix(),
            second.offset().fix()
        )),
        LocalResult::None => Err(format!(
            "does not exist in {zone}: the clocks go forward past it"
        )),
    }
}

/// A date or time in `format` (strftime), or by default RFC 3339 / ISO 8601 (a space for the
/// `T` accepted). The error says what was expected.
fn parse_time(text: &str, format: Option<&str>, name: TypeName) -> Result<Moment, String> {
    if let (TypeName::Date, Some(format)) = (name, format)
        && let Ok(day) = NaiveDate::parse_from_str(text, format)
    {
        return Ok(Moment::Day(day));
    }
    match format {
        Some(format) => DateTime::parse_from_str(text, format)
            .map(Moment::Zoned)
            .or_else(|_| NaiveDateTime::parse_from_str(text, format).map(Moment::Local))
            .map_err(|_| format!("expected {format}")),
        None => {
            if let Ok(at) = DateTime::parse_from_rfc3339(text) {
                return Ok(Moment::Zoned(at));
            }
            for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
                if let Ok(at) = NaiveDateTime::parse_from_str(text, format) {
                    return Ok(Moment::Local(at));
                }
            }
            if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
                return Ok(Moment::Day(date));
            }
            Err(match name {
                TypeName::Date => "expected ISO 8601, e.g. 2024-08-01".into(),
                _ => "expected ISO 8601, e.g. 2024-08-01T10:30:00+02:00".into(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::FieldName;

    fn record(fields: &[(&str, &str)]) -> Record {
        let mut record = Record::new();
        for (name, value) in fields {
            record.push(FieldName::from(*name), Value::String((*value).into()));
        }
        record
    }

    fn texts(record: &Record) -> Vec<String> {
        record.iter().map(|(_, v)| format!("{v:?}")).collect()
    }

    /// Found by fuzzing: `-0` became the integer 0, written back as `0`; it stays text, as `007`
    /// does, while `-0.5` is still a decimal.
    #[test]
    fn minus_zero_is_left_as_text() {
        assert_eq!(infer("-0"), None);
        assert_eq!(infer("0"), Some(Value::Integer(0)));
        assert_eq!(infer("-0.5"), Some(Value::Decimal("-0.5".into())));
    }

    #[test]
    fn inference_types_only_what_is_unambiguous() {
        let typing = Typing::new(true, None).unwrap();
        let mut r = record(&[
            ("a", "42"),
            ("b", "-7"),
            ("c", "007"),
            ("d", "1.50"),
            ("e", "true"),
            ("f", "2024-08-01"),
            ("g", "2024-08-01T10:30:00+02:00"),
            ("h", "2024-08-01 10:30:00"),
            ("i", "1e5"),
            ("j", "TRUE"),
            ("k", "99999999999999999999"),
            ("l", ""),
        ]);
        typing.apply(&mut r).unwrap();
        assert_eq!(
            texts(&r),
            [
                "Integer(42)",
                "Integer(-7)",
                "String(\"007\")",
                "Decimal(\"1.50\")",
                "Bool(true)",
                "Date(2024-08-01)",
                "Timestamp(2024-08-01T10:30:00+02:00)",
                "DateTime(2024-08-01T10:30:00)",
                "String(\"1e5\")",
                "String(\"TRUE\")",
                "String(\"99999999999999999999\")",
                "String(\"\")",
            ]
        );
    }

    fn schema(entries: &[(&str, FieldType)]) -> Typing {
        let map: BTreeMap<String, FieldType> = entries
            .iter()
            .map(|(n, t)| (n.to_string(), t.clone()))
            .collect();
        Typing::new(false, Some(&map)).unwrap()
    }

    #[test]
    fn a_schema_casts_its_fields_and_names_the_first_that_does_not_fit() {
        let typing = schema(&[
            ("id", FieldType::Plain(TypeName::Integer)),
            ("amount", FieldType::Plain(TypeName::Decimal)),
            ("paid", FieldType::Plain(TypeName::Bool)),
            (
                "at",
                FieldType::WithFormat(TypeWithFormat {
                    name: TypeName::Timestamp,
                    format: Some("%d/%m/%Y %H:%M".into()),
                    decimal_separator: None,
                    thousands_separator: None,
                    timezone: None,
                    convert_to: None,
                }),
            ),
        ]);
        let mut r = record(&[
            ("id", " 12 "),
            ("amount", "+1234.50"),
            ("paid", "Yes"),
            ("at", "01/08/2024 10:30"),
            ("note", "42"),
        ]);
        typing.apply(&mut r).unwrap();
        assert_eq!(
            texts(&r),
            [
                "Integer(12)",
                "Decimal(\"1234.50\")",
                "Bool(true)",
                "DateTime(2024-08-01T10:30:00)",
                "String(\"42\")"
            ]
        );
        let mut bad = record(&[("id", "12"), ("amount", "12,50")]);
        let before = bad.clone();
        assert_eq!(
            typing.apply(&mut bad).unwrap_err(),
            CastError {
                field: "amount".into(),
                reason: "`12,50` is not a decimal number".into()
            }
        );
        assert_eq!(bad, before, "a record that does not fit is left as decoded");
        let mut bad = record(&[("at", "2024-08-01")]);
        assert_eq!(
            typing.apply(&mut bad).unwrap_err().reason,
            "`2024-08-01` is not a timestamp (expected %d/%m/%Y %H:%M)"
        );
    }

    #[test]
    fn typed_values_convert_only_without_loss() {
        let integer = FieldType::Plain(TypeName::Integer);
        assert_eq!(cast(&Value::Float(3.0), &integer), Ok(Value::Integer(3)));
        assert_eq!(
            cast(&Value::Float(3.5), &integer),
            Err("`3.5` is not an integer".into())
        );
        let text = FieldType::Plain(TypeName::String);
        assert_eq!(
            cast(&Value::Integer(7), &text),
            Ok(Value::String("7".into()))
        );
        assert_eq!(cast(&Value::Null, &integer), Ok(Value::Null));
    }

    #[test]
    fn numbers_with_local_separators() {
        let european = FieldType::WithFormat(TypeWithFormat {
            name: TypeName::Decimal,
            format: None,
            decimal_separator: Some(','),
            thousands_separator: Some('.'),
            timezone: None,
            convert_to: None,
        });
        assert_eq!(european.problem(), None);
        assert_eq!(
            cast(&Value::String("1.249,90".into()), &european),
            Ok(Value::Decimal("1249.90".into()))
        );
        for wrong in ["1,249.90", "12.49,90", "1.2490"] {
            assert_eq!(
                cast(&Value::String(wrong.into()), &european),
                Err(format!("`{wrong}` is not a decimal number")),
            );
        }
        let comma_only = FieldType::WithFormat(TypeWithFormat {
            name: TypeName::Decimal,
            format: None,
            decimal_separator: Some(','),
            thousands_separator: None,
            timezone: None,
            convert_to: None,
        });
        assert_eq!(
            cast(&Value::String("-3,5".into()), &comma_only),
            Ok(Value::Decimal("-3.5".into()))
        );
        assert!(cast(&Value::String("3.5".into()), &comma_only).is_err());
        let same = FieldType::WithFormat(TypeWithFormat {
            name: TypeName::Float,
            format: None,
            decimal_separator: Some('.'),
            thousands_separator: Some('.'),
            timezone: None,
            convert_to: None,
        });
        assert_eq!(
            same.problem().unwrap(),
            "`decimal_separator` and `thousands_separator` must differ"
        );
    }

    #[test]
    fn formats_are_checked() {
        let bad = FieldType::WithFormat(TypeWithFormat {
            name: TypeName::Date,
            format: Some("%Q".into()),
            decimal_separator: None,
            thousands_separator: None,
            timezone: None,
            convert_to: None,
        });
        assert_eq!(
            bad.problem().unwrap(),
            "`%Q` is not a valid strftime format"
        );
        let misplaced = FieldType::WithFormat(TypeWithFormat {
            name: TypeName::Integer,
            format: Some("%Y".into()),
            decimal_separator: None,
            thousands_separator: None,
            timezone: None,
            convert_to: None,
        });
        assert_eq!(
            misplaced.problem().unwrap(),
            "`format` is for the timestamp, datetime and date types only"
        );
    }
}
