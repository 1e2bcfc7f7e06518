//! Writing records as an `.xlsx` workbook with rust_xlsxwriter in constant-memory mode: each
//! row goes to a temporary file as it is written, and `finish` zips the workbook straight into
//! the output (a stream: no seeking), so memory does not grow with the number of rows.

use std::io::Write;

use rust_xlsxwriter::{Format, Workbook, Worksheet, XlsxError};

use super::{EXCEL_MAX_COLUMNS, EXCEL_MAX_ROWS, ExcelOptions, OnSheetFull};
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

pub struct ExcelEncoder {
    output: Box<dyn Write + Send>,
    label: String,
    workbook: Workbook,
    formats: Formats,
    sheet_name: String,
    on_sheet_full: OnSheetFull,
    formula_protection: bool,
    /// Set by the first record.
    columns: Option<Vec<FieldName>>,
    /// The widest text of each column so far, in characters.
    widths: Vec<usize>,
    /// Sheets added so far; rows go to the last one.
    sheets: usize,
    /// The next row to write on the current sheet (0-based; row 0 is the header).
    row: u32,
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
        // The same records give the same bytes: the workbook says it was created at a fixed
        // time (its zip entries are dated 1980-01-01 as well), not when it was written.
        let mut workbook = Workbook::new();
        let created = rust_xlsxwriter::ExcelDateTime::from_ymd(1980, 1, 1)
            .expect("1980-01-01 is a date Excel knows");
        workbook
            .set_properties(&rust_xlsxwriter::DocProperties::new().set_creation_datetime(&created));
        let mut encoder = ExcelEncoder {
            output,
            label: label.to_string(),
            workbook,
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
            columns: None,
            widths: Vec::new(),
            sheets: 0,
            row: 0,
            rows_per_sheet: EXCEL_MAX_ROWS,
            records: 0,
        };
        encoder.add_sheet()?;
        Ok(encoder)
    }

    /// Adds the next sheet, with the header row when the columns are known.
    fn add_sheet(&mut self) -> Result<(), CodecError> {
        let name = sheet_name(&self.sheet_name, self.sheets);
        let worksheet = self
            .workbook
            .add_worksheet_with_constant_memory()
            .map_err(|e| xlsx_error(&self.label, e))?;
        worksheet
            .set_name(&name)
            .map_err(|e| xlsx_error(&self.label, e))?;
        self.sheets += 1;
        self.row = 0;
        if self.columns.is_some() {
            self.write_header()?;
        }
        Ok(())
    }

    fn write_header(&mut self) -> Result<(), CodecError> {
        let columns = self.columns.as_ref().expect("the columns are known");
        let worksheet = self
            .workbook
            .worksheet_from_index(self.sheets - 1)
            .map_err(|e| xlsx_error(&self.label, e))?;
        for (column, name) in columns.iter().enumerate() {
            let format = if self.formula_protection && looks_like_formula(name) {
                &self.formats.header_quoted
            } else {
                &self.formats.header
            };
            worksheet
                .write_string_with_format(0, column as u16, &**name, format)
                .map_err(|e| xlsx_error(&self.label, e))?;
        }
        worksheet
            .set_freeze_panes(1, 0)
            .map_err(|e| xlsx_error(&self.label, e))?;
        self.row = 1;
        Ok(())
    }

    fn start(&mut self, first: &Record) -> Result<(), CodecError> {
        let columns: Vec<FieldName> = first.names().cloned().collect();
        if columns.len() > EXCEL_MAX_COLUMNS as usize {
            return Err(CodecError::malformed(
                &self.label,
                Position {
                    record: Some(1),
                    ..Position::default()
                },
                format!(
                    "the record has {} fields; a sheet holds at most {EXCEL_MAX_COLUMNS} columns",
                    columns.len()
                ),
                None,
            ));
        }
        // The filter button takes about two characters of the header cell.
        self.widths = columns
            .iter()
            .map(|name| name.chars().count() + 2)
            .collect();
        self.columns = Some(columns);
        self.write_header()
    }

    fn write_record(&mut self, record: &Record) -> Result<(), CodecError> {
        self.records += 1;
        let columns = self.columns.as_ref().expect("the header is written first");
        let extra = record.names().find(|name| !columns.contains(name));
        if let Some(extra) = extra {
            return Err(CodecError::malformed(
                &self.label,
                Position {
                    record: Some(self.records),
                    field: Some(format!("`{extra}`")),
                    ..Position::default()
                },
                "the record has a field that is not one of the columns (the first record's fields)",
                Some("select the same fields for every record".into()),
            ));
        }
        if self.row >= self.rows_per_sheet {
            match self.on_sheet_full {
                OnSheetFull::Fail => {
                    return Err(CodecError::malformed(
                        &self.label,
                        Position {
                            record: Some(self.records),
                            ..Position::default()
                        },
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
                OnSheetFull::NewSheet => self.add_sheet()?,
            }
        }
        let columns = self.columns.as_ref().expect("the header is written first");
        let worksheet = self
            .workbook
            .worksheet_from_index(self.sheets - 1)
            .map_err(|e| xlsx_error(&self.label, e))?;
        let mut cells = Cells {
            worksheet,
            formats: &self.formats,
            formula_protection: self.formula_protection,
            row: self.row,
        };
        for (column, name) in columns.iter().enumerate() {
            let Some(value) = record.get(name) else {
                continue;
            };
            let width = cells.write(column as u16, value).map_err(|e| {
                CodecError::malformed(
                    &self.label,
                    Position {
                        record: Some(self.records),
                        field: Some(format!("`{name}`")),
                        ..Position::default()
                    },
                    format!("cannot write the value: {e}"),
                    None,
                )
            })?;
            let widest = &mut self.widths[column];
            *widest = (*widest).max(width);
        }
        self.row += 1;
        Ok(())
    }

    /// Filters, column widths: what can only be set once every row is written.
    fn finish_sheets(&mut self) -> Result<(), CodecError> {
        // No records, or records without fields (`{}`): nothing to filter.
        let Some(columns) = self.columns.as_ref().filter(|columns| !columns.is_empty()) else {
            return Ok(());
        };
        let last_column = (columns.len() - 1) as u16;
        for index in 0..self.sheets {
            let worksheet = self
                .workbook
                .worksheet_from_index(index)
                .map_err(|e| xlsx_error(&self.label, e))?;
            let last_row = if index + 1 == self.sheets {
                self.row - 1
            } else {
                self.rows_per_sheet - 1
            };
            worksheet
                .autofilter(0, 0, last_row, last_column)
                .map_err(|e| xlsx_error(&self.label, e))?;
            for (column, width) in self.widths.iter().enumerate() {
                let width = (*width).clamp(NARROWEST_COLUMN, WIDEST_COLUMN) + 1;
                worksheet
                    .set_column_width(column as u16, width as f64)
                    .map_err(|e| xlsx_error(&self.label, e))?;
            }
        }
        Ok(())
    }
}

impl Encoder for ExcelEncoder {
    fn write_batch(&mut self, records: &[Record]) -> Result<(), CodecError> {
        for record in records {
            if self.columns.is_none() {
                self.start(record)?;
            }
            self.write_record(record)?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<(), CodecError> {
        self.finish_sheets()?;
        self.workbook
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

/// Writes the cells of one row.
struct Cells<'a> {
    worksheet: &'a mut Worksheet,
    formats: &'a Formats,
    formula_protection: bool,
    row: u32,
}

impl Cells<'_> {
    /// Writes `value` as the cell that keeps its type; returns its width in characters.
    fn write(&mut self, column: u16, value: &Value) -> Result<usize, XlsxError> {
        let row = self.row;
        Ok(match value {
            Value::Null => 0,
            Value::Bool(b) => {
                self.worksheet.write_boolean(row, column, *b)?;
                5
            }
            Value::Integer(i) if i.unsigned_abs() <= LARGEST_EXACT_INTEGER => {
                self.worksheet.write_number(row, column, *i as f64)?;
                itoa::Buffer::new().format(*i).len()
            }
            Value::Float(f) if f.is_finite() => {
                self.worksheet.write_number(row, column, *f)?;
                ryu::Buffer::new().format_finite(*f).len()
            }
            Value::Decimal(text) => match exact_number(text) {
                Some(number) => {
                    self.worksheet.write_number(row, column, number)?;
                    text.len()
                }
                None => self.text(column, text)?,
            },
            Value::String(text) => self.text(column, text)?,
            Value::Timestamp(at) => self.date_time(column, at.naive_utc(), value)?,
            Value::DateTime(at) => self.date_time(column, *at, value)?,
            Value::Date(date) => match excel_serial(date.and_time(chrono::NaiveTime::MIN)) {
                Some(serial) => {
                    let format = &self.formats.date;
                    self.worksheet
                        .write_number_with_format(row, column, serial, format)?;
                    DATE_FORMAT.len()
                }
                None => self.text(column, &value.to_text().expect("a date has text"))?,
            },
            // Integers beyond 2^53, infinities and NaN, arrays and objects.
            other => {
                let text = other.to_text().expect("not null");
                self.text(column, &text)?
            }
        })
    }

    fn text(&mut self, column: u16, text: &str) -> Result<usize, XlsxError> {
        if self.formula_protection && looks_like_formula(text) {
            let format = &self.formats.quoted;
            self.worksheet
                .write_string_with_format(self.row, column, text, format)?;
        } else {
            self.worksheet.write_string(self.row, column, text)?;
        }
        Ok(text.chars().count())
    }

    /// `at` as a date-time cell, or `value` as text when Excel cannot show `at`.
    fn date_time(
        &mut self,
        column: u16,
        at: chrono::NaiveDateTime,
        value: &Value,
    ) -> Result<usize, XlsxError> {
        match excel_serial(at) {
            Some(serial) => {
                let format = &self.formats.date_time;
                self.worksheet
                    .write_number_with_format(self.row, column, serial, format)?;
                Ok(DATE_TIME_FORMAT.len())
            }
            None => self.text(column, &value.to_text().expect("not null")),
        }
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
