//! Writing records as an `.xlsx` workbook with rust_xlsxwriter in constant-memory mode. A
//! field may first appear in any record (XML and JSON exports leave out empty elements), and a
//! constant-memory sheet cannot go back to its header row; so the records' cells go to a spool
//! file first, in a compact binary form, and `finish` writes the workbook from it once every
//! column is known: each row goes to rust_xlsxwriter's temporary file as it is written, and the
//! workbook is zipped straight into the output (a stream: no seeking). Memory holds one row,
//! the columns and their widths, never the rows.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};

use rust_xlsxwriter::{Format, Workbook, Worksheet, XlsxError};

use super::{EXCEL_MAX_COLUMNS, EXCEL_MAX_ROWS, ExcelOptions, OnSheetFull};
use crate::codecs::IO_BUFFER_BYTES;
use crate::error::{CodecError, Position};
use crate::record::{FieldName, Record, Value};
use crate::stage::Encoder;
/// Cell formats of dates and date-times.
const DATE_FORMAT: &str = "yyyy-mm-dd";
const DATE_TIME_FORMAT: &str = "yyyy-mm-dd hh:mm:ss";

/// Column widths (in characters) the text of a column is fitted within.
const NARROWEST_COLUMN: usize = 6;
const WIDEST_COLUMN: usize = 60;

/// Integers up to 2^53 are exact as the floats Excel stores; larger ones are written as text.
const LARGEST_EXACT_INTEGER: u64 = 1 << 53;

/// Significant digits Excel keeps of a number.
const EXCEL_DIGITS: usize = 15;

/// The most UTF-16 code units Excel holds in a cell's text.
const EXCEL_MAX_TEXT_UNITS: usize = 32_767;

pub struct ExcelEncoder {
    output: Box<dyn Write + Send>,
    label: String,
    formats: Formats,
    sheet_name: String,
    on_sheet_full: OnSheetFull,
    formula_protection: bool,
    /// The fields of the records so far, in order of first appearance: the columns.
    columns: Vec<FieldName>,
    /// Each column's index.
    column_of: HashMap<FieldName, u16>,
    /// The widest text of each column so far, in characters.
    widths: Vec<usize>,
    /// The records' cells, as [`SpooledCell`]s.
    spool: BufWriter<File>,
    /// Rows a sheet holds, the header included (lowered by tests).
    pub(super) rows_per_sheet: u32,
    records: u64,
}

struct Formats {
    header: Format,
    header_quoted: Format,
    date: Format,
    date_time: Format,
    quoted: Format,
}

impl ExcelEncoder {
    pub fn new(
        output: Box<dyn Write + Send>,
        label: &str,
        options: &ExcelOptions,
    ) -> Result<Self, CodecError> {
        let header = Format::new().set_bold();
        let spool = tempfile::tempfile()
            .map_err(|source| CodecError::io(label, "create a spool file for", source))?;
        Ok(ExcelEncoder {
            output,
            label: label.to_string(),
            formats: Formats {
                header_quoted: header.clone().set_quote_prefix(),
                header,
                date: Format::new().set_num_format(DATE_FORMAT),
                date_time: Format::new().set_num_format(DATE_TIME_FORMAT),
                quoted: Format::new().set_quote_prefix(),
            },
            sheet_name: options.sheet_name.clone(),
            on_sheet_full: options.on_sheet_full,
            formula_protection: options.formula_protection,
            columns: Vec::new(),
            column_of: HashMap::new(),
            widths: Vec::new(),
            spool: BufWriter::with_capacity(IO_BUFFER_BYTES, spool),
            rows_per_sheet: EXCEL_MAX_ROWS,
            records: 0,
        })
    }

    fn position(&self, field: Option<&str>) -> Position {
        Position {
            record: Some(self.records),
            field: field.map(|name| format!("`{name}`")),
            ..Position::default()
        }
    }

