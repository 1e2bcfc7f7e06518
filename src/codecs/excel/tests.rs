use std::io::{Cursor, Read, Write};

use rust_xlsxwriter::{Format, Formula, Workbook};

use super::*;
use crate::codecs::testing::SharedBuffer;
use crate::error::CodecError;
use crate::record::{FieldName, Record, Value};
use crate::stage::{Decoder, Encoder};

fn record(fields: &[(&str, Value)]) -> Record {
    fields
        .iter()
        .map(|(name, value)| (FieldName::from(*name), value.clone()))
        .collect()
}

fn text(s: &str) -> Value {
    Value::String(s.into())
}

fn date(y: i32, m: u32, d: u32) -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn new_encoder(options: &ExcelOptions) -> (Box<ExcelEncoder>, SharedBuffer) {
    let buffer = SharedBuffer::default();
    let encoder = ExcelEncoder::new(Box::new(buffer.clone()), "t.xlsx", options).unwrap();
    (Box::new(encoder), buffer)
}

fn encode(records: &[Record], options: &ExcelOptions) -> Vec<u8> {
    let (mut encoder, buffer) = new_encoder(options);
    encoder.write_batch(records).unwrap();
    encoder.finish().unwrap();
    buffer.bytes()
}

/// Every record and every error, going on after bad records as a source does.
fn decode_all(bytes: &[u8], options: &ExcelOptions) -> Vec<Result<Record, String>> {
    let mut decoder =
        match ExcelDecoder::new(Box::new(Cursor::new(bytes.to_vec())), "t.xlsx", options) {
            Ok(decoder) => decoder,
            Err(error) => return vec![Err(error.to_string())],
        };
    let mut results = Vec::new();
    loop {
        let mut out = Vec::new();
        match decoder.next_batch(&mut out, 2) {
            Ok(true) => results.extend(out.into_iter().map(Ok)),
            Ok(false) => return results,
            Err(error @ CodecError::BadRecord { .. }) => results.push(Err(error.to_string())),
            Err(error) => {
                results.push(Err(error.to_string()));
                return results;
            }
        }
    }
}

fn decode(bytes: &[u8], options: &ExcelOptions) -> Vec<Record> {
    decode_all(bytes, options)
        .into_iter()
        .map(|result| result.unwrap())
        .collect()
}

fn decode_error(bytes: &[u8], options: &ExcelOptions) -> String {
    let results = decode_all(bytes, options);
    results.into_iter().find_map(Result::err).expect("an error")
}

/// A workbook built with rust_xlsxwriter's ordinary (not constant-memory) worksheets.
fn workbook(build: impl FnOnce(&mut Workbook)) -> Vec<u8> {
    let mut workbook = Workbook::new();
    build(&mut workbook);
    workbook.save_to_buffer().unwrap()
}

/// The text of one file inside an `.xlsx`.
fn part(xlsx: &[u8], name: &str) -> String {
    let mut archive = zip::ZipArchive::new(Cursor::new(xlsx)).unwrap();
    let mut text = String::new();
    archive
        .by_name(name)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    text
}

