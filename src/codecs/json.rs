//! JSON documents holding records: a top-level array (`[{...}, {...}]`), or an array inside an
//! envelope named by a JSON pointer (`records = "/data/items"` for `{"data": {"items": [...]}}`),
//! as vendor APIs and exports return lists; or one object, which is one record, as APIs return
//! a single item (`GET /orders/123/`), pretty-printed or not.
//!
//! Decoding streams: a thread parses the document with serde_json, skipping everything outside
//! the pointer without building it, and hands records over in batches through a bounded
//! channel, so a 1 GB array takes the memory of a few batches. One element (or the one object)
//! larger than `max_record_bytes` stops the parse (see [`Meter`]). Encoding always writes an
//! array (in the same envelope), compact or one record per line, so that any number of records
//! fits.

use std::cell::Cell;
use std::io::{self, BufReader, Read, Write};
use std::sync::mpsc;

use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::limit;
use super::ndjson::{NameCache, RecordSeed, ValueSeed, exact_number};
use super::{EncodedOutput, IO_BUFFER_BYTES};
use crate::error::{CodecError, Position};
use crate::record::json::{KeyCache, PrettyWriter, write_record, write_str, write_value};
use crate::record::{FieldName, Record, Value};
use crate::stage::{Decoder, Encoder};

/// A JSON document holding the records: an array of objects, or one object.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonOptions {
    /// Where the records are, as a JSON pointer: `"/results"` for
    /// `{"count": 2, "results": [...]}`, `"/data/items"` for nested envelopes. The value there
    /// is an array of records, or an object that is one record (`{"id": 123, ...}`), or `null`
    /// for none; a pointer the document lacks is an error. Output is written as an array in the
    /// same envelope. Default `""`: the whole document.
    #[serde(default)]
    pub records: String,
    /// Output only: one record per line (`[\n{...},\n{...}\n]`) instead of all on one line.
    /// Default false.
    #[serde(default)]
    pub one_per_line: bool,
    /// Output only: indented for people to read (two spaces a level), instead of compact.
    /// Default false.
    #[serde(default)]
    pub pretty: bool,
}

impl JsonOptions {
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        pointer_problems(&self.records)
    }
}

/// A JSON pointer's keys, unescaped (`~1` is `/`, `~0` is `~`).
pub(crate) fn pointer_path(pointer: &str) -> Vec<String> {
    pointer
        .split('/')
        .skip(1)
        .map(|key| key.replace("~1", "/").replace("~0", "~"))
        .collect()
}

/// An output buffer holding the start of the envelope `path` names, up to the array's `[`.
pub(crate) fn open_envelope(path: &[String]) -> Vec<u8> {
    let mut buffer = EncodedOutput::buffer();
    for key in path {
        buffer.push(b'{');
        write_str(&mut buffer, key);
        buffer.push(b':');
    }
    buffer.push(b'[');
    buffer
}

/// The problems of a `records` pointer.
pub(crate) fn pointer_problems(pointer: &str) -> Vec<(&'static str, String)> {
    if pointer.is_empty() || pointer.starts_with('/') {
        Vec::new()
    } else {
        vec![(
            "records",
            format!("`{pointer}` is not a JSON pointer: start it with `/`, e.g. \"/{pointer}\""),
        )]
    }
}

/// Batches of records the parsing thread has read, or the error it stopped at.
type Parsed = Result<Vec<Record>, CodecError>;

/// Records per message from the parsing thread.
const RECORDS_PER_MESSAGE: usize = 1024;

/// How the records are held.
pub(crate) enum Shape {
    /// Each element is an object.
    Objects,
    /// Each element is an array of values; the names come from `columns`, else from the key
    /// `beside` the array (read before it), else from the first row (`json-array`).
    Rows {
        columns: Option<Vec<FieldName>>,
        beside: Option<String>,
    },
}

impl Shape {
    /// What the value at the pointer must be, for messages.
    fn expected(&self) -> &'static str {
        match self {
            Shape::Objects => "an array of records or one record (an object)",
            Shape::Rows { .. } => "an array of rows",
        }
    }
}

pub struct JsonDecoder {
    parsed: Parsing,
    pending: std::vec::IntoIter<Record>,
    /// An error that came after records: returned by the next call.
    held: Option<CodecError>,
}

/// Where the parsed batches come from.
enum Parsing {
    /// The parsing thread of a stream.
    Thread(mpsc::Receiver<Parsed>),
    /// A document in memory, parsed already.
    Done(std::vec::IntoIter<Parsed>),
}

/// The document to parse.
pub(crate) enum JsonInput {
    /// Read as it arrives, parsed on a thread of its own; a record of more than this many bytes
    /// (`max_record_bytes`) fails it.
    Stream(Box<dyn Read + Send>, u64),
    /// Already in memory (an API's page): parsed at once, on this thread, without copying. Its
    /// records are not limited: the page's size (`max_page_bytes`) bounds them already.
    Bytes(Vec<u8>),
}

