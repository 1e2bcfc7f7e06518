//! The per-record byte limit (`max_record_bytes`). Decoders buffer one record (a CSV row, an
//! NDJSON line, a JSON array element, an XML record element) before they can build it, so one
//! huge record in a hostile or broken file (a line of 2 GiB, a gzipped stream of zeros) would
//! take all memory. Each decoder stops reading a record once it grows past the limit, so memory
//! stays within a small multiple of it. (Excel workbooks are bound by their zip limits.)

use std::fmt;
use std::io;

use crate::error::{CodecError, Position};

/// Default `max_record_bytes`: 64 MiB.
pub const DEFAULT_MAX_RECORD_BYTES: u64 = 64 << 20;

/// The error a limited reader fails with, so that the decoder above it can tell it from a
/// failed read (`io::Error::other(TooLarge)`).
#[derive(Debug)]
pub(crate) struct TooLarge;

impl fmt::Display for TooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a record is larger than `max_record_bytes`")
    }
}

impl std::error::Error for TooLarge {}

/// The read error that stops a record growing past the limit.
pub(crate) fn too_large() -> io::Error {
    io::Error::other(TooLarge)
}

/// Whether a read failed because a record grew past the limit.
pub(crate) fn is_too_large(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<TooLarge>())
}

/// The error for a record larger than `limit` bytes at `position`.
pub(crate) fn record_too_large(label: &str, position: Position, limit: u64) -> CodecError {
    too_large_error(label, position, "a record", limit, "such records are")
}

/// The error for a value held whole that is no record, larger than `limit` bytes at
/// `position`: `what` it is (`"the header row"`, `"text or markup outside the records"`).
pub(crate) fn value_too_large(
    label: &str,
    position: Position,
    what: &str,
    limit: u64,
) -> CodecError {
    too_large_error(label, position, what, limit, "such documents are")
}

fn too_large_error(
    label: &str,
    position: Position,
    what: &str,
    limit: u64,
    expected: &str,
) -> CodecError {
    CodecError::malformed(
        label,
        position,
        format!(
            "{what} is larger than `max_record_bytes` = {limit} ({})",
            human_bytes(limit)
        ),
        Some(format!(
            "raise the source's `max_record_bytes` if {expected} expected"
        )),
    )
}

/// `64 MiB`, `1.5 KiB`, `12 bytes`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    let text = format!("{value:.1}");
    let text = text.strip_suffix(".0").unwrap_or(&text);
    format!("{text} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_bytes(67_108_864), "64 MiB");
        assert_eq!(human_bytes(1_048_576), "1 MiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(100), "100 bytes");
    }

    #[test]
    fn the_limit_error_is_told_from_other_read_errors() {
        assert!(is_too_large(&too_large()));
        assert!(!is_too_large(&io::Error::other("disk gone")));
    }
}
