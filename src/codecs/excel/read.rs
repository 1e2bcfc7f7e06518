//! Reading a sheet into records. calamine needs a seekable file, so the input stream (which may
//! come from SFTP or out of a zip) is first spooled into an anonymous temporary file. A thread
//! then walks the sheet's cells in order, builds records under the header row and hands them
//! over in chunks through a bounded channel: for `.xlsx` it reads the sheet's XML cell by cell,
//! so memory does not grow with the rows (calamine does load the workbook's shared-strings table,
//! every distinct text, whole); `.xls`, `.xlsb` and `.ods` sheets are loaded whole by calamine.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::sync::{Arc, mpsc};

use calamine::{Data, DataRef, ExcelDateTime, Reader, Sheets, open_workbook_auto_from_rs};

use super::{CellRange, ExcelOptions, SheetChoice, cell_reference, column_letters};
use crate::codecs::{IO_BUFFER_BYTES, sniff};
use crate::error::{CodecError, Malformed, Position};
use crate::record::{FieldName, Record, Value};
use crate::stage::Decoder;

/// Records (or the error a record or the whole sheet came to) in the order of the sheet.
type Decoded = Result<Record, CodecError>;

/// Records per message from the reading thread.
const RECORDS_PER_MESSAGE: usize = 1024;

pub struct ExcelDecoder {
    decoded: mpsc::Receiver<Vec<Decoded>>,
    pending: std::vec::IntoIter<Decoded>,
    /// An error met after records of the same call: returned by the next call.
    held: Option<CodecError>,
}

impl ExcelDecoder {
    pub fn new(
        input: Box<dyn Read + Send>,
        label: &str,
        options: &ExcelOptions,
    ) -> Result<Self, CodecError> {
        let spooled = SpooledFile::spool(input, label)?;
        if spooled.is_compound_file()
            && let Err(damage) = check_compound_file(spooled.clone())
        {
            return Err(malformed(
                label,
                format!("the workbook is corrupt ({damage})"),
                None,
            ));
        }
        let workbook = match without_panics(|| open_workbook_auto_from_rs(spooled.clone())) {
            Ok(Ok(workbook)) => workbook,
            Ok(Err(_)) => {
                let (why, hint) = spooled.what_it_is();
                return Err(malformed(
                    label,
                    format!("not an Excel or OpenDocument workbook ({why})"),
                    hint.map(str::to_string),
                ));
            }
            Err(why) => return Err(malformed(label, corrupt(&why), None)),
        };
        let sheet = choose_sheet(&workbook.sheet_names(), options.sheet.as_ref(), label)?;
        let table = Table {
            label: label.to_string(),
            header_row: options.header_row.map(|row| row.saturating_sub(1)),
            range: options.cell_range(),
            sheet,
            row: None,
            cells: Vec::new(),
            columns: None,
            records: 0,
            chunk: Vec::with_capacity(RECORDS_PER_MESSAGE),
        };
        let (sender, decoded) = mpsc::sync_channel(2);
        // The thread ends with the sheet, or when the decoder is dropped (a send fails).
        std::thread::spawn(move || read_sheet(workbook, table, &sender));
        Ok(ExcelDecoder {
            decoded,
            pending: Vec::new().into_iter(),
            held: None,
        })
    }
}

impl Decoder for ExcelDecoder {
    fn next_batch(&mut self, out: &mut Vec<Record>, max: usize) -> Result<bool, CodecError> {
        if let Some(error) = self.held.take() {
            return Err(error);
        }
        let start = out.len();
        while out.len() - start < max {
            match self.pending.next() {
                Some(Ok(record)) => out.push(record),
                Some(Err(error)) if out.len() == start => return Err(error),
                // Records first: the error comes with the next call.
                Some(Err(error)) => {
                    self.held = Some(error);
                    break;
                }
                None => match self.decoded.recv() {
                    Ok(chunk) => self.pending = chunk.into_iter(),
                    // The thread is done and everything it sent has been taken.
                    Err(mpsc::RecvError) => break,
                },
            }
        }
        Ok(out.len() > start)
    }
}