    /// The column of the field `name` at `index` in its record, a new last one for a field
    /// not seen before.
    fn column(&mut self, index: usize, name: &FieldName) -> Result<u16, CodecError> {
        // Records usually arrive with their fields in column order: try that slot first.
        if let Some(column) = self.columns.get(index)
            && (FieldName::ptr_eq(column, name) || column == name)
        {
            return Ok(index as u16);
        }
        if let Some(&column) = self.column_of.get(name) {
            return Ok(column);
        }
        if self.columns.len() >= EXCEL_MAX_COLUMNS as usize {
            return Err(CodecError::malformed(
                &self.label,
                self.position(Some(name)),
                format!(
                    "the field would be column {} of the sheet; a sheet holds at most {EXCEL_MAX_COLUMNS} columns",
                    self.columns.len() + 1
                ),
                Some(
                    "select fewer fields, or move some into a nested value (written as JSON text)"
                        .into(),
                ),
            ));
        }
        let column = self.columns.len() as u16;
        self.columns.push(name.clone());
        self.column_of.insert(name.clone(), column);
        // The filter button takes about two characters of the header cell.
        self.widths.push(name.chars().count() + 2);
        Ok(column)
    }

    /// The sheet is full when the records so far (and the header rows of the sheets they
    /// fill) are more than its rows.
    fn check_room(&self) -> Result<(), CodecError> {
        let rows_of_records = u64::from(self.rows_per_sheet - 1);
        if self.on_sheet_full == OnSheetFull::Fail && self.records > rows_of_records {
            return Err(CodecError::malformed(
                &self.label,
                self.position(None),
                format!(
                    "the sheet is full: a sheet holds {} rows, the header included",
                    self.rows_per_sheet
                ),
                Some(
                    "set `on_sheet_full = \"new-sheet\"` in the excel format to go on on another sheet"
                        .into(),
                ),
            ));
        }
        Ok(())
    }

    fn spool_record(&mut self, record: &Record) -> Result<(), CodecError> {
        self.records += 1;
        self.check_room()?;
        for (index, (name, value)) in record.iter().enumerate() {
            let column = self.column(index, name)?;
            let Some((cell, width)) = SpooledCell::of(value) else {
                continue;
            };
            if let SpooledCell::Text(text) = &cell
                && text.len() > EXCEL_MAX_TEXT_UNITS
                && text.encode_utf16().count() > EXCEL_MAX_TEXT_UNITS
            {
                return Err(CodecError::malformed(
                    &self.label,
                    self.position(Some(name)),
                    format!(
                        "cannot write the value: {}",
                        XlsxError::MaxStringLengthExceeded
                    ),
                    None,
                ));
            }
            let widest = &mut self.widths[usize::from(column)];
            *widest = (*widest).max(width);
            cell.write_to(column, &mut self.spool)
                .map_err(|source| CodecError::io(&self.label, "write the spool file of", source))?;
        }
        self.spool
            .write_all(&END_OF_ROW.to_le_bytes())
            .map_err(|source| CodecError::io(&self.label, "write the spool file of", source))
    }

