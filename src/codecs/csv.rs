//! CSV decoding and encoding on the `csv` crate, with the checks the crate leaves to its caller:
//! ragged rows, invalid UTF-8 and unterminated quotes are errors that name line and field,
//! because a silently shifted column is the worst thing a file exchange can deliver.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read, Write};

use schemars::JsonSchema;
use serde::Deserialize;

use super::IO_BUFFER_BYTES;
use super::TextEncoding;
use super::limit;
use super::text::read_at_least;
use crate::error::{CodecError, Position};
use crate::record::{FieldName, Record, Text, Value};
use crate::stage::{Decoder, Encoder, Widened};

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// CSV dialect and options, for reading and writing.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CsvOptions {
    /// Field separator, one ASCII character. Default `","`; `"\t"` for tab-separated files.
    pub delimiter: char,
    /// Quote character, one ASCII character. Default `"\""`.
    pub quote: char,
    /// Escape character inside quoted fields (e.g. `"\\"`): `\"` is a quote, `\\` the escape
    /// itself; `""` is then not a quote. Default: none, a quote inside a quoted field is written
    /// twice (`""`), as RFC 4180 says.
    pub escape: Option<char>,
    /// Whether the first row (after `skip_rows`) holds the column names. Default `true`.
    /// When writing, whether to write a header row.
    pub header: bool,
    /// Column names. Reading: names for a file without a header (default `column_1`,
    /// `column_2`, ...). Writing: which fields to write, in this order; a record with a field
    /// outside them fails the output, naming the record and the field. Default when writing:
    /// every field, in order of first appearance. The header holds the fields of the first
    /// batch of records (1,024); a field first seen later becomes a new last column, and the
    /// complete file is rewritten once (streamed, one row in memory; a second temporary copy
    /// on disk) with the rows before it given the `null` text there. Standard output cannot be
    /// rewritten: there such a field fails the output, naming it.
    pub columns: Option<Vec<String>>,
    /// Number of lines to skip at the start of the file before the header or first row, e.g. a
    /// report title. Default `0`.
    pub skip_rows: usize,
    /// Write a UTF-8 byte-order mark at the start of the file (some spreadsheet programs need it
    /// to read UTF-8). Default `false`. A BOM is always accepted when reading.
    pub bom: bool,
    /// The text that stands for a missing value (null), read and written. Default `""`: an
    /// empty field is null.
    pub null: String,
    /// Accept rows whose number of fields differs from the header. Missing fields become null,
    /// extra ones are named `column_N`. Default `false`: a ragged row is an error.
    pub flexible: bool,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            delimiter: ',',
            quote: '"',
            escape: None,
            header: true,
            columns: None,
            skip_rows: 0,
            bom: false,
            null: String::new(),
            flexible: false,
        }
    }
}

impl CsvOptions {
    pub(crate) fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        let single_byte = |name: &'static str, c: char, problems: &mut Vec<_>| {
            if !c.is_ascii() {
                problems.push((
                    name,
                    format!("`{name}` must be one ASCII character, not `{c}`"),
                ));
            }
        };
        single_byte("delimiter", self.delimiter, &mut problems);
        single_byte("quote", self.quote, &mut problems);
        if let Some(escape) = self.escape {
            single_byte("escape", escape, &mut problems);
        }
        if self.delimiter == self.quote {
            problems.push(("quote", "`quote` and `delimiter` must differ".to_string()));
        }
        if let Some(columns) = &self.columns
            && let Some(duplicate) = first_duplicate(columns.iter().map(String::as_str))
        {
            problems.push(("columns", format!("column `{duplicate}` is listed twice")));
        }
        problems
    }
}

fn first_duplicate<'a>(names: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let mut seen = std::collections::HashSet::new();
    names.into_iter().find(|name| !seen.insert(*name))
}

fn default_column_name(index: usize) -> FieldName {
    FieldName::from(format!("column_{}", index + 1))
}

/// Watches the bytes the CSV reader consumes: follows quoting as the `csv` crate does, to
/// detect a quoted field still open at the end of the input (the crate silently ends such a
/// field there, swallowing every row after the stray quote), and remembers where lines end, to
/// give true line numbers (the crate's own skip blank lines and count CRLF late). It also
/// stops a row growing past `max_record_bytes`: the crate buffers a whole row.
struct ScanReader<R> {
    inner: R,
    quoting: Quoting,
    bytes_passed: u64,
    /// Where the row being read starts (the end of the last row read).
    row_start: u64,
    max_record_bytes: u64,
    /// Offsets of the newlines passed but not yet counted into `lines_before`.
    newlines: VecDeque<u64>,
    lines_before: u64,
    at_eof: bool,
}

/// Where the bytes read so far leave the CSV grammar: the states of `csv_core`'s reader that
/// matter for quotes.
struct Quoting {
    state: QuoteState,
    /// The delimiter and line breaks.
    ends_field: [bool; 256],
    quote: u8,
    /// The escape character, when quotes are escaped rather than doubled.
    escape: Option<u8>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum QuoteState {
    FieldStart,
    Unquoted,
    Quoted,
    /// Just after an escape character inside a quoted field.
    Escaped,
    /// Just after a quote inside a quoted field: the end of the field, or a doubled quote.
    QuoteInQuoted,
}

impl Quoting {
    fn is_open(&self) -> bool {
        matches!(self.state, QuoteState::Quoted | QuoteState::Escaped)
    }