/// calamine trusts a damaged `.xls` more than it should, so the file is checked first:
/// - it follows the compound file's sector chains without end when they loop (a 5 KB file
///   could take all memory): the `cfb` crate checks the structure;
/// - it sizes a sheet's cells from the sheet's DIMENSIONS record unchecked (a damaged record
///   asks for terabytes, and a failed allocation aborts the process, which no panic catch
///   stops): each one must fit the format's 65,536 rows by 256 columns;
/// - it sizes a sheet's grid by its cells' positions: a cell far to the right makes a grid of
///   gigabytes, so no cell may lie past the 256th column.
///
/// The records are read as calamine reads them: from the start of the workbook stream, and
/// from where each sheet starts by its BOUNDSHEET record (a damaged offset may start a sheet
/// in the middle of another record, where a record unseen from the start begins).
fn check_compound_file(file: SpooledFile) -> Result<(), String> {
    let mut compound = cfb::CompoundFile::open(file)
        .map_err(|e| format!("its compound-file structure is damaged: {e}"))?;
    let Some(name) = ["/Workbook", "/Book"]
        .into_iter()
        .find(|n| compound.is_stream(n))
    else {
        return Ok(()); // calamine says what is missing
    };
    let mut stream = Vec::new();
    compound
        .open_stream(name)
        .and_then(|mut s| s.read_to_end(&mut stream))
        .map_err(|e| format!("its workbook stream cannot be read: {e}"))?;
    let mut sheets = Vec::new();
    for (kind, data) in records_from(&stream, 0) {
        check_record(kind, data)?;
        const BOUNDSHEET: u16 = 0x0085;
        if kind == BOUNDSHEET && data.len() >= 4 {
            sheets.push(u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize);
        }
    }
    for start in sheets {
        // A sheet's records run to its EOF (past nested substreams: charts, macros).
        let mut depth = 0usize;
        for (kind, data) in records_from(&stream, start) {
            check_record(kind, data)?;
            match kind {
                0x0809 => depth += 1,
                0x000A if depth <= 1 => break,
                0x000A => depth -= 1,
                _ => {}
            }
        }
    }
    Ok(())
}

/// The BIFF records of `stream` from `start` on (a record cut short ends them: calamine
/// reports it).
fn records_from(stream: &[u8], start: usize) -> impl Iterator<Item = (u16, &[u8])> {
    let mut at = start;
    std::iter::from_fn(move || {
        let header = stream.get(at..at + 4)?;
        let kind = u16::from_le_bytes([header[0], header[1]]);
        let length = usize::from(u16::from_le_bytes([header[2], header[3]]));
        let data = stream.get(at + 4..at + 4 + length)?;
        at += 4 + length;
        Some((kind, data))
    })
}

/// A record that would make calamine allocate beyond what an `.xls` sheet holds.
fn check_record(kind: u16, data: &[u8]) -> Result<(), String> {
    const DIMENSIONS: u16 = 0x0200;
    let u16_at = |at: usize| u32::from(u16::from_le_bytes([data[at], data[at + 1]]));
    let u32_at =
        |at: usize| u32::from_le_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
    let last_column = match (kind, data.len()) {
        (MULRK | MULBLANK, n) if n >= 6 => Some(u16_at(n - 2)),
        (kind, n) if CELLS.contains(&kind) && n >= 4 => Some(u16_at(2)),
        _ => None,
    };
    if let Some(column) = last_column.filter(|&column| column >= 256) {
        return Err(format!(
            "a cell is in column {}, beyond the 256 columns an .xls sheet holds",
            column + 1
        ));
    }
    let (first_row, end_row, end_column) = match (kind, data.len()) {
        (DIMENSIONS, 10) => (u16_at(0), u16_at(2), u16_at(6)),
        (DIMENSIONS, 14 | 16) => (u32_at(0), u32_at(4), u16_at(10)),
        _ => return Ok(()),
    };
    if end_row > 65_536 || end_column > 256 || (end_row > 0 && first_row >= end_row) {
        return Err(format!(
            "a sheet claims rows {first_row} to {end_row} and {end_column} columns, beyond what an .xls sheet holds"
        ));
    }
    Ok(())
}