    /// The workbook, from the spooled rows.
    fn workbook(&mut self) -> Result<Workbook, CodecError> {
        let xlsx = |e| xlsx_error(&self.label, e);
        let spool_error =
            |source| CodecError::io(&self.label, "read back the spool file of", source);
        // The same records give the same bytes: the workbook says it was created at a fixed
        // time (its zip entries are dated 1980-01-01 as well), not when it was written.
        let mut workbook = Workbook::new();
        let created = rust_xlsxwriter::ExcelDateTime::from_ymd(1980, 1, 1)
            .expect("1980-01-01 is a date Excel knows");
        workbook
            .set_properties(&rust_xlsxwriter::DocProperties::new().set_creation_datetime(&created));
        self.spool.flush().map_err(spool_error)?;
        let mut spool = self.spool.get_ref().try_clone().map_err(spool_error)?;
        spool.rewind().map_err(spool_error)?;
        let mut spool = BufReader::with_capacity(IO_BUFFER_BYTES, spool);
        let mut sheets = 0;
        let mut row = self.rows_per_sheet;
        let mut cell_text = String::new();
        for _ in 0..self.records.max(1) {
            if row == self.rows_per_sheet {
                let worksheet = workbook
                    .add_worksheet_with_constant_memory()
                    .map_err(xlsx)?;
                worksheet
                    .set_name(sheet_name(&self.sheet_name, sheets))
                    .map_err(xlsx)?;
                self.write_header(worksheet).map_err(xlsx)?;
                sheets += 1;
                row = 1;
            }
            if self.records == 0 {
                break;
            }
            let worksheet = workbook.worksheet_from_index(sheets - 1).map_err(xlsx)?;
            let mut cells = Cells {
                worksheet,
                formats: &self.formats,
                formula_protection: self.formula_protection,
                row,
            };
            while let Some((column, cell)) =
                SpooledCell::read_from(&mut spool, &mut cell_text).map_err(spool_error)?
            {
                cells.write(column, cell).map_err(xlsx)?;
            }
            row += 1;
        }
        if !self.columns.is_empty() {
            for index in 0..sheets {
                let last_row = if index + 1 == sheets {
                    row - 1
                } else {
                    self.rows_per_sheet - 1
                };
                let worksheet = workbook.worksheet_from_index(index).map_err(xlsx)?;
                self.finish_sheet(worksheet, last_row).map_err(xlsx)?;
            }
        }
        Ok(workbook)
    }

    fn write_header(&self, worksheet: &mut Worksheet) -> Result<(), XlsxError> {
        if self.columns.is_empty() {
            return Ok(());
        }
        for (column, name) in self.columns.iter().enumerate() {
            let format = if self.formula_protection && looks_like_formula(name) {
                &self.formats.header_quoted
            } else {
                &self.formats.header
            };
            worksheet.write_string_with_format(0, column as u16, &**name, format)?;
        }
        worksheet.set_freeze_panes(1, 0)?;
        Ok(())
    }

    /// The filter and the column widths: what can only be set once every row is written.
    fn finish_sheet(&self, worksheet: &mut Worksheet, last_row: u32) -> Result<(), XlsxError> {
        let last_column = (self.columns.len() - 1) as u16;
        worksheet.autofilter(0, 0, last_row, last_column)?;
        for (column, width) in self.widths.iter().enumerate() {
            let width = (*width).clamp(NARROWEST_COLUMN, WIDEST_COLUMN) + 1;
            worksheet.set_column_width(column as u16, width as f64)?;
        }
        Ok(())
    }
}

impl Encoder for ExcelEncoder {
    fn write_batch(&mut self, records: &[Record]) -> Result<(), CodecError> {
        records
            .iter()
            .try_for_each(|record| self.spool_record(record))
    }

    fn finish(mut self: Box<Self>) -> Result<(), CodecError> {
        let mut workbook = self.workbook()?;
        workbook
            .save_to_writer(&mut self.output)
            .map_err(|e| xlsx_error(&self.label, e))?;
        self.output
            .flush()
            .map_err(|source| CodecError::io(&self.label, "write", source))
    }
}

/// The name of sheet `index` (from 0): `base`, then the next numbers, continuing a number
/// `base` ends in (`Sheet1`, `Sheet2`) or starting at 2 (`Orders`, `Orders 2`), cut to fit
/// Excel's 31 characters.
pub(super) fn sheet_name(base: &str, index: usize) -> String {
    if index == 0 {
        return base.to_string();
    }
    let digits_at = base.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (stem, separator, number) = match base[digits_at..].parse::<usize>() {
        Ok(number) => (&base[..digits_at], "", number + index),
        Err(_) => (base, " ", index + 1),
    };
    let number = number.to_string();
    let room = 31 - separator.len() - number.len();
    let stem: String = stem.chars().take(room).collect();
    format!("{stem}{separator}{number}")
}

/// Text a spreadsheet would take for a formula if a user typed it (OWASP's list).
fn looks_like_formula(text: &str) -> bool {
    text.starts_with(['=', '+', '-', '@', '\t', '\r'])
}

