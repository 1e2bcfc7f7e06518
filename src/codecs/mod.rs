//! Formats: a [`FormatConfig`] names a format and its options; it builds a [`Decoder`] over any
//! byte stream and an [`Encoder`] onto any writer, so sources and sinks never care which format
//! they move. Decoders stream: they hold one batch of records, never the whole input.

pub mod csv;
pub mod excel;
#[cfg(feature = "polars")]
pub mod frame;
pub mod json;
pub mod json_array;
pub mod limit;
pub mod ndjson;
mod parallel;
pub mod parquet;
pub(crate) mod sniff;
#[cfg(test)]
pub(crate) mod testing;
pub mod text;
pub mod types;
pub mod unpack;
pub mod xml;

use std::io::{Read, Write};
use std::path::Path;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::config::Invalid;
use crate::error::CodecError;
use crate::stage::{Decoder, Encoder};

pub use self::csv::CsvOptions;
pub use self::excel::ExcelOptions;
pub use self::json::JsonOptions;
pub use self::json_array::JsonArrayOptions;
pub use self::ndjson::NdjsonOptions;
pub use self::parquet::ParquetOptions;
pub use self::text::TextEncoding;
pub use self::xml::XmlOptions;

/// The format of a file: `format = { type = "csv", delimiter = ";" }`. When a file source or sink
/// leaves it out, it is inferred from the path's extension (`.csv`, `.tsv`, `.ndjson`, `.jsonl`, `.json`,
/// `.xml`, `.xlsx`, `.xlsm`, `.xls`, `.ods`, `.parquet`).
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum FormatConfig {
    /// Comma-separated values (RFC 4180), with configurable dialect.
    Csv(CsvOptions),
    /// Newline-delimited JSON (JSON Lines): one JSON object per line. A JSON document spread
    /// over lines (pretty-printed) is `json`.
    Ndjson(NdjsonOptions),
    /// A JSON document holding the records: an array of objects, or one object that is one
    /// record (an API's single item, `{"id": 123, ...}`), as the whole document or inside an
    /// envelope (`records = "/results"`). Read as a stream, whatever its size; written as an
    /// array.
    Json(JsonOptions),
    /// Compact tabular JSON: an array of rows of values, the first row holding the column
    /// names (or `columns` given), e.g. `[["id","name"],[1,"ant"]]`. Never inferred from an
    /// extension.
    JsonArray(JsonArrayOptions),
    /// An XML document whose records are the repeated elements at `record_path`
    /// (`"orders/order"`). Attributes are fields named `@name`, child elements fields, repeated
    /// children arrays, nested elements objects (or dotted names with `flatten`); the text
    /// beside attributes or children is `#text`. Values are the text as written (whitespace
    /// between child elements aside). An empty element is null and null is written as one, so
    /// an empty string reads back as null, and a one-item array as its item. DTDs are refused:
    /// no entity is ever expanded.
    Xml(XmlOptions),
    /// A spreadsheet: reads `.xlsx`, `.xlsm`, `.xls` and `.ods` workbooks (told apart by their
    /// content), one sheet under a header row; writes `.xlsx` only, with a bold, frozen,
    /// filtered header row and typed cells. Reading: whole numbers become integers, other
    /// numbers floats; text, booleans, dates and date-times (without an offset) keep their type;
    /// a time of day alone reads as `HH:MM:SS` text, a duration as ISO 8601 text (`PT36H30M`);
    /// an empty cell is null; rows without a value are skipped; an error cell (`#N/A`) makes its
    /// row a bad record. Writing: timestamps in UTC; integers beyond 2^53 and decimals of more
    /// than 15 significant digits as text (Excel would round them); nested values as JSON text.
    /// The columns are the records' fields in order of first appearance, however late a field
    /// first appears (a record without it has an empty cell): the cells are spooled to a
    /// temporary file (about the size of their values) and the workbook is written from it
    /// once the records end, holding one row in memory.
    Excel(ExcelOptions),
    /// Apache Parquet (`.parquet`), the columnar format of data lakes and warehouses, read and
    /// written by polars: needs longshore built with the `polars` feature. Columns are typed
    /// from the records (integers, exact decimals, floats, booleans, dates, date-times,
    /// timestamps in UTC; text, and nested values as JSON text); the first row group's columns
    /// are the file's, unless a `schema` declares them. Reading spools the file (Parquet keeps
    /// its schema at its end) and reads 32,768 rows at a time.
    Parquet(ParquetOptions),
}

