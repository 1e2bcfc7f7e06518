//! Cutting a document into chunks that parse on their own, so that several threads can parse
//! one file (XML parsing costs far more than reading). A chunk ends between records, right after
//! a piece of markup, inside the root element; the next one starts with the start tags of the
//! elements open there (`<orders><batch>`), so the parser sees the same document structure.
//!
//! Finding those places takes a lexical scan, much cheaper than parsing: text holds no `<`, so
//! only markup is looked at, and only as far as its end (`>` outside quoted attribute values,
//! `-->`, `]]>`, `?>`). The scan never rejects anything: where the document is malformed, the
//! parser of the chunk reports it, and chunks are parsed and reported in order.
//!
//! A piece that does not end in what was read (a long text node, a long comment) is scanned
//! once: the scan remembers how far it got (`Progress`) and resumes there after the next read,
//! so the time is linear in the document, not in the square of its longest piece.
//!
//! The splitter is where bytes pile up: a chunk ends only between records, so a record is held
//! whole, and so is a run of the document that no chunk can end in (one long text node, a
//! prolog before the root). Either one growing past `max_record_bytes` fails the document, as
//! it grows (before the next read) or once it is scanned, so the outcome does not depend on
//! how the input was read, and the bytes held stay within the limit and a read.

use std::io::{self, Read};
use std::ops::Range;

use super::{Namespaces, XmlOptions};
use crate::codecs::csv::count_byte;
use crate::codecs::limit;
use crate::error::{CodecError, Position};

/// Where a reader is in the document relative to `record_path`: the splitter and the record
/// builder both need it, and must agree.
#[derive(Clone)]
pub(super) struct PathMatcher {
    /// `record_path`'s element names, root first; `None` for any root and its children.
    path: Option<Vec<String>>,
    /// The number of elements in the path.
    path_length: usize,
    namespaces: Namespaces,
    /// Elements open, in the whole document.
    depth: usize,
    /// How many of the open elements, from the root, match `path`.
    matched: usize,
    /// Records started so far.
    records: u64,
}

impl PathMatcher {
    pub(super) fn new(options: &XmlOptions) -> Self {
        let path = options.path();
        PathMatcher {
            path_length: path.as_ref().map_or(2, Vec::len),
            path,
            namespaces: options.namespaces,
            depth: 0,
            matched: 0,
            records: 0,
        }
    }

    /// Back at the start of a document, `records` records already read.
    pub(super) fn restart(&mut self, records: u64) {
        self.depth = 0;
        self.matched = 0;
        self.records = records;
    }

    pub(super) fn depth(&self) -> usize {
        self.depth
    }

    pub(super) fn records(&self) -> u64 {
        self.records
    }

    /// Whether a record's element (or one inside it) is open.
    pub(super) fn in_record(&self) -> bool {
        self.matched == self.path_length
    }

    /// An element named `qualified` (as written) starts; whether it is a record. The name is
    /// looked at only where it could be the next step of the path.
    pub(super) fn start(&mut self, qualified: &[u8]) -> bool {
        let is_candidate = self.matched == self.depth && self.matched < self.path_length;
        self.depth += 1;
        if !is_candidate {
            return false;
        }
        let name = match self.namespaces {
            Namespaces::Strip => {
                memchr::memrchr(b':', qualified).map_or(qualified, |colon| &qualified[colon + 1..])
            }
            Namespaces::Keep => qualified,
        };
        if self
            .path
            .as_ref()
            .is_some_and(|path| path[self.matched].as_bytes() != name)
        {
            return false;
        }
        self.matched += 1;
        let is_record = self.matched == self.path_length;
        self.records += u64::from(is_record);
        is_record
    }

    pub(super) fn end(&mut self) {
        // Saturating: the splitter sees malformed documents too (their parser reports them).
        self.depth = self.depth.saturating_sub(1);
        self.matched = self.matched.min(self.depth);
    }
}

