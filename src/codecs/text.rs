//! Text in any encoding. Decoders read UTF-8 only; files arrive in UTF-8 with or without a
//! byte-order mark, UTF-16 with one, or a legacy encoding the pipeline names
//! (`encoding = "windows-1252"`). [`utf8_input`] turns any of them into UTF-8 on the way in,
//! and [`EncodingWriter`] turns UTF-8 into the encoding a partner wants on the way out.
//! Encodings are `encoding_rs`'s (the WHATWG set), named by any of their labels.

use std::borrow::Cow;
use std::fmt;
use std::io::{self, Cursor, Read, Write};

use encoding_rs::{Encoding, UTF_8, UTF_16BE, UTF_16LE};
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};

/// A text encoding, by any WHATWG label: `utf-8`, `utf-16le`, `utf-16be`, `windows-1252`,
/// `iso-8859-1` (read as windows-1252, as browsers do), `iso-8859-15`, `shift_jis`, `gbk`, ...
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TextEncoding(pub &'static Encoding);

impl TextEncoding {
    pub fn parse(label: &str) -> Result<Self, String> {
        Encoding::for_label(label.trim().as_bytes())
            .map(TextEncoding)
            .ok_or_else(|| {
                format!(
                    "unknown encoding `{label}`: use a label such as utf-8, utf-16le, utf-16be, windows-1252, iso-8859-15, shift_jis"
                )
            })
    }

    pub fn name(&self) -> &'static str {
        self.0.name()
    }
}

impl fmt::Debug for TextEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl<'de> Deserialize<'de> for TextEncoding {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let label = String::deserialize(deserializer)?;
        TextEncoding::parse(&label).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for TextEncoding {
    fn schema_name() -> Cow<'static, str> {
        "TextEncoding".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        String::json_schema(generator)
    }
}

/// `input` as UTF-8. A byte-order mark decides the encoding (UTF-8, UTF-16LE, UTF-16BE); without
/// one, `encoding` does (default UTF-8, passed through untouched: decoders check it). A UTF-8
/// BOM is kept at the start when `keep_bom` (for a decoder that skips it itself), else removed.
/// Bytes that are invalid in a legacy or UTF-16 input become U+FFFD.
pub fn utf8_input(
    input: Box<dyn Read + Send>,
    encoding: Option<TextEncoding>,
    keep_bom: bool,
) -> io::Result<Box<dyn Read + Send>> {
    let (head, input) = peek(input, 3)?;
    let bom = Encoding::for_bom(&head);
    let from = match (bom, encoding) {
        (Some((found, _)), _) => found,
        (None, Some(TextEncoding(given))) => given,
        (None, None) => UTF_8,
    };
    let whole = Cursor::new(head).chain(input);
    if from == UTF_8 {
        return Ok(match bom {
            Some((_, length)) if !keep_bom => {
                let mut whole = whole;
                io::copy(&mut (&mut whole).take(length as u64), &mut io::sink())?;
                Box::new(whole)
            }
            _ => Box::new(whole),
        });
    }
    let decoded = encoding_rs_io::DecodeReaderBytesBuilder::new()
        .encoding(Some(from))
        .bom_override(true)
        .strip_bom(!keep_bom)
        .build(whole);
    Ok(Box::new(ReadsOfFour {
        inner: decoded,
        spill: [0; 4],
        spilled: 0..0,
    }))
}

/// Asks `inner` for at least 4 bytes a read, keeping what a smaller read has no room for.
/// `encoding_rs_io` (0.1.8) loses the end of a character it flushes at the end of the input into
/// a read of fewer than 4 bytes, as `read_to_end` asks for when its buffer is nearly full.
struct ReadsOfFour<R> {
    inner: R,
    spill: [u8; 4],
    spilled: std::ops::Range<usize>,
}

impl<R: Read> Read for ReadsOfFour<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.spilled.is_empty() {
            if buf.len() >= self.spill.len() {
                return self.inner.read(buf);
            }
            self.spilled = 0..self.inner.read(&mut self.spill)?;
        }
        let n = self.spilled.len().min(buf.len());
        buf[..n].copy_from_slice(&self.spill[self.spilled.start..][..n]);
        self.spilled.start += n;
        Ok(n)
    }
}