/// BIFF records of one cell, whose column is at bytes 2-3: FORMULA, BLANK, NUMBER, LABEL,
/// BOOLERR, RK, LABELSST, RSTRING.
const CELLS: [u16; 8] = [
    0x0006, 0x0201, 0x0203, 0x0204, 0x0205, 0x027E, 0x00FD, 0x00D6,
];
/// BIFF records of a run of cells, whose last column is in their last two bytes.
const MULRK: u16 = 0x00BD;
const MULBLANK: u16 = 0x00BE;

/// The first bytes of an OLE2 compound file, the container of `.xls` workbooks.
const OLE2_SIGNATURE: [u8; 8] = [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];

/// The input, copied into an anonymous temporary file. Clones read it independently (each has
/// its own position), as calamine's format detection needs.
#[derive(Clone)]
struct SpooledFile {
    file: Arc<File>,
    len: u64,
    position: u64,
}

impl SpooledFile {
    fn spool(mut input: Box<dyn Read + Send>, label: &str) -> Result<Self, CodecError> {
        let file = tempfile::tempfile()
            .map_err(|source| CodecError::io(label, "create a temporary file for", source))?;
        let mut writer = io::BufWriter::with_capacity(IO_BUFFER_BYTES, &file);
        let len = io::copy(&mut input, &mut writer)
            .map_err(|source| CodecError::io(label, "read", source))?;
        drop(writer);
        Ok(SpooledFile {
            file: Arc::new(file),
            len,
            position: 0,
        })
    }

    /// Whether it is an OLE2 compound file (`.xls`), by its signature.
    fn is_compound_file(&self) -> bool {
        let mut start = [0u8; 8];
        self.file.read_at(&mut start, 0).is_ok_and(|read| read == 8) && start == OLE2_SIGNATURE
    }

    /// What the file looks like, for the error when it is not a workbook, and what to do.
    fn what_it_is(&self) -> (&'static str, Option<&'static str>) {
        let mut start = [0u8; 256];
        let read = self.file.read_at(&mut start, 0).unwrap_or(0);
        let why = match &start[..read] {
            [] => "the file is empty",
            [b'P', b'K', 3, 4, ..] => "a zip archive without a workbook in it",
            start if start.starts_with(&OLE2_SIGNATURE) => {
                "an OLE2 compound file without a workbook in it"
            }
            start if sniff::is_html(start) => {
                return (
                    "it is an HTML page",
                    Some(
                        "some vendors' \"Excel export\" is an HTML table named .xls: ask for CSV \
                         or a real workbook (.xlsx) instead",
                    ),
                );
            }
            _ => "it is neither a zip archive nor an OLE2 compound file",
        };
        (why, None)
    }
}

impl Read for SpooledFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.file.read_at(buf, self.position)?;
        self.position += read as u64;
        Ok(read)
    }
}

impl Seek for SpooledFile {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let position = match to {
            SeekFrom::Start(offset) => Some(offset),
            SeekFrom::End(delta) => self.len.checked_add_signed(delta),
            SeekFrom::Current(delta) => self.position.checked_add_signed(delta),
        };
        self.position = position
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.position)
    }
}

/// Runs `call`, turning a panic in it into its message. calamine (0.38) panics on some corrupt
/// workbooks (an `.xls` whose sectors run past the end of the file): that is bad input, not a
/// crash of the run, nor, on the reading thread, a sheet that silently ends early.
fn without_panics<T>(call: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)).map_err(|panic| {
        panic
            .downcast_ref::<&str>()
            .map(|message| message.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default()
    })
}