/// A name a format answers to, as `from_name` and `infer` (by extension) take it.
struct Named {
    name: &'static str,
    /// Listed in messages and help (rarer spellings, `tab` and `xlsm`, are not).
    listed: bool,
    make: fn() -> FormatConfig,
}

/// Every name of every format, in one place: the `type` names and the extensions that imply
/// one. Messages and `convert --help` list them from here.
const NAMED: &[Named] = &[
    Named {
        name: "csv",
        listed: true,
        make: || FormatConfig::Csv(CsvOptions::default()),
    },
    Named {
        name: "tsv",
        listed: true,
        make: tab_separated,
    },
    Named {
        name: "tab",
        listed: false,
        make: tab_separated,
    },
    Named {
        name: "ndjson",
        listed: true,
        make: || FormatConfig::Ndjson(NdjsonOptions::default()),
    },
    Named {
        name: "jsonl",
        listed: true,
        make: || FormatConfig::Ndjson(NdjsonOptions::default()),
    },
    Named {
        name: "json",
        listed: true,
        make: || FormatConfig::Json(JsonOptions::default()),
    },
    Named {
        name: "json-array",
        listed: true,
        make: || FormatConfig::JsonArray(JsonArrayOptions::default()),
    },
    Named {
        name: "xml",
        listed: true,
        make: || FormatConfig::Xml(XmlOptions::default()),
    },
    Named {
        name: "excel",
        listed: true,
        make: workbook,
    },
    Named {
        name: "xlsx",
        listed: true,
        make: workbook,
    },
    Named {
        name: "xlsm",
        listed: false,
        make: workbook,
    },
    Named {
        name: "xls",
        listed: true,
        make: workbook,
    },
    Named {
        name: "ods",
        listed: true,
        make: workbook,
    },
    Named {
        name: "parquet",
        listed: true,
        make: || FormatConfig::Parquet(ParquetOptions::default()),
    },
];

fn tab_separated() -> FormatConfig {
    FormatConfig::Csv(CsvOptions {
        delimiter: '\t',
        ..CsvOptions::default()
    })
}

fn workbook() -> FormatConfig {
    FormatConfig::Excel(ExcelOptions::default())
}

impl FormatConfig {
    /// The format a path's extension implies, with default options; a `.gz` after it is
    /// looked through (`orders.csv.gz` is CSV, compressed).
    pub fn infer(path: &str) -> Option<FormatConfig> {
        let path = crate::names::strip_gzip_suffix(path).unwrap_or(path);
        let extension = Path::new(path).extension()?.to_str()?.to_ascii_lowercase();
        Self::from_name(&extension)
    }

    /// A format by its name or usual extension (`csv`, `tsv`, `ndjson`, `jsonl`, `xlsx`), default
    /// options.
    pub fn from_name(name: &str) -> Option<FormatConfig> {
        NAMED
            .iter()
            .find(|named| named.name == name)
            .map(|named| (named.make)())
    }

    /// The names `from_name` accepts (the common ones), for messages and help:
    /// `csv, tsv, ndjson, ...`.
    pub fn names() -> String {
        let listed: Vec<&str> = NAMED
            .iter()
            .filter(|named| named.listed)
            .map(|named| named.name)
            .collect();
        listed.join(", ")
    }

    /// Problems with the options, for `validate`, keyed as in a stage's table (`format.quote`).
    pub fn problems(&self) -> Vec<Invalid> {
        let problems = match self {
            FormatConfig::Csv(options) => options.problems(),
            FormatConfig::Ndjson(_) => Vec::new(),
            FormatConfig::Json(options) => options.problems(),
            FormatConfig::JsonArray(options) => options.problems(),
            FormatConfig::Xml(options) => options.problems(),
            FormatConfig::Excel(options) => options.problems(),
            FormatConfig::Parquet(options) => options.problems(),
        };
        problems
            .into_iter()
            .map(|(key, message)| Invalid::new(format!("format.{key}"), message))
            .collect()
    }

    /// The format of a stage with an optional `format` and a `path`: the one it names, else the
    /// one the path's extension implies.
    pub fn named_or_inferred(format: &Option<FormatConfig>, path: &str) -> Option<FormatConfig> {
        format.clone().or_else(|| FormatConfig::infer(path))
    }