/// A run of the document that parses on its own.
pub(super) struct XmlChunk {
    /// The start tags of the elements open where the chunk starts, then the chunk's bytes.
    pub(super) bytes: Vec<u8>,
    /// How many of `bytes` are those start tags.
    pub(super) prefix_length: usize,
    /// The line and column (1-based, in characters) of the chunk's first byte.
    pub(super) line: u64,
    pub(super) column: u64,
    /// Records that started before the chunk.
    pub(super) records_before: u64,
    /// Whether the document ends with this chunk.
    pub(super) last: bool,
}

/// Bytes of input after `<!DOCTYPE` that a chunk holds: DTDs are refused, but one shorter
/// than this is refused as a DTD rather than as unclosed markup.
const REFUSED_MARKUP_BYTES: usize = 64 * 1024;

/// Bytes read from the input at a time.
const READ_BYTES: usize = 256 * 1024;

/// Reads a (UTF-8) document and cuts it into chunks of about `chunk_bytes`.
pub(super) struct Splitter {
    input: Box<dyn Read + Send>,
    label: String,
    chunk_bytes: usize,
    /// Bytes read and not yet handed out in a chunk.
    buffer: Vec<u8>,
    /// How many of `buffer` are scanned: always the end of a piece of markup or of text.
    scanned: usize,
    /// How far the scan got into the unfinished piece at `scanned`.
    progress: Progress,
    matcher: PathMatcher,
    /// The names of the open elements that are not in a record, as written.
    open: Vec<Box<[u8]>>,
    /// How many of `open` hold a quote (which a start tag would not read back as written).
    quoted_open: usize,
    /// The start tags of the open elements where `buffer` starts.
    prefix: Vec<u8>,
    line: u64,
    column: u64,
    records_before: u64,
    exhausted: bool,
    /// Whether the last chunk was handed out.
    done: bool,
    max_record_bytes: u64,
    /// Where in `buffer` the open record's start tag starts.
    record_start: usize,
    /// Whether a record started and was not yet checked after its end.
    record_open: bool,
    /// Where in `buffer` the bytes held outside records start: the last place a chunk could
    /// end (or the end of the root element's record, or the document's start).
    held_from: usize,
    /// The error that ends the document, returned after the chunk before it.
    failed: Option<CodecError>,
}

/// What grew past `max_record_bytes`.
enum TooLarge {
    /// The open record (or the one just scanned).
    Record,
    /// The bytes held outside records, the piece at this offset being the one that took them
    /// past the limit.
    Outside { piece: usize },
}

/// Bytes after the first character of text outside the root element that the parser is given,
/// to report it as such (the message quotes its start).
const EXCERPT_BYTES: usize = 256;

/// What a scan of the markup at a `<` found.
enum Markup {
    /// A start tag or an empty-element tag, and where the element's name is in it.
    Start {
        name: Range<usize>,
        empty: bool,
    },
    End,
    /// A comment, CDATA section or processing instruction.
    Other,
    /// `<!DOCTYPE` or other `<!` markup, which the parser refuses.
    Refused,
}

impl Splitter {
    /// A splitter of `input` into chunks of about `chunk_bytes`; a record or a run of the
    /// document no chunk can end in larger than `max_record_bytes` fails it.
    pub(super) fn new(
        input: Box<dyn Read + Send>,
        label: &str,
        options: &XmlOptions,
        chunk_bytes: usize,
        max_record_bytes: u64,
    ) -> Self {
        Splitter {
            input,
            label: label.to_string(),
            chunk_bytes,
            buffer: Vec::new(),
            scanned: 0,
            progress: Progress::default(),
            matcher: PathMatcher::new(options),
            open: Vec::new(),
            quoted_open: 0,
            prefix: Vec::new(),
            line: 1,
            column: 1,
            records_before: 0,
            exhausted: false,
            done: false,
            max_record_bytes,
            record_start: 0,
            record_open: false,
            held_from: 0,
            failed: None,
        }
    }

