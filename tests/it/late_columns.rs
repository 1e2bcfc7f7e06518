//! Fields that first appear after the first records (XML and JSON exports leave out empty
//! elements): CSV and Excel outputs take them as new last columns, rows before them get empty
//! cells, and `columns` still fixes an exact layout.

use std::fmt::Write as _;
use std::io::Read as _;

use crate::support::accounts::{PASSWORD, USER};
use crate::support::vsftpd::{FtpMode, FtpServer};
use crate::support::{Sandbox, pipeline, run};

/// Orders 1..=count as a JSON array: record 5 brings `note`, record `coupon_at` (in a later
/// batch: a batch holds 1,024 records) brings `coupon`.
fn orders_json(count: u64, coupon_at: u64) -> String {
    let mut json = String::from("[\n");
    for id in 1..=count {
        let _ = write!(json, "{{\"id\":{id},\"total\":\"{id}.50\"");
        if id == 5 {
            json.push_str(",\"note\":\"gift, wrap \\\"it\\\"\"");
        }
        if id == coupon_at {
            json.push_str(",\"coupon\":\"ÉTÉ-24\"");
        }
        json.push('}');
        json.push_str(if id == count { "\n]\n" } else { ",\n" });
    }
    json
}

/// The CSV every output must read back as: the columns in order of first appearance, an empty
/// cell where a record lacks a field.
fn expected_csv(count: u64, coupon_at: u64) -> String {
    let mut csv = String::from("id,total,note,coupon\n");
    for id in 1..=count {
        let note = if id == 5 {
            "\"gift, wrap \"\"it\"\"\""
        } else {
            ""
        };
        let coupon = if id == coupon_at { "ÉTÉ-24" } else { "" };
        let _ = writeln!(csv, "{id},{id}.50,{note},{coupon}");
    }
    csv
}

#[test]
fn convert_to_csv_widens_the_header_and_pads_the_rows_before() {
    let sandbox = Sandbox::new();
    sandbox.write("orders.json", orders_json(20_001, 20_000));
    sandbox
        .run(["convert", "orders.json", "out/orders.csv"])
        .assert_success();
    assert_eq!(sandbox.read("out/orders.csv"), expected_csv(20_001, 20_000));
    sandbox.assert_no_temp_files();
}

#[test]
fn convert_from_xml_to_csv_takes_an_element_first_seen_in_record_5() {
    let sandbox = Sandbox::new();
    let mut xml = String::from("<orders>");
    for id in 1..=6 {
        let note = if id == 5 { "<note>rush</note>" } else { "" };
        let _ = write!(xml, "<order><id>{id}</id>{note}</order>");
    }
    xml.push_str("</orders>");
    sandbox.write("orders.xml", xml);
    sandbox
        .run(["convert", "orders.xml", "orders.csv"])
        .assert_success();
    assert_eq!(
        sandbox.read("orders.csv"),
        "id,note\n1,\n2,\n3,\n4,\n5,rush\n6,\n"
    );
}

#[test]
fn convert_to_xlsx_takes_late_fields_as_columns() {
    let sandbox = Sandbox::new();
    sandbox.write("orders.json", orders_json(20_001, 20_000));
    sandbox
        .run(["convert", "orders.json", "orders.xlsx"])
        .assert_success();
    sandbox
        .run(["convert", "orders.xlsx", "back.csv"])
        .assert_success();
    assert_eq!(sandbox.read("back.csv"), expected_csv(20_001, 20_000));
}

#[test]
fn standard_output_cannot_widen_after_the_first_batch() {
    let sandbox = Sandbox::new();
    sandbox.write("orders.json", orders_json(2_000, 1_500));
    sandbox
        .run(["convert", "orders.json", "-", "--to", "csv"])
        .assert_code(1)
        .assert_stderr(
            "error: pipeline `convert`: output failed
  caused by: standard output: record 1500, field `coupon`: the record has a field that is not a column of this CSV file: its columns are the fields of the first batch of records, and this output cannot be rewritten to add one. write to a file (a file is rewritten with the new column), or list every wanted field in the csv format's `columns`
",
        );
}

