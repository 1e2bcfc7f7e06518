//! Compressed files and text encodings: gzip and zip input read transparently (with limits
//! against bombs), `.gz` output, and input and output in encodings other than UTF-8.

use std::io::{Cursor, Read, Write};

use crate::support::{Sandbox, pipeline};

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn gunzip(bytes: &[u8]) -> String {
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_string(&mut text)
        .expect("valid gzip");
    text
}

fn zip(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, bytes) in members {
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        writer.start_file(*name, options).unwrap();
        writer.write_all(bytes).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

#[test]
fn gzip_in_and_out_by_content_and_extension() {
    let sandbox = Sandbox::new();
    sandbox.write("orders.csv.gz", gzip(b"id,name\n1,ant\n2,bee\n"));
    sandbox
        .run(["-q", "convert", "orders.csv.gz", "out/orders.ndjson.gz"])
        .assert_success()
        .assert_stderr("");
    assert_eq!(
        gunzip(&sandbox.read_bytes("out/orders.ndjson.gz")),
        "{\"id\":\"1\",\"name\":\"ant\"}\n{\"id\":\"2\",\"name\":\"bee\"}\n"
    );
    // A gzip file without a `.gz` name is recognized by its content.
    sandbox.write("renamed.csv", gzip(b"id\n7\n"));
    let out = sandbox.run(["-q", "convert", "renamed.csv", "-", "--to", "ndjson"]);
    out.assert_success();
    assert_eq!(out.stdout(), "{\"id\":\"7\"}\n");
}

#[test]
fn every_member_of_a_zip_is_read_in_order_and_named_as_the_origin() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "p.toml",
        pipeline(
            "path = \"in/*.zip\"",
            &["path = \"out/{source_stem}.ndjson\""],
        ),
    );
    sandbox.write(
        "in/batch.zip",
        zip(&[
            ("orders.csv", b"id,name\n1,ant\n"),
            ("more/returns.ndjson", b"{\"id\":2}\n"),
        ]),
    );
    sandbox.run(["-q", "run", "p.toml"]).assert_success();
    assert_eq!(
        sandbox.files("out"),
        ["out/orders.ndjson", "out/returns.ndjson"]
    );
    assert_eq!(
        sandbox.read("out/orders.ndjson"),
        "{\"id\":\"1\",\"name\":\"ant\"}\n"
    );
    assert_eq!(sandbox.read("out/returns.ndjson"), "{\"id\":2}\n");
    // The archive is in the ledger as one file: the next run finds nothing new.
    let again = sandbox.run(["run", "p.toml"]);
    again.assert_success();
    assert!(
        again.stderr.contains("nothing new to read"),
        "{}",
        again.stderr
    );
}

#[test]
fn a_bad_member_is_named_inside_its_archive() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "in.zip",
        zip(&[("ok.csv", b"id\n1\n"), ("bad.csv", b"id\n\"open\n")]),
    );
    let outcome = sandbox.run(["convert", "in.zip", "out.ndjson"]);
    outcome.assert_code(1).assert_stderr(
        "error: pipeline `convert`: input failed\n  caused by: in.zip/bad.csv: line 2: a quoted field is never closed: its opening quote runs to the end of the file. add the missing closing quote\n",
    );
    sandbox.assert_not_published("out.ndjson");
    let unknown = Sandbox::new();
    unknown.write("in.zip", zip(&[("notes.txt", b"hello")]));
    unknown
        .run(["convert", "in.zip", "out.ndjson"])
        .assert_code(1)
        .assert_stderr("error: pipeline `convert`: input failed\n  caused by: cannot tell the format of in.zip/notes.txt from its name: set the source's `format` (one of csv, tsv, ndjson, jsonl, json, json-array, xml, excel, xlsx, xls, ods, parquet)\n");
}

