//! Records to polars `DataFrame`s and back (the `polars` feature), for the `sql` transform and
//! the Parquet format. Records may differ field by field; a column takes the one type all its
//! values fit without loss:
//!
//! | values (nulls aside) | column | back as |
//! |---|---|---|
//! | integers | Int64 | integers |
//! | integers and exact decimals | Decimal(38, the largest scale) | decimals (the column's scale) |
//! | floats (numbers with an exponent too), or floats and other numbers | Float64 | floats |
//! | booleans | Boolean | booleans |
//! | dates | Date | dates |
//! | date-times without an offset | Datetime(µs) | date-times |
//! | timestamps (with an offset) | Datetime(µs, UTC) | timestamps in UTC |
//! | text, or a mix of kinds | String (each value's text) | text |
//! | arrays and objects | String (their JSON) | text |
//!
//! A column of nulls only is String. A decimal of more than 38 digits fails naming the field.
//! Reading, every polars type has a value: unsigned integers beyond i64 become decimals,
//! durations and times text, lists arrays, structs objects, binary base64 text.

use polars::prelude::*;

use crate::record::{FieldName, Record, Text, Value};

/// Why records do not make a frame, or a frame no records.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("`{field}`: {message}")]
    Field { field: String, message: String },
    #[error("{0}")]
    Polars(#[from] PolarsError),
}

/// The column kind a field's values fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Integer,
    /// Exact decimals (and integers), with the largest scale seen.
    Decimal(usize),
    Float,
    Bool,
    Date,
    DateTime,
    Timestamp,
    Text,
}

impl Kind {
    fn of(value: &Value) -> Kind {
        match value {
            Value::Null => Kind::Null,
            Value::Integer(_) => Kind::Integer,
            // A number written with an exponent (`1.5e-3`) is a float.
            Value::Decimal(text) if text.contains(['e', 'E']) => Kind::Float,
            Value::Decimal(text) => Kind::Decimal(scale_of(text)),
            Value::Float(_) => Kind::Float,
            Value::Bool(_) => Kind::Bool,
            Value::Date(_) => Kind::Date,
            Value::DateTime(_) => Kind::DateTime,
            Value::Timestamp(_) => Kind::Timestamp,
            Value::String(_) | Value::Array(_) | Value::Object(_) => Kind::Text,
        }
    }

    /// The kind both `self`'s values and `other`'s fit.
    fn widen(self, other: Kind) -> Kind {
        use Kind::*;
        match (self, other) {
            (a, b) if a == b => a,
            (Null, k) | (k, Null) => k,
            (Integer, Decimal(s)) | (Decimal(s), Integer) => Decimal(s),
            (Decimal(a), Decimal(b)) => Decimal(a.max(b)),
            (Integer | Decimal(_), Float) | (Float, Integer | Decimal(_)) => Float,
            _ => Text,
        }
    }
}

/// The digits after the point of a decimal's text (`-12.50` has 2).
fn scale_of(text: &str) -> usize {
    text.split_once('.')
        .map_or(0, |(_, fraction)| fraction.len())
}

/// The most digits a polars decimal holds.
const MAX_PRECISION: usize = 38;

/// Builds one frame from records that come a batch at a time: each batch becomes a frame at
/// once (the records can go), and `finish` gives every column the type all its batches' values
/// fit, then stacks them. Memory: the columns, not the records.
#[derive(Default)]
pub struct FrameBuilder {
    /// Every column so far, in order of first appearance, with the kind its values fit.
    kinds: Vec<(String, Kind)>,
    frames: Vec<(DataFrame, Vec<Kind>)>,
    rows: usize,
    /// The columns' memory so far, as polars estimates it.
    bytes: usize,
}

