//! The `excel` format end to end: `convert` to and from `.xlsx`, a pipeline reading a named
//! sheet with a bad cell quarantined, and the errors for what is not a workbook.

use rust_xlsxwriter::{Formula, Workbook};

use crate::support::{Sandbox, pipeline};

#[test]
fn csv_to_xlsx_to_csv_gives_back_the_same_bytes() {
    let sandbox = Sandbox::new();
    sandbox.copy_from_repo("samples/orders.csv", "orders.csv");
    sandbox
        .run(["convert", "orders.csv", "out/orders.xlsx"])
        .assert_success();
    assert!(
        sandbox
            .read_bytes("out/orders.xlsx")
            .starts_with(b"PK\x03\x04")
    );
    sandbox
        .run(["convert", "out/orders.xlsx", "back/orders.csv"])
        .assert_success();
    assert_eq!(
        sandbox.read_bytes("back/orders.csv"),
        sandbox.read_bytes("orders.csv")
    );
    sandbox.assert_no_temp_files();
}

#[test]
fn a_csv_named_xlsx_is_one_clear_error_and_no_output() {
    let sandbox = Sandbox::new();
    sandbox.write("in.xlsx", "id,name\n1,Ann\n");
    sandbox
        .run(["convert", "in.xlsx", "out.csv"])
        .assert_code(1)
        .assert_stderr(
            "error: pipeline `convert`: input failed
  caused by: in.xlsx: not an Excel or OpenDocument workbook (it is neither a zip archive nor an OLE2 compound file)
",
        );
    assert_eq!(sandbox.files(""), ["in.xlsx"]);
}

#[test]
fn an_html_page_named_xls_is_called_what_it_is() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "export.xls",
        "<!DOCTYPE html>\n<html><body><table><tr><th>id</th></tr><tr><td>1</td></tr></table></body></html>\n",
    );
    sandbox
        .run(["convert", "export.xls", "out.csv"])
        .assert_code(1)
        .assert_stderr(
            "error: pipeline `convert`: input failed
  caused by: export.xls: not an Excel or OpenDocument workbook (it is an HTML page). some vendors' \"Excel export\" is an HTML table named .xls: ask for CSV or a real workbook (.xlsx) instead
",
        );
    assert_eq!(sandbox.files(""), ["export.xls"]);
}

#[test]
fn workbooks_are_written_as_xlsx_only() {
    let sandbox = Sandbox::new();
    sandbox.write("in.csv", "id\n1\n");
    sandbox
        .run(["convert", "in.csv", "out.xls"])
        .assert_code(2)
        .assert_stderr(
            "error: the excel format writes .xlsx workbooks only: name the output `….xlsx`, not `out.xls`\n",
        );
    sandbox.write(
        "p.toml",
        pipeline("path = \"in.csv\"", &["path = \"out/{source_stem}.ods\""]),
    );
    sandbox
        .run(["validate", "p.toml"])
        .assert_code(2)
        .assert_stderr(
            "error: p.toml has 1 problem:
  p.toml:7:8: sink 1 (file): the excel format writes .xlsx workbooks only: name the output `….xlsx`, not `out/{source_stem}.ods`
",
        );
    assert_eq!(sandbox.files(""), ["in.csv", "p.toml"]);
}

/// A workbook as a partner sends it: a cover sheet first, the orders on `Orders`, one of them
/// with a formula that fails.
fn partner_workbook() -> Vec<u8> {
    let mut workbook = Workbook::new();
    let cover = workbook.add_worksheet().set_name("Cover").unwrap();
    cover.write(0, 0, "August orders").unwrap();
    let orders = workbook.add_worksheet().set_name("Orders").unwrap();
    orders
        .write_row(0, 0, ["order_id", "qty", "price", "total"])
        .unwrap();
    orders.write(1, 0, "SO-1").unwrap();
    orders.write(1, 1, 2).unwrap();
    orders.write(1, 2, 9.95).unwrap();
    orders
        .write(1, 3, Formula::new("=B2*C2").set_result("19.9"))
        .unwrap();
    orders.write(2, 0, "SO-2").unwrap();
    orders.write(2, 1, 0).unwrap();
    orders
        .write(2, 3, Formula::new("=C3/B3").set_result("#DIV/0!"))
        .unwrap();
    orders.write(3, 0, "SO-3").unwrap();
    orders.write(3, 1, 1).unwrap();
    orders.write(3, 2, 5).unwrap();
    orders
        .write(3, 3, Formula::new("=B4*C4").set_result("5"))
        .unwrap();
    workbook.save_to_buffer().unwrap()
}