#[test]
fn a_zip_bomb_fails_the_run_and_publishes_nothing() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "p.toml",
        pipeline(
            "path = \"in/*.zip\"\nmax_unpacked_bytes = 1000000",
            &["path = \"out/all.ndjson\""],
        ),
    );
    // 10 MB of one repeated row compresses to a few kilobytes.
    let mut rows = b"id\n".to_vec();
    rows.extend(b"1\n".repeat(5_000_000));
    let bomb = zip(&[("rows.csv", &rows)]);
    assert!(bomb.len() < 100_000, "{} bytes", bomb.len());
    sandbox.write("in/bomb.zip", bomb);
    sandbox
        .run(["run", "p.toml"])
        .assert_code(1)
        .assert_stderr_starts_with(
            "error: pipeline `p`: source (file) failed\n  caused by: in/bomb.zip/rows.csv: unpacks to more than max_unpacked_bytes = 1000000 bytes. raise the source's `max_unpacked_bytes` if the file is expected to be that large\n",
        );
    sandbox.assert_not_published("out/all.ndjson");
}

#[test]
fn legacy_and_utf16_input_and_legacy_output() {
    let sandbox = Sandbox::new();
    // windows-1252: é is E9, € is 80.
    sandbox.write("latin.csv", b"name,price\ncaf\xE9,\x80 3\n");
    let out = sandbox.run([
        "-q",
        "convert",
        "latin.csv",
        "-",
        "--to",
        "ndjson",
        "--encoding",
        "windows-1252",
    ]);
    out.assert_success();
    assert_eq!(out.stdout(), "{\"name\":\"café\",\"price\":\"€ 3\"}\n");
    // UTF-16LE with a byte-order mark needs no option.
    let utf16: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain("id\nZoë\n".encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    sandbox.write("wide.csv", utf16);
    let out = sandbox.run(["-q", "convert", "wide.csv", "-", "--to", "ndjson"]);
    assert_eq!(out.stdout(), "{\"id\":\"Zoë\"}\n");
    // And back out in windows-1252, byte for byte.
    sandbox
        .run([
            "-q",
            "convert",
            "latin.csv",
            "back.csv",
            "--encoding",
            "cp1252",
            "--to-encoding",
            "windows-1252",
        ])
        .assert_success();
    assert_eq!(
        sandbox.read_bytes("back.csv"),
        b"name,price\ncaf\xE9,\x80 3\n"
    );
}

#[test]
fn a_character_the_output_encoding_lacks_fails_and_publishes_nothing() {
    let sandbox = Sandbox::new();
    sandbox.write("in.csv", "name\nΩmega\n");
    sandbox.write(
        "p.toml",
        pipeline(
            "path = \"in.csv\"",
            &["path = \"out.csv\"\nencoding = \"iso-8859-1\""],
        ),
    );
    sandbox
        .run(["run", "p.toml"])
        .assert_code(1)
        .assert_stderr("error: pipeline `p`: sink 1 (file) failed\n  caused by: out.csv: cannot write\n  caused by: the character 'Ω' (U+03A9) cannot be written in windows-1252\n");
    sandbox.assert_not_published("out.csv");
}

#[test]
fn xml_declares_the_encoding_it_is_written_in_and_is_read_back_by_it() {
    let sandbox = Sandbox::new();
    sandbox.write("in.csv", "name\ncafé\n");
    sandbox
        .run([
            "-q",
            "convert",
            "in.csv",
            "out.xml",
            "--to-encoding",
            "windows-1252",
        ])
        .assert_success();
    let bytes = sandbox.read_bytes("out.xml");
    assert!(
        bytes.starts_with(b"<?xml version=\"1.0\" encoding=\"windows-1252\"?>\n"),
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    assert!(bytes.windows(4).any(|w| w == b"caf\xE9"), "{bytes:?}");
    // The declaration is all a reader needs.
    let back = sandbox.run(["-q", "convert", "out.xml", "-", "--to", "ndjson"]);
    back.assert_success();
    assert_eq!(back.stdout(), "{\"name\":\"café\"}\n");
}