impl FrameBuilder {
    pub fn push(&mut self, records: &[Record]) -> Result<(), FrameError> {
        if records.is_empty() {
            return Ok(());
        }
        let (frame, kinds) = typed_frame(records)?;
        for (name, kind) in frame.get_column_names().iter().zip(&kinds) {
            match self
                .kinds
                .iter_mut()
                .find(|(known, _)| known == name.as_str())
            {
                Some((_, known)) => *known = known.widen(*kind),
                None => self.kinds.push((name.to_string(), *kind)),
            }
        }
        self.rows += frame.height();
        self.bytes += memory_of(&frame);
        self.frames.push((frame, kinds));
        Ok(())
    }

    /// The rows pushed so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The memory the columns pushed so far take, in bytes ([`memory_of`]).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// One frame of everything pushed, each column of the type all its values fit.
    pub fn finish(self) -> Result<DataFrame, FrameError> {
        let mut stacked: Option<DataFrame> = None;
        for (frame, kinds) in self.frames {
            let height = frame.height();
            let mut columns = Vec::with_capacity(self.kinds.len());
            for (name, kind) in &self.kinds {
                let dtype = dtype(*kind);
                let position = frame
                    .get_column_names()
                    .iter()
                    .position(|n| n.as_str() == name);
                columns.push(match position {
                    Some(index) if kinds[index] == *kind => frame.columns()[index].clone(),
                    Some(index) => frame.columns()[index].cast(&dtype)?,
                    None => Column::full_null(name.as_str().into(), height, &dtype),
                });
            }
            let frame = DataFrame::new(height, columns)?;
            match &mut stacked {
                None => stacked = Some(frame),
                Some(stacked) => {
                    stacked.vstack_mut(&frame)?;
                }
            }
        }
        // The batches stay chunks of one column each: polars reads across them, and joining
        // them would copy every column once more.
        Ok(stacked.unwrap_or_default())
    }
}

/// The memory a frame's columns take, in bytes: polars' estimate (the buffers of values and
/// validity; for text the bytes of the strings), plus the 16-byte view each text value has,
/// which polars' estimate leaves out.
fn memory_of(frame: &DataFrame) -> usize {
    frame
        .columns()
        .iter()
        .map(|column| {
            let views = match column.dtype() {
                DataType::String | DataType::Binary => column.len() * 16,
                _ => 0,
            };
            column.as_materialized_series().estimated_size() + views
        })
        .sum()
}

/// The column type of a kind.
fn dtype(kind: Kind) -> DataType {
    match kind {
        Kind::Integer => DataType::Int64,
        Kind::Decimal(scale) => DataType::Decimal(MAX_PRECISION, scale),
        Kind::Float => DataType::Float64,
        Kind::Bool => DataType::Boolean,
        Kind::Date => DataType::Date,
        Kind::DateTime => DataType::Datetime(TimeUnit::Microseconds, None),
        Kind::Timestamp => DataType::Datetime(TimeUnit::Microseconds, Some(TimeZone::UTC)),
        Kind::Null | Kind::Text => DataType::String,
    }
}

/// `records` as a frame, with the kind of each column.
fn typed_frame(records: &[Record]) -> Result<(DataFrame, Vec<Kind>), FrameError> {
    // Records of one file usually share their field names, in one order: a field found at
    // its column's position is taken from there without a lookup.
    fn at<'r>(record: &'r Record, position: usize, name: &FieldName) -> Option<&'r Value> {
        match record.entry(position) {
            Some((field, value)) if FieldName::ptr_eq(field, name) || field == name => Some(value),
            _ => None,
        }
    }
    let mut names: Vec<&FieldName> = Vec::new();
    let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for record in records {
        for (position, (name, _)) in record.iter().enumerate() {
            let known = names
                .get(position)
                .is_some_and(|known| FieldName::ptr_eq(known, name));
            if !known && !index.contains_key(&**name) {
                index.insert(name, names.len());
                names.push(name);
            }
        }
    }
    let mut columns = Vec::with_capacity(names.len());
    let mut kinds = Vec::with_capacity(names.len());
    for (position, name) in names.into_iter().enumerate() {
        let values: Vec<&Value> = records
            .iter()
            .map(|record| {
                at(record, position, name)
                    .or_else(|| record.get(name))
                    .unwrap_or(&Value::Null)
            })
            .collect();
        let kind = values
            .iter()
            .fold(Kind::Null, |kind, value| kind.widen(Kind::of(value)));
        columns.push(column(name, &values, kind)?.into_column());
        kinds.push(kind);
    }
    Ok((DataFrame::new_infer_height(columns)?, kinds))
}

