//! Newline-delimited JSON: one object per line. Field names are interned per file (and parsing
//! thread), so a million rows with the same twelve keys allocate twelve names.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};

use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};

use super::limit;
use super::parallel::{ChunkParser, ParallelChunks};
use super::{EncodedOutput, IO_BUFFER_BYTES};
use crate::error::{CodecError, Malformed, Position};
use crate::record::json::{KeyCache, write_record};
use crate::record::{FieldName, Record, Text, Value};
use crate::stage::{Decoder, Encoder};

/// NDJSON has no options yet; the table exists so `format = { type = "ndjson" }` reads like the
/// other formats.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NdjsonOptions {}

/// Reads lines in chunks and parses them. Parsing JSON costs several times more than reading
/// lines or writing any output, so once a file proves large, chunks are parsed on other threads
/// (see [`ParallelChunks`]) while this one only reads.
pub struct NdjsonDecoder {
    input: BufReader<Box<dyn Read + Send>>,
    label: String,
    /// The number of the next line to read.
    next_line: u64,
    exhausted: bool,
    /// Chunks read and handed out for parsing, oldest first.
    chunks: ParallelChunks<LineParser>,
    /// Records of a chunk larger than the last `max` asked for.
    leftover: VecDeque<Record>,
    /// Errors for bad lines already parsed, reported before any later record.
    rejected: VecDeque<CodecError>,
    /// The error that ends the input (a failed read), reported once the records before it are out.
    failed: Option<CodecError>,
    max_record_bytes: u64,
}

/// Like `BufRead::read_until(b'\n')`, but reading no more than `max + 1` bytes of the line
/// (a line of a gigabyte must not be held whole to be refused): what is read is appended to
/// `out`, and its length returned.
fn read_line_bounded(input: &mut impl BufRead, out: &mut Vec<u8>, max: u64) -> io::Result<usize> {
    let mut read = 0usize;
    loop {
        let available = match input.fill_buf() {
            Ok(available) => available,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(read);
        }
        let room = usize::try_from(max.saturating_add(1) - read as u64).unwrap_or(usize::MAX);
        let window = &available[..available.len().min(room)];
        let (found, used) = match memchr::memchr(b'\n', window) {
            Some(at) => (true, at + 1),
            None => (false, window.len()),
        };
        out.extend_from_slice(&window[..used]);
        input.consume(used);
        read += used;
        if found || read as u64 > max {
            return Ok(read);
        }
    }
}

/// A chunk ends after the line that brings it to this size, whatever its number of lines, so
/// that the chunks in flight stay small when lines are long.
const CHUNK_BYTES: usize = 4 * IO_BUFFER_BYTES;

/// The records of a chunk, and an error for each bad line in it.
struct ParsedChunk {
    records: Vec<Record>,
    errors: Vec<CodecError>,
}

/// A raw run of whole lines.
struct Chunk {
    bytes: Vec<u8>,
    first_line: u64,
}

impl NdjsonDecoder {
    /// A decoder of `input`; a line of more than `max_record_bytes` fails it.
    pub fn new(input: Box<dyn Read + Send>, label: &str, max_record_bytes: u64) -> Self {
        let parser = LineParser {
            label: label.to_string(),
            names: NameCache::default(),
        };
        NdjsonDecoder {
            input: BufReader::with_capacity(IO_BUFFER_BYTES, input),
            label: label.to_string(),
            next_line: 1,
            exhausted: false,
            chunks: ParallelChunks::new(parser, "ndjson-parse"),
            leftover: VecDeque::new(),
            rejected: VecDeque::new(),
            failed: None,
            max_record_bytes,
        }
    }

    /// Reads up to `lines` whole lines (fewer once the chunk holds [`CHUNK_BYTES`]); `None` at
    /// the end of the input or after a failed read. A failed read (or a line over the limit) is
    /// kept in `failed`, after the whole lines read before it.
    fn read_chunk(&mut self, lines: usize) -> Option<Chunk> {
        let mut bytes = Vec::new();
        let first_line = self.next_line;
        for _ in 0..lines {
            if bytes.len() >= CHUNK_BYTES {
                break;
            }
            let line_start = bytes.len();
            // A line is read no further than one byte past the limit.
            match read_line_bounded(&mut self.input, &mut bytes, self.max_record_bytes) {
                Ok(0) => {
                    self.exhausted = true;
                    break;
                }
                Ok(read) if read as u64 > self.max_record_bytes && bytes.last() != Some(&b'\n') => {
                    bytes.truncate(line_start);
                    self.failed = Some(limit::record_too_large(
                        &self.label,
                        Position::line(self.next_line),
                        self.max_record_bytes,
                    ));
                    break;
                }
                Ok(_) => self.next_line += 1,
                Err(source) => {
                    bytes.truncate(line_start);
                    self.failed = Some(CodecError::io(&self.label, "read", source));
                    break;
                }
            }
        }
        (!bytes.is_empty()).then_some(Chunk { bytes, first_line })
    }