    /// The problems of a stage's optional `format`, or, without one, that `path` implies none
    /// (or one this build cannot read or write: `.parquet` without the `polars` feature).
    pub fn stage_problems(format: &Option<FormatConfig>, path: &str) -> Vec<Invalid> {
        match (format, FormatConfig::infer(path)) {
            (Some(format), _) => format.problems(),
            (None, Some(inferred)) => inferred.problems(),
            (None, None) => vec![Invalid::new(
                "path",
                format!(
                    "cannot tell the format of `{path}` from its extension: set `format` (one of {})",
                    FormatConfig::names()
                ),
            )],
        }
    }

    /// The name of a text format, for messages (`CSV`); `None` for workbooks.
    fn text_name(&self) -> Option<&'static str> {
        match self {
            FormatConfig::Csv(_) => Some("CSV"),
            FormatConfig::Ndjson(_) => Some("NDJSON"),
            FormatConfig::Json(_) | FormatConfig::JsonArray(_) => Some("JSON"),
            FormatConfig::Xml(_) => Some("XML"),
            FormatConfig::Excel(_) | FormatConfig::Parquet(_) => None,
        }
    }

    fn is_xml(&self) -> bool {
        matches!(self, FormatConfig::Xml(_))
    }

    /// Whether the format's files are binary (workbooks, Parquet): text encodings do not
    /// apply, their size is known only once complete, and a workbook that is a zip archive
    /// itself (`.xlsx`, `.ods`) must not be unpacked by the input layer.
    pub fn is_binary(&self) -> bool {
        matches!(self, FormatConfig::Excel(_) | FormatConfig::Parquet(_))
    }

    /// The problem with giving a binary format a text `encoding`, if there is one.
    pub fn encoding_problem(&self, encoding: Option<TextEncoding>) -> Option<String> {
        let (name, files) = match self {
            FormatConfig::Excel(_) => ("excel", "workbooks"),
            FormatConfig::Parquet(_) => ("parquet", "Parquet files"),
            _ => return None,
        };
        encoding.map(|_| {
            format!("a text encoding does not apply to the {name} format: {files} are not text")
        })
    }

    /// Why this format cannot write a file at `path`, if it cannot: Excel workbooks are written
    /// as `.xlsx` only, and a file named otherwise would mislead its reader.
    pub fn output_problem(&self, path: &str) -> Option<String> {
        let extension = Path::new(path)
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match self {
            FormatConfig::Excel(_) if extension.as_deref() != Some("xlsx") => Some(format!(
                "the excel format writes .xlsx workbooks only: name the output `….xlsx`, not `{path}`"
            )),
            _ => None,
        }
    }

    /// A decoder reading `input`; `label` names the input in errors (usually its path).
    /// Text is read as UTF-8 unless a byte-order mark or `encoding` says otherwise; workbooks
    /// are read as they are. A record (row, line, array element, XML element) of more than
    /// `max_record_bytes` fails the input (see [`limit`]); workbooks are bound by their zip
    /// limits instead.
    pub fn decoder(
        &self,
        input: Box<dyn Read + Send>,
        label: &str,
        encoding: Option<TextEncoding>,
        max_record_bytes: u64,
    ) -> Result<Box<dyn Decoder>, CodecError> {
        // Text formats read UTF-8: the text layer makes it so. XML has its own say in its
        // encoding (the declaration); workbooks are not text.
        let utf8 = |input, keep_bom| {
            text::utf8_input(input, encoding, keep_bom)
                .map_err(|e| CodecError::io(label, "read", e))
        };
        let (input, warning) = match self.text_name() {
            Some(name) => sniff::checked(input, label, encoding, name, self.is_xml())?,
            None => (input, None),
        };
        let decoder: Box<dyn Decoder> = match self {
            // The csv crate skips a UTF-8 byte-order mark itself.
            FormatConfig::Csv(options) => Box::new(csv::CsvDecoder::new(
                utf8(input, true)?,
                label,
                options,
                max_record_bytes,
            )?),
            FormatConfig::Ndjson(_) => Box::new(ndjson::NdjsonDecoder::new(
                utf8(input, false)?,
                label,
                max_record_bytes,
            )),
            FormatConfig::Json(options) => Box::new(json::JsonDecoder::new(
                utf8(input, false)?,
                label,
                options,
                max_record_bytes,
            )),
            FormatConfig::JsonArray(options) => json_array::decoder(
                json::JsonInput::Stream(utf8(input, false)?, max_record_bytes),
                label,
                options,
            ),
            FormatConfig::Xml(options) => Box::new(xml::XmlDecoder::new(
                input,
                label,
                options,
                encoding.map(|e| e.0),
                max_record_bytes,
            )?),
            FormatConfig::Excel(options) => {
                Box::new(excel::ExcelDecoder::new(input, label, options)?)
            }
            #[cfg(feature = "polars")]
            FormatConfig::Parquet(_) => Box::new(parquet::ParquetDecoder::new(input, label)?),
            #[cfg(not(feature = "polars"))]
            FormatConfig::Parquet(_) => return Err(not_built(label)),
        };
        Ok(with_warning(decoder, warning))
    }

    /// A decoder of a whole document in memory (an API's page). JSON in UTF-8 is parsed right
    /// away, on this thread and without copying (the page's size bounds its records already);
    /// anything else as [`FormatConfig::decoder`] reads it.
    pub fn decoder_of_bytes(
        &self,
        bytes: Vec<u8>,
        label: &str,
        encoding: Option<TextEncoding>,
        max_record_bytes: u64,
    ) -> Result<Box<dyn Decoder>, CodecError> {
        let plain_utf8 = encoding.is_none_or(|e| e.0 == encoding_rs::UTF_8)
            && encoding_rs::Encoding::for_bom(&bytes).is_none();
        Ok(match self {
            FormatConfig::Json(options) if plain_utf8 => {
                let (bytes, warning) = sniff::checked_bytes(bytes, label, encoding, "JSON")?;
                let decoder = Box::new(json::JsonDecoder::from_bytes(bytes, label, options));
                with_warning(decoder, warning)
            }
            FormatConfig::JsonArray(options) if plain_utf8 => {
                let (bytes, warning) = sniff::checked_bytes(bytes, label, encoding, "JSON")?;
                let decoder = json_array::decoder(json::JsonInput::Bytes(bytes), label, options);
                with_warning(decoder, warning)
            }
            _ => self.decoder(
                Box::new(std::io::Cursor::new(bytes)),
                label,
                encoding,
                max_record_bytes,
            )?,
        })
    }

    /// An encoder writing to `output` in `encoding` (default UTF-8); `label` names the output
    /// in errors. For a stream (standard output, a request body): a CSV output's columns are
    /// those of the first batch of records (unless `columns` lists them).
    pub fn encoder(
        &self,
        output: Box<dyn Write + Send>,
        label: &str,
        encoding: Option<TextEncoding>,
    ) -> Result<Box<dyn Encoder>, CodecError> {
        self.make_encoder(output, label, encoding, false)
    }

    /// As [`FormatConfig::encoder`], for a file its owner rewrites when the encoder says its
    /// columns grew ([`Encoder::widened`], [`csv::widen`]): a CSV output takes fields that
    /// first appear after its header was written.
    pub fn file_encoder(
        &self,
        output: Box<dyn Write + Send>,
        label: &str,
        encoding: Option<TextEncoding>,
    ) -> Result<Box<dyn Encoder>, CodecError> {
        self.make_encoder(output, label, encoding, true)
    }

    fn make_encoder(
        &self,
        output: Box<dyn Write + Send>,
        label: &str,
        encoding: Option<TextEncoding>,
        rewritable: bool,
    ) -> Result<Box<dyn Encoder>, CodecError> {
        let output = text::encoded_output(output, encoding);
        Ok(match self {
            FormatConfig::Csv(options) => {
                let encoder = csv::CsvEncoder::new(output, label, options)?;
                match rewritable {
                    true => Box::new(encoder.widening()),
                    false => Box::new(encoder),
                }
            }
            FormatConfig::Ndjson(_) => Box::new(ndjson::NdjsonEncoder::new(output, label)),
            FormatConfig::Json(options) => Box::new(json::JsonEncoder::new(output, label, options)),
            FormatConfig::JsonArray(options) => {
                Box::new(json_array::JsonArrayEncoder::new(output, label, options))
            }
            FormatConfig::Xml(options) => {
                let declared = encoding.map_or("UTF-8", |e| e.name());
                Box::new(xml::XmlEncoder::new(output, label, options, declared))
            }
            FormatConfig::Excel(options) => {
                Box::new(excel::ExcelEncoder::new(output, label, options)?)
            }
            #[cfg(feature = "polars")]
            FormatConfig::Parquet(options) => {
                Box::new(parquet::ParquetEncoder::new(output, label, options))
            }
            #[cfg(not(feature = "polars"))]
            FormatConfig::Parquet(_) => return Err(not_built(label)),
        })
    }
}