    fn feed(&mut self, bytes: &[u8]) {
        use QuoteState::*;
        let mut i = 0;
        while i < bytes.len() {
            match self.state {
                // Outside quotes only the next quote matters, and whether it opens a field: it
                // does right after a delimiter or line break (or at a field's start). So the
                // scan jumps from quote to quote.
                FieldStart | Unquoted => match memchr::memchr(self.quote, &bytes[i..]) {
                    Some(at) => {
                        let opens = match at {
                            0 => self.state == FieldStart,
                            _ => self.ends_field[usize::from(bytes[i + at - 1])],
                        };
                        i += at + 1;
                        self.state = if opens { Quoted } else { Unquoted };
                    }
                    None => {
                        let last = bytes[bytes.len() - 1];
                        self.state = if self.ends_field[usize::from(last)] {
                            FieldStart
                        } else {
                            Unquoted
                        };
                        i = bytes.len();
                    }
                },
                Quoted => {
                    let escape = self.escape.unwrap_or(self.quote);
                    match memchr::memchr2(self.quote, escape, &bytes[i..]) {
                        Some(at) => {
                            let byte = bytes[i + at];
                            i += at + 1;
                            self.state = if self.escape == Some(byte) {
                                Escaped
                            } else {
                                QuoteInQuoted
                            };
                        }
                        None => i = bytes.len(),
                    }
                }
                Escaped => {
                    i += 1;
                    self.state = Quoted;
                }
                QuoteInQuoted => {
                    let byte = bytes[i];
                    i += 1;
                    self.state = if byte == self.quote && self.escape.is_none() {
                        Quoted
                    } else if self.ends_field[usize::from(byte)] {
                        FieldStart
                    } else {
                        Unquoted
                    };
                }
            }
        }
    }
}

impl<R> ScanReader<R> {
    /// The 1-based line of the byte at `offset`; offsets must not decrease between calls.
    fn line_of(&mut self, offset: u64) -> u64 {
        while self.newlines.front().is_some_and(|&n| n < offset) {
            self.newlines.pop_front();
            self.lines_before += 1;
        }
        self.lines_before + 1
    }
}

/// The least the first read hands the csv crate, unless the input is shorter: the crate looks for
/// a byte-order mark in its first read only, and takes a first read of nothing but a mark for
/// the end of the input.
const FIRST_READ_BYTES: usize = UTF8_BOM.len() + 1;

impl<R: Read> Read for ScanReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // The crate asks for more only once it has taken in every byte passed so far.
        if self.bytes_passed - self.row_start > self.max_record_bytes {
            return Err(limit::too_large());
        }
        let n = if self.bytes_passed == 0 {
            read_at_least(&mut self.inner, buf, FIRST_READ_BYTES)?
        } else {
            self.inner.read(buf)?
        };
        self.at_eof |= n == 0 && !buf.is_empty();
        let chunk = &buf[..n];
        // The csv crate drops a byte-order mark at the very start; so does the quote tracking.
        let text = match chunk.strip_prefix(UTF8_BOM) {
            Some(rest) if self.bytes_passed == 0 => rest,
            _ => chunk,
        };
        self.quoting.feed(text);
        let base = self.bytes_passed;
        self.newlines
            .extend(memchr::memchr_iter(b'\n', chunk).map(|i| base + i as u64));
        self.bytes_passed += n as u64;
        Ok(n)
    }
}

/// How often `needle` occurs in `haystack`. Counting into a `u8` per 255-byte block lets the
/// compiler vectorize the loop (a `usize` count or `memchr`'s count run several times slower).
pub(crate) fn count_byte(haystack: &[u8], needle: u8) -> u64 {
    haystack
        .chunks(255)
        .map(|block| u64::from(block.iter().fold(0u8, |n, &b| n + u8::from(b == needle))))
        .sum()
}

/// The name of a field beyond the header's (only with `flexible`): `column_N`, made unique
/// against the header's names; `extra` caches the names made so far.
fn extra_name(header: &[FieldName], extra: &mut Vec<FieldName>, index: usize) -> FieldName {
    let wanted = index - header.len();
    while extra.len() <= wanted {
        let mut name = format!("column_{}", header.len() + extra.len() + 1);
        while header.iter().any(|n| **n == *name) {
            name.insert_str(0, "extra_");
        }
        extra.push(FieldName::from(name));
    }
    extra[wanted].clone()
}

pub struct CsvDecoder {
    reader: ::csv::Reader<ScanReader<BufReader<Box<dyn Read + Send>>>>,
    label: String,
    names: Vec<FieldName>,
    /// Names for fields beyond the header's, in flexible mode.
    extra_names: Vec<FieldName>,
    /// Where the expected number of fields comes from, for messages.
    width_from: &'static str,
    null: Vec<u8>,
    /// An error found after some good rows (a bad row, a failed read), reported by the next call.
    held: Option<CodecError>,
    /// Joins a bad row's fields back into text for the rejects file.
    delimiter: u8,
    flexible: bool,
    /// Lines consumed before the CSV reader started (`skip_rows`), to report true line numbers.
    skipped_lines: u64,
    records_read: u64,
    row: ::csv::ByteRecord,
    /// The line the current row starts on.
    row_line: u64,
    exhausted: bool,
    max_record_bytes: u64,
}

impl CsvDecoder {
    pub fn new(
        input: Box<dyn Read + Send>,
        label: &str,
        options: &CsvOptions,
        max_record_bytes: u64,
    ) -> Result<Self, CodecError> {
        let mut input = BufReader::with_capacity(IO_BUFFER_BYTES, input);
        let io_error = |source| CodecError::io(label, "read", source);
        let mut skipped_lines = 0;
        let mut line = Vec::new();
        for _ in 0..options.skip_rows {
            line.clear();
            let read = (&mut input)
                .take(max_record_bytes.saturating_add(1))
                .read_until(b'\n', &mut line)
                .map_err(io_error)?;
            if read == 0 {
                break;
            }
            if read as u64 > max_record_bytes && !line.ends_with(b"\n") {
                return Err(limit::record_too_large(
                    label,
                    Position::line(skipped_lines + 1),
                    max_record_bytes,
                ));
            }
            skipped_lines += 1;
        }
        let quote = options.quote as u8;
        // The `csv` crate drops a UTF-8 byte-order mark at the start itself.
        let reader = ::csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(options.delimiter as u8)
            .quote(quote)
            .escape(options.escape.map(|c| c as u8))
            .double_quote(options.escape.is_none())
            .buffer_capacity(IO_BUFFER_BYTES)
            .from_reader(ScanReader {
                inner: input,
                quoting: Quoting {
                    state: QuoteState::FieldStart,
                    ends_field: {
                        let mut ends = [false; 256];
                        for byte in [options.delimiter as u8, b'\n', b'\r'] {
                            ends[usize::from(byte)] = true;
                        }
                        ends
                    },
                    quote,
                    escape: options.escape.map(|c| c as u8),
                },
                bytes_passed: 0,
                row_start: 0,
                max_record_bytes,
                newlines: VecDeque::new(),
                lines_before: 0,
                at_eof: false,
            });
        let mut decoder = CsvDecoder {
            reader,
            label: label.to_string(),
            names: Vec::new(),
            extra_names: Vec::new(),
            width_from: "header",
            null: options.null.as_bytes().to_vec(),
            delimiter: options.delimiter as u8,
            held: None,
            flexible: options.flexible,
            skipped_lines,
            records_read: 0,
            row: ::csv::ByteRecord::new(),
            row_line: 0,
            exhausted: false,
            max_record_bytes,
        };
        if options.header {
            if decoder.read_row()? {
                decoder.names = decoder.header_names()?;
            } else {
                decoder.exhausted = true;
            }
        } else if let Some(columns) = &options.columns {
            decoder.names = columns
                .iter()
                .map(|c| FieldName::from(c.as_str()))
                .collect();
            decoder.width_from = "`columns` option";
        }
        Ok(decoder)
    }