/// One field's values as a series of `kind`, which they all fit.
fn column(name: &str, values: &[&Value], kind: Kind) -> Result<Series, FrameError> {
    let name: PlSmallStr = name.into();
    let series = match kind {
        Kind::Integer => {
            let ints: Vec<Option<i64>> = values
                .iter()
                .map(|v| match v {
                    Value::Integer(i) => Some(*i),
                    _ => None,
                })
                .collect();
            Series::new(name, ints)
        }
        Kind::Decimal(scale) => {
            let mut units = Vec::with_capacity(values.len());
            for value in values {
                units.push(match value {
                    Value::Integer(i) => Some(scaled(&i.to_string(), scale, &name)?),
                    Value::Decimal(text) => Some(scaled(text, scale, &name)?),
                    _ => None,
                });
            }
            Series::new(name, units).into_decimal(MAX_PRECISION, scale)?
        }
        Kind::Float => {
            let floats: Vec<Option<f64>> = values
                .iter()
                .map(|v| match v {
                    Value::Float(f) => Some(*f),
                    Value::Integer(i) => Some(*i as f64),
                    Value::Decimal(text) => text.parse().ok(),
                    _ => None,
                })
                .collect();
            Series::new(name, floats)
        }
        Kind::Bool => {
            let bools: Vec<Option<bool>> = values
                .iter()
                .map(|v| match v {
                    Value::Bool(b) => Some(*b),
                    _ => None,
                })
                .collect();
            Series::new(name, bools)
        }
        Kind::Date => {
            let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("a date");
            let days: Vec<Option<i32>> = values
                .iter()
                .map(|v| match v {
                    Value::Date(d) => Some((*d - epoch).num_days() as i32),
                    _ => None,
                })
                .collect();
            Series::new(name, days).into_date()
        }
        Kind::DateTime => {
            let micros: Vec<Option<i64>> = values
                .iter()
                .map(|v| match v {
                    Value::DateTime(t) => Some(t.and_utc().timestamp_micros()),
                    _ => None,
                })
                .collect();
            Series::new(name, micros).into_datetime(TimeUnit::Microseconds, None)
        }
        Kind::Timestamp => {
            let micros: Vec<Option<i64>> = values
                .iter()
                .map(|v| match v {
                    Value::Timestamp(t) => Some(t.timestamp_micros()),
                    _ => None,
                })
                .collect();
            Series::new(name, micros).into_datetime(TimeUnit::Microseconds, Some(TimeZone::UTC))
        }
        Kind::Null | Kind::Text => {
            let texts: Vec<Option<String>> = values
                .iter()
                .map(|v| v.to_text().map(|t| t.into_owned()))
                .collect();
            Series::new(name, texts)
        }
    };
    Ok(series)
}

/// The decimal `text` as an integer of `scale` fraction digits (`1.5` at scale 2: 150).
fn scaled(text: &str, scale: usize, field: &str) -> Result<i128, FrameError> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = format!("{whole}{fraction:0<scale$}");
    digits.parse::<i128>().ok().filter(|units| units.unsigned_abs() < 10u128.pow(MAX_PRECISION as u32)).ok_or_else(|| FrameError::Field {
        field: field.to_string(),
        message: format!(
            "`{text}` has more than {MAX_PRECISION} digits at the column's scale of {scale}: a polars decimal holds {MAX_PRECISION}"
        ),
    })
}

