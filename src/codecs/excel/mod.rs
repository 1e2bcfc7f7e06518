//! `excel`: spreadsheets. Partners and back offices send and expect workbooks, so the format reads
//! `.xlsx`, `.xlsm`, `.xls` and `.ods` (calamine; the kind is told by content, not by name) and
//! writes `.xlsx` (rust_xlsxwriter). Both directions stream where the libraries allow it: an
//! `.xlsx` sheet is read cell by cell and written row by row through temporary files, so neither
//! holds a sheet's rows in memory (`.xls` and `.ods` sheets are read whole: calamine offers no
//! other way).
//!
//! Cells keep their types: numbers, booleans, text, dates and date-times. Spreadsheets have no
//! time zones, so no offset is invented on the way in; timestamps are written in UTC.

mod read;
mod write;

use schemars::JsonSchema;
use serde::Deserialize;

pub use self::read::ExcelDecoder;
pub use self::write::ExcelEncoder;

/// Rows of a sheet (or a range of it) under a header row.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ExcelOptions {
    /// Reading: the sheet to read, by name (`"Orders"`) or by 1-based position (`2`). Default:
    /// the first sheet. A sheet that is not there is an error listing the sheets that are.
    pub sheet: Option<SheetChoice>,
    /// Reading: the row number (1-based, as the spreadsheet shows it) of the header row, which
    /// names the columns; rows above it are skipped. Default: the first row with a value (within
    /// `range`). An empty header cell names its column `column_N` (N counted from 1 at the
    /// table's first column); two columns of the same name are an error.
    pub header_row: Option<u32>,
    /// Reading: the cells to read, in A1 notation: `"B3:F200"`, `"B3:F"` (from row 3 to the
    /// last row), `"B:F"` (whole columns). Default: the whole sheet. Without it the table's
    /// columns run from the first to the last header cell with a value, and a value in any
    /// other column is a bad record.
    pub range: Option<String>,
    /// Writing: the name of the sheet. Default `"Sheet1"`. At most 31 characters, none of
    /// `[ ] : * ? / \`.
    pub sheet_name: String,
    /// Writing: what to do with the record that no longer fits on a sheet (1,048,576 rows, the
    /// header row included): `"fail"` the output, or go on on a `"new-sheet"` with the same
    /// header (named like `sheet_name` with the next number: `Sheet2`, or `Orders 2`). Default
    /// `"fail"`: a reader of the first sheet alone would miss the rest without a word.
    pub on_sheet_full: OnSheetFull,
    /// Writing: give text that starts like a formula (`=`, `+`, `-`, `@`, tab, carriage
    /// return) Excel's quote prefix (the leading `'` of a typed cell), so that a cell a user
    /// edits and confirms stays text instead of becoming a formula. The text is not changed.
    /// Text is never evaluated on opening either way: it is always written as a text cell.
    /// Default `true`.
    pub formula_protection: bool,
}

impl Default for ExcelOptions {
    fn default() -> Self {
        ExcelOptions {
            sheet: None,
            header_row: None,
            range: None,
            sheet_name: "Sheet1".to_string(),
            on_sheet_full: OnSheetFull::Fail,
            formula_protection: true,
        }
    }
}

/// A sheet by name or by 1-based position.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum SheetChoice {
    // The sheet's position among the workbook's sheets, from 1.
    Position(u32),
    // The sheet's name, exactly as its tab shows it.
    Name(String),
}

/// What the encoder does when a sheet is full.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OnSheetFull {
    // Fail with an error naming the record that did not fit.
    #[default]
    Fail,
    // Continue on a new sheet, under the same header row.
    NewSheet,
}

/// Rows an Excel sheet holds, the header row included.
pub(crate) const EXCEL_MAX_ROWS: u32 = 1_048_576;

/// Excel's dates count days; a day has this many milliseconds.
const MILLIS_PER_DAY: f64 = 86_400_000.0;

/// Columns an Excel sheet holds (`A` to `XFD`).
const EXCEL_MAX_COLUMNS: u32 = 16_384;

/// Characters a sheet name may not hold.
const SHEET_NAME_FORBIDDEN: &[char] = &['[', ']', ':', '*', '?', '/', '\\'];

impl ExcelOptions {
    pub(crate) fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if self.sheet == Some(SheetChoice::Position(0)) {
            problems.push((
                "sheet",
                "sheet positions count from 1 (`sheet = 1` is the first sheet)".to_string(),
            ));
        }
        if self.header_row == Some(0) {
            problems.push((
                "header_row",
                "rows are numbered from 1, as the spreadsheet shows them".to_string(),
            ));
        }
        match self.range.as_deref().map(CellRange::parse) {
            Some(Err(message)) => problems.push(("range", message)),
            Some(Ok(range)) => {
                if let Some(header_row) = self.header_row.filter(|&row| row > 0)
                    && !range.holds_row(header_row - 1)
                {
                    problems.push((
                        "header_row",
                        format!("row {header_row} is outside `range` ({range})"),
                    ));
                }
            }
            None => {}
        }
        if let Err(message) = check_sheet_name(&self.sheet_name) {
            problems.push(("sheet_name", message));
        }
        problems
    }

    /// The range to read; call only on options without `problems`.
    fn cell_range(&self) -> CellRange {
        self.range
            .as_deref()
            .map(|text| CellRange::parse(text).expect("validated"))
            .unwrap_or(CellRange::WHOLE_SHEET)
    }
}

