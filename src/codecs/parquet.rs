//! Parquet, the data lake's format, read and written by polars (the `polars` feature).
//! Records become columns as `frame.rs` says. Writing: records are gathered as columns until a row
//! group is full (`row_group_size`). The file's columns and types are the declared `schema`'s
//! when there is one (each value converted to its column's type, or the run fails naming the
//! record and field), else the first row group's, and later records are cast to it (a field
//! first seen after the first row group, or a value that does not cast, fails naming the
//! field). Reading: the input is spooled to a temporary file (Parquet keeps its schema at the
//! end), then read a slice of rows at a time, so memory holds one slice, not the file.

use schemars::JsonSchema;
use serde::Deserialize;

/// How Parquet files are written (reading needs no options).
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ParquetOptions {
    /// `"zstd"`, `"snappy"`, `"gzip"`, `"lz4"` or `"none"`. Default `"zstd"` (every current
    /// reader has it; `"snappy"` for old ones).
    pub compression: ParquetCodec,
    /// Records a row group holds (and the writer holds in memory before writing it).
    /// Between 1 and 10000000. Default 100000.
    pub row_group_size: usize,
    /// The file's columns, in order, with their Parquet types, for readers that expect a
    /// fixed layout (a warehouse table): `[{ name = "order_id", type = "int64" }, { name =
    /// "amount", type = "decimal(12,2)" }]`. Types: `string`, `bool`, `int32`, `int64`,
    /// `float32`, `float64`, `decimal(P,S)` (P digits, S after the point; P at most 38), `date`,
    /// `datetime` (no zone) and `timestamp` (an instant, stored in UTC), both in microseconds
    /// unless written `timestamp(ms)`/`timestamp(ns)`. Each value is converted as `cast`
    /// converts (text `"12.50"` to `decimal(12,2)`), and nothing is lost: a value that does not
    /// fit (`1.005` in `decimal(12,2)`, a time without an offset in a `timestamp`) fails the run
    /// naming the record and field, and so does a field the schema does not name (`drop` or
    /// `select` it first). A declared column a record lacks is null there. For writing only: a
    /// Parquet file read says its own schema. Default: none (the first row group's fields and
    /// types).
    pub schema: Vec<ParquetColumn>,
}

/// A column of a declared Parquet `schema`.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParquetColumn {
    /// The field, and the column's name. Required.
    pub name: String,
    /// Its Parquet type, e.g. `"int64"` or `"decimal(12,2)"`. Required.
    #[serde(rename = "type")]
    #[schemars(with = "String")]
    pub column_type: ParquetType,
}

/// A column's type in a declared Parquet `schema`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParquetType {
    String,
    Bool,
    Int32,
    Int64,
    Float32,
    Float64,
    Decimal {
        precision: u8,
        scale: u8,
    },
    Date,
    /// A date and time of day without a zone.
    Datetime(TimeUnit),
    /// An instant, stored in UTC.
    Timestamp(TimeUnit),
}

/// The unit a Parquet time counts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnit {
    Milliseconds,
    Microseconds,
    Nanoseconds,
}

/// The type names a `schema` takes, for messages.
const PARQUET_TYPES: &str = "string, bool, int32, int64, float32, float64, decimal(P,S), date, datetime, timestamp, timestamp(ms|us|ns)";

impl std::str::FromStr for ParquetType {
    type Err = String;