    fn line(&self) -> u64 {
        self.row_line + self.skipped_lines
    }

    fn malformed(&self, position: Position, message: String, hint: Option<String>) -> CodecError {
        CodecError::malformed(self.label.clone(), position, message, hint)
    }

    /// An error about the current row only: reading can go on with the next one.
    fn bad_record(&self, position: Position, message: String, hint: Option<String>) -> CodecError {
        let mut raw = Vec::with_capacity(self.row.as_slice().len() + self.row.len());
        for (index, field) in self.row.iter().enumerate() {
            if index > 0 {
                raw.push(self.delimiter);
            }
            raw.extend_from_slice(field);
        }
        CodecError::BadRecord {
            malformed: Box::new(crate::error::Malformed {
                file: self.label.clone(),
                position,
                message,
                hint,
            }),
            raw: Some(String::from_utf8_lossy(&raw).into_owned()),
        }
    }

    /// Reads the next physical row into `self.row`; false at the end of the input.
    fn read_row(&mut self) -> Result<bool, CodecError> {
        match self.reader.read_byte_record(&mut self.row) {
            Ok(true) => {
                let end = self.reader.position().byte();
                let scan = self.reader.get_mut();
                scan.row_start = end;
                let end_line = scan.line_of(end.saturating_sub(1));
                let last_field = self.row.iter().next_back().unwrap_or_default();
                // A quote still open at the end of the file swallowed everything after it into
                // this row's last field.
                let swallowed_rest =
                    scan.at_eof && end == scan.bytes_passed && scan.quoting.is_open();
                // Such a row ends with its field's newline, not a row terminator, and
                // `line_of(end - 1)` does not count a newline at `end - 1`.
                let open_field_newline = u64::from(swallowed_rest && last_field.ends_with(b"\n"));
                let newlines_inside = count_byte(self.row.as_slice(), b'\n');
                // Every newline inside the row but a last one lies before `end - 1`.
                self.row_line = end_line + open_field_newline - newlines_inside;
                if swallowed_rest {
                    return Err(self.malformed(
                        Position::line(self.line()),
                        "a quoted field is never closed: its opening quote runs to the end of the file".into(),
                        Some("add the missing closing quote".into()),
                    ));
                }
                Ok(true)
            }
            Ok(false) => Ok(false),
            // Reading byte records without a field-count check, the crate fails only on I/O.
            Err(e) => {
                let message = e.to_string();
                Err(match e.into_kind() {
                    ::csv::ErrorKind::Io(source) if limit::is_too_large(&source) => {
                        let scan = self.reader.get_mut();
                        let line = scan.line_of(scan.row_start) + self.skipped_lines;
                        limit::record_too_large(
                            &self.label,
                            Position::line(line),
                            self.max_record_bytes,
                        )
                    }
                    ::csv::ErrorKind::Io(source) => CodecError::io(&self.label, "read", source),
                    _ => self.malformed(Position::line(self.line() + 1), message, None),
                })
            }
        }
    }

    fn header_names(&self) -> Result<Vec<FieldName>, CodecError> {
        let mut names = Vec::with_capacity(self.row.len());
        for (index, raw) in self.row.iter().enumerate() {
            let name = std::str::from_utf8(raw).map_err(|_| {
                self.malformed(
                    Position {
                        line: Some(self.line()),
                        field: Some(format!("{}", index + 1)),
                        ..Position::default()
                    },
                    "the header is not valid UTF-8".into(),
                    Some("set the file's encoding, or convert it to UTF-8".into()),
                )
            })?;
            names.push(if name.is_empty() {
                default_column_name(index)
            } else {
                FieldName::from(name)
            });
        }
        if let Some(duplicate) = first_duplicate(names.iter().map(|n| &**n)) {
            return Err(self.malformed(
                Position::line(self.line()),
                format!("column `{duplicate}` appears twice in the header"),
                Some(
                    "rename one of them in the file, or set `header = false` with `skip_rows = 1` and name the columns with `columns`"
                        .into(),
                ),
            ));
        }
        Ok(names)
    }

    fn row_to_record(&mut self) -> Result<Record, CodecError> {
        self.records_read += 1;
        if self.names.is_empty() {
            self.names = (0..self.row.len()).map(default_column_name).collect();
            self.width_from = "first row";
        }
        let width = self.row.len();
        if width != self.names.len() && !self.flexible {
            let spans_lines = self.row.iter().any(|f| f.contains(&b'\n'));
            let hint = if spans_lines {
                "a quoted field spans several lines here: check for a missing closing quote"
            } else {
                "fix the row, or set `flexible = true` in the csv format to accept ragged rows"
            };
            return Err(self.bad_record(
                Position {
                    line: Some(self.line()),
                    record: Some(self.records_read),
                    ..Position::default()
                },
                format!(
                    "expected {} field{} (as in the {}), found {width}",
                    self.names.len(),
                    if self.names.len() == 1 { "" } else { "s" },
                    self.width_from
                ),
                Some(hint.into()),
            ));
        }
        let mut record = Record::with_capacity(width.max(self.names.len()));
        // One UTF-8 check for the whole row; each field must then also start and end on a
        // character boundary (the row's bytes are the fields' bytes, back to back).
        let text = std::str::from_utf8(self.row.as_slice()).ok();
        for index in 0..width {
            let range = self.row.range(index).expect("index below the row's width");
            let raw = &self.row.as_slice()[range.clone()];
            let value = if raw == self.null.as_slice() {
                Value::Null
            } else {
                match text.and_then(|t| t.get(range)) {
                    Some(field) => Value::String(Text::from(field)),
                    None => match std::str::from_utf8(raw) {
                        Err(e) => return Err(self.invalid_utf8(index, raw, e)),
                        // Valid alone but not as a slice of the row: cannot happen, since
                        // a field valid on its own starts and ends on boundaries.
                        Ok(field) => Value::String(Text::from(field)),
                    },
                }
            };
            let name = match self.names.get(index) {
                Some(name) => name.clone(),
                None => extra_name(&self.names, &mut self.extra_names, index),
            };
            record.push(name, value);
        }
        for name in self.names.iter().skip(width) {
            record.push(name.clone(), Value::Null);
        }
        Ok(record)
    }

