//! `convert`: one file to another format, atomically, or to standard output.

use crate::support::{Sandbox, repo_path};

#[test]
fn csv_to_ndjson_to_csv_gives_back_the_same_bytes() {
    let sandbox = Sandbox::new();
    sandbox.copy_from_repo("samples/orders.csv", "orders.csv");
    sandbox
        .run(["convert", "orders.csv", "out/orders.ndjson"])
        .assert_success();
    // Every CSV value is text (or null, for an empty field).
    assert_eq!(
        sandbox.read_bytes("out/orders.ndjson"),
        std::fs::read(repo_path("samples/orders.ndjson")).expect("read samples/orders.ndjson")
    );
    sandbox
        .run(["convert", "out/orders.ndjson", "back/orders.csv"])
        .assert_success();
    assert_eq!(
        sandbox.read_bytes("back/orders.csv"),
        sandbox.read_bytes("orders.csv")
    );
    sandbox.assert_no_temp_files();
}

#[test]
fn formats_can_be_named_explicitly() {
    let sandbox = Sandbox::new();
    sandbox.write("data.txt", "a,b\n1,\"x\ty\"\n");
    sandbox
        .run([
            "convert", "--from", "csv", "--to", "jsonl", "data.txt", "data.out",
        ])
        .assert_success();
    assert_eq!(sandbox.read("data.out"), "{\"a\":\"1\",\"b\":\"x\\ty\"}\n");
    sandbox
        .run(["convert", "data.out", "data.tsv", "--from", "ndjson"])
        .assert_success();
    assert_eq!(sandbox.read("data.tsv"), "a\tb\n1\t\"x\ty\"\n");
}

#[test]
fn an_unknown_input_extension_asks_for_from() {
    let sandbox = Sandbox::new();
    sandbox.write("x.unknownext", "a\n1\n");
    let outcome = sandbox.run(["convert", "x.unknownext", "y.csv"]);
    outcome.assert_code(2).assert_stderr(
        "error: cannot tell the format of `x.unknownext` from its extension: pass --from (one of csv, tsv, ndjson, jsonl, json, json-array, xml, excel, xlsx, xls, ods, parquet)\n",
    );
    assert_eq!(outcome.stdout(), "");
    assert_eq!(sandbox.files(""), ["x.unknownext"]);
}

#[test]
fn an_unknown_output_extension_asks_for_to() {
    let sandbox = Sandbox::new();
    sandbox.write("x.csv", "a\n1\n");
    sandbox.run(["convert", "x.csv", "y.yaml"]).assert_code(2).assert_stderr(
        "error: cannot tell the format of `y.yaml` from its extension: pass --to (one of csv, tsv, ndjson, jsonl, json, json-array, xml, excel, xlsx, xls, ods, parquet)\n",
    );
    // Standard output has no extension either.
    sandbox.run(["convert", "x.csv", "-"]).assert_code(2).assert_stderr(
        "error: cannot tell the format of `-` from its extension: pass --to (one of csv, tsv, ndjson, jsonl, json, json-array, xml, excel, xlsx, xls, ods, parquet)\n",
    );
    sandbox
        .run(["convert", "x.csv", "-", "--to", "yaml"])
        .assert_code(2)
        .assert_stderr(
            "error: unknown format `yaml` for --to: use one of csv, tsv, ndjson, jsonl, json, json-array, xml, excel, xlsx, xls, ods, parquet\n",
        );
    assert_eq!(sandbox.files(""), ["x.csv"]);
}

#[test]
fn dash_writes_to_standard_output() {
    let sandbox = Sandbox::new();
    sandbox.copy_from_repo("samples/orders.csv", "in.csv");
    let outcome = sandbox.run(["-q", "convert", "in.csv", "-", "--to", "ndjson"]);
    outcome.assert_success().assert_stderr("");
    assert_eq!(
        outcome.stdout,
        std::fs::read(repo_path("samples/orders.ndjson")).expect("read samples/orders.ndjson")
    );
    assert_eq!(sandbox.files(""), ["in.csv"]);
}

#[test]
fn bad_input_publishes_no_output() {
    let sandbox = Sandbox::new();
    sandbox.write("in.csv", "a,b\n1,2\n3\n");
    sandbox.write("out.ndjson", "previous\n");
    sandbox
        .run(["convert", "in.csv", "out.ndjson"])
        .assert_code(1)
        .assert_stderr(
            "error: pipeline `convert`: input failed
  caused by: in.csv: line 3, record 2: expected 2 fields (as in the header), found 1. fix the row, or set `flexible = true` in the csv format to accept ragged rows
",
        );
    assert_eq!(sandbox.read("out.ndjson"), "previous\n");
    sandbox.assert_no_temp_files();
    sandbox
        .run(["convert", "in.csv", "new.ndjson"])
        .assert_code(1);
    sandbox.assert_not_published("new.ndjson");
}