#[test]
fn typed_values_round_trip() {
    let at = date(2024, 8, 1).and_hms_milli_opt(10, 30, 15, 250).unwrap();
    let midnight = date(2024, 8, 2).and_hms_opt(0, 0, 0).unwrap();
    let stamp = chrono::DateTime::parse_from_rfc3339("2024-08-01T10:00:00+02:00").unwrap();
    let records = vec![
        record(&[
            ("id", Value::Integer(1)),
            ("amount", Value::Float(12.25)),
            ("price", Value::Decimal("12.50".into())),
            ("ok", Value::Bool(true)),
            ("name", text("Ann")),
            ("day", Value::Date(date(2024, 8, 1))),
            ("at", Value::DateTime(at)),
            ("stamp", Value::Timestamp(stamp)),
            ("note", Value::Null),
            ("formula", text("=1+1")),
        ]),
        record(&[
            ("id", Value::Integer(-9_007_199_254_740_993)),
            ("amount", Value::Float(-0.5)),
            ("price", Value::Decimal("1234567890.1234567".into())),
            ("ok", Value::Bool(false)),
            ("name", Value::Array(vec![Value::Integer(1), text("a")])),
            ("day", Value::Date(date(1899, 12, 31))),
            ("at", Value::DateTime(midnight)),
            ("stamp", Value::Null),
            ("note", text("")),
            ("formula", text("plain")),
        ]),
    ];
    let decoded = decode(
        &encode(&records, &ExcelOptions::default()),
        &ExcelOptions::default(),
    );
    let expected = vec![
        record(&[
            ("id", Value::Integer(1)),
            ("amount", Value::Float(12.25)),
            // At most 15 significant digits: a number (trailing zeros are formatting).
            ("price", Value::Float(12.5)),
            ("ok", Value::Bool(true)),
            ("name", text("Ann")),
            ("day", Value::Date(date(2024, 8, 1))),
            ("at", Value::DateTime(at)),
            // In UTC.
            (
                "stamp",
                Value::DateTime(date(2024, 8, 1).and_hms_opt(8, 0, 0).unwrap()),
            ),
            ("note", Value::Null),
            ("formula", text("=1+1")),
        ]),
        record(&[
            // Beyond 2^53, and more digits than Excel keeps: text.
            ("id", text("-9007199254740993")),
            ("amount", Value::Float(-0.5)),
            ("price", text("1234567890.1234567")),
            ("ok", Value::Bool(false)),
            ("name", text("[1,\"a\"]")),
            // Before 1900-03-01: text.
            ("day", text("1899-12-31")),
            // Midnight in a date-time format stays a date-time.
            ("at", Value::DateTime(midnight)),
            ("stamp", Value::Null),
            ("note", Value::Null),
            ("formula", text("plain")),
        ]),
    ];
    assert_eq!(decoded, expected);
}