    fn invalid_utf8(&self, index: usize, raw: &[u8], e: std::str::Utf8Error) -> CodecError {
        let field = match self.names.get(index) {
            Some(name) => format!("`{name}` (column {})", index + 1),
            None => format!("column {}", index + 1),
        };
        self.bad_record(
            Position {
                line: Some(self.line()),
                record: Some(self.records_read),
                field: Some(field),
                ..Position::default()
            },
            format!(
                "invalid UTF-8 (byte 0x{:02X} at offset {} of the field)",
                raw[e.valid_up_to()],
                e.valid_up_to()
            ),
            Some(
                "the file is probably in another encoding (e.g. windows-1252): convert it to UTF-8"
                    .into(),
            ),
        )
    }
}

impl Decoder for CsvDecoder {
    fn next_batch(&mut self, out: &mut Vec<Record>, max: usize) -> Result<bool, CodecError> {
        if let Some(error) = self.held.take() {
            return Err(error);
        }
        let start = out.len();
        while !self.exhausted && out.len() - start < max {
            let record = match self.read_row() {
                Ok(false) => {
                    self.exhausted = true;
                    break;
                }
                Ok(true) => self.row_to_record(),
                Err(error) => Err(error),
            };
            match record {
                Ok(record) => out.push(record),
                // Records first: the error comes with the next call.
                Err(error) if out.len() > start => {
                    self.held = Some(error);
                    break;
                }
                Err(error) => return Err(error),
            }
        }
        Ok(out.len() > start)
    }
}

/// CSV text out. A field is quoted only when it must be, as the `csv` crate's
/// `QuoteStyle::Necessary` does (so its reader reads back exactly what was written): when it
/// holds the delimiter, the quote, a line break, or the escape character (where quotes are
/// escaped rather than doubled); a row of one empty field is written as `""`, since readers
/// skip empty lines. Writing the text here rather than through `csv::Writer` cut the cost of
/// encoding, the larger half of NDJSON -> CSV.
struct CsvText {
    buffer: Vec<u8>,
    row_start: usize,
    delimiter: u8,
    quote: u8,
    escape: Option<u8>,
    /// Bytes that make a field need quotes.
    special: [bool; 256],
    /// Whether a field was written: the file's first field is quoted when it starts with
    /// U+FEFF, which readers (ours included) would take for a byte-order mark and drop.
    written: bool,
}

impl CsvText {
    fn new(options: &CsvOptions) -> Self {
        let (delimiter, quote) = (options.delimiter as u8, options.quote as u8);
        let escape = options.escape.map(|c| c as u8);
        let mut special = [false; 256];
        for byte in [delimiter, quote, b'\n', b'\r'].into_iter().chain(escape) {
            special[usize::from(byte)] = true;
        }
        CsvText {
            buffer: Vec::with_capacity(IO_BUFFER_BYTES + 4096),
            row_start: 0,
            delimiter,
            quote,
            escape,
            special,
            written: false,
        }
    }

    fn field(&mut self, first: bool, bytes: &[u8]) {
        if !first {
            self.buffer.push(self.delimiter);
        }
        let leading_mark = !self.written && bytes.starts_with(UTF8_BOM);
        self.written = true;
        if !leading_mark && !bytes.iter().any(|&b| self.special[usize::from(b)]) {
            self.buffer.extend_from_slice(bytes);
            return;
        }
        let quote = self.quote;
        // A quote is doubled, or preceded by the escape character, which then needs escaping
        // itself (the `csv` crate's writer leaves it bare, and its reader then drops it).
        let escape = self.escape.unwrap_or(quote);
        self.buffer.push(quote);
        let mut rest = bytes;
        while let Some(at) = memchr::memchr2(quote, escape, rest) {
            self.buffer.extend_from_slice(&rest[..at]);
            self.buffer.extend_from_slice(&[escape, rest[at]]);
            rest = &rest[at + 1..];
        }
        self.buffer.extend_from_slice(rest);
        self.buffer.push(quote);
    }

    fn end_row(&mut self) {
        if self.buffer.len() == self.row_start {
            self.buffer.extend_from_slice(&[self.quote, self.quote]);
        }
        self.buffer.push(b'\n');
        self.row_start = self.buffer.len();
    }
}

pub struct CsvEncoder {
    output: Box<dyn Write + Send>,
    text: CsvText,
    label: String,
    /// The columns to write; set by `start` when not configured.
    columns: Option<Vec<FieldName>>,
    /// Whether the columns are the configured `columns` (a fixed layout).
    configured: bool,
    /// Whether a field that appears after the header was written becomes a column
    /// ([`CsvEncoder::widening`]), instead of an error.
    widening: bool,
    /// Set once the columns grew after rows were written: how the file starts.
    widened: Option<Widened>,
    write_header: bool,
    bom: bool,
    started: bool,
    null: String,
    records_written: u64,
}

impl CsvEncoder {
    pub fn new(
        output: Box<dyn Write + Send>,
        label: &str,
        options: &CsvOptions,
    ) -> Result<Self, CodecError> {
        Ok(CsvEncoder {
            output,
            text: CsvText::new(options),
            label: label.to_string(),
            columns: options
                .columns
                .as_ref()
                .map(|c| c.iter().map(|n| FieldName::from(n.as_str())).collect()),
            configured: options.columns.is_some(),
            widening: false,
            widened: None,
            write_header: options.header,
            bom: options.bom,
            started: false,
            null: options.null.clone(),
            records_written: 0,
        })
    }

    /// For an output its owner can rewrite once complete (a file): a field that first appears
    /// after the header was written becomes a new last column, and [`Encoder::widened`] then
    /// says how to rewrite the file ([`widen`]). Without `columns` only.
    pub fn widening(mut self) -> Self {
        self.widening = true;
        self
    }

    /// Writes what comes before the records: the byte-order mark and the header. The columns
    /// are the configured ones, else the fields of `first` (the first batch), in order of
    /// first appearance.
    fn start(&mut self, first: &[Record]) {
        self.started = true;
        let columns: Vec<FieldName> = match self.columns.take() {
            Some(columns) => columns,
            None => columns_of(first),
        };
        if self.bom {
            self.text.buffer.extend_from_slice(UTF8_BOM);
            self.text.row_start = self.text.buffer.len();
        }
        if self.write_header && !columns.is_empty() {
            for (index, column) in columns.iter().enumerate() {
                self.text.field(index == 0, column.as_bytes());
            }
            self.text.end_row();
        }
        self.columns = Some(columns);
    }