fn xlsx_error(label: &str, error: XlsxError) -> CodecError {
    match error {
        XlsxError::IoError(source) => CodecError::io(label, "write", source),
        other => CodecError::io(label, "write", std::io::Error::other(other.to_string())),
    }
}

/// The column number that ends a spooled row.
const END_OF_ROW: u16 = u16::MAX;

/// A cell as the spool holds it: the value as the cell it becomes.
#[derive(Debug, PartialEq)]
enum SpooledCell<'a> {
    Bool(bool),
    Number(f64),
    /// A date cell: the Excel serial number.
    Date(f64),
    /// A date-time cell: the Excel serial number.
    DateTime(f64),
    Text(Cow<'a, str>),
}

impl<'a> SpooledCell<'a> {
    /// The cell that keeps the type of `value` (none for null), and its width in characters.
    fn of(value: &'a Value) -> Option<(Self, usize)> {
        let text = |text: Cow<'a, str>| {
            let width = text.chars().count();
            (SpooledCell::Text(text), width)
        };
        Some(match value {
            Value::Null => return None,
            Value::Bool(b) => (SpooledCell::Bool(*b), 5),
            Value::Integer(i) if i.unsigned_abs() <= LARGEST_EXACT_INTEGER => (
                SpooledCell::Number(*i as f64),
                itoa::Buffer::new().format(*i).len(),
            ),
            Value::Float(f) if f.is_finite() => (
                SpooledCell::Number(*f),
                ryu::Buffer::new().format_finite(*f).len(),
            ),
            Value::Decimal(decimal) => match exact_number(decimal) {
                Some(number) => (SpooledCell::Number(number), decimal.len()),
                None => text(Cow::Borrowed(decimal)),
            },
            Value::String(string) => text(Cow::Borrowed(string)),
            Value::Timestamp(at) => match excel_serial(at.naive_utc()) {
                Some(serial) => (SpooledCell::DateTime(serial), DATE_TIME_FORMAT.len()),
                None => text(value.to_text().expect("not null")),
            },
            Value::DateTime(at) => match excel_serial(*at) {
                Some(serial) => (SpooledCell::DateTime(serial), DATE_TIME_FORMAT.len()),
                None => text(value.to_text().expect("not null")),
            },
            Value::Date(date) => match excel_serial(date.and_time(chrono::NaiveTime::MIN)) {
                Some(serial) => (SpooledCell::Date(serial), DATE_FORMAT.len()),
                None => text(value.to_text().expect("a date has text")),
            },
            // Integers beyond 2^53, infinities and NaN, arrays and objects.
            other => text(other.to_text().expect("not null")),
        })
    }

    /// Appends the cell, in `column`, to the spool: the column (2 bytes), a tag byte, then the
    /// number (8 bytes) or the text's length (4 bytes) and bytes.
    fn write_to(&self, column: u16, spool: &mut impl Write) -> io::Result<()> {
        spool.write_all(&column.to_le_bytes())?;
        match self {
            SpooledCell::Bool(b) => spool.write_all(&[u8::from(*b)]),
            SpooledCell::Number(n) => spool.write_all(&[2]).and(spool.write_all(&n.to_le_bytes())),
            SpooledCell::Date(n) => spool.write_all(&[3]).and(spool.write_all(&n.to_le_bytes())),
            SpooledCell::DateTime(n) => {
                spool.write_all(&[4]).and(spool.write_all(&n.to_le_bytes()))
            }
            SpooledCell::Text(text) => {
                // Shorter than Excel's 32,767 characters: checked before.
                spool.write_all(&[5])?;
                spool.write_all(&(text.len() as u32).to_le_bytes())?;
                spool.write_all(text.as_bytes())
            }
        }
    }

    /// The next cell of the row being read and its column, or `None` at the row's end. `text`
    /// holds a text cell's text.
    fn read_from<'t>(
        spool: &mut impl Read,
        text: &'t mut String,
    ) -> io::Result<Option<(u16, SpooledCell<'t>)>> {
        let mut column = [0; 2];
        spool.read_exact(&mut column)?;
        let column = u16::from_le_bytes(column);
        if column == END_OF_ROW {
            return Ok(None);
        }
        let mut tag = [0];
        spool.read_exact(&mut tag)?;
        let mut number = || -> io::Result<f64> {
            let mut bytes = [0; 8];
            spool.read_exact(&mut bytes)?;
            Ok(f64::from_le_bytes(bytes))
        };
        let cell = match tag[0] {
            0 | 1 => SpooledCell::Bool(tag[0] == 1),
            2 => SpooledCell::Number(number()?),
            3 => SpooledCell::Date(number()?),
            4 => SpooledCell::DateTime(number()?),
            _ => {
                let mut length = [0; 4];
                spool.read_exact(&mut length)?;
                let mut bytes = std::mem::take(text).into_bytes();
                bytes.clear();
                bytes.resize(u32::from_le_bytes(length) as usize, 0);
                spool.read_exact(&mut bytes)?;
                *text = String::from_utf8(bytes).map_err(io::Error::other)?;
                SpooledCell::Text(Cow::Borrowed(text.as_str()))
            }
        };
        Ok(Some((column, cell)))
    }
}