/// What this build says of a format that needs the `polars` feature.
pub const NOT_BUILT: &str =
    "needs longshore built with the `polars` feature: `cargo build --release --features polars`";

#[cfg(not(feature = "polars"))]
fn not_built(label: &str) -> CodecError {
    CodecError::io(
        label,
        "use the parquet format",
        std::io::Error::other(format!("the parquet format {NOT_BUILT}")),
    )
}

/// Read/write buffer size for codecs: large enough that syscalls vanish from profiles.
pub(crate) const IO_BUFFER_BYTES: usize = 256 * 1024;

/// Where a text encoder's bytes go. Encoders gather whole records in a buffer of their own and
/// hand it over once it holds [`IO_BUFFER_BYTES`], so writes are few and large.
pub(crate) struct EncodedOutput {
    writer: Box<dyn Write + Send>,
    /// Names the output in errors.
    pub(crate) label: String,
}

impl EncodedOutput {
    pub(crate) fn new(writer: Box<dyn Write + Send>, label: &str) -> Self {
        EncodedOutput {
            writer,
            label: label.to_string(),
        }
    }

    /// A buffer to gather records in.
    pub(crate) fn buffer() -> Vec<u8> {
        Vec::with_capacity(IO_BUFFER_BYTES + 4096)
    }