    fn from_str(written: &str) -> Result<Self, String> {
        let name = written.trim().to_ascii_lowercase();
        let (base, argument) = match name.split_once('(') {
            Some((base, rest)) => match rest.strip_suffix(')') {
                Some(argument) => (base.trim(), Some(argument.trim())),
                None => return Err(format!("`{written}` lacks its closing `)`")),
            },
            None => (name.as_str(), None),
        };
        let unit = |argument: Option<&str>| match argument {
            None | Some("us") => Ok(TimeUnit::Microseconds),
            Some("ms") => Ok(TimeUnit::Milliseconds),
            Some("ns") => Ok(TimeUnit::Nanoseconds),
            Some(other) => Err(format!(
                "`{other}` is not a time unit: write `ms`, `us` or `ns`"
            )),
        };
        let plain = |parsed: ParquetType| match argument {
            None => Ok(parsed),
            Some(_) => Err(format!("`{base}` takes no `(...)`")),
        };
        match base {
            "string" => plain(ParquetType::String),
            "bool" | "boolean" => plain(ParquetType::Bool),
            "int32" => plain(ParquetType::Int32),
            "int64" => plain(ParquetType::Int64),
            "float32" => plain(ParquetType::Float32),
            "float64" | "double" => plain(ParquetType::Float64),
            "date" => plain(ParquetType::Date),
            "datetime" => unit(argument).map(ParquetType::Datetime),
            "timestamp" => unit(argument).map(ParquetType::Timestamp),
            "decimal" => {
                let wrong = || {
                    format!(
                        "`{written}`: write `decimal(P,S)`, P digits in all (1 to 38), S of them after the point"
                    )
                };
                let (precision, scale) = argument
                    .and_then(|argument| argument.split_once(','))
                    .ok_or_else(wrong)?;
                let precision: u8 = precision.trim().parse().map_err(|_| wrong())?;
                let scale: u8 = scale.trim().parse().map_err(|_| wrong())?;
                if !(1..=38).contains(&precision) || scale > precision {
                    return Err(wrong());
                }
                Ok(ParquetType::Decimal { precision, scale })
            }
            _ => Err(format!(
                "`{written}` is not a Parquet type: write one of {PARQUET_TYPES}"
            )),
        }
    }
}

impl<'de> Deserialize<'de> for ParquetType {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Default for ParquetOptions {
    fn default() -> Self {
        ParquetOptions {
            compression: ParquetCodec::Zstd,
            row_group_size: 100_000,
            schema: Vec::new(),
        }
    }
}

/// A Parquet compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ParquetCodec {
    Zstd,
    Snappy,
    Gzip,
    Lz4,
    None,
}

impl ParquetOptions {
    pub(crate) fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if !(1..=10_000_000).contains(&self.row_group_size) {
            problems.push(("row_group_size", "must be between 1 and 10000000".into()));
        }
        let mut seen = std::collections::HashSet::new();
        for column in &self.schema {
            if !seen.insert(&column.name) {
                problems.push(("schema", format!("`{}` is declared twice", column.name)));
            }
        }
        if !cfg!(feature = "polars") {
            problems.push(("type", format!("`parquet` {}", super::NOT_BUILT)));
        }
        problems
    }
}

#[cfg(feature = "polars")]
pub use io::{ParquetDecoder, ParquetEncoder};

/// The reading and writing, with polars.
#[cfg(feature = "polars")]
mod io {
    use std::io::{Read, Write};

    use polars::prelude::*;

    use super::{ParquetCodec, ParquetOptions, ParquetType, TimeUnit as Unit};
    use crate::codecs::frame::{FrameBuilder, frame_to_records};
    use crate::codecs::types::{FieldType, TypeName, cast};
    use crate::error::{CodecError, Position};
    use crate::record::{Record, Value};
    use crate::stage::{Decoder, Encoder};

    impl ParquetOptions {
        fn compression(&self) -> ParquetCompression {
            match self.compression {
                ParquetCodec::Zstd => ParquetCompression::Zstd(None),
                ParquetCodec::Snappy => ParquetCompression::Snappy,
                ParquetCodec::Gzip => ParquetCompression::Gzip(None),
                ParquetCodec::Lz4 => ParquetCompression::Lz4Raw,
                ParquetCodec::None => ParquetCompression::Uncompressed,
            }
        }

        /// The declared schema as polars', with each column's type.
        fn declared(&self) -> Option<Declared> {
            if self.schema.is_empty() {
                return None;
            }
            let schema = self
                .schema
                .iter()
                .map(|column| (column.name.as_str().into(), column.column_type.dtype()))
                .collect();
            let columns = self
                .schema
                .iter()
                .map(|column| (column.name.clone(), column.column_type))
                .collect();
            Some(Declared { schema, columns })
        }
    }