/// The first `count` bytes of `input` (fewer only at its end), and the reader positioned after
/// them.
pub fn peek<R: Read>(mut input: R, count: usize) -> io::Result<(Vec<u8>, R)> {
    let mut head = vec![0; count];
    let filled = read_at_least(&mut input, &mut head, count)?;
    head.truncate(filled);
    Ok((head, input))
}

/// Reads until `buf` holds at least `least` bytes (or is full), or the input ends; how many.
pub(crate) fn read_at_least(
    input: &mut impl Read,
    buf: &mut [u8],
    least: usize,
) -> io::Result<usize> {
    let least = least.min(buf.len());
    let mut filled = 0;
    while filled < least {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// `output` itself for UTF-8 (the default), else wrapped in an [`EncodingWriter`].
pub fn encoded_output(
    output: Box<dyn Write + Send>,
    encoding: Option<TextEncoding>,
) -> Box<dyn Write + Send> {
    match encoding {
        Some(encoding) if encoding.0 != UTF_8 => Box::new(EncodingWriter::new(output, encoding)),
        _ => output,
    }
}

/// Writes UTF-8 text (as encoders produce it) to `inner` in another encoding. A character the
/// encoding cannot represent is an error naming it, never silently replaced.
pub struct EncodingWriter<W: Write> {
    inner: W,
    encoding: &'static Encoding,
    encoder: Option<encoding_rs::Encoder>,
    /// The end of the last write when it cut a character in two.
    partial: Vec<u8>,
    /// For UTF-16, whether the byte-order mark was written.
    started: bool,
    output: Vec<u8>,
}

impl<W: Write> EncodingWriter<W> {
    /// UTF-16 output starts with a byte-order mark, which readers need to tell its byte order.
    pub fn new(inner: W, encoding: TextEncoding) -> Self {
        let encoding = encoding.0;
        let utf16 = encoding == UTF_16LE || encoding == UTF_16BE;
        EncodingWriter {
            inner,
            encoding,
            encoder: (!utf16).then(|| encoding.new_encoder()),
            partial: Vec::new(),
            started: false,
            output: Vec::new(),
        }
    }

    fn encode(&mut self, text: &str) -> io::Result<()> {
        self.output.clear();
        match &mut self.encoder {
            None => {
                if !self.started {
                    self.output.extend_from_slice(&0xFEFFu16.to_be_bytes());
                    if self.encoding == UTF_16LE {
                        self.output.swap(0, 1);
                    }
                    self.started = true;
                }
                for unit in text.encode_utf16() {
                    let bytes = if self.encoding == UTF_16LE {
                        unit.to_le_bytes()
                    } else {
                        unit.to_be_bytes()
                    };
                    self.output.extend_from_slice(&bytes);
                }
            }
            Some(encoder) => {
                let needed = encoder
                    .max_buffer_length_from_utf8_without_replacement(text.len())
                    .unwrap_or(text.len() * 4 + 16);
                self.output.resize(needed, 0);
                let (result, _, written) =
                    encoder.encode_from_utf8_without_replacement(text, &mut self.output, false);
                self.output.truncate(written);
                if let encoding_rs::EncoderResult::Unmappable(c) = result {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "the character {c:?} (U+{:04X}) cannot be written in {}",
                            c as u32,
                            self.encoding.name()
                        ),
                    ));
                }
            }
        }
        self.inner.write_all(&self.output)
    }
}

impl<W: Write> EncodingWriter<W> {
    fn write_utf8(&mut self, bytes: &[u8]) -> io::Result<()> {
        let complete = match std::str::from_utf8(bytes) {
            Ok(text) => text,
            // A character cut at the end of this write: keep its start for the next one.
            Err(e) if e.error_len().is_none() => {
                self.partial = bytes[e.valid_up_to()..].to_vec();
                std::str::from_utf8(&bytes[..e.valid_up_to()]).expect("valid up to there")
            }
            Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
        };
        self.encode(complete)
    }
}

