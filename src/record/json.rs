//! Writing records as JSON text, fast. serde_json escapes strings a byte at a time, which made
//! it the most expensive step of CSV -> NDJSON; this writer skips clean runs of text eight
//! bytes at a time and writes each field name's escaped form once per column, not once per row.
//! Output is plain RFC 8259 JSON (non-ASCII text as UTF-8, not `\u` escapes); the tests check it
//! against serde_json's parser.

use super::{FieldName, Record, Value};

/// Escaped `"name":` prefixes of the last record's fields, by position. Holding the `Arc`
/// keeps its address from being reused, so pointer equality means the same name.
#[derive(Default)]
pub(crate) struct KeyCache {
    keys: Vec<(FieldName, Vec<u8>)>,
}

impl KeyCache {
    fn key(&mut self, index: usize, name: &FieldName) -> &[u8] {
        let fresh = match self.keys.get(index) {
            Some((cached, _)) => !FieldName::ptr_eq(cached, name),
            None => true,
        };
        if fresh {
            let mut text = Vec::with_capacity(name.len() + 3);
            write_str(&mut text, name);
            text.push(b':');
            if index < self.keys.len() {
                self.keys[index] = (name.clone(), text);
            } else {
                self.keys.push((name.clone(), text));
            }
        }
        &self.keys[index].1
    }
}

/// Appends `record` as one JSON object.
pub(crate) fn write_record(out: &mut Vec<u8>, record: &Record, keys: &mut KeyCache) {
    out.push(b'{');
    for (index, (name, value)) in record.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        out.extend_from_slice(keys.key(index, name));
        write_value(out, value);
    }
    out.push(b'}');
}

pub(crate) fn write_nested_record(out: &mut Vec<u8>, record: &Record) {
    out.push(b'{');
    for (index, (name, value)) in record.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        write_str(out, name);
        out.push(b':');
        write_value(out, value);
    }
    out.push(b'}');
}

pub(crate) fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Integer(i) => out.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes()),
        Value::Float(f) if f.is_finite() => {
            out.extend_from_slice(ryu::Buffer::new().format_finite(*f).as_bytes())
        }
        // JSON has no NaN or infinity.
        Value::Float(_) => out.extend_from_slice(b"null"),
        Value::Decimal(d) if is_json_number(d) => out.extend_from_slice(d.as_bytes()),
        Value::Decimal(d) | Value::String(d) => write_str(out, d),
        Value::Timestamp(_) | Value::DateTime(_) | Value::Date(_) => {
            write_str(out, &value.to_text().expect("a time has text"))
        }
        Value::Array(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(record) => write_nested_record(out, record),
    }
}

/// Whether `text` is a number in JSON's grammar: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
fn is_json_number(text: &str) -> bool {
    let b = text.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    let int_start = i;
    let int_len = digits(&mut i);
    if int_len == 0 || (int_len > 1 && b[int_start] == b'0') {
        return false;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

const LOW_BITS: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// Whether any of the eight bytes is a control character, `"` or `\`.
#[inline]
fn needs_escape(word: u64) -> bool {
    let has_zero = |w: u64| w.wrapping_sub(LOW_BITS) & !w & HIGH_BITS;
    let control = word.wrapping_sub(LOW_BITS * 0x20) & !word & HIGH_BITS;
    let quote = has_zero(word ^ (LOW_BITS * u64::from(b'"')));
    let backslash = has_zero(word ^ (LOW_BITS * u64::from(b'\\')));
    (control | quote | backslash) != 0
}

/// Appends `text` as a JSON string.
pub(crate) fn write_str(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut clean_from = 0;
    let mut i = 0;
    while i < bytes.len() {
        let word = if i + 8 <= bytes.len() {
            u64::from_le_bytes(bytes[i..i + 8].try_into().expect("eight bytes"))
        } else {
            // The tail, padded with spaces (which need no escape).
            let mut tail = [b' '; 8];
            tail[..bytes.len() - i].copy_from_slice(&bytes[i..]);
            u64::from_le_bytes(tail)
        };
        if !needs_escape(word) {
            i += 8;
            continue;
        }
        let byte = bytes[i];
        let escape: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0C => b"\\f",
            0x00..=0x1F => b"",
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&bytes[clean_from..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(byte >> 4)]);
            out.push(HEX[usize::from(byte & 0xF)]);
        } else {
            out.extend_from_slice(escape);
        }
        i += 1;
        clean_from = i;
    }
    out.extend_from_slice(&bytes[clean_from..]);
    out.push(b'"');
}

/// Re-indents the compact JSON written through it (two spaces a level, `"key": value`, empty
/// objects and arrays kept as `{}` and `[]`), as it streams: `pretty = true` costs no buffering
/// of the document.
pub(crate) struct PrettyWriter<W: std::io::Write> {
    inner: W,
    depth: usize,
    in_string: bool,
    escaped: bool,
    /// An opening bracket whose line break waits for the next byte: `{}` and `[]` stay shut.
    opened: bool,
    out: Vec<u8>,
}