    fn flush_text(&mut self) -> Result<(), CodecError> {
        let result = self.output.write_all(&self.text.buffer);
        self.text.buffer.clear();
        self.text.row_start = 0;
        result.map_err(|source| CodecError::io(&self.label, "write", source))
    }

    /// Writes `record` as a row of `columns`; returns the number of its fields that are
    /// columns.
    fn write_row(&mut self, columns: &[FieldName], record: &Record) -> usize {
        let mut matched = 0;
        for (index, column) in columns.iter().enumerate() {
            // Records usually arrive with their fields in column order: try that slot first.
            let value = match record.entry(index) {
                Some((name, value)) if FieldName::ptr_eq(name, column) || name == column => {
                    Some(value)
                }
                _ => record.get(column),
            };
            if value.is_some() {
                matched += 1;
            }
            let mut numbers = (itoa::Buffer::new(), ryu::Buffer::new());
            let text;
            let bytes: &[u8] = match value {
                None | Some(Value::Null) => self.null.as_bytes(),
                Some(Value::String(s) | Value::Decimal(s)) => s.as_bytes(),
                Some(Value::Integer(i)) => numbers.0.format(*i).as_bytes(),
                Some(Value::Float(f)) if f.is_finite() => numbers.1.format_finite(*f).as_bytes(),
                Some(other) => {
                    text = other.to_text().unwrap_or_default();
                    text.as_bytes()
                }
            };
            self.text.field(index == 0, bytes);
        }
        self.text.end_row();
        matched
    }

    fn write_record(
        &mut self,
        columns: &mut Vec<FieldName>,
        record: &Record,
    ) -> Result<(), CodecError> {
        self.records_written += 1;
        let row_start = self.text.buffer.len();
        if self.write_row(columns, record) == record.len() {
            return self.flush_if_full();
        }
        let extra = record
            .names()
            .find(|name| !columns.contains(name))
            .map_or_else(String::new, |n| n.to_string());
        if self.widening && !self.configured {
            // The row again, with the new fields as the last columns.
            self.text.buffer.truncate(row_start);
            self.text.row_start = row_start;
            let widened = self.widened.get_or_insert_with(|| Widened {
                columns: Vec::new(),
                first_width: columns.len(),
                has_header: self.write_header && !columns.is_empty(),
            });
            for name in record.names() {
                if !columns.contains(name) {
                    columns.push(name.clone());
                }
            }
            widened.columns.clone_from(columns);
            self.write_row(columns, record);
            return self.flush_if_full();
        }
        let (message, hint) = if self.configured {
            (
                "the record has a field that is not one of the csv format's `columns`",
                "add it to `columns`, or drop it with a `select` transform",
            )
        } else {
            (
                "the record has a field that is not a column of this CSV file: its columns are \
                 the fields of the first batch of records, and this output cannot be rewritten \
                 to add one",
                "write to a file (a file is rewritten with the new column), or list every wanted field in the csv format's `columns`",
            )
        };
        Err(CodecError::malformed(
            self.label.clone(),
            Position {
                record: Some(self.records_written),
                field: Some(format!("`{extra}`")),
                ..Position::default()
            },
            message,
            Some(hint.into()),
        ))
    }

    fn flush_if_full(&mut self) -> Result<(), CodecError> {
        if self.text.buffer.len() >= IO_BUFFER_BYTES {
            self.flush_text()?;
        }
        Ok(())
    }
}

/// The fields of `records` in order of first appearance.
fn columns_of(records: &[Record]) -> Vec<FieldName> {
    let Some(first) = records.first() else {
        return Vec::new();
    };
    let mut columns: Vec<FieldName> = first.names().cloned().collect();
    for record in &records[1..] {
        let same = record.len() == columns.len()
            && record
                .names()
                .zip(&columns)
                .all(|(name, column)| FieldName::ptr_eq(name, column) || name == column);
        if same {
            continue;
        }
        for name in record.names() {
            if !columns.contains(name) {
                columns.push(name.clone());
            }
        }
    }
    columns
}

impl Encoder for CsvEncoder {
    fn write_batch(&mut self, records: &[Record]) -> Result<(), CodecError> {
        if records.is_empty() {
            return Ok(());
        }
        if !self.started {
            self.start(records);
        }
        let mut columns = self.columns.take().expect("`start` sets the columns");
        let result = records
            .iter()
            .try_for_each(|record| self.write_record(&mut columns, record));
        self.columns = Some(columns);
        result
    }

    fn widened(&self) -> Option<Widened> {
        self.widened.clone()
    }

    fn finish(mut self: Box<Self>) -> Result<(), CodecError> {
        if !self.started {
            self.start(&[]);
        }
        self.flush_text()?;
        self.output
            .flush()
            .map_err(|source| CodecError::io(&self.label, "write", source))
    }
}