    impl ParquetType {
        fn dtype(self) -> DataType {
            let unit = |unit| match unit {
                Unit::Milliseconds => TimeUnit::Milliseconds,
                Unit::Microseconds => TimeUnit::Microseconds,
                Unit::Nanoseconds => TimeUnit::Nanoseconds,
            };
            match self {
                ParquetType::String => DataType::String,
                ParquetType::Bool => DataType::Boolean,
                ParquetType::Int32 => DataType::Int32,
                ParquetType::Int64 => DataType::Int64,
                ParquetType::Float32 => DataType::Float32,
                ParquetType::Float64 => DataType::Float64,
                ParquetType::Decimal { precision, scale } => {
                    DataType::Decimal(precision.into(), scale.into())
                }
                ParquetType::Date => DataType::Date,
                ParquetType::Datetime(u) => DataType::Datetime(unit(u), None),
                ParquetType::Timestamp(u) => DataType::Datetime(unit(u), Some(TimeZone::UTC)),
            }
        }

        /// `value` converted to this type, losing nothing, or why it does not fit.
        fn conform(self, value: &Value) -> Result<Value, String> {
            let name = match self {
                ParquetType::String => TypeName::String,
                ParquetType::Bool => TypeName::Bool,
                ParquetType::Int32 | ParquetType::Int64 => TypeName::Integer,
                ParquetType::Float32 | ParquetType::Float64 => TypeName::Float,
                ParquetType::Decimal { .. } => TypeName::Decimal,
                ParquetType::Date => TypeName::Date,
                ParquetType::Datetime(_) => TypeName::Datetime,
                ParquetType::Timestamp(_) => TypeName::Timestamp,
            };
            let converted = cast(value, &FieldType::Plain(name))?;
            match (self, &converted) {
                (ParquetType::Int32, Value::Integer(i)) if i32::try_from(*i).is_err() => {
                    Err(format!("{i} does not fit an int32 (at most ±2147483647)"))
                }
                (
                    ParquetType::Decimal { precision, scale },
                    Value::Integer(_) | Value::Decimal(_),
                ) => fits_decimal(&converted.to_text().unwrap_or_default(), precision, scale)
                    .map(|()| converted),
                (ParquetType::Timestamp(_), Value::DateTime(t)) => Err(format!(
                    "`{t}` has no offset, and a Parquet timestamp is an instant: give its zone with a `cast` (`timezone`), or declare the column `datetime`"
                )),
                (ParquetType::Timestamp(Unit::Milliseconds), Value::Timestamp(t))
                    if t.timestamp_subsec_micros() % 1000 != 0 =>
                {
                    Err(format!(
                        "`{}` is finer than the column's milliseconds",
                        t.to_rfc3339()
                    ))
                }
                (ParquetType::Datetime(Unit::Milliseconds), Value::DateTime(t))
                    if t.and_utc().timestamp_subsec_micros() % 1000 != 0 =>
                {
                    Err(format!("`{t}` is finer than the column's milliseconds"))
                }
                _ => Ok(converted),
            }
        }
    }

    /// Whether the decimal `text` fits `precision` digits with `scale` after the point (a
    /// fraction longer than the scale fits only if the rest is zeros).
    fn fits_decimal(text: &str, precision: u8, scale: u8) -> Result<(), String> {
        let unsigned = text.trim_start_matches(['-', '+']);
        let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
        let scale = usize::from(scale);
        if fraction.len() > scale && fraction[scale..].bytes().any(|b| b != b'0') {
            return Err(format!(
                "`{text}` has more than {scale} digits after the point, the column's decimal({precision},{scale})"
            ));
        }
        let whole_digits = whole.trim_start_matches('0').len();
        if whole_digits > usize::from(precision) - scale {
            return Err(format!(
                "`{text}` has more than {} digits before the point, the column's decimal({precision},{scale})",
                usize::from(precision) - scale
            ));
        }
        Ok(())
    }

    /// A declared schema: polars' schema, and each column's type by name.
    struct Declared {
        schema: Schema,
        columns: std::collections::HashMap<String, ParquetType>,
    }