impl<W: Write> Write for EncodingWriter<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if self.partial.is_empty() {
            self.write_utf8(bytes)?;
        } else {
            let mut joined = std::mem::take(&mut self.partial);
            joined.extend_from_slice(bytes);
            self.write_utf8(&joined)?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.partial.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the text ends in the middle of a UTF-8 character",
            ));
        }
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8], encoding: Option<&str>, keep_bom: bool) -> String {
        let encoding = encoding.map(|label| TextEncoding::parse(label).unwrap());
        let mut text = String::new();
        utf8_input(Box::new(Cursor::new(bytes.to_vec())), encoding, keep_bom)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        text
    }

    #[test]
    fn boms_decide_and_legacy_encodings_are_named() {
        assert_eq!(read(b"id\n", None, false), "id\n");
        assert_eq!(read(b"\xEF\xBB\xBFid\n", None, false), "id\n");
        assert_eq!(read(b"\xEF\xBB\xBFid\n", None, true), "\u{feff}id\n");
        assert_eq!(read(b"\xFF\xFEi\0d\0", None, false), "id");
        assert_eq!(read(b"\xFE\xFF\0i\0d", Some("windows-1252"), false), "id");
        assert_eq!(read(b"caf\xE9 \x80", Some("windows-1252"), false), "café €");
        assert_eq!(read(b"caf\xE9", Some("latin1"), false), "café");
        assert_eq!(read(b"", None, false), "");
        assert_eq!(
            TextEncoding::parse("klingon").unwrap_err(),
            "unknown encoding `klingon`: use a label such as utf-8, utf-16le, utf-16be, windows-1252, iso-8859-15, shift_jis"
        );
    }

    /// Found by fuzzing: a replacement character for a lone byte at the end of UTF-16 input
    /// lost its last bytes when read into a nearly full buffer (`read_to_end` does that, as do
    /// reads of a byte), and the text was not UTF-8.
    #[test]
    fn the_last_character_survives_small_reads() {
        let cases = [
            (&b"\xFE\xFFi\0/d\0"[..], None, "\u{6900}\u{2f64}\u{fffd}"),
            (
                b"\x00\xd8\x02\x00\xd8aa",
                Some("utf-16le"),
                "\u{fffd}\u{2}\u{61d8}\u{fffd}",
            ),
            (b"\x82", Some("shift_jis"), "\u{fffd}"),
        ];
        for (bytes, encoding, expected) in cases {
            let encoding = encoding.map(|label| TextEncoding::parse(label).unwrap());
            let input = || utf8_input(Box::new(Cursor::new(bytes.to_vec())), encoding, false);
            let mut whole = Vec::new();
            input().unwrap().read_to_end(&mut whole).unwrap();
            assert_eq!(String::from_utf8(whole).unwrap(), expected);
            let mut bytewise = Vec::new();
            let (mut input, mut byte) = (input().unwrap(), [0]);
            while input.read(&mut byte).unwrap() == 1 {
                bytewise.push(byte[0]);
            }
            assert_eq!(String::from_utf8(bytewise).unwrap(), expected);
        }
    }

    fn write(encoding: &str, chunks: &[&[u8]]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut writer = EncodingWriter::new(&mut out, TextEncoding::parse(encoding).unwrap());
        for chunk in chunks {
            writer.write_all(chunk)?;
        }
        writer.flush()?;
        drop(writer);
        Ok(out)
    }

    #[test]
    fn writes_other_encodings_even_with_characters_cut_between_writes() {
        let euro = "€".as_bytes();
        assert_eq!(
            write(
                "windows-1252",
                &[b"caf\xC3", b"\xA9 ", &euro[..1], &euro[1..]]
            )
            .unwrap(),
            b"caf\xE9 \x80"
        );
        assert_eq!(write("utf-16le", &[b"id"]).unwrap(), b"\xFF\xFEi\0d\0");
        assert_eq!(write("utf-16be", &[b"i", b"d"]).unwrap(), b"\xFE\xFF\0i\0d");
        let error = write("windows-1252", &["Ω".as_bytes()]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the character 'Ω' (U+03A9) cannot be written in windows-1252"
        );
        let cut = write("windows-1252", &[&euro[..2]]).unwrap_err();
        assert_eq!(
            cut.to_string(),
            "the text ends in the middle of a UTF-8 character"
        );
    }
}
