//! Parquet, the data lake's format, read and written by polars (the `polars` feature).
//! Records become columns as `frame.rs` says. Writing: records are gathered as columns until a row
//! group is full (`row_group_size`); the first group's columns and types are the file's
//! schema, and later records are cast to it (a field first seen after the first row group, or
//! a value that does not cast, fails naming the field). Reading: the input is spooled to a
//! temporary file (Parquet keeps its schema at the end), then read a slice of rows at a time,
//! so memory holds one slice, not the file.

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
}

impl Default for ParquetOptions {
    fn default() -> Self {
        ParquetOptions {
            compression: ParquetCodec::Zstd,
            row_group_size: 100_000,
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

    use super::{ParquetCodec, ParquetOptions};
    use crate::codecs::frame::{FrameBuilder, frame_to_records};
    use crate::error::CodecError;
    use crate::record::Record;
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
        /// The file's schema: the first row group's.
        schema: Option<Schema>,
        /// The row group being gathered, as columns (no copy of the records).
        pending: FrameBuilder,
    }

    impl ParquetEncoder {
        pub fn new(output: Box<dyn Write + Send>, label: &str, options: &ParquetOptions) -> Self {
            ParquetEncoder {
                label: label.to_string(),
                options: options.clone(),
                output: Some(output),
                writer: None,
                schema: None,
                pending: FrameBuilder::default(),
            }
        }

        /// Writes the pending records as a row group.
        fn write_group(&mut self) -> Result<(), CodecError> {
            let frame = std::mem::take(&mut self.pending)
                .finish()
                .map_err(|e| failed(&self.label, "write", e))?;
            let frame = match &self.schema {
                None => {
                    let schema = frame.schema().as_ref().clone();
                    let output = self
                        .output
                        .take()
                        .expect("the output, until the writer has it");
                    let writer = ParquetWriter::new(output)
                        .with_compression(self.options.compression())
                        .with_row_group_size(Some(self.options.row_group_size))
                        .batched(&schema)
                        .map_err(|e| failed(&self.label, "write", e))?;
                    self.writer = Some(writer);
                    self.schema = Some(schema);
                    frame
                }
                Some(schema) => conform(frame, schema, &self.label)?,
            };
            self.writer
                .as_mut()
                .expect("made above")
                .write_batch(&frame)
                .map_err(|e| failed(&self.label, "write", e))
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
            self.pending
                .push(records)
                .map_err(|e| failed(&self.label, "write", e))?;
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
    const SLICE_ROWS: usize = 65_536;

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
