//! Decoding: the [`Splitter`] cuts the document into chunks between records, and each chunk is
//! parsed with quick-xml, on parsing threads once the file proves large
//! ([`ParallelChunks`]). Elements are skipped until the open ones match `record_path`; from
//! there the events build the record, which is complete when its element closes.

use std::collections::VecDeque;

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use std::io::{self, Cursor, Read};

use encoding_rs::{Encoding, UTF_8, UTF_16BE, UTF_16LE};
use quick_xml::XmlVersion;
use quick_xml::encoding::EncodingError;
use quick_xml::escape::EscapeError;
use quick_xml::events::{BytesStart, Event};
use quick_xml::reader::Reader;

use super::split::{PathMatcher, Splitter, XmlChunk, advance};
use super::{Namespaces, XmlOptions};
use crate::codecs::TextEncoding;
use crate::codecs::parallel::{ChunkParser, ParallelChunks};
use crate::codecs::text::{self, peek};
use crate::error::{CodecError, Position};
use crate::record::{FieldName, Record, Text, Value};
use crate::stage::Decoder;

/// The size a chunk is cut at (at the next place between records): large enough that handing
/// chunks between threads costs little, small enough that several stay in flight cheaply.
const CHUNK_BYTES: usize = 256 * 1024;

/// Reads the records of an XML document.
pub struct XmlDecoder {
    splitter: Splitter,
    label: String,
    /// Chunks cut and handed out for parsing, oldest first.
    chunks: ParallelChunks<ChunkReader>,
    /// Records of a chunk larger than the last `max` asked for.
    leftover: VecDeque<Record>,
    /// A failed read, reported once the chunks before it are out.
    read_failed: Option<CodecError>,
    /// The error that ends the records, reported once those before it are out.
    ending: Option<CodecError>,
    /// Whether no more chunks are to be taken: the end, or an error, was reached.
    stopped: bool,
}

impl XmlDecoder {
    /// A decoder of the raw bytes `input`. Their encoding is the one a byte-order mark names,
    /// else `encoding` when given (it overrides the XML declaration), else the declaration's
    /// `encoding`, else UTF-8. Anything but UTF-8 is transcoded to UTF-8 before parsing. A
    /// record element of more than `max_record_bytes` (or text or markup that long outside
    /// the records) fails it.
    pub fn new(
        input: Box<dyn Read + Send>,
        label: &str,
        options: &XmlOptions,
        encoding: Option<&'static Encoding>,
        max_record_bytes: u64,
    ) -> Result<Self, CodecError> {
        Self::with_chunk_bytes(
            input,
            label,
            options,
            encoding,
            CHUNK_BYTES,
            max_record_bytes,
        )
    }

    /// A decoder that cuts chunks of about `chunk_bytes` (the tests cut tiny ones).
    pub(super) fn with_chunk_bytes(
        input: Box<dyn Read + Send>,
        label: &str,
        options: &XmlOptions,
        encoding: Option<&'static Encoding>,
        chunk_bytes: usize,
        max_record_bytes: u64,
    ) -> Result<Self, CodecError> {
        let input = utf8_input(input, label, encoding)?;
        let reader = ChunkReader {
            builder: Builder::new(options),
            label: label.to_string(),
        };
        Ok(XmlDecoder {
            splitter: Splitter::new(input, label, options, chunk_bytes, max_record_bytes),
            label: label.to_string(),
            chunks: ParallelChunks::new(reader, "xml-parse"),
            leftover: VecDeque::new(),
            read_failed: None,
            ending: None,
            stopped: false,
        })
    }

    /// Cuts chunks ahead, as many as the parsing threads take.
    fn fill(&mut self) {
        while self.read_failed.is_none() && self.chunks.has_room() {
            match self.splitter.next_chunk() {
                Ok(Some(chunk)) => self.chunks.push(chunk),
                Ok(None) => break,
                Err(error) => self.read_failed = Some(error),
            }
        }
    }
}

