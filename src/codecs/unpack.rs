//! Compressed input, decoded transparently: a gzip file is read through a streaming
//! decompressor, a zip archive yields each of its files in turn. Both are recognized by their
//! first bytes, whatever their names. Limits guard against decompression bombs: the bytes
//! unpacked from one file (all members together) and the number of members.
//!
//! A zip's directory is at its end, so an archive is first copied to an anonymous temporary
//! file (it may arrive as a stream); each member is then unpacked to another one before it is
//! decoded, so that decoders get an owned reader and memory stays bounded.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek};

use super::text::peek;
use crate::error::{CodecError, Position};
use crate::names::strip_gzip_suffix;

/// Default [`UnpackLimits::max_unpacked_bytes`]: 4 GiB.
pub const DEFAULT_MAX_UNPACKED_BYTES: u64 = 4 << 30;
/// Default [`UnpackLimits::max_members`].
pub const DEFAULT_MAX_MEMBERS: usize = 10_000;

/// Bounds on what one compressed file may unpack to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnpackLimits {
    /// Bytes, all members of an archive together.
    pub max_unpacked_bytes: u64,
    /// Entries in a zip archive, directories included.
    pub max_members: usize,
}

impl Default for UnpackLimits {
    fn default() -> Self {
        UnpackLimits {
            max_unpacked_bytes: DEFAULT_MAX_UNPACKED_BYTES,
            max_members: DEFAULT_MAX_MEMBERS,
        }
    }
}

/// One stream to decode: a plain file, a gunzipped file, or one member of a zip archive.
pub struct Part {
    /// Names the stream in messages and rejects: the file's path, or for a zip member the
    /// archive's path and the member's (`in/batch.zip/orders.csv`).
    pub label: String,
    /// What the format is inferred from: the path without `.gz`, or the member's name.
    pub name: String,
    pub reader: Box<dyn Read + Send>,
}

/// The streams in one input file, in order.
pub struct Unpacked {
    state: State,
}

enum State {
    /// A plain or gzip file: one part, until taken.
    Single(Option<Part>),
    Zip(Box<ZipParts>),
}

struct ZipParts {
    archive: zip::ZipArchive<File>,
    label: String,
    next: usize,
    unpacked: u64,
    limits: UnpackLimits,
}

