//! Any bytes, in every format: decoding never panics, keeps the `Decoder` contract (records are
//! appended, at most `max` a call, never with an error, `Ok(false)` is final) and stays bounded
//! (no more records than input bytes, and a megabyte of noise decodes to its end). The fuzz
//! targets in `fuzz/` search the same ground for much longer; this keeps a quick version of it in
//! every `cargo test`, so a regression shows up without cargo-fuzz.

use std::io::Cursor;

// The fuzz targets' own contract checker (it needs nothing but longshore); the rest of that
// file serves the targets.
#[allow(dead_code)]
#[path = "../../fuzz/src/lib.rs"]
mod contract;

use longshore::codecs::xml::Namespaces;
use longshore::codecs::{CsvOptions, FormatConfig, JsonArrayOptions, JsonOptions, XmlOptions};
use proptest::prelude::*;

/// Every format, with the options that change how input is read.
fn formats() -> Vec<FormatConfig> {
    let named = |name| FormatConfig::from_name(name).expect("a known format");
    vec![
        named("csv"),
        named("tsv"),
        FormatConfig::Csv(CsvOptions {
            delimiter: ';',
            escape: Some('\\'),
            header: false,
            skip_rows: 1,
            flexible: true,
            null: "NULL".into(),
            ..CsvOptions::default()
        }),
        named("ndjson"),
        named("json"),
        FormatConfig::Json(JsonOptions {
            records: "/data/items".into(),
            ..JsonOptions::default()
        }),
        named("json-array"),
        FormatConfig::JsonArray(JsonArrayOptions {
            records: "/rows".into(),
            columns: None,
            columns_at: Some("/columns".into()),
        }),
        named("xml"),
        FormatConfig::Xml(XmlOptions {
            record_path: Some("orders/order".into()),
            flatten: true,
            namespaces: Namespaces::Keep,
            arrays: vec!["line".into()],
            ..XmlOptions::default()
        }),
        named("excel"),
    ]
}

/// Decodes `bytes` to the end as the file source does (on after a bad record, stop after any
/// other error), `max` records a call, asserting the contract on every call: the fuzz targets'
/// checker, so that both check the same thing. At most one record or bad record per byte.
fn decode_checked(format: &FormatConfig, bytes: &[u8], max: usize) {
    if let Ok(mut decoder) = format.decoder(
        Box::new(Cursor::new(bytes.to_vec())),
        "noise",
        None,
        longshore::codecs::limit::DEFAULT_MAX_RECORD_BYTES,
    ) {
        contract::drive(decoder.as_mut(), max, bytes.len());
    }
}

/// Bytes heavy in what the formats give meaning to, so that noise gets past the first byte.
fn noise() -> impl Strategy<Value = Vec<u8>> {
    let meaningful = prop::sample::select(
        b"{}[]\",:;\\'\n\r\t 0123456789.-eatrufnlx\xEF\xBB\xBF\xFF\xFE\x00".to_vec(),
    );
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        prop::collection::vec(meaningful, 0..512),
    ]
}

/// A plausible start, so that decoders read on into the noise.
fn start() -> impl Strategy<Value = &'static [u8]> {
    prop::sample::select(vec![
        b"".as_slice(),
        b"[",
        b"{",
        b"[{\"id\":1},",
        b"{\"data\":{\"items\":[",
        b"[[\"id\",\"name\"],",
        b"{\"columns\":[\"id\"],\"rows\":[",
        b"id,name\n",
        b"{\"id\":1}\n",
        b"<?xml",
        b"<?xml version=\"1.0\"?><orders><order id=\"1\">",
        b"PK\x03\x04",
    ])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn any_bytes_decode_within_the_contract(
        start in start(),
        noise in noise(),
        max in prop_oneof![1..4usize, Just(1000)],
    ) {
        let bytes = [start, &noise].concat();
        for format in formats() {
            decode_checked(&format, &bytes, max);
        }
    }
}

/// A megabyte of noise after each plausible start decodes to its end in every format: no decoder
/// loops or holds on to more than a bounded number of records.
#[test]
fn a_megabyte_of_noise_decodes_to_its_end() {
    let alphabet = b"{}[]\",:\n 0a\\<>/=";
    let mut rng = fastrand::Rng::with_seed(7);
    let noise: Vec<u8> = (0..1 << 20)
        .map(|_| alphabet[rng.usize(..alphabet.len())])
        .collect();
    for start in [b"[".as_slice(), b"id,name\n", b"{\"id\":1}\n", b"<orders>"] {
        let bytes = [start, &noise].concat();
        for format in formats() {
            decode_checked(&format, &bytes, 1000);
        }
    }
}