/// One output per input file, each its own header; gzip and a legacy encoding are read back
/// and written again as they were.
#[test]
fn a_pipeline_widens_each_output_file_on_its_own() {
    let sandbox = Sandbox::new();
    sandbox.write("in/a.json", orders_json(3_000, 2_500));
    sandbox.write("in/b.json", orders_json(4, 0));
    sandbox.write(
        "p.toml",
        pipeline(
            "path = \"in/*.json\"",
            &["path = \"out/{source_stem}.csv.gz\"\nencoding = \"windows-1252\""],
        ),
    );
    sandbox.run(["-q", "run", "p.toml"]).assert_success();
    let gunzip = |name: &str| {
        let mut bytes = Vec::new();
        flate2::read::MultiGzDecoder::new(&sandbox.read_bytes(name)[..])
            .read_to_end(&mut bytes)
            .unwrap();
        bytes
    };
    let latin1 = |text: String| -> Vec<u8> { text.chars().map(|c| c as u8).collect() };
    assert_eq!(gunzip("out/a.csv.gz"), latin1(expected_csv(3_000, 2_500)));
    assert_eq!(
        gunzip("out/b.csv.gz"),
        b"id,total\n1,1.50\n2,2.50\n3,3.50\n4,4.50\n"
    );
    sandbox.assert_no_temp_files();
}

#[test]
fn with_columns_a_field_outside_them_is_still_an_error() {
    let sandbox = Sandbox::new();
    sandbox.write("in/a.json", orders_json(6, 0));
    sandbox.write(
        "p.toml",
        pipeline(
            "path = \"in/a.json\"",
            &["path = \"out/a.csv\"\nformat = { type = \"csv\", columns = [\"id\", \"total\"] }"],
        ),
    );
    sandbox.run(["run", "p.toml"]).assert_code(1).assert_stderr(
        "error: pipeline `p`: sink 1 (file) failed
  caused by: out/a.csv: record 5, field `note`: the record has a field that is not one of the csv format's `columns`. add it to `columns`, or drop it with a `select` transform
",
    );
    sandbox.assert_not_published("out/a.csv");
}

/// A split upload: each file has its own encoder, so its own header; the first file takes the
/// field record 1,500 brings (in the second batch) and is rewritten, the second never sees it.
#[test]
fn each_file_of_a_split_upload_has_the_columns_of_its_own_records() {
    let Some(server) = FtpServer::start(FtpMode::Explicit) else {
        return;
    };
    let sandbox = Sandbox::new();
    sandbox.write("in/orders.json", orders_json(3_000, 1_500));
    sandbox.write(
        "drop.toml",
        format!(
            "name = \"drop\"\n[source]\ntype = \"file\"\npath = \"in/*.json\"\n\n[[sinks]]\ntype = \"ftps\"\npath = \"out/orders-{{part}}.csv\"\nmax_records_per_file = 2000\n[sinks.server]\nhost = \"127.0.0.1\"\nport = {}\nuser = \"{USER}\"\npassword = \"${{env:FTP_PASSWORD}}\"\nca_file = \"{}\"\nattempts = 2\n",
            server.port,
            server.ca().display()
        ),
    );
    let mut command = sandbox.command(["-q", "run", "drop.toml"]);
    command.env("FTP_PASSWORD", PASSWORD);
    run(command).assert_success();
    let all = expected_csv(3_000, 1_500);
    let lines: Vec<&str> = all.lines().collect();
    let first = format!("{}\n", lines[..=2_000].join("\n"));
    let second: String = (2_001..=3_000)
        .map(|id| format!("{id},{id}.50\n"))
        .collect();
    let read = |name: &str| std::fs::read_to_string(server.data().join(name)).unwrap();
    assert_eq!(read("out/orders-1.csv"), first);
    assert_eq!(read("out/orders-2.csv"), format!("id,total\n{second}"));
}