/// The frame's rows as records, fields in column order.
pub fn frame_to_records(frame: &DataFrame) -> Result<Vec<Record>, FrameError> {
    let names: Vec<FieldName> = frame
        .get_column_names()
        .iter()
        .map(|name| FieldName::from(name.as_str()))
        .collect();
    let mut columns: Vec<std::vec::IntoIter<Value>> = frame
        .columns()
        .iter()
        .map(|column| column_values(column.as_materialized_series()).map(Vec::into_iter))
        .collect::<Result<_, _>>()?;
    // Row by row: each record is written whole while it is in the cache.
    let records = (0..frame.height())
        .map(|_| {
            let mut record = Record::with_capacity(names.len());
            for (name, column) in names.iter().zip(&mut columns) {
                record.push(name.clone(), column.next().unwrap_or(Value::Null));
            }
            record
        })
        .collect();
    Ok(records)
}

/// A column's values, by its type.
fn column_values(series: &Series) -> Result<Vec<Value>, FrameError> {
    let values = match series.dtype() {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32 => series
            .cast(&DataType::Int64)?
            .i64()?
            .iter()
            .map(|v| v.map_or(Value::Null, Value::Integer))
            .collect(),
        DataType::Float32 | DataType::Float64 => series
            .cast(&DataType::Float64)?
            .f64()?
            .iter()
            .map(|v| v.map_or(Value::Null, Value::Float))
            .collect(),
        DataType::Boolean => series
            .bool()?
            .iter()
            .map(|v| v.map_or(Value::Null, Value::Bool))
            .collect(),
        DataType::String => series
            .str()?
            .iter()
            .map(|v| v.map_or(Value::Null, |s| Value::String(Text::from(s))))
            .collect(),
        // Decimals and times by their numbers, the scale and zone read once per column.
        DataType::Decimal(_, scale) => series
            .decimal()?
            .physical()
            .iter()
            .map(|v| {
                v.map_or(Value::Null, |units| {
                    Value::Decimal(Text::from(decimal_text(units, *scale)))
                })
            })
            .collect(),
        DataType::Date => series
            .date()?
            .physical()
            .iter()
            .map(|v| v.map_or(Value::Null, date))
            .collect(),
        DataType::Datetime(unit, zone) => {
            let zone = zone
                .as_ref()
                .map(|zone| zone.as_str().parse::<chrono_tz::Tz>().ok());
            series
                .datetime()?
                .physical()
                .iter()
                .map(|v| v.map_or(Value::Null, |ticks| datetime(ticks, *unit, zone)))
                .collect()
        }
        _ => series
            .iter()
            .map(|value| any_value(&value))
            .collect::<Result<_, _>>()?,
    };
    Ok(values)
}