fn check_sheet_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a sheet needs a name".into());
    }
    if name.chars().count() > 31 {
        return Err(format!(
            "sheet name `{name}` is longer than the 31 characters Excel allows"
        ));
    }
    if let Some(bad) = name.chars().find(|c| SHEET_NAME_FORBIDDEN.contains(c)) {
        return Err(format!(
            "sheet name `{name}` holds `{bad}`: Excel forbids any of [ ] : * ? / \\"
        ));
    }
    if name.starts_with('\'') || name.ends_with('\'') {
        return Err(format!(
            "sheet name `{name}` may not start or end with an apostrophe"
        ));
    }
    Ok(())
}

/// A rectangle of cells, 0-based and inclusive, as `range` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CellRange {
    pub first_row: u32,
    pub last_row: u32,
    pub first_column: u32,
    pub last_column: u32,
}

impl CellRange {
    const WHOLE_SHEET: CellRange = CellRange {
        first_row: 0,
        last_row: u32::MAX,
        first_column: 0,
        last_column: u32::MAX,
    };

    /// `B3:F200`, `B3:F` (to the last row) or `B:F` (whole columns).
    fn parse(text: &str) -> Result<CellRange, String> {
        let invalid = |why: &str| {
            format!("`{text}` is not a range in A1 notation ({why}): write it like `B3:F200`")
        };
        let (start, end) = text
            .split_once(':')
            .ok_or_else(|| invalid("it needs a `:` between the corners"))?;
        let (first_column, first_row) = parse_corner(start).ok_or_else(|| invalid("bad start"))?;
        let (last_column, last_row) = parse_corner(end).ok_or_else(|| invalid("bad end"))?;
        let range = CellRange {
            first_row: first_row.unwrap_or(0),
            last_row: last_row.unwrap_or(u32::MAX),
            first_column,
            last_column,
        };
        if range.first_row > range.last_row || range.first_column > range.last_column {
            return Err(invalid("the start must be above and left of the end"));
        }
        Ok(range)
    }

    fn holds_row(&self, row: u32) -> bool {
        (self.first_row..=self.last_row).contains(&row)
    }

    fn holds_column(&self, column: u32) -> bool {
        (self.first_column..=self.last_column).contains(&column)
    }
}

impl std::fmt::Display for CellRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let row = |row: u32| {
            if row == u32::MAX {
                String::new()
            } else {
                (row + 1).to_string()
            }
        };
        write!(
            f,
            "{}{}:{}{}",
            column_letters(self.first_column),
            if self.first_row == 0 && self.last_row == u32::MAX {
                String::new()
            } else {
                row(self.first_row)
            },
            column_letters(self.last_column),
            row(self.last_row)
        )
    }
}

/// `B3` as (column 1, Some(row 2)); `B` as (1, None). Upper or lower case.
fn parse_corner(text: &str) -> Option<(u32, Option<u32>)> {
    let digits_at = text
        .find(|c: char| c.is_ascii_digit())
        .unwrap_or(text.len());
    let (letters, digits) = text.split_at(digits_at);
    if letters.is_empty() || letters.len() > 3 || !letters.chars().all(|c| c.is_ascii_alphabetic())
    {
        return None;
    }
    let column = letters.bytes().fold(0u32, |n, b| {
        n * 26 + u32::from(b.to_ascii_uppercase() - b'A' + 1)
    }) - 1;
    if column >= EXCEL_MAX_COLUMNS {
        return None;
    }
    let row = match digits {
        "" => None,
        digits => {
            let row: u32 = digits.parse().ok()?;
            if row == 0 || row > EXCEL_MAX_ROWS {
                return None;
            }
            Some(row - 1)
        }
    };
    Some((column, row))
}

/// The letters of a 0-based column: 0 is `A`, 27 is `AB`.
pub(crate) fn column_letters(column: u32) -> String {
    let mut letters = Vec::new();
    let mut n = column + 1;
    while n > 0 {
        let digit = (n - 1) % 26;
        letters.push(b'A' + digit as u8);
        n = (n - 1) / 26;
    }
    letters.reverse();
    String::from_utf8(letters).expect("ASCII letters")
}

/// A cell as a formula would name it: `Orders!C7`, `'Q3 sales'!C7`.
pub(crate) fn cell_reference(sheet: &str, row: u32, column: u32) -> String {
    let plain = sheet.chars().all(|c| c.is_alphanumeric() || c == '_');
    let cell = format!("{}{}", column_letters(column), row + 1);
    if plain {
        format!("{sheet}!{cell}")
    } else {
        format!("'{}'!{cell}", sheet.replace('\'', "''"))
    }
}

#[cfg(test)]
mod tests;