    fn failed(label: &str, what: &'static str, error: impl std::fmt::Display) -> CodecError {
        CodecError::io(label, what, std::io::Error::other(error.to_string()))
    }

    /// Writes records as a Parquet file, a row group at a time.
    pub struct ParquetEncoder {
        label: String,
        options: ParquetOptions,
        output: Option<Box<dyn Write + Send>>,
        writer: Option<polars::io::parquet::write::BatchedWriter<Box<dyn Write + Send>>>,
        /// The file's schema: the declared one, else the first row group's.
        schema: Option<Schema>,
        /// The declared schema, whose types each value is converted to.
        declared: Option<Declared>,
        /// The row group being gathered, as columns (no copy of the records).
        pending: FrameBuilder,
        /// Records written so far, for messages.
        records: u64,
    }

    impl ParquetEncoder {
        pub fn new(output: Box<dyn Write + Send>, label: &str, options: &ParquetOptions) -> Self {
            let declared = options.declared();
            ParquetEncoder {
                label: label.to_string(),
                options: options.clone(),
                output: Some(output),
                writer: None,
                schema: declared.as_ref().map(|declared| declared.schema.clone()),
                declared,
                pending: FrameBuilder::default(),
                records: 0,
            }
        }

        /// Writes the pending records as a row group.
        fn write_group(&mut self) -> Result<(), CodecError> {
            let frame = std::mem::take(&mut self.pending)
                .finish()
                .map_err(|e| failed(&self.label, "write", e))?;
            let schema = self
                .schema
                .get_or_insert_with(|| frame.schema().as_ref().clone());
            let mut frame = conform(frame, schema, &self.label)?;
            // One chunk a column: the writer makes pages per chunk, and small ones cost twice
            // the time.
            frame.rechunk_mut_par();
            if self.writer.is_none() {
                let output = self
                    .output
                    .take()
                    .expect("the output, until the writer has it");
                let writer = ParquetWriter::new(output)
                    .with_compression(self.options.compression())
                    .with_row_group_size(Some(self.options.row_group_size))
                    .batched(schema)
                    .map_err(|e| failed(&self.label, "write", e))?;
                self.writer = Some(writer);
            }
            self.writer
                .as_mut()
                .expect("made above")
                .write_batch(&frame)
                .map_err(|e| failed(&self.label, "write", e))
        }

        /// `records` with each value converted to its declared column's type.
        fn conformed(
            &self,
            declared: &Declared,
            records: &[Record],
        ) -> Result<Vec<Record>, CodecError> {
            let mut conformed = Vec::with_capacity(records.len());
            for (offset, record) in records.iter().enumerate() {
                let at = |field: &str| Position {
                    record: Some(self.records + offset as u64 + 1),
                    field: Some(field.to_string()),
                    ..Position::default()
                };
                let mut values = Record::with_capacity(record.len());
                for (name, value) in record.iter() {
                    let Some(column) = declared.columns.get(&**name) else {
                        return Err(CodecError::malformed(
                            &self.label,
                            at(name),
                            "the field is not in the Parquet `schema`",
                            Some(
                                "declare it there, or `drop` or `select` fields before the sink"
                                    .into(),
                            ),
                        ));
                    };
                    let value = column.conform(value).map_err(|message| {
                        CodecError::malformed(&self.label, at(name), message, None)
                    })?;
                    values.push(name.clone(), value);
                }
                conformed.push(values);
            }
            Ok(conformed)
        }
    }

    /// `frame` with `schema`'s columns, in its order and of its types: a missing column is null,
    /// an extra one or a value that does not cast is an error naming the field.
    fn conform(frame: DataFrame, schema: &Schema, label: &str) -> Result<DataFrame, CodecError> {
        for name in frame.get_column_names() {
            if schema.get(name).is_none() {
                return Err(CodecError::io(
                    label,
                    "write",
                    std::io::Error::other(format!(
                        "the field `{name}` first appears after the first row group, whose fields are the Parquet file's columns: raise `row_group_size`, or `select` the fields"
                    )),
                ));
            }
        }
        let height = frame.height();
        let mut columns = Vec::with_capacity(schema.len());
        for (name, dtype) in schema.iter() {
            let column = match frame.column(name) {
                Ok(column) if column.dtype() == dtype => column.clone(),
                Ok(column) => column.strict_cast(dtype).map_err(|_| {
                    CodecError::io(
                        label,
                        "write",
                        std::io::Error::other(format!(
                            "the field `{name}` holds {} values after the first row group made its column {dtype}",
                            column.dtype()
                        )),
                    )
                })?,
                Err(_) => Column::full_null(name.clone(), height, dtype),
            };
            columns.push(column);
        }
        DataFrame::new(height, columns).map_err(|e| failed(label, "write", e))
    }