    /// Reads chunks ahead, as many as the parsing threads take.
    fn fill(&mut self, lines: usize) {
        while self.chunks.has_room() && !self.exhausted && self.failed.is_none() {
            let Some(chunk) = self.read_chunk(lines) else {
                break;
            };
            self.chunks.push(chunk);
        }
    }
}

impl Decoder for NdjsonDecoder {
    fn next_batch(&mut self, out: &mut Vec<Record>, max: usize) -> Result<bool, CodecError> {
        let start = out.len();
        while out.len() - start < max {
            if let Some(record) = self.leftover.pop_front() {
                out.push(record);
                continue;
            }
            if !self.rejected.is_empty() {
                if out.len() > start {
                    break;
                }
                return Err(self.rejected.pop_front().expect("checked above"));
            }
            self.fill(max);
            let chunk = match self.chunks.pop() {
                None => match self.failed.take() {
                    Some(error) if out.len() == start => return Err(error),
                    Some(error) => {
                        self.failed = Some(error);
                        break;
                    }
                    None => break,
                },
                Some(parsed) => {
                    parsed.map_err(|e| CodecError::io(&self.label, "parse the input", e))?
                }
            };
            self.rejected.extend(chunk.errors);
            let room = max - (out.len() - start);
            let mut records = chunk.records.into_iter();
            out.extend(records.by_ref().take(room));
            self.leftover.extend(records);
        }
        Ok(out.len() > start)
    }
}

/// Parses lines into records, with its own name cache (one per thread).
#[derive(Clone)]
struct LineParser {
    label: String,
    names: NameCache,
}

impl ChunkParser for LineParser {
    type Chunk = Chunk;
    type Parsed = ParsedChunk;

    fn parse(&mut self, chunk: Chunk) -> ParsedChunk {
        let mut records = Vec::with_capacity(chunk.bytes.len() / 64 + 1);
        let mut errors = Vec::new();
        let bytes = &chunk.bytes;
        let ends = memchr::memchr_iter(b'\n', bytes)
            .chain((bytes.last() != Some(&b'\n')).then_some(bytes.len()));
        let mut start = 0;
        let lines = ends.map(|end| {
            let line = &bytes[start..end];
            start = end + 1;
            line
        });
        for (offset, line) in (0u64..).zip(lines) {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match self.parse_line(line, chunk.first_line + offset) {
                Ok(record) => records.push(record),
                Err(malformed) => errors.push(CodecError::BadRecord {
                    malformed,
                    raw: Some(String::from_utf8_lossy(line).into_owned()),
                }),
            }
        }
        ParsedChunk { records, errors }
    }
}

impl LineParser {
    fn parse_line(&mut self, bytes: &[u8], line_number: u64) -> Result<Record, Box<Malformed>> {
        // One UTF-8 check per line is much cheaper than serde_json's check per string.
        let line = std::str::from_utf8(bytes).map_err(|e| {
            let valid = &bytes[..e.valid_up_to()];
            Box::new(Malformed {
                file: self.label.clone(),
                position: Position {
                    line: Some(line_number),
                    column: Some(String::from_utf8_lossy(valid).chars().count() as u64 + 1),
                    ..Position::default()
                },
                message: format!("invalid UTF-8 (byte 0x{:02X})", bytes[e.valid_up_to()]),
                hint: Some("JSON must be UTF-8: convert the file".into()),
            })
        })?;
        let mut deserializer = serde_json::Deserializer::from_str(line);
        let record = RecordSeed {
            names: &mut self.names,
            top_level: true,
        }
        .deserialize(&mut deserializer)
        .and_then(|record| deserializer.end().map(|()| record));
        record.map_err(|e| {
            let message = super::json::message_without_position(&e);
            Box::new(Malformed {
                file: self.label.clone(),
                position: Position {
                    line: Some(line_number),
                    // serde_json counts bytes; people count characters.
                    column: (e.column() > 0).then(|| {
                        let bytes_before = (e.column() - 1).min(line.len());
                        line.char_indices()
                            .take_while(|(i, _)| *i < bytes_before)
                            .count() as u64
                            + 1
                    }),
                    ..Position::default()
                },
                message: format!("invalid JSON: {message}"),
                hint: Some(line_hint(&e).into()),
            })
        })
    }
}