impl JsonDecoder {
    /// A decoder of the stream `input`; a record of more than `max_record_bytes` fails it.
    pub fn new(
        input: Box<dyn Read + Send>,
        label: &str,
        options: &JsonOptions,
        max_record_bytes: u64,
    ) -> Self {
        Self::with_shape(
            JsonInput::Stream(input, max_record_bytes),
            label,
            pointer_path(&options.records),
            Shape::Objects,
        )
    }

    /// A decoder of the UTF-8 document `bytes`, parsed right away.
    pub fn from_bytes(bytes: Vec<u8>, label: &str, options: &JsonOptions) -> Self {
        Self::with_shape(
            JsonInput::Bytes(bytes),
            label,
            pointer_path(&options.records),
            Shape::Objects,
        )
    }

    /// A decoder for the records at `path`, held as `shape` says.
    pub(crate) fn with_shape(
        input: JsonInput,
        label: &str,
        path: Vec<String>,
        shape: Shape,
    ) -> Self {
        let parsed = match input {
            JsonInput::Bytes(bytes) => {
                let mut parsed = Vec::new();
                let mut deserializer = serde_json::Deserializer::from_slice(&bytes);
                let unlimited = Meter::new(u64::MAX);
                let mut send = |batch| {
                    parsed.push(batch);
                    true
                };
                parse(
                    &mut deserializer,
                    label,
                    &path,
                    shape,
                    &unlimited,
                    true,
                    &mut send,
                );
                Parsing::Done(parsed.into_iter())
            }
            JsonInput::Stream(input, max_record_bytes) => {
                let (sender, parsed) = mpsc::sync_channel(2);
                let label = label.to_string();
                // The thread ends when the document does, or when the decoder is dropped (a
                // send fails).
                std::thread::spawn(move || {
                    let meter = Meter::new(max_record_bytes);
                    // The meter goes under the BufReader: serde_json reads a byte at a time,
                    // fast only straight from std's BufReader.
                    let metered = Metered {
                        inner: input,
                        meter: &meter,
                    };
                    let reader = BufReader::with_capacity(IO_BUFFER_BYTES, metered);
                    let mut deserializer = serde_json::Deserializer::from_reader(reader);
                    parse(
                        &mut deserializer,
                        &label,
                        &path,
                        shape,
                        &meter,
                        false,
                        &mut |batch| sender.send(batch).is_ok(),
                    );
                });
                Parsing::Thread(parsed)
            }
        };
        JsonDecoder {
            parsed,
            pending: Vec::new().into_iter(),
            held: None,
        }
    }
}

/// Counts the bytes a stream hands the parser, for `max_record_bytes`, and holds where the
/// record being read started among them. Counting per byte under serde_json made JSON reading
/// half as slow again (see docs/performance.md), so [`Metered`] counts under the parser's
/// `BufReader`, a whole buffer fill at a time, and the parser notes the count where each record
/// starts ([`Meter::start`]). When the buffer runs dry, the parser has taken every byte read: a
/// record started then and still unfinished is at least the bytes read since its start was
/// noted, and the next read is refused once they pass the limit. So no record within the limit
/// is refused, one up to two buffers (512 KiB) past it may get through (the buffer held up to
/// one when it started, and the last read adds one), and the text the parser holds of a record
/// stays within the limit and two buffers. (The values built of it can take more than its
/// text, as an NDJSON line's do: some 20 times as much for an array of one-digit numbers.)
struct Meter {
    limit: u64,
    /// Bytes read from the input.
    read: Cell<u64>,
    /// `read` where the record being read started; `None` between records (values skipped
    /// unbuilt cost no memory, whatever their size).
    record_start: Cell<Option<u64>>,
    /// What is being read, for messages.
    reading: Cell<Reading>,
    /// Whether a read was refused for the limit.
    tripped: Cell<bool>,
}

impl Meter {
    fn new(limit: u64) -> Self {
        Meter {
            limit,
            read: Cell::new(0),
            record_start: Cell::new(None),
            reading: Cell::new(Reading::Key),
            tripped: Cell::new(false),
        }
    }

    /// A value the parser builds whole starts: it is refused once past the limit.
    fn start(&self, reading: Reading) {
        self.reading.set(reading);
        self.record_start.set(Some(self.read.get()));
    }

    /// The value is built: what follows is not counted until the next starts.
    fn stop(&self) {
        self.record_start.set(None);
    }

    /// The error for the value that grew past the limit.
    fn too_large(&self, label: &str) -> CodecError {
        match self.reading.get() {
            Reading::Record(number) => {
                let position = Position {
                    record: Some(number),
                    ..Position::default()
                };
                limit::record_too_large(label, position, self.limit)
            }
            Reading::HeaderRow => {
                limit::value_too_large(label, Position::default(), "the header row", self.limit)
            }
            Reading::Key => limit::value_too_large(
                label,
                Position::default(),
                "a key outside the records",
                self.limit,
            ),
        }
    }
}

