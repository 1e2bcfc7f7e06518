//! Golden files: the awkward real-world samples in `samples/formats/` decode to exactly the
//! records in `samples/formats/expected/`. (`scripts/make-golden-samples.py` made the workbook.)

use crate::support::{Sandbox, repo_path};

/// Runs a pipeline reading `samples/formats/{sample}` with the `[source]` lines `source` and
/// checks the NDJSON it writes against `samples/formats/expected/{expected}`.
fn assert_golden(sample: &str, source: &str, expected: &str) {
    let sandbox = Sandbox::new();
    sandbox.copy_from_repo(
        &format!("samples/formats/{sample}"),
        &format!("in/{sample}"),
    );
    sandbox.write(
        "p.toml",
        format!(
            "[source]\ntype = \"file\"\npath = \"in/{sample}\"\n{source}\n\n[[sinks]]\ntype = \"file\"\npath = \"out.ndjson\"\n"
        ),
    );
    sandbox
        .run(["-q", "run", "p.toml"])
        .assert_success()
        .assert_stderr("");
    let expected_path = repo_path(&format!("samples/formats/expected/{expected}"));
    let expected = std::fs::read_to_string(&expected_path)
        .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
    assert_eq!(sandbox.read("out.ndjson"), expected, "{sample}");
}

/// Excel's "CSV (semicolon)" export on a German Windows: windows-1252, `;`, CRLF, decimal
/// commas with thousands dots, dates as dd.mm.yyyy.
#[test]
fn windows_1252_semicolon_csv_with_european_numbers_and_dates() {
    assert_golden(
        "orders-windows-1252.csv",
        r#"format = { type = "csv", delimiter = ";" }
encoding = "windows-1252"
schema = { amount = { type = "decimal", decimal_separator = ",", thousands_separator = "." }, ordered_on = { type = "date", format = "%d.%m.%Y" } }"#,
        "orders-typed.ndjson",
    );
}

/// Excel's "Unicode Text": UTF-16LE with a byte-order mark, tab-separated, CRLF.
#[test]
fn utf16_unicode_text_from_excel() {
    assert_golden(
        "orders-unicode.txt",
        r#"format = { type = "csv", delimiter = "\t" }"#,
        "orders-text.ndjson",
    );
}

/// An Excel report: the first sheet a summary, the orders on the second under a merged title and
/// a blank row, real dates and date-times, a blank row among the data.
#[test]
fn excel_report_with_a_title_row_and_several_sheets() {
    assert_golden(
        "orders-report.xlsx",
        r#"format = { type = "excel", sheet = "Orders", header_row = 3 }"#,
        "orders-report.ndjson",
    );
}

/// XML in ISO-8859-1 (from its declaration) with a default and a prefixed namespace,
/// attributes, repeated and single children (always arrays, with `arrays`), CDATA, entities and
/// character references.
#[test]
fn xml_with_namespaces_attributes_and_a_legacy_encoding() {
    assert_golden(
        "orders-ns.xml",
        r#"format = { type = "xml", record_path = "export/order", arrays = ["line"] }"#,
        "orders-ns.ndjson",
    );
}