const GZIP_MAGIC: &[u8] = b"\x1f\x8b";
const ZIP_MAGICS: [&[u8]; 3] = [b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08"];

/// The streams in `input`, a file named `label`. A zip archive is opened only with `open_zips`:
/// a workbook (`.xlsx`, `.ods`) is a zip archive too, and its decoder wants it whole.
pub fn unpack(
    input: Box<dyn Read + Send>,
    label: &str,
    limits: UnpackLimits,
    open_zips: bool,
) -> Result<Unpacked, CodecError> {
    let (head, input) = peek(input, 4).map_err(|e| CodecError::io(label, "read", e))?;
    let whole = io::Cursor::new(head.clone()).chain(input);
    let state = if head.starts_with(GZIP_MAGIC) {
        let name = strip_gzip_suffix(label).unwrap_or(label);
        let gunzip = flate2::read::MultiGzDecoder::new(BufReader::new(whole));
        State::Single(Some(Part {
            label: label.to_string(),
            name: name.to_string(),
            reader: Box::new(Gunzip {
                inner: gunzip,
                left: limits.max_unpacked_bytes,
                limit: limits.max_unpacked_bytes,
            }),
        }))
    } else if open_zips && ZIP_MAGICS.iter().any(|magic| head.starts_with(magic)) {
        State::Zip(Box::new(open_zip(whole, label, limits)?))
    } else {
        State::Single(Some(Part {
            label: label.to_string(),
            name: label.to_string(),
            reader: Box::new(whole),
        }))
    };
    Ok(Unpacked { state })
}

impl Unpacked {
    /// The next stream, or `None` when every one was taken.
    pub fn next_part(&mut self) -> Result<Option<Part>, CodecError> {
        match &mut self.state {
            State::Single(part) => Ok(part.take()),
            State::Zip(zip) => zip.next_member(),
        }
    }
}

fn open_zip(
    mut whole: impl Read,
    label: &str,
    limits: UnpackLimits,
) -> Result<ZipParts, CodecError> {
    let mut copy = tempfile::tempfile().map_err(|e| CodecError::io(label, "buffer", e))?;
    io::copy(&mut whole, &mut copy).map_err(|e| CodecError::io(label, "read", e))?;
    copy.rewind()
        .map_err(|e| CodecError::io(label, "buffer", e))?;
    let archive = zip::ZipArchive::new(copy).map_err(|e| {
        CodecError::malformed(
            label,
            Position::default(),
            format!("not a readable zip archive ({e})"),
            None,
        )
    })?;
    if archive.len() > limits.max_members {
        return Err(CodecError::malformed(
            label,
            Position::default(),
            format!(
                "the zip archive has {} entries, more than max_zip_members = {}",
                archive.len(),
                limits.max_members
            ),
            Some("raise the source's `max_zip_members` if the archive is expected".into()),
        ));
    }
    Ok(ZipParts {
        archive,
        label: label.to_string(),
        next: 0,
        unpacked: 0,
        limits,
    })
}

impl ZipParts {
    fn next_member(&mut self) -> Result<Option<Part>, CodecError> {
        while self.next < self.archive.len() {
            let index = self.next;
            self.next += 1;
            let label = &self.label;
            let bad = |message: String| {
                CodecError::malformed(label.as_str(), Position::default(), message, None)
            };
            let mut entry = self
                .archive
                .by_index(index)
                .map_err(|e| bad(format!("member {}: {e}", index + 1)))?;
            let name = entry
                .name()
                .map_err(|e| bad(format!("member {}: {e}", index + 1)))?
                .into_owned();
            // Directories, and what archivers add beside the files (macOS resource forks).
            let file_name = name.rsplit('/').next().unwrap_or(&name);
            if entry.is_dir() || name.starts_with("__MACOSX/") || file_name.starts_with('.') {
                continue;
            }
            if crate::names::has_control(&name) {
                return Err(bad(format!(
                    "member {name:?} has a control character in its name, which could forge log lines or paths: longshore does not read it"
                )));
            }
            let member_label = format!("{label}/{name}");
            if entry.encrypted() {
                return Err(bad(format!(
                    "{name} is encrypted: longshore cannot read it"
                )));
            }
            let left = self.limits.max_unpacked_bytes - self.unpacked;
            if entry.size() > left {
                return Err(bomb(&member_label, self.limits.max_unpacked_bytes));
            }
            let mut unpacked =
                tempfile::tempfile().map_err(|e| CodecError::io(&member_label, "buffer", e))?;
            let copied = io::copy(&mut (&mut entry).take(left + 1), &mut unpacked)
                .map_err(|e| CodecError::io(&member_label, "unpack", e))?;
            if copied > left {
                return Err(bomb(&member_label, self.limits.max_unpacked_bytes));
            }
            self.unpacked += copied;
            unpacked
                .rewind()
                .map_err(|e| CodecError::io(&member_label, "buffer", e))?;
            return Ok(Some(Part {
                label: member_label,
                name,
                reader: Box::new(BufReader::new(unpacked)),
            }));
        }
        Ok(None)
    }
}

fn bomb(label: &str, limit: u64) -> CodecError {
    CodecError::malformed(
        label,
        Position::default(),
        format!("unpacks to more than max_unpacked_bytes = {limit} bytes"),
        Some(
            "raise the source's `max_unpacked_bytes` if the file is expected to be that large"
                .into(),
        ),
    )
}

/// A gzip decompressor that fails once it has produced more than `limit` bytes, and says what
/// is wrong with data it cannot decompress.
struct Gunzip<R> {
    inner: R,
    left: u64,
    limit: u64,
}

impl<R: Read> Read for Gunzip<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("the gzip data is corrupt or cut short ({e})"),
            )
        })?;
        if n as u64 > self.left {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "it unpacks to more than max_unpacked_bytes = {} bytes: raise the source's `max_unpacked_bytes` if the file is expected to be that large",
                    self.limit
                ),
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Whether `path` names a zip archive by its extension.
pub fn is_zip_name(path: &str) -> bool {
    path.len() > 4
        && path.is_char_boundary(path.len() - 4)
        && path[path.len() - 4..].eq_ignore_ascii_case(".zip")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Cursor, Write};

    pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    pub(crate) fn zip(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, bytes) in members {
            if name.ends_with('/') {
                writer
                    .add_directory(*name, zip::write::SimpleFileOptions::default())
                    .unwrap();
            } else {
                writer
                    .start_file(*name, zip::write::SimpleFileOptions::default())
                    .unwrap();
                writer.write_all(bytes).unwrap();
            }
        }
        writer.finish().unwrap().into_inner()
    }

    /// Every part's label, name and text.
    fn parts(
        bytes: Vec<u8>,
        label: &str,
        limits: UnpackLimits,
    ) -> Result<Vec<[String; 3]>, String> {
        let mut unpacked =
            unpack(Box::new(Cursor::new(bytes)), label, limits, true).map_err(|e| e.to_string())?;
        let mut parts = Vec::new();
        while let Some(mut part) = unpacked.next_part().map_err(|e| e.to_string())? {
            let mut text = String::new();
            part.reader
                .read_to_string(&mut text)
                .map_err(|e| e.to_string())?;
            parts.push([part.label, part.name, text]);
        }
        Ok(parts)
    }

    fn strings(parts: &[[&str; 3]]) -> Vec<[String; 3]> {
        parts.iter().map(|p| p.map(str::to_string)).collect()
    }

    #[test]
    fn plain_gzip_and_zip_are_told_apart_by_content() {
        let limits = UnpackLimits::default();
        assert_eq!(
            parts(b"id\n1\n".to_vec(), "a.csv", limits).unwrap(),
            strings(&[["a.csv", "a.csv", "id\n1\n"]])
        );
        // Named like anything: the bytes decide.
        assert_eq!(
            parts(gzip(b"id\n1\n"), "in/a.csv.GZ", limits).unwrap(),
            strings(&[["in/a.csv.GZ", "in/a.csv", "id\n1\n"]])
        );
        let archive = zip(&[
            ("orders/", b""),
            ("orders/a.csv", b"id\n1\n"),
            ("__MACOSX/orders/._a.csv", b"junk"),
            ("orders/.DS_Store", b"junk"),
            ("b.ndjson", b"{}\n"),
        ]);
        assert_eq!(
            parts(archive, "in/x.dat", limits).unwrap(),
            strings(&[
                ["in/x.dat/orders/a.csv", "orders/a.csv", "id\n1\n"],
                ["in/x.dat/b.ndjson", "b.ndjson", "{}\n"],
            ])
        );
        assert_eq!(
            parts(zip(&[]), "in/empty.zip", limits).unwrap(),
            strings(&[])
        );
    }

    #[test]
    fn a_zip_is_left_whole_for_a_workbook_decoder() {
        let archive = zip(&[("xl/workbook.xml", b"<workbook/>")]);
        let mut unpacked = unpack(
            Box::new(Cursor::new(archive.clone())),
            "in/a.xlsx",
            UnpackLimits::default(),
            false,
        )
        .unwrap();
        let mut part = unpacked.next_part().unwrap().unwrap();
        let mut bytes = Vec::new();
        part.reader.read_to_end(&mut bytes).unwrap();
        assert_eq!(
            (part.label.as_str(), part.name.as_str()),
            ("in/a.xlsx", "in/a.xlsx")
        );
        assert_eq!(bytes, archive);
        assert!(unpacked.next_part().unwrap().is_none());
    }

    #[test]
    fn bombs_and_broken_archives_are_refused() {
        let small = UnpackLimits {
            max_unpacked_bytes: 10,
            max_members: 3,
        };
        assert_eq!(
            parts(gzip(&[b'x'; 11]), "a.csv.gz", small).unwrap_err(),
            "it unpacks to more than max_unpacked_bytes = 10 bytes: raise the source's `max_unpacked_bytes` if the file is expected to be that large"
        );
        assert_eq!(
            parts(gzip(&[b'x'; 10]), "a.csv.gz", small).unwrap()[0][2].len(),
            10
        );
        // The limit is on all members together.
        let two = zip(&[("a.csv", b"123456"), ("b.csv", b"123456")]);
        assert_eq!(
            parts(two, "in/x.zip", small).unwrap_err(),
            "in/x.zip/b.csv: unpacks to more than max_unpacked_bytes = 10 bytes. raise the source's `max_unpacked_bytes` if the file is expected to be that large"
        );
        let many = zip(&[("a", b""), ("b", b""), ("c", b""), ("d", b"")]);
        assert_eq!(
            parts(many, "in/x.zip", small).unwrap_err(),
            "in/x.zip: the zip archive has 4 entries, more than max_zip_members = 3. raise the source's `max_zip_members` if the archive is expected"
        );
        let mut cut = zip(&[("a.csv", b"id\n1\n")]);
        cut.truncate(cut.len() - 10);
        let error = parts(cut, "in/x.zip", small).unwrap_err();
        assert!(
            error.starts_with("in/x.zip: not a readable zip archive ("),
            "{error}"
        );
        let mut corrupt = gzip(b"id\n1\n2\n3\n");
        corrupt.truncate(12);
        let error = parts(corrupt, "a.csv.gz", small).unwrap_err();
        assert_eq!(
            error,
            "the gzip data is corrupt or cut short (incomplete deflate stream)"
        );
    }

    #[test]
    fn gzip_suffixes_and_zip_names() {
        assert_eq!(strip_gzip_suffix("a.csv.gz"), Some("a.csv"));
        assert_eq!(strip_gzip_suffix("a.csv.GZIP"), Some("a.csv"));
        assert_eq!(strip_gzip_suffix(".gz"), None);
        assert_eq!(strip_gzip_suffix("a.csv"), None);
        assert!(is_zip_name("in/*.ZIP"));
        assert!(!is_zip_name(".zip") && !is_zip_name("a.csv"));
    }
}