    /// The next chunk; `None` once the last was handed out.
    pub(super) fn next_chunk(&mut self) -> Result<Option<XmlChunk>, CodecError> {
        if let Some(error) = self.failed.take() {
            return Err(error);
        }
        if self.done {
            return Ok(None);
        }
        loop {
            while let Some((length, markup)) =
                scan(&self.buffer[self.scanned..], &mut self.progress)
            {
                let start = self.scanned;
                self.scanned += length;
                self.progress = Progress::default();
                match markup {
                    Some(Markup::Start { name, empty }) => {
                        let name = &self.buffer[start + name.start..start + name.end];
                        let was_in_record = self.matcher.in_record();
                        let is_record = self.matcher.start(name);
                        if is_record {
                            self.record_start = start;
                            self.record_open = true;
                        }
                        if !was_in_record && !is_record {
                            self.quoted_open += usize::from(has_quote(name));
                            self.open.push(name.into());
                        }
                        if empty {
                            self.end_element();
                        }
                    }
                    Some(Markup::End) => self.end_element(),
                    Some(Markup::Refused) => return self.last_chunk_through_refused().map(Some),
                    Some(Markup::Other) | None => {}
                }
                // A record is checked as it grows and once it ends.
                if !self.matcher.in_record()
                    && let Some(too_large) = self.check_outside(start)
                {
                    return self.refuse(too_large);
                }
                if self.scanned >= self.chunk_bytes && self.may_cut() {
                    return Ok(Some(self.cut(false)));
                }
            }
            // What is held goes on past what was read: it must not grow past the limit.
            let (from, too_large) = match self.matcher.in_record() {
                true => (self.record_start, TooLarge::Record),
                false => (
                    self.held_from,
                    TooLarge::Outside {
                        piece: self.scanned,
                    },
                ),
            };
            if (self.buffer.len() - from) as u64 > self.max_record_bytes {
                return self.refuse(too_large);
            }
            if self.exhausted {
                self.done = true;
                return Ok(Some(self.cut(true)));
            }
            self.read_more()?;
        }
    }

    /// Checks what is held once the piece that starts at `start` is scanned, outside records,
    /// and moves `held_from` on past it where a chunk could end.
    fn check_outside(&mut self, start: usize) -> Option<TooLarge> {
        let limit = self.max_record_bytes;
        if self.record_open {
            // The record ended with this piece.
            self.record_open = false;
            if (self.scanned - self.record_start) as u64 > limit {
                return Some(TooLarge::Record);
            }
            // The root element was the record: nothing is held before its end. (Records
            // inside elements no chunk can end in are held along with the rest.)
            if self.matcher.depth() == 0 {
                self.held_from = self.scanned;
            }
        } else if (self.scanned - self.held_from) as u64 > limit {
            return Some(TooLarge::Outside { piece: start });
        }
        if self.may_cut() {
            self.held_from = self.scanned;
        }
        None
    }

    /// Fails the document for what grew past the limit: the error comes after a chunk of what
    /// came before it, whose records are good. Text outside the root element is left for the
    /// parser to refuse as such (a gzipped stream of zeros is not XML, whatever its size).
    #[cold]
    #[inline(never)]
    fn refuse(&mut self, too_large: TooLarge) -> Result<Option<XmlChunk>, CodecError> {
        let limit = self.max_record_bytes;
        let (from, error) = match too_large {
            TooLarge::Record => {
                let mut position = self.position(self.record_start);
                position.record = Some(self.matcher.records());
                let error = limit::record_too_large(&self.label, position, limit);
                (self.record_start, error)
            }
            TooLarge::Outside { piece } => {
                if let Some(text) = self.text_outside_root(piece)? {
                    self.buffer.truncate(text);
                    self.done = true;
                    return Ok(Some(self.cut(true)));
                }
                let position = self.position(self.held_from);
                let what = "text or markup outside the records";
                let error = limit::value_too_large(&self.label, position, what, limit);
                (self.held_from, error)
            }
        };
        self.done = true;
        if from == 0 {
            self.buffer = Vec::new();
            return Err(error);
        }
        self.failed = Some(error);
        self.scanned = from;
        let chunk = self.cut(false);
        self.buffer = Vec::new();
        Ok(Some(chunk))
    }