/// Writes the cells of one row.
struct Cells<'a> {
    worksheet: &'a mut Worksheet,
    formats: &'a Formats,
    formula_protection: bool,
    row: u32,
}

impl Cells<'_> {
    fn write(&mut self, column: u16, cell: SpooledCell) -> Result<(), XlsxError> {
        let (row, formats) = (self.row, self.formats);
        match cell {
            SpooledCell::Bool(b) => self.worksheet.write_boolean(row, column, b)?,
            SpooledCell::Number(n) => self.worksheet.write_number(row, column, n)?,
            SpooledCell::Date(serial) => {
                self.worksheet
                    .write_number_with_format(row, column, serial, &formats.date)?
            }
            SpooledCell::DateTime(serial) => {
                self.worksheet
                    .write_number_with_format(row, column, serial, &formats.date_time)?
            }
            SpooledCell::Text(text) if self.formula_protection && looks_like_formula(&text) => self
                .worksheet
                .write_string_with_format(row, column, &*text, &formats.quoted)?,
            SpooledCell::Text(text) => self.worksheet.write_string(row, column, &*text)?,
        };
        Ok(())
    }
}

/// The Excel serial number of a date-time (days since 1899-12-30, the time as the fraction of
/// a day, to the millisecond Excel keeps), from 1900-03-01 (before it Excel counts a
/// 1900-02-29 that never was) to 9999-12-31.
fn excel_serial(at: chrono::NaiveDateTime) -> Option<f64> {
    use chrono::{Datelike, NaiveDate};
    let first = NaiveDate::from_ymd_opt(1900, 3, 1)?.and_time(chrono::NaiveTime::MIN);
    if at < first || at.year() > 9999 {
        return None;
    }
    let epoch = NaiveDate::from_ymd_opt(1899, 12, 30)?.and_time(chrono::NaiveTime::MIN);
    let millis = (at - epoch).num_milliseconds();
    Some(millis as f64 / super::MILLIS_PER_DAY)
}

/// A decimal as the number Excel stores, when it has at most the 15 significant digits Excel
/// keeps (so the cell reads back as the same number; trailing zeros are not kept).
fn exact_number(text: &str) -> Option<f64> {
    let mantissa = text.split(['e', 'E']).next()?;
    let digits: Vec<u8> = mantissa
        .bytes()
        .filter(u8::is_ascii_digit)
        .skip_while(|&b| b == b'0')
        .collect();
    let significant = digits.len() - digits.iter().rev().take_while(|&&b| b == b'0').count();
    if significant > EXCEL_DIGITS {
        return None;
    }
    text.parse::<f64>().ok().filter(|f| f.is_finite())
}
