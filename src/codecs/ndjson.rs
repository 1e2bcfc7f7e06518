//! Newline-delimited JSON: one object per line, read and written a line at a time. Field names
//! are interned per file, so a million rows with the same twelve keys allocate twelve names.

use std::collections::HashSet;
use std::fmt;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};

use super::IO_BUFFER_BYTES;
use crate::error::{CodecError, Position};
use crate::record::{FieldName, Record, Value};
use crate::stage::{Decoder, Encoder};

/// NDJSON has no options yet; the table exists so `format = { type = "ndjson" }` reads like the
/// other formats.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NdjsonOptions {}

pub struct NdjsonDecoder {
    input: BufReader<Box<dyn Read + Send>>,
    label: String,
    line: Vec<u8>,
    line_number: u64,
    names: NameCache,
}

impl NdjsonDecoder {
    pub fn new(input: Box<dyn Read + Send>, label: &str) -> Self {
        NdjsonDecoder {
            input: BufReader::with_capacity(IO_BUFFER_BYTES, input),
            label: label.to_string(),
            line: Vec::new(),
            line_number: 0,
            names: NameCache::default(),
        }
    }

    fn parse_line(&mut self) -> Result<Record, CodecError> {
        let mut deserializer = serde_json::Deserializer::from_slice(&self.line);
        let record = RecordSeed {
            names: &mut self.names,
            top_level: true,
        }
        .deserialize(&mut deserializer)
        .and_then(|record| deserializer.end().map(|()| record));
        record.map_err(|e| {
            let message = e.to_string();
            let message = match message.rfind(" at line ") {
                Some(cut) => message[..cut].to_string(),
                None => message,
            };
            CodecError::Malformed {
                file: self.label.clone(),
                position: Position {
                    line: Some(self.line_number),
                    column: (e.column() > 0).then_some(e.column() as u64),
                    ..Position::default()
                },
                message: format!("invalid JSON: {message}"),
                hint: Some("each line must hold one complete JSON object".into()),
            }
        })
    }
}

impl Decoder for NdjsonDecoder {
    fn next_batch(&mut self, out: &mut Vec<Record>, max: usize) -> Result<bool, CodecError> {
        let start = out.len();
        while out.len() - start < max {
            self.line.clear();
            let read = self
                .input
                .read_until(b'\n', &mut self.line)
                .map_err(|source| CodecError::Io {
                    file: self.label.clone(),
                    action: "read",
                    source,
                })?;
            if read == 0 {
                break;
            }
            self.line_number += 1;
            if self.line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let record = self.parse_line()?;
            out.push(record);
        }
        Ok(out.len() > start)
    }
}

/// Hands out one shared `Arc<str>` per distinct key. Top-level keys usually repeat in the same
/// order on every line, so the key at the same position on the previous line is tried first.
#[derive(Default)]
struct NameCache {
    by_position: Vec<FieldName>,
    all: HashSet<FieldName>,
}

impl NameCache {
    fn get(&mut self, position: Option<usize>, key: &str) -> FieldName {
        if let Some(index) = position
            && let Some(name) = self.by_position.get(index)
            && &**name == key
        {
            return name.clone();
        }
        let name = match self.all.get(key) {
            Some(name) => name.clone(),
            None => {
                let name: FieldName = Arc::from(key);
                self.all.insert(name.clone());
                name
            }
        };
        if let Some(index) = position {
            if index < self.by_position.len() {
                self.by_position[index] = name.clone();
            } else {
                self.by_position.push(name.clone());
            }
        }
        name
    }
}

struct RecordSeed<'a> {
    names: &'a mut NameCache,
    top_level: bool,
}

impl<'de> DeserializeSeed<'de> for RecordSeed<'_> {
    type Value = Record;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Record, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RecordSeed<'_> {
    type Value = Record;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Record, A::Error> {
        let mut record = Record::with_capacity(map.size_hint().unwrap_or(16));
        let mut index = 0;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let name = self
                .names
                .get(self.top_level.then_some(index), &key);
            let value = map.next_value_seed(ValueSeed { names: self.names })?;
            if record.get(&name).is_some() {
                return Err(serde::de::Error::custom(format_args!(
                    "key `{name}` appears twice in one object"
                )));
            }
            record.push(name, value);
            index += 1;
        }
        Ok(record)
    }
}