/// The hint for a line that is not a JSON object. A line that ends inside a value is most
/// likely the start of a JSON document spread over lines (a pretty-printed object or array),
/// which the `json` format reads.
fn line_hint(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Eof => {
            "each line must hold one complete JSON object; for a JSON document over several lines, use format = { type = \"json\" } (convert: --from json)"
        }
        _ => "each line must hold one complete JSON object",
    }
}

/// Hands out one shared `FieldName` per distinct key, with a small id. Top-level keys usually
/// repeat in the same order on every line, so the key at the same position on the previous line
/// is tried first; the ids make the duplicate-key check of a top-level object O(1) per key.
#[derive(Default, Clone)]
pub(crate) struct NameCache {
    names: Vec<FieldName>,
    ids: HashMap<FieldName, usize>,
    /// The id of the key at each position of the previous top-level object.
    by_position: Vec<usize>,
    /// By id: the number of the last top-level object that had the key.
    last_seen: Vec<u64>,
    objects: u64,
}

impl NameCache {
    fn get(&mut self, position: Option<usize>, key: &str) -> (usize, FieldName) {
        if let Some(index) = position
            && let Some(&id) = self.by_position.get(index)
            && &*self.names[id] == key
        {
            return (id, self.names[id].clone());
        }
        let id = match self.ids.get(key) {
            Some(&id) => id,
            None => {
                let name: FieldName = FieldName::from(key);
                let id = self.names.len();
                self.names.push(name.clone());
                self.last_seen.push(0);
                self.ids.insert(name, id);
                id
            }
        };
        if let Some(index) = position {
            if index < self.by_position.len() {
                self.by_position[index] = id;
            } else {
                self.by_position.push(id);
            }
        }
        (id, self.names[id].clone())
    }
}

