//! What the codecs' unit tests share: reading a decoder to its end, what an encoder writes,
//! a writer to read back, a read that fails.

use std::io::{self, Read, Write};
use std::sync::Arc;

use crate::error::CodecError;
use crate::record::Record;
use crate::stage::{Decoder, Encoder};

/// A read that fails, as a dropped connection or a corrupt gzip stream does.
pub(crate) struct FailingRead;

impl Read for FailingRead {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::Error::other("connection reset"))
    }
}

/// What a decoding gave, for comparing two decoders: the records, or the error's message
/// without its position.
pub(crate) fn gist(result: &Result<Vec<Record>, CodecError>) -> String {
    match result {
        Ok(records) => format!("{records:?}"),
        Err(CodecError::Malformed(m) | CodecError::BadRecord { malformed: m, .. }) => {
            m.message.clone()
        }
        Err(other) => other.to_string(),
    }
}

/// Every record `decoder` gives, two a call (so that batches cut the input), or its first
/// error.
pub(crate) fn read_all(decoder: &mut dyn Decoder) -> Result<Vec<Record>, CodecError> {
    let mut out = Vec::new();
    while decoder.next_batch(&mut out, 2)? {}
    Ok(out)
}

/// The text an encoder that `build` makes over a buffer writes for `records`.
pub(crate) fn written(
    records: &[Record],
    build: impl FnOnce(Box<dyn Write + Send>) -> Box<dyn Encoder>,
) -> String {
    let buffer = SharedBuffer::default();
    let mut encoder = build(Box::new(buffer.clone()));
    encoder.write_batch(records).unwrap();
    encoder.finish().unwrap();
    buffer.text()
}

/// A writer tests can read back after the encoder consumed it.
#[derive(Clone, Default)]
pub(crate) struct SharedBuffer(Arc<std::sync::Mutex<Vec<u8>>>);

impl SharedBuffer {
    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.bytes()).unwrap()
    }

    pub(crate) fn bytes(&self) -> Vec<u8> {
        self.0.lock().unwrap().clone()
    }
}

impl Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