/// Rewrites a complete CSV `input` that [`CsvEncoder::widening`] wrote into `output`, as if
/// every column had been known from the start: the header row becomes `widened.columns`, and
/// each row gets the null text for the columns it lacks. Streams, one row at a time; the
/// fields' bytes are copied as read, quoted as the encoder quotes them.
pub fn widen(
    input: Box<dyn Read + Send>,
    output: Box<dyn Write + Send>,
    label: &str,
    options: &CsvOptions,
    encoding: Option<TextEncoding>,
    widened: &Widened,
) -> Result<(), CodecError> {
    let read_error = |source| CodecError::io(label, "read back", source);
    let input = super::text::utf8_input(input, encoding, false).map_err(read_error)?;
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(options.delimiter as u8)
        .quote(options.quote as u8)
        .escape(options.escape.map(|c| c as u8))
        .double_quote(options.escape.is_none())
        .buffer_capacity(IO_BUFFER_BYTES)
        .from_reader(input);
    let mut output = super::text::encoded_output(output, encoding);
    let write_error = |source| CodecError::io(label, "write", source);
    let mut text = CsvText::new(options);
    if options.bom {
        text.buffer.extend_from_slice(UTF8_BOM);
        text.row_start = text.buffer.len();
    }
    if options.header {
        for (index, column) in widened.columns.iter().enumerate() {
            text.field(index == 0, column.as_bytes());
        }
        text.end_row();
    }
    let mut row = ::csv::ByteRecord::new();
    let mut header_to_skip = widened.has_header;
    let read = |reader: &mut ::csv::Reader<_>, row: &mut _| {
        reader
            .read_byte_record(row)
            .map_err(|e| CodecError::io(label, "read back", io::Error::other(e.to_string())))
    };
    while read(&mut reader, &mut row)? {
        if std::mem::take(&mut header_to_skip) {
            continue;
        }
        // A record without fields, written before there were columns, is the row `""`.
        let fields = match widened.first_width == 0 && row.len() == 1 && row[0].is_empty() {
            true => 0,
            false => row.len(),
        };
        for (index, field) in row.iter().take(fields).enumerate() {
            text.field(index == 0, field);
        }
        for index in fields..widened.columns.len() {
            text.field(index == 0, options.null.as_bytes());
        }
        text.end_row();
        if text.buffer.len() >= IO_BUFFER_BYTES {
            output.write_all(&text.buffer).map_err(write_error)?;
            text.buffer.clear();
            text.row_start = 0;
        }
    }
    output.write_all(&text.buffer).map_err(write_error)?;
    output.flush().map_err(write_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codecs::limit::DEFAULT_MAX_RECORD_BYTES;
    use crate::codecs::testing::{FailingRead, SharedBuffer, read_all};

    #[test]
    fn a_row_larger_than_the_limit_fails_before_it_is_buffered() {
        let decode_limited = |input: Vec<u8>, skip_rows| {
            let options = CsvOptions {
                skip_rows,
                ..CsvOptions::default()
            };
            read_all(&mut CsvDecoder::new(
                Box::new(io::Cursor::new(input)),
                "t.csv",
                &options,
                100,
            )?)
        };
        let mut input = b"a,b\n1,2\n\"x\ny\",".to_vec();
        input.extend(std::iter::repeat_n(b'z', 1_000_000));
        let error = decode_limited(input, 0).unwrap_err().to_string();
        assert_eq!(
            error,
            "t.csv: line 3: a record is larger than `max_record_bytes` = 100 (100 bytes). raise the source's `max_record_bytes` if such records are expected"
        );
        let error = decode_limited(vec![b'z'; 1000], 1).unwrap_err().to_string();
        assert!(
            error.starts_with("t.csv: line 1: a record is larger"),
            "{error}"
        );
        let fits = format!("a\n{}\n", "y".repeat(99));
        assert_eq!(decode_limited(fits.into_bytes(), 0).unwrap().len(), 1);
    }

    fn decode(input: &str, options: &CsvOptions) -> Result<Vec<Record>, CodecError> {
        read_all(&mut CsvDecoder::new(
            Box::new(io::Cursor::new(input.as_bytes().to_vec())),
            "t.csv",
            options,
            DEFAULT_MAX_RECORD_BYTES,
        )?)
    }

    fn texts(records: &[Record]) -> Vec<Vec<(String, Option<String>)>> {
        records
            .iter()
            .map(|r| {
                r.iter()
                    .map(|(n, v)| (n.to_string(), v.to_text().map(|t| t.into_owned())))
                    .collect()
            })
            .collect()
    }

    fn s(name: &str, value: &str) -> (String, Option<String>) {
        (name.into(), Some(value.into()))
    }

    #[test]
    fn reads_header_quotes_bom_and_nulls() {
        let input = "\u{feff}id,name,note\n1,\"Smith, J\",\"said \"\"hi\"\"\"\n2,Zoë,\n";
        let records = decode(input, &CsvOptions::default()).unwrap();
        assert_eq!(
            texts(&records),
            vec![
                vec![
                    s("id", "1"),
                    s("name", "Smith, J"),
                    s("note", "said \"hi\"")
                ],
                vec![s("id", "2"), s("name", "Zoë"), ("note".into(), None)],
            ]
        );
    }

    #[test]
    fn skips_rows_and_names_columns_without_header() {
        let options = CsvOptions {
            header: false,
            skip_rows: 2,
            delimiter: ';',
            null: "NULL".into(),
            ..CsvOptions::default()
        };
        let records = decode("Report\n\n1;NULL\n", &options).unwrap();
        assert_eq!(
            texts(&records),
            vec![vec![s("column_1", "1"), ("column_2".into(), None)]]
        );
    }

    #[test]
    fn ragged_row_is_an_error_with_its_line() {
        let err = decode("a,b\n1,2\n\n3,4,5\n", &CsvOptions::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "t.csv: line 4, record 2: expected 2 fields (as in the header), found 3. \
             fix the row, or set `flexible = true` in the csv format to accept ragged rows"
        );
    }

    #[test]
    fn line_numbers_count_blank_lines_crlf_and_multiline_fields() {
        let err = decode(
            "a,b\r\n1,2\r\n\r\n3,\"x\r\ny\"\r\n4\r\n",
            &CsvOptions::default(),
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("t.csv: line 6, record 3:"),
            "{err}"
        );
        let err = decode("a,b\n1,\"x\ny\"\n\n5\n", &CsvOptions::default()).unwrap_err();
        assert!(
            err.to_string().starts_with("t.csv: line 5, record 2:"),
            "{err}"
        );
    }

    #[test]
    fn counts_bytes_across_blocks() {
        let mut haystack = vec![b'"'; 600];
        haystack.extend_from_slice(b"a\"b");
        assert_eq!(count_byte(&haystack, b'"'), 601);
        assert_eq!(count_byte(b"", b'"'), 0);
    }

    #[test]
    fn flexible_pads_and_names_extra_fields() {
        let options = CsvOptions {
            flexible: true,
            ..CsvOptions::default()
        };
        let records = decode("a,column_3\n1\n1,2,3\n4,5\n", &options).unwrap();
        assert_eq!(
            texts(&records),
            vec![
                vec![s("a", "1"), ("column_3".into(), None)],
                vec![s("a", "1"), s("column_3", "2"), s("extra_column_3", "3")],
                vec![s("a", "4"), s("column_3", "5")],
            ]
        );
    }

    #[test]
    fn unterminated_quote_in_last_column_is_an_error() {
        let err = decode("a,b\n1,\"open\n2,3\n", &CsvOptions::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "t.csv: line 2: a quoted field is never closed: its opening quote runs to the end \
             of the file. add the missing closing quote"
        );
    }

    /// Found by fuzzing: the error came back with the good rows before it in the same batch,
    /// which the `Decoder` contract rules out (the caller would drop the rows or fail on them).
    #[test]
    fn an_error_after_good_rows_comes_with_the_next_call() {
        let mut decoder = CsvDecoder::new(
            Box::new(io::Cursor::new(b"a\n1\n\"open\n2\n".to_vec())),
            "t.csv",
            &CsvOptions::default(),
            DEFAULT_MAX_RECORD_BYTES,
        )
        .unwrap();
        let mut out = Vec::new();
        assert!(decoder.next_batch(&mut out, 10).unwrap());
        assert_eq!(texts(&out), vec![vec![s("a", "1")]]);
        let error = decoder.next_batch(&mut out, 10).unwrap_err();
        assert!(error.to_string().contains("never closed"), "{error}");
        assert_eq!(out.len(), 1);

        let failing = io::Cursor::new(b"a\n1\n".to_vec()).chain(FailingRead);
        let mut decoder = CsvDecoder::new(
            Box::new(failing),
            "t.csv",
            &CsvOptions::default(),
            DEFAULT_MAX_RECORD_BYTES,
        )
        .unwrap();
        let mut out = Vec::new();
        assert!(decoder.next_batch(&mut out, 10).unwrap());
        assert!(matches!(
            decoder.next_batch(&mut out, 10),
            Err(CodecError::Io { .. })
        ));
        assert_eq!(out.len(), 1);
    }

    /// Found by fuzzing: when the input arrived a few bytes a read (a pipe, a slow download),
    /// the first read was the byte-order mark alone, and the csv crate took it for an empty file.
    #[test]
    fn a_bom_read_on_its_own_is_not_the_end() {
        /// Hands over one byte a read.
        struct Trickle(io::Cursor<Vec<u8>>);
        impl Read for Trickle {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let end = buf.len().min(1);
                self.0.read(&mut buf[..end])
            }
        }
        for input in ["\u{feff}id,name\n1,a\n", "\u{feff}\u{feff}id,name\n1,a\n"] {
            let trickle = Trickle(io::Cursor::new(input.as_bytes().to_vec()));
            // The decoder itself: `FormatConfig::decoder` looks at the first bytes at once.
            let options = CsvOptions::default();
            let mut decoder = CsvDecoder::new(
                Box::new(trickle),
                "t.csv",
                &options,
                DEFAULT_MAX_RECORD_BYTES,
            )
            .unwrap();
            let mut out = Vec::new();
            while decoder.next_batch(&mut out, 10).unwrap() {}
            let name = input.trim_start_matches('\u{feff}');
            let name = &input[3..input.len() - name.len()];
            assert_eq!(
                texts(&out),
                vec![vec![s(&format!("{name}id"), "1"), s("name", "a")]]
            );
        }
    }

    #[test]
    fn a_stray_quote_is_no_false_alarm_for_a_multiline_last_field() {
        let records = decode("a,b\n12\" pipe,x\n1,\"two\nlines\"", &CsvOptions::default()).unwrap();
        assert_eq!(texts(&records)[1], vec![s("a", "1"), s("b", "two\nlines")]);
    }

    #[test]
    fn an_open_quote_at_the_start_is_found_behind_a_bom() {
        let err = decode("\u{feff}\"a,b\n1,2\n", &CsvOptions::default()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("t.csv: line 1: a quoted field is never closed"),
            "{err}"
        );
    }

    #[test]
    fn invalid_utf8_names_line_and_field() {
        let mut bytes = b"id,name\n1,Caf".to_vec();
        bytes.extend_from_slice(&[0xE9, b'\n']);
        let mut decoder = CsvDecoder::new(
            Box::new(io::Cursor::new(bytes)),
            "t.csv",
            &CsvOptions::default(),
            DEFAULT_MAX_RECORD_BYTES,
        )
        .unwrap();
        let err = decoder.next_batch(&mut Vec::new(), 10).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "t.csv: line 2, record 1, field `name` (column 2): invalid UTF-8 (byte 0xE9 at offset 3 of the field)"
            ),
            "{err}"
        );
    }

    #[test]
    fn duplicate_header_is_an_error() {
        let err = decode("a,b,a\n", &CsvOptions::default()).unwrap_err();
        assert!(
            err.to_string().contains("column `a` appears twice"),
            "{err}"
        );
    }

    #[test]
    fn writes_header_from_first_record_and_null_token() {
        let records = decode("id,name\n1,\"x,y\"\n2,\n", &CsvOptions::default()).unwrap();
        let options = CsvOptions {
            null: "\\N".into(),
            bom: true,
            ..CsvOptions::default()
        };
        let buffer = SharedBuffer::default();
        let mut encoder =
            Box::new(CsvEncoder::new(Box::new(buffer.clone()), "o.csv", &options).unwrap());
        encoder.write_batch(&records).unwrap();
        encoder.finish().unwrap();
        assert_eq!(buffer.text(), "\u{feff}id,name\n1,\"x,y\"\n2,\\N\n");
    }

    #[test]
    fn configured_columns_get_a_header_even_without_records() {
        let options = CsvOptions {
            columns: Some(vec!["b".into(), "a".into()]),
            ..CsvOptions::default()
        };
        let records = decode("a,b\n1,2\n", &CsvOptions::default()).unwrap();
        for (input, expected) in [(&records[..], "b,a\n2,1\n"), (&[][..], "b,a\n")] {
            let buffer = SharedBuffer::default();
            let mut encoder =
                Box::new(CsvEncoder::new(Box::new(buffer.clone()), "o.csv", &options).unwrap());
            encoder.write_batch(input).unwrap();
            encoder.finish().unwrap();
            assert_eq!(buffer.text(), expected);
        }
    }

    #[test]
    fn quotes_only_where_needed_like_the_csv_crate() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["a", "b,c", "say \"hi\"", "x\ny", "cr\r"],
                "a,\"b,c\",\"say \"\"hi\"\"\",\"x\ny\",\"cr\r\"\n",
            ),
            (&[""], "\"\"\n"),
            (&["", ""], ",\n"),
            (&[" spaced ", "é"], " spaced ,é\n"),
        ];
        for (fields, expected) in cases {
            let mut text = CsvText::new(&CsvOptions::default());
            for (i, f) in fields.iter().enumerate() {
                text.field(i == 0, f.as_bytes());
            }
            text.end_row();
            assert_eq!(String::from_utf8(text.buffer).unwrap(), *expected);
        }
        let mut escaped = CsvText::new(&CsvOptions {
            escape: Some('\\'),
            ..CsvOptions::default()
        });
        escaped.field(true, b"a\"b");
        escaped.field(false, b"back\\slash");
        escaped.end_row();
        assert_eq!(
            String::from_utf8(escaped.buffer).unwrap(),
            "\"a\\\"b\",\"back\\\\slash\"\n"
        );
    }

    #[test]
    fn escaped_quotes_and_escapes_read_back_unchanged() {
        let options = CsvOptions {
            escape: Some('\\'),
            ..CsvOptions::default()
        };
        let input: Record = [("a", "say \"hi\""), ("b", "C:\\dir\\"), ("c", "\\\"")]
            .into_iter()
            .map(|(n, v)| (FieldName::from(n), Value::String(v.into())))
            .collect();
        let buffer = SharedBuffer::default();
        let mut encoder =
            Box::new(CsvEncoder::new(Box::new(buffer.clone()), "o.csv", &options).unwrap());
        encoder.write_batch(std::slice::from_ref(&input)).unwrap();
        encoder.finish().unwrap();
        assert_eq!(decode(&buffer.text(), &options).unwrap(), [input]);
    }

    #[test]
    fn a_field_outside_the_columns_is_an_error_not_a_silent_drop() {
        let options = CsvOptions {
            columns: Some(vec!["id".into()]),
            ..CsvOptions::default()
        };
        let records = decode("id,extra\n1,2\n", &CsvOptions::default()).unwrap();
        let mut encoder =
            CsvEncoder::new(Box::new(SharedBuffer::default()), "o.csv", &options).unwrap();
        let err = encoder.write_batch(&records).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "o.csv: record 1, field `extra`: the record has a field that is not one of the csv format's `columns`. add it to `columns`"
            ),
            "{err}"
        );
    }

    fn row(fields: &[(&str, &str)]) -> Record {
        fields
            .iter()
            .map(|(n, v)| (FieldName::from(*n), Value::String((*v).into())))
            .collect()
    }

    /// Encodes `batches` as a file sink does, rewriting the output when its columns grew.
    fn encode_widening(batches: &[Vec<Record>], options: &CsvOptions) -> String {
        let format = crate::codecs::FormatConfig::Csv(options.clone());
        let buffer = SharedBuffer::default();
        let mut encoder = format
            .file_encoder(Box::new(buffer.clone()), "o.csv", None)
            .unwrap();
        for batch in batches {
            encoder.write_batch(batch).unwrap();
        }
        let widened = encoder.widened();
        encoder.finish().unwrap();
        let Some(widened) = widened else {
            return buffer.text();
        };
        let rewritten = SharedBuffer::default();
        widen(
            Box::new(io::Cursor::new(buffer.bytes())),
            Box::new(rewritten.clone()),
            "o.csv",
            options,
            None,
            &widened,
        )
        .unwrap();
        rewritten.text()
    }

    #[test]
    fn the_columns_are_the_fields_of_the_first_batch_in_order_of_appearance() {
        let batch = vec![
            row(&[("id", "1")]),
            row(&[("note", "x"), ("id", "2")]),
            row(&[("id", "3"), ("city", "Zürich")]),
        ];
        let buffer = SharedBuffer::default();
        let mut encoder = Box::new(
            CsvEncoder::new(Box::new(buffer.clone()), "o.csv", &CsvOptions::default()).unwrap(),
        );
        encoder.write_batch(&batch).unwrap();
        assert_eq!(encoder.widened(), None);
        encoder.finish().unwrap();
        assert_eq!(
            buffer.text(),
            "id,note,city\n1,,\nx,2,\n3,,Zürich\n".replace("x,2", "2,x")
        );
    }

    #[test]
    fn a_stream_refuses_a_field_after_its_first_batch() {
        let mut encoder = CsvEncoder::new(
            Box::new(SharedBuffer::default()),
            "o.csv",
            &CsvOptions::default(),
        )
        .unwrap();
        encoder.write_batch(&[row(&[("id", "1")])]).unwrap();
        let error = encoder
            .write_batch(&[row(&[("id", "2")]), row(&[("id", "3"), ("late", "x")])])
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "o.csv: record 3, field `late`: the record has a field that is not a column of this \
             CSV file: its columns are the fields of the first batch of records, and this output \
             cannot be rewritten to add one. write to a file (a file is rewritten with the new \
             column), or list every wanted field in the csv format's `columns`"
        );
    }

    #[test]
    fn a_file_widens_its_header_and_pads_the_rows_written_before() {
        let batches = [
            vec![row(&[("id", "1"), ("note", "two\nlines, \"quoted\"")])],
            vec![
                row(&[("id", "2")]),
                row(&[("late", "é"), ("id", "3")]),
                row(&[("id", "4"), ("later", ""), ("late", "x")]),
            ],
        ];
        assert_eq!(
            encode_widening(&batches, &CsvOptions::default()),
            "id,note,late,later\n1,\"two\nlines, \"\"quoted\"\"\",,\n2,,,\n3,,é,\n4,,x,\"\"\n"
                .replace(",\"\"\n", ",\n")
        );
        let options = CsvOptions {
            delimiter: ';',
            null: "NULL".into(),
            bom: true,
            ..CsvOptions::default()
        };
        assert_eq!(
            encode_widening(&batches, &options),
            "\u{feff}id;note;late;later\n1;\"two\nlines, \"\"quoted\"\"\";NULL;NULL\n2;NULL;NULL;NULL\n3;NULL;é;NULL\n4;NULL;x;\n"
        );
        let headless = CsvOptions {
            header: false,
            ..CsvOptions::default()
        };
        let one_by_one: Vec<Vec<Record>> = batches[1].iter().map(|r| vec![r.clone()]).collect();
        assert_eq!(encode_widening(&one_by_one, &headless), "2,,\n3,é,\n4,x,\n");
    }

    #[test]
    fn records_without_fields_before_the_first_column_become_empty_rows() {
        let options = CsvOptions {
            null: "NULL".into(),
            ..CsvOptions::default()
        };
        let batches = [
            vec![Record::new()],
            vec![row(&[("id", "1"), ("name", "a")])],
        ];
        assert_eq!(
            encode_widening(&batches, &options),
            "id,name\nNULL,NULL\n1,a\n"
        );
    }

    #[test]
    fn options_are_checked() {
        let options = CsvOptions {
            delimiter: '§',
            quote: '§',
            ..CsvOptions::default()
        };
        let problems: Vec<_> = options.problems().into_iter().map(|(k, _)| k).collect();
        assert_eq!(problems, ["delimiter", "quote", "quote"]);
    }
}