pub(crate) struct RecordSeed<'a> {
    pub(crate) names: &'a mut NameCache,
    /// A record (not an object nested in one): its keys are tracked by position.
    pub(crate) top_level: bool,
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
        let capacity = if self.top_level {
            self.names.objects += 1;
            self.names.by_position.len()
        } else {
            map.size_hint().unwrap_or(4)
        };
        let object = self.names.objects;
        let mut record = Record::with_capacity(capacity);
        let mut index = 0;
        while let Some((id, name)) = map.next_key_seed(KeySeed {
            names: self.names,
            position: self.top_level.then_some(index),
        })? {
            let value = map.next_value_seed(ValueSeed { names: self.names })?;
            let repeated = if self.top_level {
                std::mem::replace(&mut self.names.last_seen[id], object) == object
            } else {
                // Names are interned: a repeated key is the very same `Arc`.
                record.names().any(|n| FieldName::ptr_eq(n, &name))
            };
            if repeated {
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

/// Interns a key straight from the parser's buffer, without an intermediate `String`.
struct KeySeed<'a> {
    names: &'a mut NameCache,
    position: Option<usize>,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = (usize, FieldName);
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = (usize, FieldName);
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E>(self, key: &str) -> Result<Self::Value, E> {
        Ok(self.names.get(self.position, key))
    }
}

/// The key under which serde_json passes a number as text (its `arbitrary_precision` protocol).
const JSON_NUMBER_TOKEN: &str = "$serde_json::private::Number";

pub(crate) struct ValueSeed<'a> {
    pub(crate) names: &'a mut NameCache,
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
            Err(_) => Value::Decimal(Text::from(v.to_string())),
        })
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(Text::from(v)))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(Text::from(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element_seed(ValueSeed { names: self.names })? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Value, A::Error> {
        let record = RecordSeed {
            names: self.names,
            top_level: false,
        }
        .visit_map(map)?;
        if let Some(text) = exact_number(&record) {
            return Ok(Value::Decimal(text.clone()));
        }
        Ok(Value::Object(record))
    }
}

/// The text of the number `object` stands for, if it is one: serde_json (with
/// `arbitrary_precision`) hands over a number that fits no i64/u64 (`12.50`, `1e400`, 30
/// digits) as its exact text inside a one-entry map.
pub(crate) fn exact_number(object: &Record) -> Option<&Text> {
    match (object.len(), object.entry(0)) {
        (1, Some((name, Value::String(text)))) if &**name == JSON_NUMBER_TOKEN => Some(text),
        _ => None,
    }
}

pub struct NdjsonEncoder {
    output: EncodedOutput,
    buffer: Vec<u8>,
    keys: KeyCache,
}

impl NdjsonEncoder {
    pub fn new(output: Box<dyn Write + Send>, label: &str) -> Self {
        NdjsonEncoder {
            output: EncodedOutput::new(output, label),
            buffer: EncodedOutput::buffer(),
            keys: KeyCache::default(),
        }
    }
}

impl Encoder for NdjsonEncoder {
    fn write_batch(&mut self, records: &[Record]) -> Result<(), CodecError> {
        for record in records {
            write_record(&mut self.buffer, record, &mut self.keys);
            self.buffer.push(b'\n');
            self.output.write_if_full(&mut self.buffer)?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<(), CodecError> {
        self.output.finish(&mut self.buffer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codecs::limit::DEFAULT_MAX_RECORD_BYTES;
    use crate::codecs::testing::{SharedBuffer, read_all};

    fn decode(input: &str) -> Result<Vec<Record>, CodecError> {
        read_all(&mut NdjsonDecoder::new(
            Box::new(std::io::Cursor::new(input.to_string())),
            "t.ndjson",
            DEFAULT_MAX_RECORD_BYTES,
        ))
    }

    #[test]
    fn a_line_larger_than_the_limit_fails_after_the_lines_before_it() {
        let mut input = b"{\"a\":1}\n\n".to_vec();
        input.extend(std::iter::repeat_n(b' ', 1_000_000));
        let mut decoder = NdjsonDecoder::new(Box::new(std::io::Cursor::new(input)), "t.ndjson", 10);
        let mut out = Vec::new();
        assert!(decoder.next_batch(&mut out, 10).unwrap());
        assert_eq!(out.len(), 1);
        assert_eq!(
            decoder.next_batch(&mut out, 10).unwrap_err().to_string(),
            "t.ndjson: line 3: a record is larger than `max_record_bytes` = 10 (10 bytes). raise the source's `max_record_bytes` if such records are expected"
        );
        // A line of exactly the limit fits, newline or not.
        let fits = || {
            Box::new(std::io::Cursor::new(
                b"{\"a\":\"12\"}\n{\"a\":\"1\"}".to_vec(),
            ))
        };
        assert_eq!(
            read_all(&mut NdjsonDecoder::new(fits(), "t.ndjson", 10))
                .unwrap()
                .len(),
            2
        );
    }

    /// Found by fuzzing: a failed read came back with the records read before it in the same
    /// batch, which the `Decoder` contract rules out.
    #[test]
    fn a_failed_read_after_good_lines_comes_with_the_next_call() {
        use crate::codecs::testing::FailingRead;
        let input = std::io::Cursor::new(b"{\"a\":1}\n{\"a\":2}\n".to_vec()).chain(FailingRead);
        let mut decoder = NdjsonDecoder::new(Box::new(input), "t.ndjson", DEFAULT_MAX_RECORD_BYTES);
        let mut out = Vec::new();
        assert!(decoder.next_batch(&mut out, 10).unwrap());
        assert_eq!(out.len(), 2);
        assert!(matches!(
            decoder.next_batch(&mut out, 10),
            Err(CodecError::Io { .. })
        ));
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn round_trips_typed_values_and_skips_blank_lines() {
        let input = "{\"id\":1,\"amount\":12.50,\"ok\":true,\"tags\":[\"a\",null],\"inner\":{\"x\":\"y\"}}\n\r\n{\"id\":18446744073709551615}\n";
        let records = decode(input).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(
            records[0].get("amount"),
            Some(&Value::Decimal("12.50".into()))
        );
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
            "{\"id\":1,\"amount\":12.50,\"ok\":true,\"tags\":[\"a\",null],\"inner\":{\"x\":\"y\"}}\n{\"id\":18446744073709551615}\n"
        );
    }

    #[test]
    fn large_inputs_keep_order_and_line_numbers_across_threads() {
        let mut input = String::new();
        for i in 0..10_000 {
            input.push_str(&format!("{{\"n\":{i}}}\n"));
            if i % 1000 == 0 {
                input.push('\n');
            }
        }
        input.push_str("{\"n\":}\n");
        let mut decoder = NdjsonDecoder::new(
            Box::new(std::io::Cursor::new(input)),
            "t.ndjson",
            DEFAULT_MAX_RECORD_BYTES,
        );
        let mut out = Vec::new();
        let err = loop {
            match decoder.next_batch(&mut out, 100) {
                Ok(true) => {}
                Ok(false) => panic!("the bad last line was not reported"),
                Err(e) => break e,
            }
        };
        if std::thread::available_parallelism().is_ok_and(|n| n.get() > 1) {
            assert!(
                decoder.chunks.uses_threads(),
                "a large input is parsed on several threads"
            );
        }
        let numbers: Vec<i64> = out
            .iter()
            .map(|r| match r.get("n") {
                Some(Value::Integer(n)) => *n,
                other => panic!("{other:?}"),
            })
            .collect();
        let expected: Vec<i64> = (0..10_000).collect();
        let first_difference = numbers.iter().zip(&expected).position(|(a, b)| a != b);
        assert_eq!((numbers.len(), first_difference), (10_000, None));
        assert!(
            err.to_string()
                .starts_with("t.ndjson: line 10011, column 6:"),
            "{err}"
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
    fn a_pretty_printed_object_points_to_the_json_format() {
        let err = decode("{\n  \"id\": 1\n}\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "t.ndjson: line 1, column 1: invalid JSON: EOF while parsing an object. each line must hold one complete JSON object; for a JSON document over several lines, use format = { type = \"json\" } (convert: --from json)"
        );
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let err = decode("{\"stadt\":\"Köln\",\"x\":}\n").unwrap_err();
        assert!(
            err.to_string().starts_with("t.ndjson: line 1, column 21:"),
            "{err}"
        );
    }

    #[test]
    fn a_line_that_is_not_an_object_is_an_error() {
        let err = decode("[1,2]\n").unwrap_err();
        assert!(
            err.to_string().starts_with(
                "t.ndjson: line 1: invalid JSON: invalid type: sequence, expected a JSON object"
            ),
            "{err}"
        );
    }

    #[test]
    fn invalid_utf8_names_line_and_column() {
        let mut input = b"{\"a\":\"ok\"}\n{\"a\":\"caf".to_vec();
        input.extend_from_slice(&[0xE9, b'"', b'}', b'\n']);
        let mut decoder = NdjsonDecoder::new(
            Box::new(std::io::Cursor::new(input)),
            "t.ndjson",
            DEFAULT_MAX_RECORD_BYTES,
        );
        let mut out = Vec::new();
        assert!(
            decoder.next_batch(&mut out, 10).unwrap(),
            "the good line comes first"
        );
        assert_eq!(out.len(), 1);
        let err = decoder.next_batch(&mut out, 10).unwrap_err();
        assert_eq!(
            err.to_string(),
            "t.ndjson: line 2, column 10: invalid UTF-8 (byte 0xE9). JSON must be UTF-8: convert the file"
        );
    }

    #[test]
    fn trailing_garbage_and_duplicate_keys_are_errors() {
        assert!(
            decode("{\"a\":1} x\n")
                .unwrap_err()
                .to_string()
                .contains("trailing characters")
        );
        assert!(
            decode("{\"a\":1,\"a\":2}\n")
                .unwrap_err()
                .to_string()
                .contains("key `a` appears twice")
        );
        assert!(
            decode("{\"o\":{\"b\":1,\"b\":2}}\n")
                .unwrap_err()
                .to_string()
                .contains("key `b` appears twice")
        );
        // Keys move between lines: the same key at another position is still one field.
        let records = decode("{\"a\":1,\"b\":2}\n{\"b\":3,\"a\":4}\n{\"a\":5}\n").unwrap();
        assert_eq!(records[1].get("a"), Some(&Value::Integer(4)));
        assert_eq!(records[2].len(), 1);
    }
}