fn corrupt(why: &str) -> String {
    format!("the workbook is corrupt (the reader failed: {why})")
}

fn malformed(label: &str, message: String, hint: Option<String>) -> CodecError {
    CodecError::malformed(label, Position::default(), message, hint)
}

/// The name of the sheet `choice` picks (the first sheet without one).
fn choose_sheet(
    names: &[String],
    choice: Option<&SheetChoice>,
    label: &str,
) -> Result<String, CodecError> {
    let listed = || {
        names
            .iter()
            .map(|name| format!("`{name}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let found = match choice {
        None => names.first(),
        Some(SheetChoice::Name(name)) => names.iter().find(|n| *n == name),
        Some(SheetChoice::Position(position)) => (*position as usize)
            .checked_sub(1)
            .and_then(|index| names.get(index)),
    };
    found.cloned().ok_or_else(|| {
        let message = match choice {
            None => "the workbook has no sheets".to_string(),
            Some(SheetChoice::Name(name)) => {
                format!(
                    "the workbook has no sheet named `{name}`; its sheets: {}",
                    listed()
                )
            }
            Some(SheetChoice::Position(position)) => format!(
                "the workbook has no sheet {position}; its {} sheets: {}",
                names.len(),
                listed()
            ),
        };
        malformed(
            label,
            message,
            (!names.is_empty()).then(|| "set the format's `sheet` to one of them".to_string()),
        )
    })
}

/// Walks the sheet's cells into `table`, which sends the records.
fn read_sheet(
    workbook: Sheets<SpooledFile>,
    mut table: Table,
    sender: &mpsc::SyncSender<Vec<Decoded>>,
) {
    let sheet = table.sheet.clone();
    let read = without_panics(|| match workbook {
        Sheets::Xlsx(mut xlsx) => (|| {
            let mut reader = xlsx.worksheet_cells_reader(&sheet)?;
            let shows_time: Vec<bool> = reader
                .styles()
                .iter()
                .map(|style| {
                    style
                        .number_format
                        .as_ref()
                        .is_some_and(|format| shows_time_of_day(&format.format_code))
                })
                .collect();
            while let Some((cell, style)) = reader.next_cell_with_style_id()? {
                let (row, column) = cell.get_position();
                let time_shown = shows_time.get(style).copied().unwrap_or(false);
                let content = content_of_ref(cell.get_value(), time_shown);
                if !table.push(row, column, content, sender) {
                    return Ok(());
                }
            }
            Ok(())
        })()
        .map_err(|e: calamine::XlsxError| e.to_string()),
        mut other => (|| {
            let range = other.worksheet_range(&sheet)?;
            let (first_row, first_column) = range.start().unwrap_or((0, 0));
            for (row, column, data) in range.used_cells() {
                let (row, column) = (first_row + row as u32, first_column + column as u32);
                if !table.push(row, column, content_of(data), sender) {
                    return Ok(());
                }
            }
            Ok(())
        })()
        .map_err(|e: calamine::Error| e.to_string()),
    })
    .unwrap_or_else(|why| Err(corrupt(&why)));
    match read {
        Ok(()) => table.finish(sender),
        Err(why) => {
            let error = malformed(
                &table.label,
                format!("cannot read sheet `{sheet}`: {why}"),
                None,
            );
            table.send_error(error, sender);
        }
    }
}

/// What a cell holds.
enum Content {
    Value(Value),
    /// An error value (`#DIV/0!`).
    Error(String),
}

fn content_of_ref(data: &DataRef<'_>, time_shown: bool) -> Content {
    Content::Value(match data {
        DataRef::Int(i) => Value::Integer(*i),
        DataRef::Float(f) => number(*f),
        DataRef::String(s) => text(s),
        DataRef::SharedString(s) => text(s),
        DataRef::Bool(b) => Value::Bool(*b),
        DataRef::DateTime(d) => date_time(d, time_shown),
        DataRef::DateTimeIso(s) => iso_date_time(s),
        DataRef::DurationIso(s) => text(s),
        DataRef::Error(e) => return Content::Error(e.to_string()),
        DataRef::Empty => Value::Null,
    })
}

fn content_of(data: &Data) -> Content {
    Content::Value(match data {
        Data::Int(i) => Value::Integer(*i),
        Data::Float(f) => number(*f),
        Data::String(s) => text(s),
        Data::Bool(b) => Value::Bool(*b),
        Data::DateTime(d) => date_time(d, false),
        Data::DateTimeIso(s) => iso_date_time(s),
        Data::DurationIso(s) => text(s),
        Data::Error(e) => return Content::Error(e.to_string()),
        Data::Empty => Value::Null,
    })
}

/// Empty text is an empty cell.
fn text(s: &str) -> Value {
    if s.is_empty() {
        Value::Null
    } else {
        Value::String(s.into())
    }
}

/// Excel stores every number as a float: one that is a whole number an `i64` holds exactly is
/// an integer.
fn number(f: f64) -> Value {
    const TWO_TO_63: f64 = 9_223_372_036_854_775_808.0;
    if f.fract() == 0.0 && (-TWO_TO_63..TWO_TO_63).contains(&f) {
        Value::Integer(f as i64)
    } else {
        Value::Float(f)
    }
}

/// A date cell: a date when it has no time of day and its format shows none, a date-time
/// otherwise; a time of day alone (a serial below 1) as `HH:MM:SS` text; a duration as ISO 8601
/// (`PT36H30M`).
fn date_time(cell: &ExcelDateTime, time_shown: bool) -> Value {
    let serial = cell.as_f64();
    if cell.is_duration() {
        return Value::String(iso_duration(serial).into());
    }
    if (0.0..1.0).contains(&serial) {
        let millis = (serial * super::MILLIS_PER_DAY).round() as u32;
        let time = chrono::NaiveTime::from_num_seconds_from_midnight_opt(
            millis / 1000,
            (millis % 1000) * 1_000_000,
        );
        let pattern = if millis.is_multiple_of(1000) {
            "%H:%M:%S"
        } else {
            "%H:%M:%S%.3f"
        };
        return match time {
            Some(time) => Value::String(time.format(pattern).to_string().into()),
            None => Value::Float(serial),
        };
    }
    let (year, month, day, hour, minute, second, milli) = cell.to_ymd_hms_milli();
    let Some(date) = chrono::NaiveDate::from_ymd_opt(year.into(), month.into(), day.into()) else {
        // 1900-02-29, which Excel counts and the calendar does not.
        return Value::Float(serial);
    };
    if (hour, minute, second, milli) == (0, 0, 0, 0) && !time_shown {
        return Value::Date(date);
    }
    match date.and_hms_milli_opt(hour.into(), minute.into(), second.into(), milli.into()) {
        Some(at) => Value::DateTime(at),
        None => Value::Float(serial),
    }
}

/// Days as an ISO 8601 duration: `PT36H30M`, `PT0.5S`, `-PT1H`.
fn iso_duration(days: f64) -> String {
    let millis = (days * super::MILLIS_PER_DAY).round() as i64;
    let (sign, millis) = if millis < 0 {
        ("-", -millis)
    } else {
        ("", millis)
    };
    let (hours, minutes) = (millis / 3_600_000, millis / 60_000 % 60);
    let (seconds, fraction) = (millis / 1000 % 60, millis % 1000);
    let mut text = format!("{sign}PT");
    if hours > 0 {
        text.push_str(&format!("{hours}H"));
    }
    if minutes > 0 {
        text.push_str(&format!("{minutes}M"));
    }
    if fraction > 0 {
        let fraction = format!("{fraction:03}");
        text.push_str(&format!("{seconds}.{}S", fraction.trim_end_matches('0')));
    } else if seconds > 0 || millis == 0 {
        text.push_str(&format!("{seconds}S"));
    }
    text
}

/// An OpenDocument date (`2024-08-01`) or date-time (`2024-08-01T10:30:00`).
fn iso_date_time(text: &str) -> Value {
    if let Ok(at) = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f") {
        Value::DateTime(at)
    } else if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        Value::Date(date)
    } else {
        Value::String(text.into())
    }
}