/// What the parser builds whole, counted against `max_record_bytes`.
#[derive(Clone, Copy)]
enum Reading {
    /// The record of this number.
    Record(u64),
    /// The column names of `json-array`, as its first row or beside the rows.
    HeaderRow,
    /// A key of an object that holds the records.
    Key,
}

/// A stream under the parser's `BufReader`, counting what it hands over (see [`Meter`]).
struct Metered<'m, R> {
    inner: R,
    meter: &'m Meter,
}

impl<R: Read> Read for Metered<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let meter = self.meter;
        // Asked for more, the BufReader has handed out all it read.
        if let Some(start) = meter.record_start.get()
            && meter.read.get() - start > meter.limit
        {
            meter.tripped.set(true);
            return Err(limit::too_large());
        }
        let read = self.inner.read(buf)?;
        meter.read.set(meter.read.get() + read as u64);
        Ok(read)
    }
}

/// Parses a document, handing the records at `path` to `send` in batches (and
/// the error that ends them); stops early when `send` says the reader is gone. `meter` counts
/// the stream's bytes (a slice's meter is unlimited). `from_slice`: the deserializer reads a
/// slice (whose error positions need a correction).
fn parse<'de, R: serde_json::de::Read<'de>>(
    deserializer: &mut serde_json::Deserializer<R>,
    label: &str,
    path: &[String],
    shape: Shape,
    meter: &Meter,
    from_slice: bool,
    send: &mut dyn FnMut(Parsed) -> bool,
) {
    let mut batches = Batches {
        label,
        send,
        records: Vec::with_capacity(RECORDS_PER_MESSAGE),
        names: NameCache::default(),
        receiver_gone: false,
        shape,
        elements: 0,
        header_row: false,
        meter,
    };
    let found = PointerSeed {
        path,
        batches: &mut batches,
    }
    .deserialize(&mut *deserializer)
    .and_then(|found| deserializer.end().map(|()| found));
    let pointer = format!("/{}", path.join("/"));
    let set_records =
        || Some("set the format's `records` to the JSON pointer of the records".into());
    let result = match found {
        Ok(AtPointer::Records) => Ok(std::mem::take(&mut batches.records)),
        Ok(AtPointer::Missing) => Err(CodecError::malformed(
            label,
            Position::default(),
            format!("the document has no value at `{pointer}`"),
            set_records(),
        )),
        Ok(AtPointer::NotRecords(found)) => {
            let expected = batches.shape.expected();
            let (message, hint) = match path.is_empty() {
                true => (format!("the document is {found}, not {expected}"), None),
                false => (
                    format!("the value at `{pointer}` is {found}, not {expected}"),
                    set_records(),
                ),
            };
            Err(CodecError::malformed(
                label,
                Position::default(),
                message,
                hint,
            ))
        }
        Err(_) if batches.receiver_gone => return,
        Err(e) => {
            // The records before the error are good: deliver them first.
            let read = std::mem::take(&mut batches.records);
            if !read.is_empty() && !(batches.send)(Ok(read)) {
                return;
            }
            Err(match e.is_io() && meter.tripped.get() {
                true => meter.too_large(label),
                false => json_error(label, &e, from_slice),
            })
        }
    };
    (batches.send)(result);
}

/// serde_json's message without the ` at line L column C` it ends with (the error carries
/// the position on its own).
pub(crate) fn message_without_position(e: &serde_json::Error) -> String {
    let message = e.to_string();
    match message.rfind(" at line ") {
        Some(cut) => message[..cut].to_string(),
        None => message,
    }
}

pub(crate) fn json_error(label: &str, e: &serde_json::Error, from_slice: bool) -> CodecError {
    if e.is_io() {
        let source = std::io::Error::other(e.to_string());
        return CodecError::io(label, "read", source);
    }
    let message = message_without_position(e);
    CodecError::malformed(
        label,
        Position {
            line: Some(e.line() as u64),
            // A wrong value is reported where it starts when reading a stream, one column
            // before that when reading a slice (which has not consumed the character it saw).
            column: Some(
                e.column() as u64
                    + u64::from(from_slice && e.classify() == serde_json::error::Category::Data),
            ),
            ..Position::default()
        },
        format!("invalid JSON: {message}"),
        None,
    )
}