impl<W: std::io::Write> PrettyWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        PrettyWriter {
            inner,
            depth: 0,
            in_string: false,
            escaped: false,
            opened: false,
            out: Vec::new(),
        }
    }

    fn new_line(&mut self) {
        self.out.push(b'\n');
        self.out.extend(std::iter::repeat_n(b' ', 2 * self.depth));
    }
}

impl<W: std::io::Write> std::io::Write for PrettyWriter<W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.out.clear();
        for &byte in bytes {
            if self.in_string {
                self.out.push(byte);
                match byte {
                    _ if self.escaped => self.escaped = false,
                    b'\\' => self.escaped = true,
                    b'"' => self.in_string = false,
                    _ => {}
                }
                continue;
            }
            if byte.is_ascii_whitespace() {
                // Only the newline that ends the document is kept.
                if byte == b'\n' && self.depth == 0 && !self.opened {
                    self.out.push(byte);
                }
                continue;
            }
            if std::mem::take(&mut self.opened) {
                if matches!(byte, b'}' | b']') {
                    self.out.push(byte);
                    continue;
                }
                self.depth += 1;
                self.new_line();
            }
            match byte {
                b'{' | b'[' => {
                    self.out.push(byte);
                    self.opened = true;
                }
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    self.new_line();
                    self.out.push(byte);
                }
                b',' => {
                    self.out.push(byte);
                    self.new_line();
                }
                b':' => self.out.extend_from_slice(b": "),
                b'"' => {
                    self.out.push(byte);
                    self.in_string = true;
                }
                _ => self.out.push(byte),
            }
        }
        self.inner.write_all(&self.out)?;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn json(text: &str) -> String {
        let mut out = Vec::new();
        write_str(&mut out, text);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn escapes_what_json_requires() {
        assert_eq!(
            json("plain ascii, longer than eight"),
            "\"plain ascii, longer than eight\""
        );
        assert_eq!(
            json("a\"b\\c\nd\te\u{1}\u{7f}é東"),
            "\"a\\\"b\\\\c\\nd\\te\\u0001\u{7f}é東\""
        );
        assert_eq!(json("12345678\""), "\"12345678\\\"\"");
    }

    #[test]
    fn values_are_written_as_json_types() {
        let name = |n: &str| FieldName::from(n);
        let mut inner = Record::new();
        inner.push(name("x"), Value::Bool(true));
        let mut record = Record::new();
        record.push(name("amount"), Value::Decimal("12.50".into()));
        record.push(name("code"), Value::Decimal("12,50".into()));
        record.push(name("n"), Value::Null);
        record.push(
            name("tags"),
            Value::Array(vec![Value::String("a\"b".into())]),
        );
        record.push(name("inner"), Value::Object(inner));
        record.push(name("f"), Value::Float(f64::NAN));
        let mut out = Vec::new();
        write_record(&mut out, &record, &mut KeyCache::default());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"amount":12.50,"code":"12,50","n":null,"tags":["a\"b"],"inner":{"x":true},"f":null}"#
        );
    }

    #[test]
    fn decimals_are_raw_only_when_valid_json_numbers() {
        for ok in ["0", "-1", "12.50", "1e5", "-0.0E+3"] {
            assert!(is_json_number(ok), "{ok}");
        }
        for bad in ["", "-", "01", "1.", ".5", "1e", "1,5", "NaN", "+1"] {
            assert!(!is_json_number(bad), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn any_string_reads_back_unchanged(text in any::<String>()) {
            let parsed: String = serde_json::from_str(&json(&text)).unwrap();
            prop_assert_eq!(parsed, text);
        }

        #[test]
        fn control_heavy_strings_read_back_unchanged(text in "[\\x00-\\x20\"\\\\a-z]{0,40}") {
            let parsed: String = serde_json::from_str(&json(&text)).unwrap();
            prop_assert_eq!(parsed, text);
        }
    }

    #[test]
    fn pretty_writer_indents_as_it_streams() {
        use std::io::Write as _;
        let compact = br#"{"results":[{"id":1,"tags":[],"note":"a, {b}: \"c\"","o":{}},{"id":2}]}"#;
        let mut out = Vec::new();
        let mut pretty = PrettyWriter::new(&mut out);
        // Cut anywhere, even inside a string or an escape.
        for chunk in compact.chunks(3) {
            pretty.write_all(chunk).unwrap();
        }
        pretty.write_all(b"\n").unwrap();
        drop(pretty);
        let expected = r#"{
  "results": [
    {
      "id": 1,
      "tags": [],
      "note": "a, {b}: \"c\"",
      "o": {}
    },
    {
      "id": 2
    }
  ]
}
"#;
        assert_eq!(String::from_utf8(out).unwrap(), expected);
        let reparsed: serde_json::Value = serde_json::from_str(expected).unwrap();
        assert_eq!(
            reparsed,
            serde_json::from_slice::<serde_json::Value>(compact).unwrap()
        );
    }
}