    /// Writes `buffer` out (and empties it) once it is full.
    pub(crate) fn write_if_full(&mut self, buffer: &mut Vec<u8>) -> Result<(), CodecError> {
        match buffer.len() >= IO_BUFFER_BYTES {
            true => self.write(buffer),
            false => Ok(()),
        }
    }

    /// Writes `buffer` out and empties it.
    pub(crate) fn write(&mut self, buffer: &mut Vec<u8>) -> Result<(), CodecError> {
        let result = self.writer.write_all(buffer);
        buffer.clear();
        result.map_err(|source| CodecError::io(&self.label, "write", source))
    }

    /// Writes the rest of `buffer` and flushes the writer: the encoder's last step.
    pub(crate) fn finish(&mut self, buffer: &mut Vec<u8>) -> Result<(), CodecError> {
        self.write(buffer)?;
        self.writer
            .flush()
            .map_err(|source| CodecError::io(&self.label, "write", source))
    }
}

/// `decoder`, telling `warning` (found before it read anything) with its own warnings.
fn with_warning(decoder: Box<dyn Decoder>, warning: Option<String>) -> Box<dyn Decoder> {
    match warning {
        None => decoder,
        Some(warning) => Box::new(Warned {
            inner: decoder,
            warnings: vec![warning],
        }),
    }
}

struct Warned {
    inner: Box<dyn Decoder>,
    warnings: Vec<String>,
}

impl Decoder for Warned {
    fn next_batch(
        &mut self,
        out: &mut Vec<crate::record::Record>,
        max: usize,
    ) -> Result<bool, CodecError> {
        self.inner.next_batch(out, max)
    }

    fn take_warnings(&mut self) -> Vec<String> {
        let mut warnings = std::mem::take(&mut self.warnings);
        warnings.extend(self.inner.take_warnings());
        warnings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_inferred_from_extensions() {
        assert!(matches!(
            FormatConfig::infer("a/b.CSV"),
            Some(FormatConfig::Csv(_))
        ));
        assert!(matches!(
            FormatConfig::infer("x.jsonl"),
            Some(FormatConfig::Ndjson(_))
        ));
        let Some(FormatConfig::Csv(tsv)) = FormatConfig::infer("x.tsv") else {
            panic!("tsv is csv")
        };
        assert_eq!(tsv.delimiter, '\t');
        assert_eq!(FormatConfig::infer("x.xyz"), None);
        assert_eq!(FormatConfig::infer("noext"), None);
    }
}