impl Decoder for JsonDecoder {
    fn next_batch(&mut self, out: &mut Vec<Record>, max: usize) -> Result<bool, CodecError> {
        if let Some(error) = self.held.take() {
            return Err(error);
        }
        let start = out.len();
        while out.len() - start < max {
            if let Some(record) = self.pending.next() {
                out.push(record);
                continue;
            }
            let next = match &mut self.parsed {
                Parsing::Thread(receiver) => receiver.recv().ok(),
                Parsing::Done(batches) => batches.next(),
            };
            match next {
                Some(Ok(records)) => self.pending = records.into_iter(),
                Some(Err(e)) if out.len() == start => return Err(e),
                // Records first: the error comes with the next call (and after a bad record,
                // the parser goes on).
                Some(Err(e)) => {
                    self.held = Some(e);
                    break;
                }
                // Everything parsed has been taken.
                None => break,
            }
        }
        Ok(out.len() > start)
    }
}

/// Collects parsed records and sends them in batches.
struct Batches<'a> {
    label: &'a str,
    send: &'a mut dyn FnMut(Parsed) -> bool,
    records: Vec<Record>,
    names: NameCache,
    receiver_gone: bool,
    shape: Shape,
    /// Elements of the array read so far.
    elements: u64,
    /// Whether the first element was the header row (not a record).
    header_row: bool,
    meter: &'a Meter,
}

impl Batches<'_> {
    /// Reads the next element of the array into a record (or the header row); false at the end.
    fn next_element<'de, A: SeqAccess<'de>>(&mut self, seq: &mut A) -> Result<bool, A::Error> {
        self.elements += 1;
        let meter = self.meter;
        meter.start(Reading::Record(self.elements - u64::from(self.header_row)));
        let record = match &mut self.shape {
            Shape::Objects => seq
                .next_element_seed(RecordSeed {
                    names: &mut self.names,
                    top_level: true,
                })?
                .map(Ok),
            Shape::Rows {
                columns: None,
                beside: Some(key),
            } => {
                return Err(serde::de::Error::custom(format_args!(
                    "the column names at `{key}` must come before the rows"
                )));
            }
            Shape::Rows {
                columns: None,
                beside: None,
            } => {
                meter.start(Reading::HeaderRow);
                let header = seq.next_element::<Vec<String>>()?;
                meter.stop();
                let Some(header) = header else {
                    return Ok(false);
                };
                self.set_columns(header);
                self.header_row = true;
                return Ok(true);
            }
            Shape::Rows {
                columns: Some(columns),
                ..
            } => seq.next_element_seed(RowSeed {
                columns,
                names: &mut self.names,
            })?,
        };
        meter.stop();
        match record {
            Some(Ok(record)) => self.push(record).map(|()| true),
            Some(Err(bad)) => self.reject(bad).map(|()| true),
            None => Ok(false),
        }
    }

    /// Reads the object at the pointer: one record, unless the records are rows. (A number that
    /// fits no i64 comes as an object too, see [`exact_number`].)
    fn object<'de, A: MapAccess<'de>>(&mut self, map: A) -> Result<AtPointer, A::Error> {
        if let Shape::Rows { .. } = self.shape {
            IgnoredAny.visit_map(map)?;
            return Ok(AtPointer::NotRecords("an object"));
        }
        self.meter.start(Reading::Record(1));
        let record = RecordSeed {
            names: &mut self.names,
            top_level: true,
        }
        .visit_map(map)?;
        self.meter.stop();
        if exact_number(&record).is_some() {
            return Ok(AtPointer::NotRecords("a number"));
        }
        self.push(record)?;
        Ok(AtPointer::Records)
    }

    /// Sends the records so far, then the bad element as a bad record; parsing goes on.
    fn reject<E: serde::de::Error>(&mut self, bad: BadElement) -> Result<(), E> {
        let record = self.elements - u64::from(self.header_row);
        let bad = CodecError::BadRecord {
            malformed: Box::new(crate::error::Malformed {
                file: self.label.to_string(),
                position: Position {
                    record: Some(record),
                    ..Position::default()
                },
                message: bad.reason,
                hint: None,
            }),
            raw: Some(bad.raw),
        };
        let records = std::mem::take(&mut self.records);
        if (!records.is_empty() && !(self.send)(Ok(records))) || !(self.send)(Err(bad)) {
            self.receiver_gone = true;
            return Err(E::custom("the reader stopped"));
        }
        Ok(())
    }

    fn set_columns(&mut self, names: Vec<String>) {
        if let Shape::Rows { columns, .. } = &mut self.shape {
            *columns = Some(
                names
                    .iter()
                    .map(|name| FieldName::from(name.as_str()))
                    .collect(),
            );
        }
    }

    /// Whether `key`, in the object holding the array, names the column names.
    fn holds_columns(&self, key: &str) -> bool {
        matches!(&self.shape, Shape::Rows { beside: Some(beside), columns: None } if beside == key)
    }

    fn push<E: serde::de::Error>(&mut self, record: Record) -> Result<(), E> {
        self.records.push(record);
        if self.records.len() == RECORDS_PER_MESSAGE {
            let full =
                std::mem::replace(&mut self.records, Vec::with_capacity(RECORDS_PER_MESSAGE));
            if !(self.send)(Ok(full)) {
                self.receiver_gone = true;
                return Err(E::custom("the reader stopped"));
            }
        }
        Ok(())
    }
}

