//! What a text file really is, told from its first bytes before a decoder reads it. Files
//! that are not what their name says arrive every day: UTF-32 (which no WHATWG decoder reads,
//! and whose mark starts like UTF-16's), UTF-16 saved without a byte-order mark, an HTML
//! login or error page saved as `orders.csv`, a UTF-8 file that two tools each gave a
//! byte-order mark. Read as they are, the first three become text full of NUL characters or
//! one-column tables of markup: wrong data in silence. They are refused here with what the
//! file really is and what to do. A doubled byte-order mark is a harmless mistake: it is read
//! as one, with a warning, rather than becoming part of the first field's name.

use std::io::{self, Cursor, Read};

use crate::error::{CodecError, Position};

use super::text::{self, TextEncoding};

/// How many bytes are looked at.
const HEAD_BYTES: usize = 64;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// `input` checked: refused when it is not text this decoder can read; with a doubled
/// byte-order mark, the first mark skipped and a warning. `encoding` is the one the pipeline
/// names (a named encoding is taken at its word: UTF-16 without a mark is then expected);
/// `format` names the format in messages; `xml` for XML, which tells UTF-16 by its first `<`
/// itself, and of which an XHTML page is a well-formed input.
pub(crate) fn checked(
    input: Box<dyn Read + Send>,
    label: &str,
    encoding: Option<TextEncoding>,
    format: &str,
    xml: bool,
) -> Result<(Box<dyn Read + Send>, Option<String>), CodecError> {
    let (head, rest) =
        text::peek(input, HEAD_BYTES).map_err(|e| CodecError::io(label, "read", e))?;
    let finding = look(&head, encoding, format, xml);
    let whole = Cursor::new(head).chain(rest);
    match finding {
        None => Ok((Box::new(whole), None)),
        Some(Finding::Refused { what, hint }) => Err(refused(label, what, hint)),
        Some(Finding::DoubledMark) => {
            let mut whole = whole;
            io::copy(
                &mut (&mut whole).take(UTF8_BOM.len() as u64),
                &mut io::sink(),
            )
            .map_err(|e| CodecError::io(label, "read", e))?;
            Ok((Box::new(whole), Some(doubled_mark_warning(label))))
        }
    }
}

/// [`checked`] for a document in memory.
pub(crate) fn checked_bytes(
    mut bytes: Vec<u8>,
    label: &str,
    encoding: Option<TextEncoding>,
    format: &str,
) -> Result<(Vec<u8>, Option<String>), CodecError> {
    let head = &bytes[..bytes.len().min(HEAD_BYTES)];
    match look(head, encoding, format, false) {
        None => Ok((bytes, None)),
        Some(Finding::Refused { what, hint }) => Err(refused(label, what, hint)),
        Some(Finding::DoubledMark) => {
            bytes.drain(..UTF8_BOM.len());
            Ok((bytes, Some(doubled_mark_warning(label))))
        }
    }
}

fn refused(label: &str, what: String, hint: String) -> CodecError {
    CodecError::malformed(label, Position::default(), what, Some(hint))
}

fn doubled_mark_warning(label: &str) -> String {
    format!(
        "{label} starts with two UTF-8 byte-order marks (EF BB BF EF BB BF): both were skipped \
         (a second mark would have become part of the first field's name)"
    )
}

#[derive(Debug, PartialEq)]
enum Finding {
    /// Not readable as it is: what the file is, and what to do.
    Refused { what: String, hint: String },
    /// UTF-8 with its byte-order mark twice.
    DoubledMark,
}

fn look(head: &[u8], encoding: Option<TextEncoding>, format: &str, xml: bool) -> Option<Finding> {
    let convert =
        |from: &str| format!("convert it to UTF-8 first, e.g. `iconv -f {from} -t UTF-8 in > out`");
    // A UTF-32 mark: FF FE 00 00 is also UTF-16LE's mark before a NUL character, so the
    // characters after it must look like UTF-32 too.
    if let Some(order) = utf32(head) {
        return Some(Finding::Refused {
            what: format!(
                "the file is {order} (it starts with that byte-order mark), which longshore does not read"
            ),
            hint: convert(order),
        });
    }
    let unmarked = !xml && encoding.is_none() && encoding_rs::Encoding::for_bom(head).is_none();
    if let Some(order) = utf16_without_mark(head).filter(|_| unmarked) {
        return Some(Finding::Refused {
            what: format!(
                "the file looks like {order} without a byte-order mark (every other byte is zero)"
            ),
            hint: format!("set the source's `encoding = \"{}\"`", order.to_lowercase()),
        });
    }
    if !xml && is_html(head) {
        return Some(Finding::Refused {
            what: format!("the file is an HTML page, not {format}"),
            hint: "a web page (a login, an error, a report viewer) was saved or served in place \
                   of the data: ask for the file itself"
                .into(),
        });
    }
    let doubled = [UTF8_BOM, UTF8_BOM].concat();
    head.starts_with(&doubled).then_some(Finding::DoubledMark)
}

/// `UTF-32LE` or `UTF-32BE` when `head` starts with that byte-order mark and the next three
/// characters are in the Basic Multilingual Plane, as text is (UTF-16LE text of a NUL and then
/// three characters that are each followed by a NUL is the only other thing that looks so).
fn utf32(head: &[u8]) -> Option<&'static str> {
    // Where the two high bytes of each 4-byte character are.
    let (order, high) = match head.get(..4)? {
        [0xFF, 0xFE, 0, 0] => ("UTF-32LE", 2..4),
        [0, 0, 0xFE, 0xFF] => ("UTF-32BE", 0..2),
        _ => return None,
    };
    head.get(4..16)?
        .chunks(4)
        .all(|c| c[high.clone()] == [0, 0] && c != [0, 0, 0, 0])
        .then_some(order)
}