impl Decoder for XmlDecoder {
    fn next_batch(&mut self, out: &mut Vec<Record>, max: usize) -> Result<bool, CodecError> {
        let start = out.len();
        while out.len() - start < max {
            if let Some(record) = self.leftover.pop_front() {
                out.push(record);
                continue;
            }
            if let Some(error) = self.ending.take() {
                if out.len() > start {
                    self.ending = Some(error);
                    break;
                }
                return Err(error);
            }
            if self.stopped {
                break;
            }
            self.fill();
            match self.chunks.pop() {
                None => {
                    self.stopped = true;
                    self.ending = self.read_failed.take();
                }
                Some(Err(e)) => {
                    self.stopped = true;
                    self.ending = Some(CodecError::io(&self.label, "parse the input", e));
                }
                Some(Ok(parsed)) => {
                    self.leftover.extend(parsed.records);
                    // Malformed XML cannot be read past.
                    if let Some(error) = parsed.error {
                        self.stopped = true;
                        self.ending = Some(error);
                    }
                }
            }
        }
        Ok(out.len() > start)
    }
}

/// The records of a chunk, and the error that ended it early.
struct ParsedChunk {
    records: Vec<Record>,
    error: Option<CodecError>,
}

/// Parses chunks, keeping its name caches from one to the next (one per thread).
#[derive(Clone)]
struct ChunkReader {
    builder: Builder,
    label: String,
}

impl ChunkParser for ChunkReader {
    type Chunk = XmlChunk;
    type Parsed = ParsedChunk;

    fn parse(&mut self, chunk: XmlChunk) -> ParsedChunk {
        self.builder.restart(chunk.records_before);
        let mut reader = Reader::from_reader(&chunk.bytes[..]);
        let mut records = Vec::new();
        loop {
            let offset = reader.buffer_position();
            let event = match reader.read_event() {
                Ok(event) => event,
                Err(e) => {
                    let error = self.parse_error(&reader, &chunk, e, offset);
                    return ParsedChunk {
                        records,
                        error: Some(error),
                    };
                }
            };
            let at_end = matches!(event, Event::Eof);
            // Only the document's end is checked for elements left open.
            if at_end && !chunk.last {
                break;
            }
            match self.event(event) {
                Ok(Some(record)) => records.push(record),
                Ok(None) => {}
                Err(problem) => {
                    let at = match problem.at {
                        At::EventStart(skip) => offset + skip,
                        At::Here => reader.buffer_position(),
                    };
                    let position = self.position(&chunk, at);
                    let error =
                        CodecError::malformed(&self.label, position, problem.message, problem.hint);
                    return ParsedChunk {
                        records,
                        error: Some(error),
                    };
                }
            }
            if at_end {
                break;
            }
        }
        ParsedChunk {
            records,
            error: None,
        }
    }
}

impl ChunkReader {
    /// What an event adds: the record it completes, if it completes one.
    fn event(&mut self, event: Event) -> Result<Option<Record>, Problem> {
        match event {
            Event::Start(e) => self.builder.start(&e, false),
            Event::Empty(e) => self.builder.start(&e, true),
            Event::End(_) => Ok(self.builder.end()),
            Event::Text(e) => self.builder.text(&e.xml10_content(), false),
            Event::CData(e) => self.builder.text(&e.xml10_content(), true),
            Event::GeneralRef(e) => match resolve_reference(&e) {
                Ok(c) => self.builder.text(c.encode_utf8(&mut [0; 4]), true),
                Err(problem) => Err(problem),
            },
            Event::DocType(_) => Err(Problem::new(
                "a DTD (<!DOCTYPE …>) is not accepted: longshore never expands DTDs or external entities",
            )),
            Event::Eof => self.builder.eof().map(|()| None),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => Ok(None),
        }
    }

    /// The position of the byte at `offset` in `chunk`.
    fn position(&self, chunk: &XmlChunk, offset: u64) -> Position {
        let upto = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .clamp(chunk.prefix_length, chunk.bytes.len());
        let body = &chunk.bytes[chunk.prefix_length..upto];
        let (line, column) = advance(body, chunk.line, chunk.column);
        Position {
            line: Some(line),
            column: Some(column),
            record: self.builder.current_record(),
            field: None,
        }
    }