/// What the pointer led to.
enum AtPointer {
    /// Records, all handed over: an array's elements, an object as one record, or none for
    /// `null` (an API's `"results": null`).
    Records,
    /// Nothing: the document lacks a key of the pointer.
    Missing,
    /// A value that holds no records: what it is (`"a string"`).
    NotRecords(&'static str),
}

/// Walks down the pointer's keys, skipping every other value unbuilt, and streams the records
/// at the end of it. Its value says what it found there.
struct PointerSeed<'p, 'b, 's> {
    path: &'p [String],
    batches: &'b mut Batches<'s>,
}

impl<'de> DeserializeSeed<'de> for PointerSeed<'_, '_, '_> {
    type Value = AtPointer;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<AtPointer, D::Error> {
        if self.path.is_empty() {
            d.deserialize_any(self)
        } else {
            d.deserialize_map(self)
        }
    }
}

impl<'de> Visitor<'de> for PointerSeed<'_, '_, '_> {
    type Value = AtPointer;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self.path.first() {
            None => f.write_str(self.batches.shape.expected()),
            Some(key) => write!(f, "an object with `{key}`"),
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<AtPointer, A::Error> {
        while self.batches.next_element(&mut seq)? {}
        Ok(AtPointer::Records)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<AtPointer, A::Error> {
        match self.path.split_first() {
            Some((key, rest)) => self.walk(map, key, rest),
            None => self.batches.object(map),
        }
    }

    fn visit_unit<E>(self) -> Result<AtPointer, E> {
        Ok(AtPointer::Records)
    }

    fn visit_bool<E>(self, _: bool) -> Result<AtPointer, E> {
        Ok(AtPointer::NotRecords("a boolean"))
    }

    fn visit_i64<E>(self, _: i64) -> Result<AtPointer, E> {
        Ok(AtPointer::NotRecords("a number"))
    }

    fn visit_u64<E>(self, _: u64) -> Result<AtPointer, E> {
        Ok(AtPointer::NotRecords("a number"))
    }

    fn visit_str<E>(self, _: &str) -> Result<AtPointer, E> {
        Ok(AtPointer::NotRecords("a string"))
    }
}

impl PointerSeed<'_, '_, '_> {
    /// Finds `key` in the object `map` and follows the `rest` of the pointer in its value.
    fn walk<'de, A: MapAccess<'de>>(
        self,
        mut map: A,
        key: &str,
        rest: &[String],
    ) -> Result<AtPointer, A::Error> {
        let mut found = None;
        let meter = self.batches.meter;
        // Keys and the column names are built whole, so they are limited like records.
        loop {
            meter.start(Reading::Key);
            let name = map.next_key::<String>()?;
            meter.stop();
            let Some(name) = name else { break };
            if name == key && found.is_none() {
                found = Some(map.next_value_seed(PointerSeed {
                    path: rest,
                    batches: &mut *self.batches,
                })?);
            } else if rest.is_empty() && self.batches.holds_columns(&name) {
                meter.start(Reading::HeaderRow);
                let names = map.next_value::<Vec<String>>()?;
                meter.stop();
                self.batches.set_columns(names);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found.unwrap_or(AtPointer::Missing))
    }
}

/// An element of the array that is not a record, though the parser can go on past it.
struct BadElement {
    reason: String,
    /// Its JSON text.
    raw: String,
}

/// One row of a `json-array` document: values in column order. A row of the wrong width is a
/// bad record, not the end of the document.
struct RowSeed<'a> {
    columns: &'a [FieldName],
    names: &'a mut NameCache,
}

impl<'de> DeserializeSeed<'de> for RowSeed<'_> {
    type Value = Result<Record, BadElement>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_> {
    type Value = Result<Record, BadElement>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "a row of {} values", self.columns.len())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut record = Record::with_capacity(self.columns.len());
        let mut extra = Vec::new();
        while let Some(value) = seq.next_element_seed(ValueSeed {
            names: &mut *self.names,
        })? {
            match self.columns.get(record.len()) {
                Some(name) if extra.is_empty() => record.push(name.clone(), value),
                _ => extra.push(value),
            }
        }
        if record.len() == self.columns.len() && extra.is_empty() {
            return Ok(Ok(record));
        }
        let count = record.len() + extra.len();
        let values: Vec<Value> = record
            .fields_mut()
            .drain(..)
            .map(|(_, value)| value)
            .chain(extra)
            .collect();
        let mut raw = Vec::new();
        write_value(&mut raw, &Value::Array(values));
        Ok(Err(BadElement {
            reason: format!(
                "the row has {count} value{}, not one for each of the {} columns",
                if count == 1 { "" } else { "s" },
                self.columns.len()
            ),
            raw: String::from_utf8_lossy(&raw).into_owned(),
        }))
    }
}