#[test]
fn the_header_is_bold_frozen_and_filtered_and_columns_fit() {
    let records = vec![
        record(&[("id", Value::Integer(1)), ("description", text("short"))]),
        record(&[
            ("id", Value::Integer(2)),
            ("description", text(&"x".repeat(30))),
        ]),
    ];
    let xlsx = encode(&records, &ExcelOptions::default());
    let sheet = part(&xlsx, "xl/worksheets/sheet1.xml");
    assert!(sheet.contains(r#"<autoFilter ref="A1:B3"/>"#), "{sheet}");
    assert!(sheet.contains(r#"ySplit="1""#), "{sheet}");
    assert!(sheet.contains(r#"state="frozen""#), "{sheet}");
    // `id`: the narrowest width; `description`: its 30 characters and one more.
    assert!(
        sheet.contains(r#"<col min="1" max="1" width="7.7109375" customWidth="1"/>"#),
        "{sheet}"
    );
    assert!(
        sheet.contains(r#"<col min="2" max="2" width="31.7109375" customWidth="1"/>"#),
        "{sheet}"
    );
    let styles = part(&xlsx, "xl/styles.xml");
    assert!(styles.contains("<b/>"), "{styles}");
    let workbook = part(&xlsx, "xl/workbook.xml");
    assert!(
        workbook.contains(r#"<sheet name="Sheet1" sheetId="1""#),
        "{workbook}"
    );
}

#[test]
fn text_like_a_formula_is_a_text_cell_with_a_quote_prefix() {
    let risky = [
        "=HYPERLINK(\"http://x\",\"y\")",
        "+1",
        "-2",
        "@SUM(A1)",
        "\tx",
        "\rx",
    ];
    let records: Vec<Record> = risky
        .iter()
        .map(|value| record(&[("=header", text(value))]))
        .collect();
    let xlsx = encode(&records, &ExcelOptions::default());
    let sheet = part(&xlsx, "xl/worksheets/sheet1.xml");
    assert!(!sheet.contains("<f>"), "no formula: {sheet}");
    assert_eq!(
        sheet.matches(r#"t="inlineStr""#).count(),
        risky.len() + 1,
        "{sheet}"
    );
    let styles = part(&xlsx, "xl/styles.xml");
    assert!(styles.contains(r#"quotePrefix="1""#), "{styles}");
    let decoded = decode(&xlsx, &ExcelOptions::default());
    assert_eq!(decoded, records);

    let unprotected = ExcelOptions {
        formula_protection: false,
        ..ExcelOptions::default()
    };
    let xlsx = encode(&records, &unprotected);
    let sheet = part(&xlsx, "xl/worksheets/sheet1.xml");
    assert!(!sheet.contains("<f>"), "still no formula: {sheet}");
    assert!(!part(&xlsx, "xl/styles.xml").contains("quotePrefix"));
    assert_eq!(decode(&xlsx, &ExcelOptions::default()), records);
}

#[test]
fn a_full_sheet_fails_or_goes_on_on_a_new_sheet() {
    let records: Vec<Record> = (1..=5)
        .map(|id| record(&[("id", Value::Integer(id))]))
        .collect();
    let (mut encoder, _) = new_encoder(&ExcelOptions::default());
    encoder.rows_per_sheet = 3;
    let error = encoder.write_batch(&records).unwrap_err();
    assert_eq!(
        error.to_string(),
        "t.xlsx: record 3: the sheet is full: a sheet holds 3 rows, the header included. \
         set `on_sheet_full = \"new-sheet\"` in the excel format to go on on another sheet"
    );

    let options = ExcelOptions {
        sheet_name: "Orders".into(),
        on_sheet_full: OnSheetFull::NewSheet,
        ..ExcelOptions::default()
    };
    let (mut encoder, buffer) = new_encoder(&options);
    encoder.rows_per_sheet = 3;
    encoder.write_batch(&records).unwrap();
    encoder.finish().unwrap();
    let xlsx = buffer.bytes();
    let workbook = part(&xlsx, "xl/workbook.xml");
    for name in ["Orders", "Orders 2", "Orders 3"] {
        assert!(
            workbook.contains(&format!(r#"<sheet name="{name}""#)),
            "{workbook}"
        );
    }
    let sheet = |choice: SheetChoice| ExcelOptions {
        sheet: Some(choice),
        ..ExcelOptions::default()
    };
    assert_eq!(
        decode(&xlsx, &sheet(SheetChoice::Position(1))),
        records[..2]
    );
    assert_eq!(
        decode(&xlsx, &sheet(SheetChoice::Position(2))),
        records[2..4]
    );
    assert_eq!(
        decode(&xlsx, &sheet(SheetChoice::Name("Orders 3".into()))),
        records[4..]
    );
    assert!(part(&xlsx, "xl/worksheets/sheet2.xml").contains(r#"<autoFilter ref="A1:A3"/>"#));
}

#[test]
fn later_sheets_are_numbered_on() {
    assert_eq!(write::sheet_name("Sheet1", 1), "Sheet2");
    assert_eq!(write::sheet_name("Export 2024", 2), "Export 2026");
    assert_eq!(write::sheet_name("Orders", 1), "Orders 2");
    let long = "x".repeat(31);
    assert_eq!(
        write::sheet_name(&long, 9),
        format!("{} 10", "x".repeat(28))
    );
}

/// XML and JSON exports leave out empty fields: a field may first appear in any record, in a
/// later batch, on a later sheet. It becomes the next column of every sheet's header; the rows
/// before it have an empty cell there.
#[test]
fn a_field_first_seen_late_becomes_the_next_column_of_every_sheet() {
    let options = ExcelOptions {
        on_sheet_full: OnSheetFull::NewSheet,
        ..ExcelOptions::default()
    };
    let (mut encoder, buffer) = new_encoder(&options);
    encoder.rows_per_sheet = 3;
    let first = [
        record(&[("id", Value::Integer(1))]),
        record(&[("id", Value::Integer(2)), ("note", text("Zoë"))]),
    ];
    let later = [
        record(&[("id", Value::Integer(3))]),
        record(&[
            ("when", Value::Date(date(2024, 3, 31))),
            ("id", Value::Integer(4)),
        ]),
    ];
    encoder.write_batch(&first).unwrap();
    encoder.write_batch(&later).unwrap();
    encoder.finish().unwrap();
    let xlsx = buffer.bytes();
    let row = |id, note: Value, when: Value| {
        record(&[("id", Value::Integer(id)), ("note", note), ("when", when)])
    };
    let sheet = |position| ExcelOptions {
        sheet: Some(SheetChoice::Position(position)),
        ..ExcelOptions::default()
    };
    assert_eq!(
        decode(&xlsx, &sheet(1)),
        [
            row(1, Value::Null, Value::Null),
            row(2, text("Zoë"), Value::Null)
        ]
    );
    assert_eq!(
        decode(&xlsx, &sheet(2)),
        [
            row(3, Value::Null, Value::Null),
            row(4, Value::Null, Value::Date(date(2024, 3, 31)))
        ]
    );
    let first_sheet = part(&xlsx, "xl/worksheets/sheet1.xml");
    assert!(
        first_sheet.contains(r#"<autoFilter ref="A1:C3"/>"#),
        "{first_sheet}"
    );
}

#[test]
fn a_field_past_the_last_column_is_an_error_naming_it() {
    let (mut encoder, _) = new_encoder(&ExcelOptions::default());
    let wide: Record = (0..16_384)
        .map(|i| (FieldName::from(format!("f{i}")), Value::Integer(i)))
        .collect();
    let mut wider = wide.clone();
    wider.push(FieldName::from("one_more"), Value::Bool(true));
    let error = encoder.write_batch(&[wide, wider]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "t.xlsx: record 2, field `one_more`: the field would be column 16385 of the sheet; a \
         sheet holds at most 16384 columns. select fewer fields, or move some into a nested value \
         (written as JSON text)"
    );
}

#[test]
fn text_longer_than_a_cell_holds_is_an_error_naming_the_record() {
    let (mut encoder, _) = new_encoder(&ExcelOptions::default());
    let error = encoder
        .write_batch(&[
            record(&[
                ("id", Value::Integer(1)),
                ("note", text(&"é".repeat(32_767))),
            ]),
            record(&[
                ("id", Value::Integer(2)),
                ("note", text(&"x".repeat(32_768))),
            ]),
        ])
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "t.xlsx: record 2, field `note`: cannot write the value: String exceeds Excel's limit of \
         32,767 characters."
    );
}

#[test]
fn no_records_make_a_workbook_with_an_empty_sheet() {
    let xlsx = encode(&[], &ExcelOptions::default());
    assert_eq!(decode(&xlsx, &ExcelOptions::default()), []);
    let xlsx = encode(&[Record::new(), Record::new()], &ExcelOptions::default());
    assert_eq!(decode(&xlsx, &ExcelOptions::default()), []);
}

/// A sheet with a title, an empty row, the table at B3 with an empty row in it.
fn report_sheet() -> Vec<u8> {
    workbook(|workbook| {
        let sheet = workbook.add_worksheet().set_name("Report").unwrap();
        sheet.write(0, 0, "Orders of August").unwrap();
        sheet.write_row(2, 1, ["id", "name", "amount"]).unwrap();
        sheet.write(3, 1, 1).unwrap();
        sheet.write(3, 2, "Ann").unwrap();
        sheet.write(3, 3, 12.5).unwrap();
        sheet.write(5, 1, 2).unwrap();
        sheet
            .write(5, 3, Formula::new("=D4*2").set_result("25"))
            .unwrap();
        let orders = workbook.add_worksheet().set_name("Orders").unwrap();
        orders.write_row(0, 0, ["order"]).unwrap();
        orders.write(1, 0, "SO-1").unwrap();
    })
}

#[test]
fn the_header_is_the_first_row_with_values_unless_header_row_says() {
    let xlsx = report_sheet();
    // Without options the title is the header: one column.
    assert_eq!(
        decode_error(&xlsx, &ExcelOptions::default()),
        "t.xlsx: record 1: cell Report!B3 holds a value outside the table's columns (A to A). \
         give its column a header, or set `range` to the table"
    );
    let options = ExcelOptions {
        header_row: Some(3),
        ..ExcelOptions::default()
    };
    assert_eq!(
        decode(&xlsx, &options),
        [
            record(&[
                ("id", Value::Integer(1)),
                ("name", text("Ann")),
                ("amount", Value::Float(12.5)),
            ]),
            // The empty row 5 is skipped; the formula gives its cached value.
            record(&[
                ("id", Value::Integer(2)),
                ("name", Value::Null),
                ("amount", Value::Integer(25)),
            ]),
        ]
    );
    let empty_header = ExcelOptions {
        header_row: Some(2),
        ..ExcelOptions::default()
    };
    assert_eq!(
        decode_error(&xlsx, &empty_header),
        "t.xlsx: the header row 2 of sheet `Report` has no values. \
         set `header_row` to the row of the column names"
    );
}

#[test]
fn range_picks_the_cells_to_read() {
    let xlsx = report_sheet();
    let options = ExcelOptions {
        range: Some("B3:C4".into()),
        ..ExcelOptions::default()
    };
    assert_eq!(
        decode(&xlsx, &options),
        [record(&[("id", Value::Integer(1)), ("name", text("Ann"))])]
    );
    let to_the_end = ExcelOptions {
        range: Some("c3:D".into()),
        ..ExcelOptions::default()
    };
    assert_eq!(
        decode(&xlsx, &to_the_end),
        [
            record(&[("name", text("Ann")), ("amount", Value::Float(12.5))]),
            record(&[("name", Value::Null), ("amount", Value::Integer(25))]),
        ]
    );
}

#[test]
fn sheets_by_name_or_position_and_unknown_sheets() {
    let xlsx = report_sheet();
    let by = |choice: SheetChoice| ExcelOptions {
        sheet: Some(choice),
        ..ExcelOptions::default()
    };
    let expected = [record(&[("order", text("SO-1"))])];
    assert_eq!(
        decode(&xlsx, &by(SheetChoice::Name("Orders".into()))),
        expected
    );
    assert_eq!(decode(&xlsx, &by(SheetChoice::Position(2))), expected);
    assert_eq!(
        decode_error(&xlsx, &by(SheetChoice::Name("orders".into()))),
        "t.xlsx: the workbook has no sheet named `orders`; its sheets: \
         `Report`, `Orders`. set the format's `sheet` to one of them"
    );
    assert_eq!(
        decode_error(&xlsx, &by(SheetChoice::Position(3))),
        "t.xlsx: the workbook has no sheet 3; its 2 sheets: `Report`, `Orders`. \
         set the format's `sheet` to one of them"
    );
}

#[test]
fn an_error_cell_is_a_bad_record_and_reading_goes_on() {
    let xlsx = workbook(|workbook| {
        let sheet = workbook.add_worksheet().set_name("Q3 sales").unwrap();
        sheet.write_row(0, 0, ["id", "ratio"]).unwrap();
        sheet.write_row(1, 0, [1, 2]).unwrap();
        sheet.write(2, 0, 2).unwrap();
        sheet
            .write(2, 1, Formula::new("=1/0").set_result("#DIV/0!"))
            .unwrap();
        sheet.write_row(3, 0, [3, 4]).unwrap();
    });
    assert!(part(&xlsx, "xl/worksheets/sheet1.xml").contains(r#"<c r="B3" t="e"><f>1/0</f>"#));
    let results = decode_all(&xlsx, &ExcelOptions::default());
    let row = |id: i64, ratio: i64| {
        Ok(record(&[
            ("id", Value::Integer(id)),
            ("ratio", Value::Integer(ratio)),
        ]))
    };
    assert_eq!(
        results,
        [
            row(1, 2),
            Err(
                "t.xlsx: record 2, field `ratio`: cell 'Q3 sales'!B3 holds the error #DIV/0!"
                    .to_string()
            ),
            row(3, 4),
        ]
    );
    let mut decoder = ExcelDecoder::new(
        Box::new(Cursor::new(xlsx)),
        "t.xlsx",
        &ExcelOptions::default(),
    )
    .unwrap();
    let mut out = Vec::new();
    assert!(decoder.next_batch(&mut out, 10).unwrap());
    match decoder.next_batch(&mut out, 10) {
        Err(CodecError::BadRecord { raw, .. }) => assert_eq!(raw.as_deref(), Some("2\t#DIV/0!")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn header_names_empty_and_twice() {
    let xlsx = workbook(|workbook| {
        let sheet = workbook.add_worksheet();
        sheet.write(0, 0, "a").unwrap();
        sheet.write(0, 2, 2024).unwrap();
        sheet.write_row(1, 0, [1, 2, 3]).unwrap();
    });
    assert_eq!(
        decode(&xlsx, &ExcelOptions::default()),
        [record(&[
            ("a", Value::Integer(1)),
            ("column_2", Value::Integer(2)),
            ("2024", Value::Integer(3)),
        ])]
    );
    let twice = workbook(|workbook| {
        let sheet = workbook.add_worksheet();
        sheet.write_row(0, 0, ["a", "b", "a"]).unwrap();
    });
    assert_eq!(
        decode_error(&twice, &ExcelOptions::default()),
        "t.xlsx: the header row of sheet `Sheet1` names two columns `a` \
         (A1 and C1). rename one of them, or set `range` to leave one out"
    );
}

#[test]
fn dates_times_and_durations_by_number_format() {
    let xlsx = workbook(|workbook| {
        let sheet = workbook.add_worksheet();
        sheet
            .write_row(0, 0, ["day", "at", "time", "took"])
            .unwrap();
        let as_date = Format::new().set_num_format("dd/mm/yyyy");
        let as_date_time = Format::new().set_num_format("d mmm yyyy h:mm");
        let as_time = Format::new().set_num_format("hh:mm");
        let as_duration = Format::new().set_num_format("[h]:mm");
        sheet.write_with_format(1, 0, 45505.0, &as_date).unwrap();
        sheet
            .write_with_format(1, 1, 45505.0, &as_date_time)
            .unwrap();
        sheet.write_with_format(1, 2, 0.4375, &as_time).unwrap();
        sheet.write_with_format(1, 3, 1.5, &as_duration).unwrap();
    });
    assert_eq!(
        decode(&xlsx, &ExcelOptions::default()),
        [record(&[
            ("day", Value::Date(date(2024, 8, 1))),
            (
                "at",
                Value::DateTime(date(2024, 8, 1).and_hms_opt(0, 0, 0).unwrap())
            ),
            ("time", text("10:30:00")),
            ("took", text("PT36H")),
        ])]
    );
}

#[test]
fn input_that_is_not_a_workbook_is_one_clear_error() {
    let options = ExcelOptions::default();
    assert_eq!(
        decode_error(b"id,name\n1,Ann\n", &options),
        "t.xlsx: not an Excel or OpenDocument workbook \
         (it is neither a zip archive nor an OLE2 compound file)"
    );
    assert_eq!(
        decode_error(b"", &options),
        "t.xlsx: not an Excel or OpenDocument workbook (the file is empty)"
    );
    let html = "t.xlsx: not an Excel or OpenDocument workbook (it is an HTML page). some \
                vendors' \"Excel export\" is an HTML table named .xls: ask for CSV or a real \
                workbook (.xlsx) instead";
    for page in [
        &b"<!DOCTYPE html>\n<html><body><table><tr><td>1</td></tr></table></body></html>"[..],
        b"\xEF\xBB\xBF\r\n  <HTML xmlns:x=\"urn:schemas-microsoft-com:office:excel\"><table>",
    ] {
        assert_eq!(decode_error(page, &options), html);
    }
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    zip.start_file("a.txt", zip::write::SimpleFileOptions::default())
        .unwrap();
    zip.write_all(b"hello").unwrap();
    let zip = zip.finish().unwrap().into_inner();
    assert_eq!(
        decode_error(&zip, &options),
        "t.xlsx: not an Excel or OpenDocument workbook \
         (a zip archive without a workbook in it)"
    );
}

/// `tests/fixtures/orders.{xls,ods}`, made by `scripts/make-excel-fixtures.py`.
fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Found by fuzzing: calamine panicked on this truncated `.xls` (its sectors run past the end
/// of the file), which took the whole run down with it.
#[test]
fn a_workbook_the_reader_panics_on_is_an_error() {
    let error = decode_error(
        &fixture("sectors-past-the-end.xls"),
        &ExcelOptions::default(),
    );
    // The compound-file check now refuses it before calamine would panic on it.
    assert!(
        error.starts_with("t.xlsx: the workbook is corrupt ("),
        "{error}"
    );
}

/// Found by fuzzing: a 5.6 KB `.xls` whose sector chains loop made calamine grow a buffer
/// without end (866 MB before the fuzzer stopped it). It is refused before calamine opens it.
#[test]
fn a_compound_file_with_looping_sectors_is_refused_before_it_takes_memory() {
    let error = decode_error(
        &fixture("cyclic-sector-chain.xls"),
        &ExcelOptions::default(),
    );
    assert_eq!(
        error,
        "t.xlsx: the workbook is corrupt (its compound-file structure is damaged: Malformed FAT (sector 0 pointed to twice))"
    );
}

/// Found by fuzzing (20 minutes): a 5.6 KB `.xls` with a cell far beyond the 256 columns an
/// `.xls` sheet holds made calamine allocate its sheet's grid to that column: 4.9 GB.
#[test]
fn a_cell_beyond_the_last_xls_column_is_refused_before_it_takes_memory() {
    let error = decode_error(
        &fixture("cell-in-column-35587.xls"),
        &ExcelOptions::default(),
    );
    assert_eq!(
        error,
        "t.xlsx: the workbook is corrupt (a cell is in column 35587, beyond the 256 columns an .xls sheet holds)"
    );
}

/// Found by fuzzing, after the fix above: a DIMENSIONS record asking for four billion rows,
/// where a sheet's BOUNDSHEET offset says the sheet starts, which reading the records one after
/// the other from the start of the stream does not reach. calamine reads from that offset, and
/// so does the check now.
#[test]
fn records_at_a_sheet_offset_are_checked_as_calamine_reads_them() {
    let error = decode_error(
        &fixture("dimensions-at-a-sheet-offset.xls"),
        &ExcelOptions::default(),
    );
    assert_eq!(
        error,
        "t.xlsx: the workbook is corrupt (a sheet claims rows 0 to 4294311939 and 5 columns, beyond what an .xls sheet holds)"
    );
}

/// An `.xls` whose one sheet's DIMENSIONS record claims `rows` rows (BIFF8 records: BOF,
/// DIMENSIONS, EOF), in a well-formed compound file.
fn xls_claiming_rows(first_row: u32, end_row: u32) -> Vec<u8> {
    let mut records = Vec::new();
    let mut record = |kind: u16, data: &[u8]| {
        records.extend_from_slice(&kind.to_le_bytes());
        records.extend_from_slice(&(data.len() as u16).to_le_bytes());
        records.extend_from_slice(data);
    };
    record(
        0x0809,
        &[0x00, 0x06, 0x10, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    );
    let mut dimensions = Vec::new();
    dimensions.extend_from_slice(&first_row.to_le_bytes());
    dimensions.extend_from_slice(&end_row.to_le_bytes());
    dimensions.extend_from_slice(&[0, 0, 3, 0, 0, 0]);
    record(0x0200, &dimensions);
    record(0x000A, &[]);
    let mut compound = cfb::CompoundFile::create(std::io::Cursor::new(Vec::new())).unwrap();
    let mut stream = compound.create_stream("/Workbook").unwrap();
    std::io::Write::write_all(&mut stream, &records).unwrap();
    drop(stream);
    compound.flush().unwrap();
    compound.into_inner().into_inner()
}

/// Found by fuzzing: calamine reserves a sheet's cells from its DIMENSIONS record unchecked, and
/// a failed allocation aborts the process (no panic to catch). Such a sheet is refused first.
#[test]
fn an_xls_sheet_claiming_more_rows_than_xls_holds_is_refused() {
    for (first, end) in [(0, 0x7FFF_FFFF), (10, 5)] {
        let error = decode_error(&xls_claiming_rows(first, end), &ExcelOptions::default());
        assert_eq!(
            error,
            format!(
                "t.xlsx: the workbook is corrupt (a sheet claims rows {first} to {end} and 3 columns, beyond what an .xls sheet holds)"
            )
        );
    }
}

#[test]
fn xls_and_ods_workbooks_are_read() {
    let options = ExcelOptions {
        sheet: Some(SheetChoice::Name("Orders".into())),
        ..ExcelOptions::default()
    };
    let expected = [
        record(&[
            ("id", Value::Integer(1)),
            ("name", text("Ann")),
            ("amount", Value::Float(12.5)),
            ("shipped", Value::Bool(true)),
            ("ordered_on", Value::Date(date(2024, 8, 1))),
        ]),
        record(&[
            ("id", Value::Integer(2)),
            ("name", text("Bo")),
            ("amount", Value::Integer(3)),
            ("shipped", Value::Bool(false)),
            (
                "ordered_on",
                Value::DateTime(date(2024, 8, 2).and_hms_opt(10, 30, 0).unwrap()),
            ),
        ]),
    ];
    assert_eq!(decode(&fixture("orders.xls"), &options), expected);
    assert_eq!(decode(&fixture("orders.ods"), &options), expected);
    assert_eq!(
        decode(&fixture("orders.ods"), &ExcelOptions::default()),
        [] as [Record; 0],
        "the first sheet holds only its header"
    );
}

#[test]
fn option_problems() {
    let problems = |options: ExcelOptions| options.problems();
    assert_eq!(problems(ExcelOptions::default()), []);
    assert_eq!(
        problems(ExcelOptions {
            sheet: Some(SheetChoice::Position(0)),
            header_row: Some(0),
            range: Some("B3-F9".into()),
            sheet_name: "a/b".into(),
            ..ExcelOptions::default()
        }),
        [
            (
                "sheet",
                "sheet positions count from 1 (`sheet = 1` is the first sheet)".to_string()
            ),
            (
                "header_row",
                "rows are numbered from 1, as the spreadsheet shows them".to_string()
            ),
            (
                "range",
                "`B3-F9` is not a range in A1 notation (it needs a `:` between the corners): \
                 write it like `B3:F200`"
                    .to_string()
            ),
            (
                "sheet_name",
                "sheet name `a/b` holds `/`: Excel forbids any of [ ] : * ? / \\".to_string()
            ),
        ]
    );
    assert_eq!(
        problems(ExcelOptions {
            header_row: Some(2),
            range: Some("B3:F9".into()),
            sheet_name: "x".repeat(32),
            ..ExcelOptions::default()
        }),
        [
            ("header_row", "row 2 is outside `range` (B3:F9)".to_string()),
            (
                "sheet_name",
                format!(
                    "sheet name `{}` is longer than the 31 characters Excel allows",
                    "x".repeat(32)
                )
            ),
        ]
    );
    assert_eq!(
        problems(ExcelOptions {
            range: Some("F3:B9".into()),
            ..ExcelOptions::default()
        })[0]
            .1,
        "`F3:B9` is not a range in A1 notation (the start must be above and left of the end): \
         write it like `B3:F200`"
    );
}

#[test]
fn a1_references() {
    assert_eq!(column_letters(0), "A");
    assert_eq!(column_letters(25), "Z");
    assert_eq!(column_letters(26), "AA");
    assert_eq!(column_letters(16_383), "XFD");
    assert_eq!(cell_reference("Orders", 6, 2), "Orders!C7");
    assert_eq!(cell_reference("Bob's list", 0, 0), "'Bob''s list'!A1");
    assert_eq!(
        CellRange::parse("AA10:xfd1048576"),
        Ok(CellRange {
            first_row: 9,
            last_row: 1_048_575,
            first_column: 26,
            last_column: 16_383,
        })
    );
    assert!(CellRange::parse("A0:B2").is_err());
    assert!(CellRange::parse("XFE1:XFE2").is_err());
}

#[test]
fn formats_infer_from_workbook_extensions_and_write_xlsx_only() {
    use crate::codecs::FormatConfig;
    for path in ["a.xlsx", "a.XLSM", "a.xls", "a.ods"] {
        assert!(
            matches!(FormatConfig::infer(path), Some(FormatConfig::Excel(_))),
            "{path}"
        );
    }
    let excel = FormatConfig::Excel(ExcelOptions::default());
    assert_eq!(excel.output_problem("out/a.xlsx"), None);
    assert_eq!(excel.output_problem("out/a.XLSX"), None);
    assert_eq!(
        excel.output_problem("out/a.xls").as_deref(),
        Some(
            "the excel format writes .xlsx workbooks only: name the output `….xlsx`, not `out/a.xls`"
        )
    );
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    /// Text with what XML has to escape (and cannot hold at all: C0 controls), Excel's own
    /// `_x0041_` escapes, and any Unicode; never empty (an empty cell is null).
    fn text_value() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[<>&\"'_x0-9A-F\u{0}\u{1}\u{1f}\r\n\t a-zé東\u{fffe}\u{feff}]{1,12}",
            "_x[0-9A-F]{4}_",
        ]
        .prop_filter("not empty", |s| !s.is_empty())
    }

    /// Records of text and nulls with the same fields; a row has at least one value (a row
    /// without any is skipped on reading, as a blank row).
    fn records() -> impl Strategy<Value = Vec<Record>> {
        let names = prop::collection::hash_set(text_value(), 1..5)
            .prop_map(|names| names.into_iter().collect::<Vec<_>>());
        names.prop_flat_map(|names| {
            let width = names.len();
            let row = prop::collection::vec(prop::option::weighted(0.8, text_value()), width)
                .prop_filter("a value", |row| row.iter().any(Option::is_some));
            prop::collection::vec(row, 0..6).prop_map(move |rows| {
                rows.into_iter()
                    .map(|row| {
                        names
                            .iter()
                            .zip(row)
                            .map(|(name, value)| {
                                let value = value.map_or(Value::Null, |t| text(&t));
                                (FieldName::from(name.as_str()), value)
                            })
                            .collect()
                    })
                    .collect()
            })
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn text_and_nulls_round_trip(records in records()) {
            let options = ExcelOptions::default();
            prop_assert_eq!(decode(&encode(&records, &options), &options), records);
        }
    }
}
