//! Round trips through the codecs, at the library level (running the binary per case would be
//! too slow): records of text and nulls survive every format, and every pair of formats,
//! unchanged.

use std::collections::HashSet;
use std::io::{Cursor, Write};
use std::sync::{Arc, Mutex};

use longshore::codecs::FormatConfig;
use longshore::record::{FieldName, Record, Value};
use longshore::stage::{Decoder, Encoder};
use proptest::prelude::*;

/// A writer that can be read back after the encoder consumed it.
#[derive(Clone, Default)]
struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

impl SharedBuffer {
    fn bytes(&self) -> Vec<u8> {
        self.0.lock().expect("not poisoned").clone()
    }
}

impl Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("not poisoned").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn format(name: &str) -> FormatConfig {
    FormatConfig::from_name(name).expect("a known format")
}

/// A format from its TOML options.
fn json(options: &str) -> FormatConfig {
    toml::from_str(&format!("type = \"json\"\n{options}")).expect("json options")
}

fn json_array(options: &str) -> FormatConfig {
    toml::from_str(&format!("type = \"json-array\"\n{options}")).expect("json-array options")
}

fn encode(format: &FormatConfig, records: &[Record]) -> Vec<u8> {
    let buffer = SharedBuffer::default();
    let mut encoder: Box<dyn Encoder> = format
        .encoder(Box::new(buffer.clone()), "memory", None)
        .expect("an encoder");
    // In two batches when there are several records, as the runner hands them over.
    let (first, rest) = records.split_at(records.len() / 2);
    encoder.write_batch(first).expect("encode");
    encoder.write_batch(rest).expect("encode");
    encoder.finish().expect("finish");
    buffer.bytes()
}

fn decode(format: &FormatConfig, bytes: Vec<u8>) -> Vec<Record> {
    let mut decoder: Box<dyn Decoder> = format
        .decoder(
            Box::new(Cursor::new(bytes)),
            "memory",
            None,
            longshore::codecs::limit::DEFAULT_MAX_RECORD_BYTES,
        )
        .expect("a decoder");
    let mut records = Vec::new();
    while decoder.next_batch(&mut records, 3).expect("decode") {}
    records
}

/// Text with what CSV and JSON have to quote or escape, often; any Unicode otherwise.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[,;\"'\\\\\r\n\t a-zé東\u{0}\u{1f}\u{2028}\u{feff}]{1,12}",
    ]
}

/// Unique, non-empty field names, in arbitrary order.
fn names() -> impl Strategy<Value = Vec<String>> {
    let name = text().prop_filter("non-empty", |s| !s.is_empty());
    prop::collection::vec(name, 1..6).prop_map(|mut names| {
        let mut seen = HashSet::new();
        names.retain(|n| seen.insert(n.clone()));
        names
    })
}

/// A value: null, or text other than CSV's null token (the empty string).
fn value() -> impl Strategy<Value = Option<String>> {
    prop::option::weighted(
        0.8,
        text().prop_filter("not the null token", |s| !s.is_empty()),
    )
}

/// Records that all have the same fields, as a CSV file's do.
fn records() -> impl Strategy<Value = Vec<Record>> {
    names().prop_flat_map(|names| {
        let width = names.len();
        prop::collection::vec(prop::collection::vec(value(), width), 0..8).prop_map(move |rows| {
            rows.into_iter()
                .map(|row| {
                    let mut record = Record::new();
                    for (name, value) in names.iter().zip(row) {
                        let value = match value {
                            Some(text) => Value::String(text.as_str().into()),
                            None => Value::Null,
                        };
                        record.push(FieldName::from(name.as_str()), value);
                    }
                    record
                })
                .collect()
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn csv_encode_then_decode_is_identity(records in records()) {
        let csv = format("csv");
        let bytes = encode(&csv, &records);
        prop_assert_eq!(decode(&csv, bytes), records);
    }

    #[test]
    fn tsv_encode_then_decode_is_identity(records in records()) {
        let tsv = format("tsv");
        let bytes = encode(&tsv, &records);
        prop_assert_eq!(decode(&tsv, bytes), records);
    }

    #[test]
    fn ndjson_encode_then_decode_is_identity(records in records()) {
        let ndjson = format("ndjson");
        let bytes = encode(&ndjson, &records);
        prop_assert_eq!(decode(&ndjson, bytes), records);
    }

    #[test]
    fn every_pair_of_formats_carries_the_same_records(records in records()) {
        let formats = [
            format("csv"),
            format("tsv"),
            format("ndjson"),
            format("json"),
            json(r#"records = "/data/items"
pretty = true"#),
            format("json-array"),
            json_array(r#"records = "/rows"
columns_at = "/columns""#),
        ];
        for first in &formats {
            let once = decode(first, encode(first, &records));
            prop_assert_eq!(&once, &records, "{:?}", first);
            for second in &formats {
                let twice = decode(second, encode(second, &once));
                prop_assert_eq!(&twice, &records, "{:?} then {:?}", first, second);
            }
        }
    }

    #[test]
    fn text_survives_utf16_and_back(records in records()) {
        use longshore::codecs::TextEncoding;
        use longshore::codecs::text::{EncodingWriter, utf8_input};
        let csv = format("csv");
        let utf8 = encode(&csv, &records);
        let mut utf16 = Vec::new();
        let mut writer = EncodingWriter::new(&mut utf16, TextEncoding::parse("utf-16be").unwrap());
        writer.write_all(&utf8).unwrap();
        writer.flush().unwrap();
        drop(writer);
        let mut back = Vec::new();
        std::io::Read::read_to_end(
            &mut utf8_input(Box::new(Cursor::new(utf16)), None, true).unwrap(),
            &mut back,
        )
        .unwrap();
        prop_assert_eq!(decode(&csv, back), records);
    }

    #[test]
    fn csv_to_ndjson_to_csv_gives_back_the_same_bytes(records in records()) {
        let (csv, ndjson) = (format("csv"), format("ndjson"));
        let original = encode(&csv, &records);
        let as_ndjson = encode(&ndjson, &decode(&csv, original.clone()));
        let back = encode(&csv, &decode(&ndjson, as_ndjson));
        prop_assert_eq!(String::from_utf8_lossy(&back), String::from_utf8_lossy(&original));
        prop_assert_eq!(back, original);
    }
}

/// A first column whose name starts with U+FEFF (the byte-order mark character) would be taken
/// for a byte-order mark and lost; the encoder quotes it. (A real mark in front would make a
/// doubled mark, which readers take for a mistake and skip.)
#[test]
fn csv_first_column_named_with_a_leading_bom_character() {
    let mut record = Record::new();
    record.push(FieldName::from("\u{feff}id"), Value::String("1".into()));
    let csv = format("csv");
    let bytes = encode(&csv, std::slice::from_ref(&record));
    assert_eq!(bytes, "\"\u{feff}id\"\n1\n".as_bytes());
    assert_eq!(decode(&csv, bytes), [record]);
}