struct ValueSeed<'a> {
    names: &'a mut NameCache,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Integer(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(match i64::try_from(v) {
            Ok(i) => Value::Integer(i),
            Err(_) => Value::Decimal(v.to_string()),
        })
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element_seed(ValueSeed { names: self.names })? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Value, A::Error> {
        RecordSeed {
            names: self.names,
            top_level: false,
        }
        .visit_map(map)
        .map(Value::Object)
    }
}

pub struct NdjsonEncoder {
    output: BufWriter<Box<dyn Write + Send>>,
    label: String,
}

impl NdjsonEncoder {
    pub fn new(output: Box<dyn Write + Send>, label: &str) -> Self {
        NdjsonEncoder {
            output: BufWriter::with_capacity(IO_BUFFER_BYTES, output),
            label: label.to_string(),
        }
    }

    fn write_error(&self, source: std::io::Error) -> CodecError {
        CodecError::Io {
            file: self.label.clone(),
            action: "write",
            source,
        }
    }
}

impl Encoder for NdjsonEncoder {
    fn write_batch(&mut self, records: &[Record]) -> Result<(), CodecError> {
        for record in records {
            serde_json::to_writer(&mut self.output, record)
                .map_err(|e| self.write_error(e.into()))?;
            self.output
                .write_all(b"\n")
                .map_err(|e| self.write_error(e))?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<(), CodecError> {
        self.output.flush().map_err(|e| self.write_error(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codecs::csv::tests::SharedBuffer;

    fn decode(input: &str) -> Result<Vec<Record>, CodecError> {
        let mut decoder = NdjsonDecoder::new(Box::new(std::io::Cursor::new(input.to_string())), "t.ndjson");
        let mut out = Vec::new();
        while decoder.next_batch(&mut out, 2)? {}
        Ok(out)
    }

    #[test]
    fn round_trips_typed_values_and_skips_blank_lines() {
        let input = "{\"id\":1,\"amount\":12.5,\"ok\":true,\"tags\":[\"a\",null],\"inner\":{\"x\":\"y\"}}\n\r\n{\"id\":18446744073709551615}\n";
        let records = decode(input).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].get("amount"), Some(&Value::Float(12.5)));
        assert_eq!(
            records[1].get("id"),
            Some(&Value::Decimal("18446744073709551615".into()))
        );
        let buffer = SharedBuffer::default();
        let mut encoder = Box::new(NdjsonEncoder::new(Box::new(buffer.clone()), "o.ndjson"));
        encoder.write_batch(&records).unwrap();
        encoder.finish().unwrap();
        assert_eq!(
            buffer.text(),
            "{\"id\":1,\"amount\":12.5,\"ok\":true,\"tags\":[\"a\",null],\"inner\":{\"x\":\"y\"}}\n{\"id\":18446744073709551615}\n"
        );
    }

    #[test]
    fn bad_json_names_line_and_column() {
        let err = decode("{\"a\":1}\n{\"a\":}\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "t.ndjson: line 2, column 6: invalid JSON: expected value. each line must hold one complete JSON object"
        );
    }

    #[test]
    fn a_line_that_is_not_an_object_is_an_error() {
        let err = decode("[1,2]\n").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("t.ndjson: line 1: invalid JSON: invalid type: sequence, expected a JSON object"),
            "{err}"
        );
    }

    #[test]
    fn trailing_garbage_and_duplicate_keys_are_errors() {
        assert!(decode("{\"a\":1} x\n").unwrap_err().to_string().contains("trailing characters"));
        assert!(decode("{\"a\":1,\"a\":2}\n").unwrap_err().to_string().contains("key `a` appears twice"));
    }
}