/// Whether a number format code shows a time of day (hours or seconds), outside its quoted
/// text, escaped characters and `[...]` sections (colors, conditions).
fn shows_time_of_day(code: &str) -> bool {
    let mut chars = code.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                chars.by_ref().find(|&c| c == '"');
            }
            '[' => {
                chars.by_ref().find(|&c| c == ']');
            }
            '\\' | '_' | '*' => {
                chars.next();
            }
            'h' | 'H' | 's' | 'S' => return true,
            _ => {}
        }
    }
    false
}

/// The column names and where they are.
struct Columns {
    first: u32,
    names: Vec<FieldName>,
}

/// Builds records from the cells of a sheet, row by row, and sends them.
struct Table {
    label: String,
    sheet: String,
    /// 0-based; `None`: the first row with a value.
    header_row: Option<u32>,
    range: CellRange,
    /// The row whose cells are being collected.
    row: Option<u32>,
    /// Its cells with a value, in column order.
    cells: Vec<(u32, Content)>,
    /// Once the header row is read.
    columns: Option<Columns>,
    /// Data rows so far (bad ones included).
    records: u64,
    chunk: Vec<Decoded>,
}

impl Table {
    /// Takes one cell; false once the records are no longer wanted (the decoder was dropped).
    fn push(
        &mut self,
        row: u32,
        column: u32,
        content: Content,
        sender: &mpsc::SyncSender<Vec<Decoded>>,
    ) -> bool {
        if matches!(content, Content::Value(Value::Null))
            || !self.range.holds_row(row)
            || !self.range.holds_column(column)
            || self.header_row.is_some_and(|header| row < header)
        {
            return true;
        }
        if self.row != Some(row) {
            if !self.end_row(sender) {
                return false;
            }
            self.row = Some(row);
        }
        self.cells.push((column, content));
        true
    }