    fn parse_error(
        &self,
        reader: &Reader<&[u8]>,
        chunk: &XmlChunk,
        error: quick_xml::Error,
        event_start: u64,
    ) -> CodecError {
        use quick_xml::Error as E;
        let (message, hint, offset) = match error {
            E::Io(e) => {
                let source = io::Error::new(e.kind(), e.to_string());
                return CodecError::io(&self.label, "read", source);
            }
            E::Syntax(e) => (e.to_string(), None, reader.error_position()),
            E::IllFormed(e) => (e.to_string(), None, reader.error_position()),
            E::Encoding(e) => (
                "the text is not valid UTF-8".to_string(),
                Some(
                    "declare the file's encoding in its XML declaration, e.g. <?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>"
                        .to_string(),
                ),
                match e {
                    EncodingError::Utf8(e) => event_start + e.valid_up_to() as u64,
                    _ => event_start,
                },
            ),
            other => (other.to_string(), None, event_start),
        };
        CodecError::malformed(
            &self.label,
            self.position(chunk, offset),
            format!("invalid XML: {message}"),
            hint,
        )
    }
}

/// What is wrong with an event, and where in it.
struct Problem {
    message: String,
    hint: Option<String>,
    at: At,
}

enum At {
    /// This many bytes after the start of the event.
    EventStart(u64),
    /// Where the parser is (the end of the input, for `Eof`).
    Here,
}

impl Problem {
    fn new(message: impl Into<String>) -> Self {
        Problem {
            message: message.into(),
            hint: None,
            at: At::EventStart(0),
        }
    }
}

/// The character an entity or character reference (`&amp;`, `&#233;`) stands for. Only the
/// five predefined entities exist: without a DTD nothing else can be declared.
fn resolve_reference(reference: &quick_xml::events::BytesRef) -> Result<char, Problem> {
    let invalid = || {
        Problem::new(format!(
            "invalid XML: `&{};` is not a valid character reference",
            &**reference
        ))
    };
    match reference.resolve_char_ref() {
        Ok(Some(c)) => return Ok(c),
        Ok(None) => {}
        Err(_) => return Err(invalid()),
    }
    predefined_entity(reference).ok_or_else(|| unknown_entity(reference))
}

fn unknown_entity(name: &str) -> Problem {
    Problem {
        message: format!(
            "invalid XML: unknown entity `&{name};`: only &lt; &gt; &amp; &apos; &quot; and character references are accepted"
        ),
        hint: Some("longshore never reads DTDs, where other entities would be declared".into()),
        at: At::EventStart(0),
    }
}

fn predefined_entity(name: &str) -> Option<char> {
    Some(match name {
        "lt" => '<',
        "gt" => '>',
        "amp" => '&',
        "apos" => '\'',
        "quot" => '"',
        _ => return None,
    })
}