/// One polars value as a record's value.
fn any_value(value: &AnyValue) -> Result<Value, FrameError> {
    Ok(match value {
        AnyValue::Null => Value::Null,
        AnyValue::Boolean(b) => Value::Bool(*b),
        AnyValue::String(s) => Value::String(Text::from(*s)),
        AnyValue::StringOwned(s) => Value::String(Text::from(s.as_str())),
        AnyValue::Int8(i) => Value::Integer((*i).into()),
        AnyValue::Int16(i) => Value::Integer((*i).into()),
        AnyValue::Int32(i) => Value::Integer((*i).into()),
        AnyValue::Int64(i) => Value::Integer(*i),
        AnyValue::UInt8(i) => Value::Integer((*i).into()),
        AnyValue::UInt16(i) => Value::Integer((*i).into()),
        AnyValue::UInt32(i) => Value::Integer((*i).into()),
        AnyValue::UInt64(i) => match i64::try_from(*i) {
            Ok(i) => Value::Integer(i),
            Err(_) => Value::Decimal(Text::from(i.to_string())),
        },
        AnyValue::Int128(i) => match i64::try_from(*i) {
            Ok(i) => Value::Integer(i),
            Err(_) => Value::Decimal(Text::from(i.to_string())),
        },
        AnyValue::UInt128(i) => match i64::try_from(*i) {
            Ok(i) => Value::Integer(i),
            Err(_) => Value::Decimal(Text::from(i.to_string())),
        },
        AnyValue::Float32(f) => Value::Float((*f).into()),
        AnyValue::Float64(f) => Value::Float(*f),
        AnyValue::Decimal(units, _, scale) => {
            Value::Decimal(Text::from(decimal_text(*units, *scale)))
        }
        AnyValue::Date(days) => date(*days),
        AnyValue::Datetime(ticks, unit, zone) => {
            datetime(*ticks, *unit, zone.map(|zone| zone.as_str().parse().ok()))
        }
        AnyValue::DatetimeOwned(ticks, unit, zone) => datetime(
            *ticks,
            *unit,
            zone.as_ref().map(|zone| zone.as_str().parse().ok()),
        ),
        AnyValue::List(series) => Value::Array(column_values(series)?),
        AnyValue::Struct(_, _, fields) => {
            let mut record = Record::new();
            for (value, field) in value._iter_struct_av().zip(fields.iter()) {
                record.push(FieldName::from(field.name().as_str()), any_value(&value)?);
            }
            Value::Object(record)
        }
        AnyValue::StructOwned(owned) => {
            let (values, fields) = &**owned;
            let mut record = Record::new();
            for (value, field) in values.iter().zip(fields) {
                record.push(FieldName::from(field.name().as_str()), any_value(value)?);
            }
            Value::Object(record)
        }
        AnyValue::Binary(bytes) => Value::String(Text::from(base64_text(bytes))),
        AnyValue::BinaryOwned(bytes) => Value::String(Text::from(base64_text(bytes))),
        // Durations, times and anything newer: their text, as polars writes it.
        other => Value::String(Text::from(other.to_string())),
    })
}

/// `units` with `scale` fraction digits as decimal text (`-150`, 2: `-1.50`).
fn decimal_text(units: i128, scale: usize) -> String {
    let digits = units.unsigned_abs().to_string();
    let sign = if units < 0 { "-" } else { "" };
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let digits = format!("{digits:0>width$}", width = scale + 1);
    let (whole, fraction) = digits.split_at(digits.len() - scale);
    format!("{sign}{whole}.{fraction}")
}

/// A polars date (days since 1970-01-01) as a record's value.
fn date(days: i32) -> Value {
    Value::Date(
        chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("a date")
            + chrono::Duration::days(days.into()),
    )
}

/// A polars datetime as a record's value: with a zone (`Some(None)` for one chrono does not
/// know, taken as UTC), a timestamp at the zone's offset then; without, a date-time.
/// Nanoseconds are kept.
fn datetime(ticks: i64, unit: TimeUnit, zone: Option<Option<chrono_tz::Tz>>) -> Value {
    let utc = match unit {
        TimeUnit::Nanoseconds => Some(chrono::DateTime::from_timestamp_nanos(ticks)),
        TimeUnit::Microseconds => chrono::DateTime::from_timestamp_micros(ticks),
        TimeUnit::Milliseconds => chrono::DateTime::from_timestamp_millis(ticks),
    };
    let Some(utc) = utc else {
        return Value::Null;
    };
    match zone {
        None => Value::DateTime(utc.naive_utc()),
        Some(Some(tz)) => Value::Timestamp(utc.with_timezone(&tz).fixed_offset()),
        Some(None) => Value::Timestamp(utc.fixed_offset()),
    }
}