#[test]
fn a_missing_input_is_an_error() {
    let sandbox = Sandbox::new();
    sandbox
        .run(["convert", "missing.csv", "out.ndjson"])
        .assert_code(1)
        .assert_stderr_starts_with(
            "error: pipeline `convert`: input failed\n  caused by: missing.csv: cannot read the file\n  caused by: ",
        );
    sandbox.assert_not_published("out.ndjson");
}

/// A file name with glob characters is still one file: `convert` escapes it.
#[test]
fn an_input_name_with_glob_characters_is_taken_literally() {
    let sandbox = Sandbox::new();
    sandbox.write("data[1].csv", "a\n1\n");
    sandbox.write("data1.csv", "a\nwrong file\n");
    sandbox
        .run(["convert", "data[1].csv", "out.ndjson"])
        .assert_success();
    assert_eq!(sandbox.read("out.ndjson"), "{\"a\":\"1\"}\n");
}

/// A missing input whose name has glob characters must fail like any missing input. It does
/// not: the escaped name is treated as a pattern that matches nothing, which yields no records,
/// and an empty output is published with exit code 0 (src/runner/convert.rs `convert` +
/// src/sources/file.rs `FileSource::new`).
#[test]
fn a_missing_input_with_glob_characters_is_an_error() {
    let sandbox = Sandbox::new();
    sandbox
        .run(["convert", "missing[1].csv", "out.ndjson"])
        .assert_code(1);
    sandbox.assert_not_published("out.ndjson");
}

/// A JSON array carries the same records as NDJSON: CSV -> JSON -> NDJSON gives the sample's
/// NDJSON, and a pipeline reads records out of an API-style envelope.
#[test]
fn json_arrays_convert_both_ways_and_envelopes_are_read_by_pointer() {
    let sandbox = Sandbox::new();
    sandbox.copy_from_repo("samples/orders.csv", "orders.csv");
    sandbox
        .run(["convert", "orders.csv", "orders.json"])
        .assert_success();
    let json = sandbox.read("orders.json");
    assert!(
        json.starts_with("[{\"order_id\":") && json.ends_with("}]\n"),
        "{json}"
    );
    sandbox
        .run(["convert", "orders.json", "orders.ndjson"])
        .assert_success();
    assert_eq!(
        sandbox.read_bytes("orders.ndjson"),
        std::fs::read(repo_path("samples/orders.ndjson")).expect("read samples/orders.ndjson")
    );

    sandbox.write(
        "page.json",
        r#"{"count": 2, "next": null, "results": [{"id": 1, "name": "ant"}, {"id": 2, "name": "bee"}]}"#,
    );
    sandbox.write(
        "p.toml",
        r#"[source]
type = "file"
path = "page.json"
format = { type = "json", records = "/results" }

[[sinks]]
type = "file"
path = "out/page.csv"
"#,
    );
    sandbox.run(["-q", "run", "p.toml"]).assert_success();
    assert_eq!(sandbox.read("out/page.csv"), "id,name\n1,ant\n2,bee\n");
}

/// Compact tabular JSON is named explicitly (`.json` means an array of objects) and carries
/// the same records.
#[test]
fn json_array_rows_convert_both_ways() {
    let sandbox = Sandbox::new();
    sandbox.write("in.csv", "id,name\n1,ant\n2,\n");
    sandbox
        .run(["convert", "in.csv", "rows.json", "--to", "json-array"])
        .assert_success();
    assert_eq!(
        sandbox.read("rows.json"),
        "[[\"id\",\"name\"],\n[\"1\",\"ant\"],\n[\"2\",null]]\n"
    );
    sandbox
        .run(["convert", "rows.json", "back.csv", "--from", "json-array"])
        .assert_success();
    assert_eq!(sandbox.read("back.csv"), "id,name\n1,ant\n2,\n");
}

/// An API's single item saved to a file (`GET /orders/123/`, pretty-printed) is one record;
/// read as NDJSON, it fails with a pointer to `json`.
#[test]
fn a_single_json_object_converts_to_one_record() {
    let sandbox = Sandbox::new();
    let order = "{\n  \"id\": 123,\n  \"total\": 12.50,\n  \"customer\": {\n    \"name\": \"Ann\"\n  }\n}\n";
    sandbox.write("order.json", order);
    sandbox
        .run(["convert", "order.json", "order.ndjson"])
        .assert_success();
    assert_eq!(
        sandbox.read("order.ndjson"),
        "{\"id\":123,\"total\":12.50,\"customer\":{\"name\":\"Ann\"}}\n"
    );
    sandbox
        .run(["convert", "order.json", "order.csv"])
        .assert_success();
    assert_eq!(
        sandbox.read("order.csv"),
        "id,total,customer\n123,12.50,\"{\"\"name\"\":\"\"Ann\"\"}\"\n"
    );

    sandbox
        .run(["convert", "order.json", "out.csv", "--from", "ndjson"])
        .assert_code(1)
        .assert_stderr(
            "error: pipeline `convert`: input failed
  caused by: order.json: line 1, column 1: invalid JSON: EOF while parsing an object. each line must hold one complete JSON object; for a JSON document over several lines, use format = { type = \"json\" } (convert: --from json)
",
        );
    sandbox.assert_not_published("out.csv");
}
