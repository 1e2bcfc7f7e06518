//! XML: records at a `record_path` or every child of the root, namespaces stripped or kept,
//! flattened or nested, forced arrays, in the encoding its declaration or the source names.
#![no_main]

use libfuzzer_sys::fuzz_target;
use longshore::codecs::xml::Namespaces;
use longshore::codecs::{FormatConfig, TextEncoding, XmlOptions};

fuzz_target!(|data: &[u8]| {
    let Some((delivery, options, file)) = longshore_fuzz::split(data) else {
        return;
    };
    let bit = |n: u16| options >> n & 1 == 1;
    let xml = XmlOptions {
        record_path: [None, Some("orders/order"), Some("invoice"), Some("a/b/c")]
            [usize::from(options & 3)]
        .map(str::to_string),
        attribute_prefix: if bit(2) { String::new() } else { "@".into() },
        flatten: bit(3),
        namespaces: if bit(4) {
            Namespaces::Keep
        } else {
            Namespaces::Strip
        },
        arrays: if bit(5) {
            vec!["line".into()]
        } else {
            Vec::new()
        },
        ..XmlOptions::default()
    };
    let encoding = bit(6).then(|| TextEncoding::parse("windows-1252").expect("a known label"));
    let format = FormatConfig::Xml(xml);
    assert!(format.problems().is_empty());
    longshore_fuzz::decode_as(&format, encoding, delivery, file, file.len());
});