fn base64_text(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `records` as one frame.
    fn records_to_frame(records: &[Record]) -> Result<DataFrame, FrameError> {
        Ok(typed_frame(records)?.0)
    }

    fn record(fields: &[(&str, Value)]) -> Record {
        let mut record = Record::new();
        for (name, value) in fields {
            record.push(FieldName::from(*name), value.clone());
        }
        record
    }

    #[test]
    fn every_kind_goes_through_a_frame_and_back() {
        let at = chrono::DateTime::parse_from_rfc3339("2024-10-27T02:30:00+02:00").unwrap();
        let records = vec![
            record(&[
                ("id", Value::Integer(1)),
                ("amount", Value::Decimal("4.5".into())),
                ("rate", Value::Float(0.25)),
                ("paid", Value::Bool(true)),
                (
                    "day",
                    Value::Date(chrono::NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()),
                ),
                ("local", Value::DateTime(at.naive_local())),
                ("at", Value::Timestamp(at)),
                ("note", Value::String("Zürich – 東京".into())),
            ]),
            record(&[
                ("id", Value::Integer(-2)),
                ("amount", Value::Integer(7)),
                ("rate", Value::Integer(1)),
                ("note", Value::Integer(12)),
                ("extra", Value::Array(vec![Value::Integer(1)])),
            ]),
        ];
        let frame = records_to_frame(&records).unwrap();
        let types: Vec<String> = frame.dtypes().iter().map(|d| d.to_string()).collect();
        assert_eq!(
            types,
            [
                "i64",
                "decimal[38,1]",
                "f64",
                "bool",
                "date",
                "datetime[μs]",
                "datetime[μs, UTC]",
                "str",
                "str"
            ]
        );
        let back = frame_to_records(&frame).unwrap();
        let json = |record: &Record| {
            let mut out = Vec::new();
            crate::record::json::write_nested_record(&mut out, record);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(
            json(&back[0]),
            r#"{"id":1,"amount":4.5,"rate":0.25,"paid":true,"day":"2024-02-29","local":"2024-10-27T02:30:00","at":"2024-10-27T00:30:00+00:00","note":"Zürich – 東京","extra":null}"#
        );
        assert_eq!(
            json(&back[1]),
            r#"{"id":-2,"amount":7.0,"rate":1.0,"paid":null,"day":null,"local":null,"at":null,"note":"12","extra":"[1]"}"#
        );
    }

    #[test]
    fn batches_built_apart_get_the_type_all_their_values_fit() {
        let mut builder = FrameBuilder::default();
        builder
            .push(&[record(&[
                ("id", Value::Integer(1)),
                ("amount", Value::Null),
            ])])
            .unwrap();
        builder
            .push(&[record(&[
                ("amount", Value::Decimal("2.50".into())),
                ("note", Value::String("x".into())),
            ])])
            .unwrap();
        builder
            .push(&[record(&[
                ("id", Value::Integer(3)),
                ("amount", Value::Integer(4)),
            ])])
            .unwrap();
        assert_eq!(builder.rows(), 3);
        let frame = builder.finish().unwrap();
        let types: Vec<String> = frame.dtypes().iter().map(|d| d.to_string()).collect();
        assert_eq!(types, ["i64", "decimal[38,2]", "str"]);
        let back = frame_to_records(&frame).unwrap();
        assert_eq!(back[0].get("amount"), Some(&Value::Null));
        assert_eq!(back[1].get("id"), Some(&Value::Null));
        assert_eq!(back[1].get("amount"), Some(&Value::Decimal("2.50".into())));
        assert_eq!(back[2].get("amount"), Some(&Value::Decimal("4.00".into())));
        assert_eq!(back[2].get("note"), Some(&Value::Null));
    }

    #[test]
    fn decimals_keep_every_digit_up_to_38() {
        let big = "999999999999999999999999999999999999.9";
        let records = vec![record(&[("x", Value::Decimal(big.into()))])];
        let back = frame_to_records(&records_to_frame(&records).unwrap()).unwrap();
        assert_eq!(back[0].get("x"), Some(&Value::Decimal(big.into())));
        let too_big = vec![record(&[("x", Value::Decimal(format!("99{big}").into()))])];
        let error = records_to_frame(&too_big).unwrap_err().to_string();
        assert!(error.starts_with("`x`: `9999"), "{error}");
        assert_eq!(decimal_text(-5, 2), "-0.05");
        assert_eq!(decimal_text(150, 2), "1.50");
        assert_eq!(decimal_text(7, 0), "7");
    }
}