#[test]
fn a_pipeline_reads_a_named_sheet_and_quarantines_an_error_cell() {
    let sandbox = Sandbox::new();
    sandbox.write("in/orders.xlsx", partner_workbook());
    let mut toml = pipeline(
        "path = \"in/*.xlsx\"\nformat = { type = \"excel\", sheet = \"Orders\" }",
        &[
            "path = \"out/{source_stem}.ndjson\"",
            "path = \"out/{source_stem}.xlsx\"\nformat = { type = \"excel\", sheet_name = \"Checked\" }",
        ],
    );
    toml.push_str("\n[rejects]\npath = \"rejects/{pipeline}.ndjson\"\n");
    sandbox.write("p.toml", toml);
    sandbox.run(["-q", "run", "p.toml"]).assert_success();
    assert_eq!(
        sandbox.read("out/orders.ndjson"),
        r#"{"order_id":"SO-1","qty":2,"price":9.95,"total":19.9}
{"order_id":"SO-3","qty":1,"price":5,"total":5}
"#
    );
    assert_eq!(
        sandbox.read("rejects/p.ndjson"),
        r#"{"file":"in/orders.xlsx","line":null,"column":null,"record":2,"field":"total","reason":"cell Orders!D3 holds the error #DIV/0!","raw":"SO-2\t0\t#DIV/0!"}
"#
    );
    // The records written back as a workbook read the same.
    sandbox
        .run(["convert", "out/orders.xlsx", "check.ndjson"])
        .assert_success();
    assert_eq!(
        sandbox.read("check.ndjson"),
        sandbox.read("out/orders.ndjson")
    );
    sandbox.assert_no_temp_files();
}

#[test]
fn an_unknown_sheet_fails_the_run_naming_the_sheets() {
    let sandbox = Sandbox::new();
    sandbox.write("in/orders.xlsx", partner_workbook());
    sandbox.write(
        "p.toml",
        pipeline(
            "path = \"in/*.xlsx\"\nformat = { type = \"excel\", sheet = \"Order\" }",
            &["path = \"out/{source_stem}.ndjson\""],
        ),
    );
    sandbox
        .run(["run", "p.toml"])
        .assert_code(1)
        .assert_stderr(
            "error: pipeline `p`: source (file) failed
  caused by: in/orders.xlsx: the workbook has no sheet named `Order`; its sheets: `Cover`, `Orders`. set the format's `sheet` to one of them
",
        );
    assert!(!sandbox.exists("out"));
}

#[test]
fn workbooks_inside_a_zip_archive_and_gzipped_are_read() {
    let sandbox = Sandbox::new();
    let xlsx = partner_workbook();
    let mut archive = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    archive
        .start_file(
            "batch/orders.xlsx",
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
    std::io::Write::write_all(&mut archive, &xlsx).unwrap();
    sandbox.write("in/batch.zip", archive.finish().unwrap().into_inner());
    let mut gzipped = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gzipped, &xlsx).unwrap();
    sandbox.write("in/orders.xlsx.gz", gzipped.finish().unwrap());
    let expected = "order_id,qty,price,total\nSO-1,2,9.95,19.9\n";
    for (input, format) in [("in/batch.zip", None), ("in/orders.xlsx.gz", Some("excel"))] {
        let source = match format {
            Some(name) => format!(
                "path = \"{input}\"\nformat = {{ type = \"{name}\", sheet = 2, range = \"A1:D2\" }}"
            ),
            None => format!(
                "path = \"{input}\"\nformat = {{ type = \"excel\", sheet = \"Orders\", range = \"A1:D2\" }}"
            ),
        };
        sandbox.write("p.toml", pipeline(&source, &["path = \"out/orders.csv\""]));
        sandbox.run(["-q", "run", "p.toml"]).assert_success();
        assert_eq!(sandbox.read("out/orders.csv"), expected, "{input}");
    }
}

#[test]
fn text_encodings_do_not_apply_to_workbooks() {
    let sandbox = Sandbox::new();
    sandbox.write("in.csv", "id\n1\n");
    sandbox
        .run(["convert", "in.csv", "out.xlsx", "--to-encoding", "windows-1252"])
        .assert_code(2)
        .assert_stderr(
            "error: --to-encoding: a text encoding does not apply to the excel format: workbooks are not text\n",
        );
    sandbox.write(
        "p.toml",
        pipeline(
            "path = \"in/*.xlsx\"\nencoding = \"windows-1252\"",
            &["path = \"out.xlsx\"\nencoding = \"utf-16le\""],
        ),
    );
    sandbox
        .run(["validate", "p.toml"])
        .assert_code(2)
        .assert_stderr(
            "error: p.toml has 2 problems:
  p.toml:4:12: source (file): a text encoding does not apply to the excel format: workbooks are not text
  p.toml:9:12: sink 1 (file): a text encoding does not apply to the excel format: workbooks are not text
",
        );
}