/// Writes records as a JSON array, inside the envelope the pointer names.
pub struct JsonEncoder {
    output: EncodedOutput,
    buffer: Vec<u8>,
    keys: KeyCache,
    path: Vec<String>,
    one_per_line: bool,
    written: u64,
}

impl JsonEncoder {
    pub fn new(output: Box<dyn Write + Send>, label: &str, options: &JsonOptions) -> Self {
        let path = pointer_path(&options.records);
        let buffer = open_envelope(&path);
        let output: Box<dyn Write + Send> = match options.pretty {
            true => Box::new(PrettyWriter::new(output)),
            false => output,
        };
        JsonEncoder {
            output: EncodedOutput::new(output, label),
            buffer,
            keys: KeyCache::default(),
            path,
            one_per_line: options.one_per_line,
            written: 0,
        }
    }
}

impl Encoder for JsonEncoder {
    fn write_batch(&mut self, records: &[Record]) -> Result<(), CodecError> {
        for record in records {
            if self.written > 0 {
                self.buffer.push(b',');
            }
            if self.one_per_line {
                self.buffer.push(b'\n');
            }
            write_record(&mut self.buffer, record, &mut self.keys);
            self.written += 1;
            self.output.write_if_full(&mut self.buffer)?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<(), CodecError> {
        if self.one_per_line && self.written > 0 {
            self.buffer.push(b'\n');
        }
        self.buffer.push(b']');
        self.buffer
            .extend(std::iter::repeat_n(b'}', self.path.len()));
        self.buffer.push(b'\n');
        self.output.finish(&mut self.buffer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codecs::limit::DEFAULT_MAX_RECORD_BYTES;
    use crate::codecs::testing::{gist, read_all, written};

    fn options(records: &str) -> JsonOptions {
        JsonOptions {
            records: records.into(),
            one_per_line: false,
            pretty: false,
        }
    }

    /// Decodes `input` streamed and in memory (the two ways a document is parsed), which must
    /// give the same records and errors (serde_json places some errors a character apart
    /// in a slice and in a stream).
    fn decode(input: &str, records: &str) -> Result<Vec<Record>, CodecError> {
        let streamed = read_all(&mut JsonDecoder::new(
            Box::new(std::io::Cursor::new(input.to_string())),
            "t.json",
            &options(records),
            DEFAULT_MAX_RECORD_BYTES,
        ));
        let in_memory = read_all(&mut JsonDecoder::from_bytes(
            input.as_bytes().to_vec(),
            "t.json",
            &options(records),
        ));
        assert_eq!(
            gist(&streamed),
            gist(&in_memory),
            "streamed and in memory differ"
        );
        streamed
    }

    fn encode(records: &[Record], options: &JsonOptions) -> String {
        written(records, |output| {
            Box::new(JsonEncoder::new(output, "t.json", options))
        })
    }

    #[test]
    fn reads_a_top_level_array_and_writes_it_back() {
        let input = "[{\"id\":1,\"amount\":12.50},{\"id\":2,\"tags\":[\"a\"]},{\"id\":3}]";
        let records = decode(input, "").unwrap();
        assert_eq!(records.len(), 3);
        assert_eq!(encode(&records, &options("")), format!("{input}\n"));
        let lines = JsonOptions {
            one_per_line: true,
            ..options("")
        };
        assert_eq!(
            encode(&records, &lines),
            "[\n{\"id\":1,\"amount\":12.50},\n{\"id\":2,\"tags\":[\"a\"]},\n{\"id\":3}\n]\n"
        );
        assert_eq!(encode(&[], &lines), "[]\n");
    }

    #[test]
    fn reads_records_at_a_pointer_and_skips_the_rest() {
        let input = r#"{"count": 3, "next": null, "data": {"meta": [1, {"x": 2}], "items": [{"id": 1}, {"id": 2}, {"id": 3}]}, "after": "ignored"}"#;
        let records = decode(input, "/data/items").unwrap();
        assert_eq!(ids(&records), ["1", "2", "3"]);
        assert_eq!(
            encode(&records, &options("/data/items")),
            "{\"data\":{\"items\":[{\"id\":1},{\"id\":2},{\"id\":3}]}}\n"
        );
    }

    /// The ids of `records`, as text.
    fn ids(records: &[Record]) -> Vec<String> {
        records
            .iter()
            .map(|r| r.get("id").unwrap().to_text().unwrap().into_owned())
            .collect()
    }

    #[test]
    fn an_object_is_one_record() {
        let records = decode(
            r#"{"id": 123, "total": 12.50, "lines": [{"sku": "a"}]}"#,
            "",
        )
        .unwrap();
        assert_eq!(
            gist(&Ok(records.clone())),
            gist(&decode(
                r#"[{"id": 123, "total": 12.50, "lines": [{"sku": "a"}]}]"#,
                ""
            ))
        );
        assert_eq!(records.len(), 1);
        assert_eq!(
            records[0].get("total"),
            Some(&Value::Decimal("12.50".into()))
        );
        // Written back, it is an array: one record among any number.
        assert_eq!(
            encode(&records, &options("")),
            "[{\"id\":123,\"total\":12.50,\"lines\":[{\"sku\":\"a\"}]}]\n"
        );
    }

    #[test]
    fn a_pretty_printed_object_over_many_lines_is_one_record() {
        let input = "{\n  \"id\": 123,\n  \"customer\": {\n    \"name\": \"Ann\"\n  },\n  \"paid\": true\n}\n";
        let records = decode(input, "").unwrap();
        assert_eq!(ids(&records), ["123"]);
        assert_eq!(records[0].len(), 3);
        // Its errors keep their line and column.
        let error = decode("{\n  \"id\": 123,\n  \"paid\" true\n}\n", "").unwrap_err();
        assert_eq!(
            error.to_string(),
            "t.json: line 3, column 10: invalid JSON: expected `:`"
        );
    }

    #[test]
    fn an_object_in_an_envelope_is_one_record() {
        let input = r#"{"meta": {"id": 0}, "data": {"id": 1, "name": "ant"}, "after": [1]}"#;
        let records = decode(input, "/data").unwrap();
        assert_eq!(ids(&records), ["1"]);
        assert_eq!(records[0].len(), 2);
        assert_eq!(
            ids(&decode(r#"{"a": {"b": {"id": 7}}}"#, "/a/b").unwrap()),
            ["7"]
        );
    }

    #[test]
    fn null_at_the_pointer_is_no_records() {
        assert_eq!(
            decode(r#"{"count": 0, "results": null}"#, "/results")
                .unwrap()
                .len(),
            0
        );
        assert_eq!(decode("null", "").unwrap().len(), 0);
    }

    #[test]
    fn a_scalar_at_the_pointer_is_an_error_naming_it() {
        let error = decode(r#"{"count": 2, "results": "none"}"#, "/results").unwrap_err();
        assert_eq!(
            error.to_string(),
            "t.json: the value at `/results` is a string, not an array of records or one record (an object). set the format's `records` to the JSON pointer of the records"
        );
        for (value, found) in [
            ("12", "a number"),
            ("-1", "a number"),
            ("12.50", "a number"),
            ("1e400", "a number"),
            ("true", "a boolean"),
        ] {
            let error = decode(&format!(r#"{{"count": {value}}}"#), "/count").unwrap_err();
            assert_eq!(
                error.to_string(),
                format!(
                    "t.json: the value at `/count` is {found}, not an array of records or one record (an object). set the format's `records` to the JSON pointer of the records"
                )
            );
        }
        let error = decode("\"done\"", "").unwrap_err();
        assert_eq!(
            error.to_string(),
            "t.json: the document is a string, not an array of records or one record (an object)"
        );
        // The rest of the document is read first: bad JSON after the value is reported as such.
        let error = decode(r#"{"results": 1,}"#, "/results").unwrap_err();
        assert!(
            error.to_string().contains("invalid JSON: trailing comma"),
            "{error}"
        );
    }

    #[test]
    fn an_array_still_streams_records_before_the_document_ends() {
        let elements = |ids: std::ops::Range<u32>| -> String {
            ids.map(|i| format!("{{\"id\":{i}}},")).collect()
        };
        let (input, mut writer) = std::io::pipe().unwrap();
        let mut decoder = JsonDecoder::new(
            Box::new(input),
            "t.json",
            &options(""),
            DEFAULT_MAX_RECORD_BYTES,
        );
        writer
            .write_all(format!("[{}", elements(0..2000)).as_bytes())
            .unwrap();
        let mut out = Vec::new();
        assert!(decoder.next_batch(&mut out, RECORDS_PER_MESSAGE).unwrap());
        assert_eq!(out.len(), RECORDS_PER_MESSAGE, "a batch before the end");
        writer
            .write_all(format!("{}{{\"id\":2500}}]", elements(2000..2500)).as_bytes())
            .unwrap();
        drop(writer);
        out.extend(read_all(&mut decoder).unwrap());
        assert_eq!(out.len(), 2501);
        assert_eq!(ids(&out[2499..]), ["2499", "2500"]);
    }

    #[test]
    fn a_missing_pointer_or_bad_json_names_the_position() {
        let error = decode(r#"{"results": []}"#, "/data").unwrap_err();
        assert_eq!(
            error.to_string(),
            "t.json: the document has no value at `/data`. set the format's `records` to the JSON pointer of the records"
        );
        let error = decode("[{\"id\":1},\n{\"id\":2,}]", "").unwrap_err();
        assert_eq!(
            error.to_string(),
            "t.json: line 2, column 9: invalid JSON: trailing comma"
        );
        assert_eq!(
            options("results").problems(),
            [(
                "records",
                "`results` is not a JSON pointer: start it with `/`, e.g. \"/results\"".to_string()
            )]
        );
    }

    #[test]
    fn records_before_an_error_are_delivered_first() {
        let mut input = String::from("[");
        for i in 0..3000 {
            input.push_str(&format!("{{\"id\":{i}}},"));
        }
        input.push_str("oops]");
        let mut decoder = JsonDecoder::new(
            Box::new(std::io::Cursor::new(input)),
            "t.json",
            &options(""),
            DEFAULT_MAX_RECORD_BYTES,
        );
        let mut out = Vec::new();
        let error = loop {
            match decoder.next_batch(&mut out, 1000) {
                Ok(true) => {}
                Ok(false) => panic!("the error was lost"),
                Err(e) => break e,
            }
        };
        assert_eq!(out.len(), 3000);
        assert!(error.to_string().contains("line 1"), "{error}");
    }

    const HINT: &str = "raise the source's `max_record_bytes` if such records are expected";

    /// Everything a stream decoder with a `max_record_bytes` of `limit` gives: its records, and
    /// the error that ends them.
    fn limited(input: String, records: &str, limit: u64) -> (Vec<Record>, String) {
        let mut decoder = JsonDecoder::new(
            Box::new(std::io::Cursor::new(input)),
            "t.json",
            &options(records),
            limit,
        );
        let mut out = Vec::new();
        loop {
            match decoder.next_batch(&mut out, 1000) {
                Ok(true) => {}
                Ok(false) => return (out, String::new()),
                Err(e) => return (out, e.to_string()),
            }
        }
    }

    /// A string value of a MiB: more than a limit and the parser's buffer.
    fn big() -> String {
        "x".repeat(1 << 20)
    }

    #[test]
    fn an_element_larger_than_the_limit_fails_with_its_record_number() {
        let input = format!(
            "[{{\"id\":1}},\n{{\"id\":2}},\n{{\"id\":3,\"note\":\"{}\"}},\n{{\"id\":4}}]",
            big()
        );
        let (records, error) = limited(input.clone(), "", 10);
        assert_eq!(ids(&records), ["1", "2"]);
        assert_eq!(
            error,
            format!(
                "t.json: record 3: a record is larger than `max_record_bytes` = 10 (10 bytes). {HINT}"
            )
        );
        // In an envelope, and as a row of `json-array`, likewise.
        let envelope = format!("{{\"data\": {input}}}");
        assert_eq!(limited(envelope, "/data", 10).0.len(), 2);
        // Under the limit, the same document reads whole.
        assert_eq!(limited(input, "", 2 << 20).0.len(), 4);
    }

    #[test]
    fn one_object_larger_than_the_limit_fails_as_record_1() {
        let input = format!("{{\"id\": 1, \"note\": \"{}\"}}", big());
        let error = format!(
            "t.json: record 1: a record is larger than `max_record_bytes` = 1000 (1000 bytes). {HINT}"
        );
        assert_eq!(
            limited(input.clone(), "", 1000),
            (Vec::new(), error.clone())
        );
        let envelope = format!("{{\"meta\": 1, \"data\": {input}}}");
        assert_eq!(limited(envelope, "/data", 1000), (Vec::new(), error));
        assert_eq!(limited(input, "", 2 << 20).0.len(), 1);
    }

    #[test]
    fn values_skipped_around_the_records_are_not_limited_but_keys_are() {
        // Skipped values are never built: their size costs no memory.
        let input = format!(
            "{{\"meta\": {{\"blob\": \"{}\"}}, \"data\": [{{\"id\": 1}}]}}",
            big()
        );
        assert_eq!(ids(&limited(input, "/data", 10).0), ["1"]);
        // A key is built whole.
        let input = format!("{{\"{}\": 1, \"data\": []}}", big());
        assert_eq!(
            limited(input, "/data", 10).1,
            "t.json: a key outside the records is larger than `max_record_bytes` = 10 (10 bytes). raise the source's `max_record_bytes` if such documents are expected"
        );
    }

    proptest::proptest! {
        /// A document in memory reads as the same document streamed: records, errors and
        /// their positions (`decode` compares the two).
        #[test]
        fn in_memory_and_streamed_documents_read_alike(
            document in r#"[\[\]{}",:0-9a-z \n.\\-]{0,48}"#,
            records in proptest::sample::select(vec!["", "/r", "/r/0"]),
        ) {
            let _ = decode(&document, records);
        }
    }
}
