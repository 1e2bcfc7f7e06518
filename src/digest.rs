//! SHA-256 of the bytes that pass through a reader or writer, so every file a run reads or
//! writes is identified by its content (in the ledger and the run report) without a second pass.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

/// A running digest shared between the reader or writer that feeds it and whoever reads the
/// result after the stream is done.
#[derive(Clone, Default)]
pub struct SharedDigest {
    state: Arc<Mutex<(Sha256, u64)>>,
    /// Also counts the bytes here (a run's progress display), when set.
    counter: Option<Arc<AtomicU64>>,
    /// Counts the bytes only: nothing needs their hash.
    count_only: bool,
}

impl SharedDigest {
    fn update(&self, bytes: &[u8]) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !self.count_only {
            state.0.update(bytes);
        }
        state.1 += bytes.len() as u64;
        if let Some(counter) = &self.counter {
            counter.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        }
    }

    /// Bytes seen so far.
    pub fn bytes(&self) -> u64 {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).1
    }

    /// Bytes seen so far and the lowercase hex SHA-256 of them (empty when only counting).
    pub fn finish(&self) -> (u64, String) {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match self.count_only {
            true => (state.1, String::new()),
            false => (state.1, hex(&state.0.clone().finalize())),
        }
    }
}

/// Reads through `inner`, hashing every byte read.
pub struct HashingReader<R> {
    inner: R,
    digest: SharedDigest,
}

impl<R: Read> HashingReader<R> {
    /// A reader over `inner`; `counter`, if given, also counts the bytes read.
    pub fn new(inner: R, counter: Option<Arc<AtomicU64>>) -> (Self, SharedDigest) {
        let digest = SharedDigest {
            counter,
            ..SharedDigest::default()
        };
        let reader = HashingReader {
            inner,
            digest: digest.clone(),
        };
        (reader, digest)
    }

    /// A reader over `inner` that counts the bytes read without hashing them, for a read
    /// that no ledger or report records (`convert`): hashing was a tenth of its CPU time.
    pub fn counting(inner: R) -> (Self, SharedDigest) {
        let digest = SharedDigest {
            count_only: true,
            ..SharedDigest::default()
        };
        let reader = HashingReader {
            inner,
            digest: digest.clone(),
        };
        (reader, digest)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.digest.update(&buf[..n]);
        Ok(n)
    }
}

/// Writes through `inner`, hashing every byte written.
pub struct HashingWriter<W> {
    inner: W,
    digest: SharedDigest,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> (Self, SharedDigest) {
        let digest = SharedDigest::default();
        let writer = HashingWriter {
            inner,
            digest: digest.clone(),
        };
        (writer, digest)
    }

    /// A writer over `inner` that counts the bytes written without hashing them, for an
    /// output that no report records (`convert`).
    pub fn counting(inner: W) -> (Self, SharedDigest) {
        let digest = SharedDigest {
            count_only: true,
            ..SharedDigest::default()
        };
        let writer = HashingWriter {
            inner,
            digest: digest.clone(),
        };
        (writer, digest)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.digest.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Size and SHA-256 of a whole file.
pub fn sha256_file(path: &Path) -> io::Result<(u64, String)> {
    sha256_reader(std::fs::File::open(path)?)
}

/// Size and SHA-256 of everything `reader` gives.
pub fn sha256_reader(reader: impl Read) -> io::Result<(u64, String)> {
    let (mut reader, digest) = HashingReader::new(reader, None);
    io::copy(&mut reader, &mut io::sink())?;
    Ok(digest.finish())
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_what_passes_through() {
        let (mut reader, read) = HashingReader::new(&b"abc"[..], None);
        io::copy(&mut reader, &mut io::sink()).unwrap();
        let expected = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(read.finish(), (3, expected.to_string()));
        let (mut writer, written) = HashingWriter::new(Vec::new());
        writer.write_all(b"abc").unwrap();
        assert_eq!(written.finish(), (3, expected.to_string()));
        let (mut reader, counted) = HashingReader::counting(&b"abc"[..]);
        io::copy(&mut reader, &mut io::sink()).unwrap();
        assert_eq!(counted.finish(), (3, String::new()));
    }
}