    impl Encoder for ParquetEncoder {
        fn write_batch(&mut self, records: &[Record]) -> Result<(), CodecError> {
            let pushed = match &self.declared {
                Some(declared) => self.pending.push(&self.conformed(declared, records)?),
                None => self.pending.push(records),
            };
            pushed.map_err(|e| failed(&self.label, "write", e))?;
            self.records += records.len() as u64;
            if self.pending.rows() >= self.options.row_group_size {
                self.write_group()?;
            }
            Ok(())
        }

        fn finish(mut self: Box<Self>) -> Result<(), CodecError> {
            if self.pending.rows() > 0 || self.writer.is_none() {
                self.write_group()?;
            }
            self.writer
                .as_ref()
                .expect("written above")
                .finish()
                .map_err(|e| failed(&self.label, "write", e))?;
            Ok(())
        }
    }

    /// Rows read from the file at a time.
    const SLICE_ROWS: usize = 32_768;

    /// Reads a Parquet file a slice of rows at a time.
    pub struct ParquetDecoder {
        label: String,
        file: std::fs::File,
        /// Keeps the spooled copy until the decoder is dropped.
        _spool: tempfile::TempPath,
        metadata: polars::io::parquet::metadata::FileMetadataRef,
        rows: usize,
        next_row: usize,
        /// Records of the current slice not handed out yet.
        ready: std::vec::IntoIter<Record>,
    }

    impl ParquetDecoder {
        pub fn new(mut input: Box<dyn Read + Send>, label: &str) -> Result<Self, CodecError> {
            let mut spool = tempfile::NamedTempFile::new()
                .map_err(|e| CodecError::io(label, "spool the Parquet file", e))?;
            std::io::copy(&mut input, spool.as_file_mut())
                .map_err(|e| CodecError::io(label, "read", e))?;
            let (file, spool) = spool.into_parts();
            let mut reader = ParquetReader::new(
                file.try_clone()
                    .map_err(|e| CodecError::io(label, "read", e))?,
            );
            let metadata = reader.get_metadata().cloned().map_err(|e| {
                CodecError::io(
                    label,
                    "read",
                    std::io::Error::other(format!("not a Parquet file ({e})")),
                )
            })?;
            Ok(ParquetDecoder {
                label: label.to_string(),
                rows: metadata.num_rows,
                file,
                _spool: spool,
                metadata,
                next_row: 0,
                ready: Vec::new().into_iter(),
            })
        }

        fn read_slice(&mut self) -> Result<(), CodecError> {
            let file = self
                .file
                .try_clone()
                .map_err(|e| CodecError::io(&self.label, "read", e))?;
            let mut reader = ParquetReader::new(file).with_slice(Some((self.next_row, SLICE_ROWS)));
            reader.set_metadata(self.metadata.clone());
            let frame = reader
                .finish()
                .map_err(|e| failed(&self.label, "read", e))?;
            self.next_row += SLICE_ROWS;
            let records = frame_to_records(&frame).map_err(|e| failed(&self.label, "read", e))?;
            self.ready = records.into_iter();
            Ok(())
        }
    }

    impl Decoder for ParquetDecoder {
        fn next_batch(&mut self, out: &mut Vec<Record>, max: usize) -> Result<bool, CodecError> {
            let start = out.len();
            while out.len() - start < max {
                match self.ready.next() {
                    Some(record) => out.push(record),
                    None if self.next_row < self.rows => self.read_slice()?,
                    None => break,
                }
            }
            Ok(out.len() > start)
        }
    }
}