    /// Turns the collected row into the header or a record; false once no more is wanted.
    fn end_row(&mut self, sender: &mpsc::SyncSender<Vec<Decoded>>) -> bool {
        let Some(row) = self.row else { return true };
        if self.cells.is_empty() {
            return true;
        }
        if self.columns.is_none() {
            let header = self.header(row);
            self.cells.clear();
            return match header {
                Ok(columns) => {
                    self.columns = Some(columns);
                    true
                }
                Err(error) => {
                    self.send_error(error, sender);
                    false
                }
            };
        }
        let decoded = self.record(row);
        self.cells.clear();
        self.chunk.push(decoded);
        if self.chunk.len() >= RECORDS_PER_MESSAGE {
            let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(RECORDS_PER_MESSAGE));
            return sender.send(chunk).is_ok();
        }
        true
    }

    fn header(&self, row: u32) -> Result<Columns, CodecError> {
        if let Some(header_row) = self.header_row
            && row != header_row
        {
            return Err(self.empty_header_row(header_row));
        }
        let first = self.cells.first().expect("a row with cells").0;
        let last = self.cells.last().expect("a row with cells").0;
        let mut names: Vec<FieldName> = Vec::with_capacity((last - first + 1) as usize);
        let mut cells = self.cells.iter().peekable();
        for column in first..=last {
            let name = match cells.next_if(|(c, _)| *c == column) {
                Some((_, Content::Value(value))) => value.to_text().unwrap_or_default().into(),
                Some((_, Content::Error(error))) => {
                    let cell = cell_reference(&self.sheet, row, column);
                    return Err(malformed(
                        &self.label,
                        format!("header cell {cell} holds the error {error}"),
                        None,
                    ));
                }
                None => format!("column_{}", column - first + 1),
            };
            if let Some(twin) = names.iter().position(|n| **n == *name) {
                let cell = |column: u32| format!("{}{}", column_letters(column), row + 1);
                return Err(malformed(
                    &self.label,
                    format!(
                        "the header row of sheet `{}` names two columns `{name}` ({} and {})",
                        self.sheet,
                        cell(first + twin as u32),
                        cell(column)
                    ),
                    Some("rename one of them, or set `range` to leave one out".into()),
                ));
            }
            names.push(FieldName::from(name));
        }
        Ok(Columns { first, names })
    }

    fn empty_header_row(&self, header_row: u32) -> CodecError {
        malformed(
            &self.label,
            format!(
                "the header row {} of sheet `{}` has no values",
                header_row + 1,
                self.sheet
            ),
            Some("set `header_row` to the row of the column names".into()),
        )
    }

    fn record(&mut self, row: u32) -> Decoded {
        self.records += 1;
        let columns = self.columns.as_ref().expect("the header comes first");
        let last = columns.first + columns.names.len() as u32 - 1;
        for (column, content) in &self.cells {
            if !(columns.first..=last).contains(column) {
                let message = format!(
                    "cell {} holds a value outside the table's columns ({} to {})",
                    cell_reference(&self.sheet, row, *column),
                    column_letters(columns.first),
                    column_letters(last)
                );
                let hint = "give its column a header, or set `range` to the table".into();
                return Err(self.bad_record(None, message, Some(hint)));
            }
            if let Content::Error(error) = content {
                let name = &columns.names[(column - columns.first) as usize];
                let message = format!(
                    "cell {} holds the error {error}",
                    cell_reference(&self.sheet, row, *column)
                );
                return Err(self.bad_record(Some(name), message, None));
            }
        }
        let mut values = vec![Value::Null; columns.names.len()];
        for (column, content) in self.cells.drain(..) {
            if let Content::Value(value) = content {
                values[(column - columns.first) as usize] = value;
            }
        }
        Ok(columns.names.iter().cloned().zip(values).collect())
    }

    /// A record that cannot be read, with the row's cells as tab-separated text for the rejects.
    fn bad_record(
        &self,
        field: Option<&FieldName>,
        message: String,
        hint: Option<String>,
    ) -> CodecError {
        let raw = self
            .cells
            .iter()
            .map(|(_, content)| match content {
                Content::Value(value) => value.to_text().unwrap_or_default().into_owned(),
                Content::Error(error) => error.clone(),
            })
            .collect::<Vec<_>>()
            .join("\t");
        CodecError::BadRecord {
            malformed: Box::new(Malformed {
                file: self.label.clone(),
                position: Position {
                    record: Some(self.records),
                    field: field.map(|name| format!("`{name}`")),
                    ..Position::default()
                },
                message,
                hint,
            }),
            raw: Some(raw),
        }
    }

    /// Ends the last row and sends what is left.
    fn finish(mut self, sender: &mpsc::SyncSender<Vec<Decoded>>) {
        if !self.end_row(sender) {
            return;
        }
        if let Some(header_row) = self.header_row
            && self.columns.is_none()
        {
            let error = self.empty_header_row(header_row);
            self.send_error(error, sender);
        } else if !self.chunk.is_empty() {
            let _ = sender.send(std::mem::take(&mut self.chunk));
        }
    }

    /// Sends the records read so far, then `error`, which ends the sheet.
    fn send_error(&mut self, error: CodecError, sender: &mpsc::SyncSender<Vec<Decoded>>) {
        let mut chunk = std::mem::take(&mut self.chunk);
        chunk.push(Err(error));
        let _ = sender.send(chunk);
    }
}