    /// When the piece at `piece`, which took what is held past the limit, is text outside the
    /// root element with more than white space among the bytes within the limit: where to end
    /// the document so that the parser sees the start of that text.
    fn text_outside_root(&mut self, piece: usize) -> Result<Option<usize>, CodecError> {
        if self.matcher.depth() > 0 || self.buffer.get(piece).is_none_or(|&b| b == b'<') {
            return Ok(None);
        }
        let within = usize::try_from(self.max_record_bytes)
            .unwrap_or(usize::MAX)
            .saturating_add(self.held_from + 1)
            .min(self.buffer.len());
        let Some(first) = (self.buffer.get(piece..within).unwrap_or_default().iter())
            .position(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        else {
            return Ok(None);
        };
        let wanted = piece + first + EXCERPT_BYTES;
        while !self.exhausted && self.buffer.len() < wanted {
            self.read_more()?;
        }
        // Not inside a character, which the parser would refuse as such.
        let mut end = wanted.min(self.buffer.len());
        while end > piece + first + 1 && self.buffer.get(end).is_some_and(|&b| b & 0xC0 == 0x80) {
            end -= 1;
        }
        Ok(Some(end))
    }

    /// The line and column of the byte at `offset` in `buffer`.
    fn position(&self, offset: usize) -> Position {
        let (line, column) = advance(&self.buffer[..offset], self.line, self.column);
        Position {
            line: Some(line),
            column: Some(column),
            ..Position::default()
        }
    }

    /// Whether a chunk may end here: inside the root, outside records, and where the start
    /// tags of the open elements read back as the same names (a malformed name with a quote
    /// in it would not).
    fn may_cut(&self) -> bool {
        self.matcher.depth() > 0 && !self.matcher.in_record() && self.quoted_open == 0
    }

    /// The chunk that ends with markup the parser refuses (a DTD): the document goes no further
    /// for it, but the chunk holds enough after the `<!` for the parser to read a DTD whole
    /// and refuse it for what it is.
    fn last_chunk_through_refused(&mut self) -> Result<XmlChunk, CodecError> {
        let markup_start = self.scanned - 2;
        while !self.exhausted && self.buffer.len() < markup_start + REFUSED_MARKUP_BYTES {
            self.read_more()?;
        }
        self.done = true;
        Ok(self.cut(true))
    }

    fn end_element(&mut self) {
        if !self.matcher.in_record()
            && let Some(name) = self.open.pop()
        {
            self.quoted_open -= usize::from(has_quote(&name));
        }
        self.matcher.end();
    }

    fn read_more(&mut self) -> Result<(), CodecError> {
        let filled = self.buffer.len();
        self.buffer.resize(filled + READ_BYTES, 0);
        let read = loop {
            match self.input.read(&mut self.buffer[filled..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        let read = read.map_err(|source| CodecError::io(&self.label, "read", source));
        self.buffer.truncate(filled + *read.as_ref().unwrap_or(&0));
        self.exhausted = read? == 0;
        Ok(())
    }

    /// Hands out the scanned bytes (all of them when `last`) as a chunk.
    fn cut(&mut self, last: bool) -> XmlChunk {
        let end = if last {
            self.buffer.len()
        } else {
            self.scanned
        };
        let rest = self.buffer.split_off(end);
        let body = std::mem::replace(&mut self.buffer, rest);
        self.scanned = 0;
        let mut next_prefix = Vec::new();
        for name in &self.open {
            next_prefix.push(b'<');
            next_prefix.extend_from_slice(name);
            next_prefix.push(b'>');
        }
        self.held_from = 0;
        let mut bytes = std::mem::replace(&mut self.prefix, next_prefix);
        let prefix_length = bytes.len();
        bytes.extend_from_slice(&body);
        let chunk = XmlChunk {
            bytes,
            prefix_length,
            line: self.line,
            column: self.column,
            records_before: self.records_before,
            last,
        };
        (self.line, self.column) = advance(&body, self.line, self.column);
        self.records_before = self.matcher.records();
        chunk
    }
}

fn has_quote(name: &[u8]) -> bool {
    name.iter().any(|&b| b == b'"' || b == b'\'')
}

/// The line and column after `bytes`, given those before them.
pub(super) fn advance(bytes: &[u8], line: u64, column: u64) -> (u64, u64) {
    match memchr::memrchr(b'\n', bytes) {
        Some(last) => (
            line + count_byte(bytes, b'\n'),
            1 + characters(&bytes[last + 1..]),
        ),
        None => (line, column + characters(bytes)),
    }
}

/// The characters in UTF-8 `bytes`: the bytes that do not continue a character.
fn characters(bytes: &[u8]) -> u64 {
    bytes.len() as u64
        - bytes
            .chunks(255)
            .map(|block| {
                u64::from(
                    block
                        .iter()
                        .fold(0u8, |n, &b| n + u8::from(b & 0xC0 == 0x80)),
                )
            })
            .sum::<u64>()
}

/// How far a scan got into a piece of text or markup that did not end in the bytes it had:
/// where to resume it once more are read. Positions are from the piece's start.
#[derive(Clone, Copy, Default)]
struct Progress {
    /// The bytes known to hold no end of the piece (past its first few, which say what it is).
    at: usize,
    /// The quote a tag's scan is inside at `at`.
    quote: Option<u8>,
}

/// The length of the text or markup at the start of `bytes`, and the markup; `None` when it is
/// not complete in `bytes`. `progress` says how far earlier scans of the same piece got (with
/// fewer bytes), and is moved on when this one does not complete it.
fn scan(bytes: &[u8], progress: &mut Progress) -> Option<(usize, Option<Markup>)> {
    if bytes.first() != Some(&b'<') {
        // Text, up to the next markup (text at the end may go on in the next read).
        let Some(length) = memchr::memchr(b'<', &bytes[progress.at..]) else {
            progress.at = bytes.len();
            return None;
        };
        return Some((progress.at + length, None));
    }
    // Finds `pattern` from `from` on, resuming where an earlier search stopped (less a partial
    // match it may have stopped in).
    let mut after = |pattern: &[u8], from: usize| {
        let start = from.max(progress.at);
        let Some(at) = bytes
            .get(start..)
            .and_then(|rest| memchr::memmem::find(rest, pattern))
        else {
            progress.at = from.max((bytes.len() + 1).saturating_sub(pattern.len()));
            return None;
        };
        Some(start + at + pattern.len())
    };
    // Where markup ends is decided as the parser decides it, well-formed or not.
    match bytes.get(1)? {
        b'/' => Some((tag_end(bytes, progress)? + 1, Some(Markup::End))),
        b'?' => Some((after(b"?>", 1)?, Some(Markup::Other))),
        b'!' => match bytes.get(2)? {
            b'-' => Some((after(b"-->", 4)?, Some(Markup::Other))),
            b'[' => Some((after(b"]]>", 3)?, Some(Markup::Other))),
            _ => Some((2, Some(Markup::Refused))),
        },
        _ => {
            let end = tag_end(bytes, progress)?;
            let empty = bytes[end - 1] == b'/';
            let content_end = if empty { end - 1 } else { end };
            // The name goes up to white space, as the parser takes it.
            let name_end = bytes[1..content_end]
                .iter()
                .position(|&b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
                .map_or(content_end, |at| at + 1);
            Some((
                end + 1,
                Some(Markup::Start {
                    name: 1..name_end,
                    empty,
                }),
            ))
        }
    }
}

/// The index of the `>` that ends the tag at the start of `bytes`: the first outside quotes.
/// Resumes at `progress` (and inside its quote), and leaves it at the end of `bytes` when the
/// tag goes on past them.
fn tag_end(bytes: &[u8], progress: &mut Progress) -> Option<usize> {
    let mut at = progress.at.max(1);
    loop {
        if let Some(quote) = progress.quote {
            let Some(close) = memchr::memchr(quote, &bytes[at..]) else {
                progress.at = bytes.len();
                return None;
            };
            at += close + 1;
            progress.quote = None;
        }
        let Some(found) = memchr::memchr3(b'>', b'"', b'\'', &bytes[at..]) else {
            progress.at = bytes.len();
            return None;
        };
        at += found;
        if bytes[at] == b'>' {
            return Some(at);
        }
        progress.quote = Some(bytes[at]);
        at += 1;
    }
}
