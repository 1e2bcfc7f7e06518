//! Text encodings both ways. In: any bytes through `utf8_input` come out as UTF-8 (or, for UTF-8
//! input, as they were, less a byte-order mark when asked). Out: UTF-8 text written through an
//! `EncodingWriter` in pieces cut anywhere, even inside a character, reads back as the same
//! text in the encodings that map one to one.
#![no_main]

use std::io::{Cursor, Read, Write};

use libfuzzer_sys::fuzz_target;
use longshore::codecs::TextEncoding;
use longshore::codecs::text::{EncodingWriter, utf8_input};

const ENCODINGS: [Option<&str>; 8] = [
    None,
    Some("utf-8"),
    Some("utf-16le"),
    Some("utf-16be"),
    Some("windows-1252"),
    Some("iso-8859-15"),
    Some("shift_jis"),
    Some("iso-2022-jp"),
];

/// Encodings in which encoding then decoding gives back every character they can write.
const ONE_TO_ONE: [&str; 4] = ["UTF-16LE", "UTF-16BE", "windows-1252", "ISO-8859-15"];

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

fuzz_target!(|data: &[u8]| {
    let Some((&options, bytes)) = data.split_first() else {
        return;
    };
    let encoding = ENCODINGS[usize::from(options & 7)]
        .map(|label| TextEncoding::parse(label).expect("a known label"));
    let keep_bom = options & 8 != 0;
    read_in(bytes, encoding, keep_bom);
    if let (Some(encoding), Ok(text)) = (encoding, std::str::from_utf8(bytes)) {
        write_out(text, encoding, usize::from(options >> 4) + 1);
    }
});

fn read_in(bytes: &[u8], encoding: Option<TextEncoding>, keep_bom: bool) {
    let mut input = utf8_input(Box::new(Cursor::new(bytes.to_vec())), encoding, keep_bom)
        .expect("reading memory does not fail");
    let mut out = Vec::new();
    input
        .read_to_end(&mut out)
        .expect("reading memory does not fail");
    let as_utf8 = bytes.starts_with(UTF8_BOM)
        || !(bytes.starts_with(b"\xFF\xFE") || bytes.starts_with(b"\xFE\xFF"))
            && encoding.is_none_or(|e| e.name() == "UTF-8");
    if !as_utf8 {
        assert!(
            std::str::from_utf8(&out).is_ok(),
            "decoded text is not UTF-8"
        );
    } else if bytes.starts_with(UTF8_BOM) && !keep_bom {
        assert_eq!(out, bytes[UTF8_BOM.len()..], "UTF-8 less its BOM");
    } else {
        assert_eq!(out, bytes, "UTF-8 passed through");
    }
}

/// Writes `text` in pieces of `piece` bytes; where it is written whole, it must read back.
fn write_out(text: &str, encoding: TextEncoding, piece: usize) {
    let mut encoded = Vec::new();
    let mut writer = EncodingWriter::new(&mut encoded, encoding);
    let written = text
        .as_bytes()
        .chunks(piece)
        .try_for_each(|chunk| writer.write_all(chunk))
        .and_then(|()| writer.flush());
    drop(writer);
    if written.is_err() || !ONE_TO_ONE.contains(&encoding.name()) {
        return;
    }
    let (decoded, had_errors) = encoding.0.decode_without_bom_handling(
        encoded
            .strip_prefix(b"\xFF\xFE".as_slice())
            .or_else(|| encoded.strip_prefix(b"\xFE\xFF".as_slice()))
            .unwrap_or(&encoded),
    );
    assert!(!had_errors, "{} output does not decode", encoding.name());
    assert_eq!(decoded, text, "{} round trip", encoding.name());
}