/// `UTF-16LE` or `UTF-16BE` when the first 8 or more characters of `head` (all it holds, up
/// to its last whole pair) are each a byte and a zero, in one order: Latin-1 text in UTF-16.
/// UTF-8 text has no such run of NUL characters.
fn utf16_without_mark(head: &[u8]) -> Option<&'static str> {
    let pairs = &head[..head.len() & !1];
    if pairs.len() < 16 {
        return None;
    }
    let all = |low: usize| {
        pairs
            .chunks(2)
            .all(|pair| pair[low] != 0 && pair[1 - low] == 0)
    };
    if all(0) {
        Some("UTF-16LE")
    } else if all(1) {
        Some("UTF-16BE")
    } else {
        None
    }
}

/// Whether `start` is the start of an HTML page: `<!DOCTYPE html` or `<html`, in any case,
/// after a byte-order mark and white space.
pub(crate) fn is_html(start: &[u8]) -> bool {
    let start = start.strip_prefix(UTF8_BOM).unwrap_or(start);
    let text = start.trim_ascii_start();
    [&b"<!doctype html"[..], b"<html"].iter().any(|tag| {
        text.get(..tag.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(tag))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(head: &[u8]) -> String {
        match look(head, None, "CSV", false) {
            Some(Finding::Refused { what, hint }) => format!("{what}. {hint}"),
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn utf32_is_named_and_refused() {
        let text = "id,name\n";
        let le: Vec<u8> = [0xFF, 0xFE, 0, 0]
            .into_iter()
            .chain(text.chars().flat_map(|c| (c as u32).to_le_bytes()))
            .collect();
        assert_eq!(
            refusal(&le),
            "the file is UTF-32LE (it starts with that byte-order mark), which longshore does not read. convert it to UTF-8 first, e.g. `iconv -f UTF-32LE -t UTF-8 in > out`"
        );
        let be: Vec<u8> = [0, 0, 0xFE, 0xFF]
            .into_iter()
            .chain(text.chars().flat_map(|c| (c as u32).to_be_bytes()))
            .collect();
        assert!(refusal(&be).starts_with("the file is UTF-32BE"));
    }

    #[test]
    fn utf16_that_starts_with_a_nul_character_is_not_taken_for_utf32() {
        // UTF-16LE, with its mark, of "\0id,name": FF FE 00 00 69 00 64 00 ...
        let head: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain("\0id,name\n".encode_utf16().flat_map(|u| u.to_le_bytes()))
            .collect();
        assert_eq!(look(&head, None, "CSV", false), None);
    }

    #[test]
    fn utf16_without_a_mark_is_named_with_the_setting_to_read_it() {
        let le: Vec<u8> = "id,name\n1,Straße\n"
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        assert_eq!(
            refusal(&le),
            "the file looks like UTF-16LE without a byte-order mark (every other byte is zero). set the source's `encoding = \"utf-16le\"`"
        );
        let be: Vec<u8> = "id,name\n"
            .encode_utf16()
            .flat_map(|u| u.to_be_bytes())
            .collect();
        assert!(refusal(&be).starts_with("the file looks like UTF-16BE"));
        // A named encoding is taken at its word; short input is not judged.
        let utf16le = TextEncoding::parse("utf-16le").unwrap();
        assert_eq!(look(&le, Some(utf16le), "CSV", false), None);
        assert_eq!(look(&le[..14], None, "CSV", false), None);
        // UTF-8 text with a NUL character here and there is UTF-8.
        assert_eq!(look(b"a\0b\0c\0d\0e\0f\0g\0hh\0", None, "CSV", false), None);
    }

    #[test]
    fn an_html_page_is_not_data_except_to_xml_which_reads_utf16_itself() {
        let page = b"\xEF\xBB\xBF\r\n  <!DOCTYPE HTML><html><body>Please log in</body></html>";
        assert_eq!(
            refusal(page),
            "the file is an HTML page, not CSV. a web page (a login, an error, a report viewer) was saved or served in place of the data: ask for the file itself"
        );
        assert_eq!(look(page, None, "XML", true), None);
        let utf16: Vec<u8> = "<r><o>1</o></r>"
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        assert_eq!(look(&utf16, None, "XML", true), None);
        assert_eq!(look(b"html,body\n1,2\n", None, "CSV", false), None);
    }

    #[test]
    fn a_doubled_mark_is_read_as_one_with_a_warning() {
        let input = b"\xEF\xBB\xBF\xEF\xBB\xBFid\n1\n".to_vec();
        let (mut read, warning) = checked(
            Box::new(Cursor::new(input.clone())),
            "t.csv",
            None,
            "CSV",
            false,
        )
        .unwrap();
        let mut text = Vec::new();
        read.read_to_end(&mut text).unwrap();
        assert_eq!(text, b"\xEF\xBB\xBFid\n1\n");
        assert_eq!(
            warning.unwrap(),
            "t.csv starts with two UTF-8 byte-order marks (EF BB BF EF BB BF): both were skipped (a second mark would have become part of the first field's name)"
        );
        let (bytes, warning) = checked_bytes(input, "page 1", None, "JSON").unwrap();
        assert_eq!(bytes, b"\xEF\xBB\xBFid\n1\n");
        assert!(warning.is_some());
        // One mark is how it should be.
        let (_, warning) = checked(
            Box::new(Cursor::new(b"\xEF\xBB\xBFid\n".to_vec())),
            "t",
            None,
            "CSV",
            false,
        )
        .unwrap();
        assert_eq!(warning, None);
    }
}