fn is_xml_whitespace(text: &str) -> bool {
    text.bytes()
        .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

/// At most `limit` characters of the first line of `text`, for messages; control characters
/// escaped (a stream of zeros shows as `\0\0…`).
fn excerpt(text: &str, limit: usize) -> String {
    let text = text
        .trim_start()
        .lines()
        .next()
        .unwrap_or_default()
        .trim_end();
    let (shown, cut) = match text.char_indices().nth(limit) {
        Some((cut, _)) => (&text[..cut], true),
        None => (text, false),
    };
    let mut excerpt = String::with_capacity(shown.len() + 3);
    for c in shown.chars() {
        match c.is_control() {
            true => excerpt.extend(c.escape_debug()),
            false => excerpt.push(c),
        }
    }
    if cut {
        excerpt.push('…');
    }
    excerpt
}

/// How deep elements may nest inside a record: values nest as deep, and are built, written and
/// dropped recursively, so a hostile document must not nest them without limit.
const MAX_RECORD_DEPTH: usize = 256;

/// Names cached per kind: a document can hold any number of distinct names, memory cannot.
const CACHED_NAMES: usize = 4096;

/// Turns events into records: tracks where the parser is in the document, and builds the
/// record whose element is open.
#[derive(Clone)]
struct Builder {
    /// Where in the document the parser is.
    matcher: PathMatcher,
    attribute_prefix: String,
    text_key: FieldName,
    flatten: bool,
    namespaces: Namespaces,
    /// The root element's name, once it has started.
    root: Option<String>,
    /// The elements open inside the current record, the record's own first.
    open: Vec<OpenElement>,
    /// Field names by element name as written (namespaces applied).
    element_names: HashMap<Box<str>, FieldName>,
    /// Field names by attribute name as written; `None` for namespace declarations dropped.
    attribute_names: HashMap<Box<str>, Option<FieldName>>,
    /// Dotted names for `flatten`.
    dotted_names: HashSet<FieldName>,
    /// Child elements that are arrays even when alone (`arrays`).
    arrays: HashSet<String>,
}

/// An element of the current record that has started and not yet ended.
#[derive(Clone)]
struct OpenElement {
    name: FieldName,
    /// Its attributes, then its child elements so far.
    fields: Record,
    attributes: usize,
    has_children: bool,
    /// Text since the last child element (or the start).
    run: Text,
    /// Whether `run` holds more than whitespace from the source: CDATA or a reference.
    run_is_content: bool,
    /// Text runs between child elements that are more than whitespace.
    mixed: Text,
}

impl OpenElement {
    /// Keeps the text run before a child element, unless it is whitespace between elements.
    fn end_text_run(&mut self) {
        if self.run_is_content || !is_xml_whitespace(&self.run) {
            self.mixed.push_str(&self.run);
        }
        self.run.clear();
        self.run_is_content = false;
    }

    /// The element as a value: null when empty, its text when it has only text, else an object.
    fn into_value(mut self, text_key: &FieldName) -> Value {
        let text = if self.has_children {
            self.end_text_run();
            self.mixed
        } else {
            self.run
        };
        if self.fields.is_empty() {
            return if text.is_empty() {
                Value::Null
            } else {
                Value::String(text)
            };
        }
        if !text.is_empty() {
            self.fields
                .fields_mut()
                .insert(self.attributes, (text_key.clone(), Value::String(text)));
        }
        Value::Object(self.fields)
    }

    /// Adds a child element's value; a repeated child, or one named in `arrays`, makes an
    /// array.
    fn add_child(&mut self, name: FieldName, value: Value, arrays: &HashSet<String>) {
        self.has_children = true;
        let fields = self.fields.fields_mut();
        match fields.iter().position(|(n, _)| *n == name) {
            Some(index) => match &mut fields[index].1 {
                Value::Array(items) => items.push(value),
                slot => {
                    let first = std::mem::replace(slot, Value::Null);
                    *slot = Value::Array(vec![first, value]);
                }
            },
            None if arrays.contains(&*name) => fields.push((name, Value::Array(vec![value]))),
            None => fields.push((name, value)),
        }
    }
}

impl Builder {
    fn new(options: &XmlOptions) -> Self {
        Builder {
            matcher: PathMatcher::new(options),
            attribute_prefix: options.attribute_prefix.clone(),
            text_key: FieldName::from(options.text_key.as_str()),
            flatten: options.flatten,
            namespaces: options.namespaces,
            root: None,
            open: Vec::new(),
            element_names: HashMap::new(),
            attribute_names: HashMap::new(),
            dotted_names: HashSet::new(),
            arrays: options.arrays.iter().cloned().collect(),
        }
    }

    /// The number of the record being read, if one is.
    fn current_record(&self) -> Option<u64> {
        self.matcher.in_record().then_some(self.matcher.records())
    }

    fn element_name(&mut self, qualified: &str) -> FieldName {
        if let Some(name) = self.element_names.get(qualified) {
            return name.clone();
        }
        let name = match self.namespaces {
            Namespaces::Strip => FieldName::from(local_part(qualified)),
            Namespaces::Keep => FieldName::from(qualified),
        };
        if self.element_names.len() < CACHED_NAMES {
            self.element_names.insert(qualified.into(), name.clone());
        }
        name
    }

    fn attribute_name(&mut self, qualified: &str) -> Option<FieldName> {
        if let Some(name) = self.attribute_names.get(qualified) {
            return name.clone();
        }
        let is_declaration = qualified == "xmlns" || qualified.starts_with("xmlns:");
        let name = match self.namespaces {
            Namespaces::Strip if is_declaration => None,
            Namespaces::Strip => Some(format!(
                "{}{}",
                self.attribute_prefix,
                local_part(qualified)
            )),
            Namespaces::Keep => Some(format!("{}{qualified}", self.attribute_prefix)),
        }
        .map(FieldName::from);
        if self.attribute_names.len() < CACHED_NAMES {
            self.attribute_names.insert(qualified.into(), name.clone());
        }
        name
    }

    /// Back at the start of a document (the start of a chunk), `records` records already read.
    fn restart(&mut self, records: u64) {
        self.matcher.restart(records);
        self.root = None;
        self.open.clear();
    }

    fn start(&mut self, element: &BytesStart, empty: bool) -> Result<Option<Record>, Problem> {
        if self.open.is_empty() {
            self.start_outside_records(element)?;
        } else {
            let name = self.element_name(element.name().as_ref());
            if let Some(parent) = self.open.last_mut() {
                parent.end_text_run();
            }
            self.matcher.start(name.as_bytes());
            self.open_element(name, element)?;
        }
        Ok(if empty { self.end() } else { None })
    }

    /// An element outside the records: the root, a step of `record_path`, a record, or one
    /// to skip.
    fn start_outside_records(&mut self, element: &BytesStart) -> Result<(), Problem> {
        let qualified = element.name();
        let qualified = qualified.as_ref();
        if self.matcher.depth() == 0 {
            let name = self.element_name(qualified);
            if let Some(root) = &self.root {
                return Err(Problem::new(format!(
                    "invalid XML: a second root element `{name}` after `{root}`: a document has one"
                )));
            }
            self.root = Some(name.to_string());
        }
        if self.matcher.start(qualified.as_bytes()) {
            let name = self.element_name(qualified);
            self.open_element(name, element)?;
        }
        Ok(())
    }

    fn open_element(&mut self, name: FieldName, element: &BytesStart) -> Result<(), Problem> {
        if self.open.len() == MAX_RECORD_DEPTH {
            return Err(Problem::new(format!(
                "invalid XML: elements nested more than {MAX_RECORD_DEPTH} levels deep in a record"
            )));
        }
        let mut fields = Record::new();
        for attribute in element.attributes() {
            let attribute = attribute
                .map_err(|e| Problem::new(format!("invalid XML: invalid attribute: {e}")))?;
            let Some(field) = self.attribute_name(attribute.key.as_ref()) else {
                continue;
            };
            let value = attribute
                .normalized_value(XmlVersion::Implicit1_0)
                .map_err(|e| match e {
                    quick_xml::Error::Escape(EscapeError::UnrecognizedEntity(_, name)) => {
                        unknown_entity(&name)
                    }
                    other => Problem::new(format!("invalid XML: {other}")),
                })?;
            fields.push(field, Value::String(Text::from(value.as_ref())));
        }
        self.open.push(OpenElement {
            name,
            attributes: fields.len(),
            fields,
            has_children: false,
            run: Text::default(),
            run_is_content: false,
            mixed: Text::default(),
        });
        Ok(())
    }

    fn end(&mut self) -> Option<Record> {
        self.matcher.end();
        let element = self.open.pop()?;
        let name = element.name.clone();
        let value = element.into_value(&self.text_key);
        if let Some(parent) = self.open.last_mut() {
            parent.add_child(name, value, &self.arrays);
            return None;
        }
        let record = match value {
            Value::Object(record) => record,
            Value::Null => Record::new(),
            text => Record::from_iter([(self.text_key.clone(), text)]),
        };
        Some(if self.flatten {
            let mut flat = Record::with_capacity(record.len());
            let mut name = String::new();
            self.flatten_into(&mut flat, &mut name, record);
            flat
        } else {
            record
        })
    }

    /// Moves `record`'s fields into `flat`, nested objects as `prefix.name`.
    fn flatten_into(&mut self, flat: &mut Record, prefix: &mut String, mut record: Record) {
        let prefix_length = prefix.len();
        for (name, value) in std::mem::take(record.fields_mut()) {
            match value {
                Value::Object(inner) => {
                    prefix.push_str(&name);
                    prefix.push('.');
                    self.flatten_into(flat, prefix, inner);
                    prefix.truncate(prefix_length);
                }
                value if prefix.is_empty() => flat.push(name, value),
                value => {
                    prefix.push_str(&name);
                    let dotted = match self.dotted_names.get(prefix.as_str()) {
                        Some(dotted) => dotted.clone(),
                        None => {
                            let dotted = FieldName::from(prefix.as_str());
                            if self.dotted_names.len() < CACHED_NAMES {
                                self.dotted_names.insert(dotted.clone());
                            }
                            dotted
                        }
                    };
                    prefix.truncate(prefix_length);
                    flat.push(dotted, value);
                }
            }
        }
    }

    /// Character data: part of the open element's text inside a record, skipped elsewhere
    /// (but never allowed outside the root element).
    fn text(&mut self, text: &str, is_content: bool) -> Result<Option<Record>, Problem> {
        if let Some(element) = self.open.last_mut() {
            element.run.push_str(text);
            element.run_is_content |= is_content;
        } else if self.matcher.depth() == 0 && (is_content || !is_xml_whitespace(text)) {
            let leading = text.len() - text.trim_start().len();
            let message = match &self.root {
                Some(root) => format!(
                    "invalid XML: text after the end of the root element `{root}`: `{}`",
                    excerpt(text, 20)
                ),
                None => format!(
                    "not an XML document: it starts with `{}`, not with an element",
                    excerpt(text, 20)
                ),
            };
            return Err(Problem {
                at: At::EventStart(leading as u64),
                ..Problem::new(message)
            });
        }
        Ok(None)
    }

    fn eof(&self) -> Result<(), Problem> {
        let message = if let Some(element) = self.open.last() {
            format!(
                "invalid XML: the input ends inside element `{}` of record {}: is the file truncated?",
                element.name,
                self.matcher.records()
            )
        } else if let (Some(root), true) = (&self.root, self.matcher.depth() > 0) {
            format!(
                "invalid XML: the input ends before the root element `{root}` is closed: is the file truncated?"
            )
        } else if self.root.is_none() {
            "not an XML document: there is no element in it".to_string()
        } else {
            return Ok(());
        };
        Err(Problem {
            at: At::Here,
            ..Problem::new(message)
        })
    }
}

/// `order` for `ns:order`.
fn local_part(qualified: &str) -> &str {
    qualified
        .rsplit_once(':')
        .map_or(qualified, |(_, local)| local)
}

/// The input as UTF-8: its encoding is the one a byte-order mark names, else `encoding`, else
/// the XML declaration's, else UTF-8; anything else is transcoded. A byte-order mark is removed.
fn utf8_input(
    input: Box<dyn Read + Send>,
    label: &str,
    encoding: Option<&'static Encoding>,
) -> Result<Box<dyn Read + Send>, CodecError> {
    let (prefix, input) =
        peek(input, 1024).map_err(|source| CodecError::io(label, "read", source))?;
    // Without a byte-order mark (which `utf8_input` honours first) or a given encoding, the
    // document's start says.
    let encoding = match (Encoding::for_bom(&prefix), encoding) {
        (None, None) => Some(sniff_encoding(&prefix, label)?),
        (_, given) => given,
    };
    let whole = Box::new(Cursor::new(prefix).chain(input));
    text::utf8_input(whole, encoding.map(TextEncoding), false)
        .map_err(|source| CodecError::io(label, "read", source))
}

/// The encoding of a document without a byte-order mark: UTF-16 if it starts with `<` in
/// UTF-16 (a declaration or, without one, the root element), else what its XML declaration
/// says, else UTF-8.
fn sniff_encoding(prefix: &[u8], label: &str) -> Result<&'static Encoding, CodecError> {
    if prefix.starts_with(b"<\0") {
        return Ok(UTF_16LE);
    }
    if prefix.starts_with(b"\0<") {
        return Ok(UTF_16BE);
    }
    let Some(declared) = declared_encoding(prefix) else {
        return Ok(UTF_8);
    };
    match Encoding::for_label(declared.as_bytes()) {
        // The declaration was read as ASCII, so the document is not in UTF-16 whatever it says.
        Some(encoding) if encoding == UTF_16LE || encoding == UTF_16BE => Ok(UTF_8),
        Some(encoding) => Ok(encoding),
        None => Err(CodecError::malformed(
            label,
            Position {
                line: Some(1),
                ..Position::default()
            },
            format!("unknown encoding `{declared}` in the XML declaration"),
            Some("use an encoding name from the WHATWG Encoding Standard, e.g. UTF-8, ISO-8859-1, windows-1252, Shift_JIS".into()),
        )),
    }
}

/// The `encoding` of an XML declaration (`<?xml version="1.0" encoding="ISO-8859-1"?>`).
fn declared_encoding(prefix: &[u8]) -> Option<&str> {
    let rest = prefix.strip_prefix(b"<?xml")?;
    if !rest.first()?.is_ascii_whitespace() {
        return None;
    }
    let end = memchr::memmem::find(rest, b"?>")?;
    let declaration = std::str::from_utf8(&rest[..end]).ok()?;
    let after = &declaration[declaration.find("encoding")? + "encoding".len()..];
    let after = after.trim_start().strip_prefix('=')?.trim_start();
    let quote = after.chars().next().filter(|c| matches!(c, '"' | '\''))?;
    let value = &after[1..];
    Some(&value[..value.find(quote)?])
}
