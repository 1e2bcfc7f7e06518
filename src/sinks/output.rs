//! What lies between an encoder and its file: gzip compression when the path ends in `.gz`, and
//! the SHA-256 of the bytes that reach the file; and the rewrite of a CSV output whose columns
//! grew while it was written.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, Write};
use std::sync::{Arc, Mutex};

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;

use crate::codecs::{CsvOptions, TextEncoding, csv};
use crate::digest::{HashingWriter, SharedDigest};
use crate::error::StageError;
use crate::stage::Widened;

type Gzip = GzEncoder<HashingWriter<File>>;

/// The end of an output's writer chain, kept by the sink to finish it after the encoder.
pub struct OutputEnd {
    /// The gzip stream, shared with the encoder's writer, whose trailer is written at the end.
    gzip: Option<Arc<Mutex<Gzip>>>,
    /// Of the bytes written to the file.
    pub digest: SharedDigest,
}

/// What lies between an encoder and its file.
#[derive(Debug, Clone, Copy)]
pub struct Layers {
    /// Compress (the path ends in `.gz`).
    pub gzip: bool,
    /// Hash the file's bytes for the run report; else only count them (`convert`).
    pub hash: bool,
}

/// The writer an encoder writes to, ending in `file`.
pub fn writer(file: File, layers: Layers) -> (Box<dyn Write + Send>, OutputEnd) {
    let (hashing, digest) = match layers.hash {
        true => HashingWriter::new(file),
        false => HashingWriter::counting(file),
    };
    let (compressed, gzip): (Box<dyn Write + Send>, _) = if layers.gzip {
        let shared = Arc::new(Mutex::new(GzEncoder::new(
            hashing,
            flate2::Compression::default(),
        )));
        (Box::new(Shared(shared.clone())), Some(shared))
    } else {
        (Box::new(hashing), None)
    };
    (compressed, OutputEnd { gzip, digest })
}

impl OutputEnd {
    /// Writes what follows the encoder's last byte (the gzip trailer). Call after the encoder
    /// finished.
    pub fn finish(&mut self) -> io::Result<()> {
        match self.gzip.take() {
            Some(gzip) => gzip
                .lock()
                .map_err(|_| io::Error::other("the gzip stream was poisoned"))?
                .try_finish(),
            None => Ok(()),
        }
    }
}

/// A writer shared between the encoder (which writes) and [`OutputEnd`] (which finishes).
struct Shared(Arc<Mutex<Gzip>>);

impl Write for Shared {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.lock()?.write(bytes)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.lock()?.flush()
    }
}

impl Shared {
    fn lock(&self) -> io::Result<std::sync::MutexGuard<'_, Gzip>> {
        self.0
            .lock()
            .map_err(|_| io::Error::other("the gzip stream was poisoned"))
    }
}

/// Rewrites the complete CSV output in `file` (gzip-compressed when `layers.gzip`) into `into`, with the
/// columns that grew while it was written (see [`crate::stage::Encoder::widened`]): one pass, one row in
/// memory. Returns the end of the new output's writer chain, finished.
pub fn rewrite_widened(
    file: &File,
    layers: Layers,
    into: File,
    options: &CsvOptions,
    encoding: Option<TextEncoding>,
    label: &str,
    widened: &Widened,
) -> Result<OutputEnd, StageError> {
    let mut written = file
        .try_clone()
        .map_err(|e| StageError::io(label, "read back", e))?;
    written
        .rewind()
        .map_err(|e| StageError::io(label, "read back", e))?;
    let input: Box<dyn Read + Send> = match layers.gzip {
        true => Box::new(MultiGzDecoder::new(BufReader::new(written))),
        false => Box::new(written),
    };
    let (output, mut end) = writer(into, layers);
    csv::widen(input, output, label, options, encoding, widened)?;
    end.finish()
        .map_err(|e| StageError::io(label, "write", e))?;
    Ok(end)
}
