//! `max_record_bytes`: one record larger than the limit (a 2 MB line, a gzipped stream of
//! zeros that is one endless line) fails the run with its file and line, before it is held in
//! memory, and nothing is published.

use std::io::Write;

use crate::support::{Sandbox, pipeline};

const HINT: &str = "raise the source's `max_record_bytes` if such records are expected";

/// Runs `p.toml` reading `path` with a 1 MiB limit and checks it fails with `error` (file and
/// position), publishing nothing.
fn assert_refused(sandbox: &Sandbox, path: &str, format: &str, error: &str) {
    sandbox.write(
        "p.toml",
        pipeline(
            &format!("path = \"{path}\"\n{format}max_record_bytes = 1048576"),
            &["path = \"out/all.ndjson\""],
        ),
    );
    sandbox
        .run(["run", "p.toml"])
        .assert_code(1)
        .assert_stderr_starts_with(&format!(
            "error: pipeline `p`: source (file) failed\n  caused by: {error}: a record is larger than `max_record_bytes` = 1048576 (1 MiB). {HINT}\n"
        ));
    sandbox.assert_not_published("out/all.ndjson");
}

#[test]
fn a_csv_line_over_the_limit_fails_with_its_line() {
    let sandbox = Sandbox::new();
    let mut csv = b"id,note\n1,short\n2,\"".to_vec();
    csv.extend(vec![b'x'; 2_000_000]);
    csv.extend(b"\"\n3,after\n");
    sandbox.write("in/big.csv", csv);
    assert_refused(&sandbox, "in/big.csv", "", "in/big.csv: line 3");
}

#[test]
fn an_ndjson_line_over_the_limit_fails_with_its_line() {
    let sandbox = Sandbox::new();
    let mut ndjson = b"{\"id\":1}\n{\"id\":2,\"note\":\"".to_vec();
    ndjson.extend(vec![b'x'; 2_000_000]);
    ndjson.extend(b"\"}\n");
    sandbox.write("in/big.ndjson", ndjson);
    assert_refused(&sandbox, "in/big.ndjson", "", "in/big.ndjson: line 2");
}

/// The gzip bomb of the issue in small: a stream of zeros unpacks to one endless line, which
/// used to be buffered whole (5 GB before `max_unpacked_bytes` stopped it).
#[test]
fn a_gzipped_stream_of_zeros_fails_within_the_limit() {
    let sandbox = Sandbox::new();
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(b"id\n").unwrap();
    for _ in 0..64 {
        encoder.write_all(&[0; 1 << 20]).unwrap();
    }
    let bomb = encoder.finish().unwrap();
    assert!(bomb.len() < 1_000_000, "{} bytes", bomb.len());
    sandbox.write("in/zeros.csv.gz", bomb);
    assert_refused(&sandbox, "in/zeros.csv.gz", "", "in/zeros.csv.gz: line 2");
    // Records under the limit still pass.
    sandbox.write("in/zeros.csv.gz", b"id\n1\n2\n");
    sandbox.run(["-q", "run", "p.toml"]).assert_success();
}

#[test]
fn convert_takes_the_limit_too() {
    let sandbox = Sandbox::new();
    let mut ndjson = b"{\"id\":1}\n{\"note\":\"".to_vec();
    ndjson.extend(vec![b'x'; 5000]);
    ndjson.extend(b"\"}\n");
    sandbox.write("big.ndjson", ndjson);
    sandbox
        .run(["-q", "convert", "big.ndjson", "out.csv", "--max-record-bytes", "4096"])
        .assert_code(1)
        .assert_stderr_starts_with(&format!(
            "error: pipeline `convert`: input failed\n  caused by: big.ndjson: line 2: a record is larger than `max_record_bytes` = 4096 (4 KiB). {HINT}\n"
        ));
    sandbox.assert_not_published("out.csv");
}

#[test]
fn a_json_array_element_over_the_limit_fails_with_its_record_number() {
    let sandbox = Sandbox::new();
    let mut json = b"[{\"id\":1},\n{\"id\":2,\"note\":\"".to_vec();
    json.extend(vec![b'x'; 3_000_000]);
    json.extend(b"\"},\n{\"id\":3}]\n");
    sandbox.write("in/big.json", json);
    assert_refused(&sandbox, "in/big.json", "", "in/big.json: record 2");
}

/// A document that is one object is one record, limited like any other.
#[test]
fn a_single_json_object_over_the_limit_fails_as_record_1() {
    let sandbox = Sandbox::new();
    let mut json = b"{\n  \"id\": 1,\n  \"note\": \"".to_vec();
    json.extend(vec![b'x'; 3_000_000]);
    json.extend(b"\"\n}\n");
    sandbox.write("in/one.json", json);
    assert_refused(&sandbox, "in/one.json", "", "in/one.json: record 1");
}

#[test]
fn an_xml_record_over_the_limit_fails_with_its_line() {
    let sandbox = Sandbox::new();
    let mut xml = b"<orders>\n  <order><id>1</id></order>\n  <order><id>2</id><note>".to_vec();
    xml.extend(vec![b'x'; 2_000_000]);
    xml.extend(b"</note></order>\n</orders>\n");
    sandbox.write("in/big.xml", xml);
    assert_refused(
        &sandbox,
        "in/big.xml",
        "",
        "in/big.xml: line 3, column 3, record 2",
    );
}

/// The gzip bomb read as XML: text before any element, refused as not XML once past the limit
/// rather than after all of it is read.
#[test]
fn a_gzipped_stream_of_zeros_read_as_xml_is_not_xml() {
    let sandbox = Sandbox::new();
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for _ in 0..64 {
        encoder.write_all(&[0; 1 << 20]).unwrap();
    }
    sandbox.write("in/zeros.xml.gz", encoder.finish().unwrap());
    sandbox.write(
        "p.toml",
        pipeline(
            "path = \"in/zeros.xml.gz\"\nmax_record_bytes = 1048576",
            &["path = \"out/all.ndjson\""],
        ),
    );
    let zeros = "\\0".repeat(20);
    sandbox
        .run(["run", "p.toml"])
        .assert_code(1)
        .assert_stderr_starts_with(&format!(
            "error: pipeline `p`: source (file) failed\n  caused by: in/zeros.xml.gz: line 1, column 1: not an XML document: it starts with `{zeros}…`, not with an element\n"
        ));
    sandbox.assert_not_published("out/all.ndjson");
}
