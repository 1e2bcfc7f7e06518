//! What the decoder targets share. A fuzz input starts with three option bytes: the first says how
//! the bytes arrive (the batch size asked for, how many bytes each read returns, whether the input
//! ends in an I/O error instead of its end), the next two pick the format's options; the rest is
//! the file. [`decode`] reads it to the end the way the file source does and checks the
//! [`Decoder`] contract on every call, so a target is a few lines of option picking.

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use longshore::codecs::{FormatConfig, TextEncoding};
use longshore::error::CodecError;
use longshore::record::{FieldName, Record, Value};
use longshore::stage::Decoder;

/// How the input is handed to the decoder.
#[derive(Debug, Clone, Copy)]
pub struct Delivery {
    /// The `max` of every `next_batch` call.
    pub max: usize,
    /// At most this many bytes per `read` (real streams return short reads).
    pub piece: usize,
    /// The input ends with an I/O error rather than its end, as a dropped connection or a corrupt
    /// gzip stream does.
    pub fails_at_end: bool,
}

/// The delivery, the two option bytes, and the file; `None` for inputs too short to hold them.
pub fn split(data: &[u8]) -> Option<(Delivery, u16, &[u8])> {
    let (&[delivery, low, high], file) = data.split_first_chunk::<3>()?;
    let max = if delivery & 0x10 != 0 {
        1000
    } else {
        1 + usize::from(delivery & 0x0f)
    };
    let piece = [usize::MAX, 1, 3, 64][usize::from(delivery >> 5 & 3)];
    let delivery = Delivery {
        max,
        piece,
        fails_at_end: delivery & 0x80 != 0,
    };
    Some((delivery, u16::from_le_bytes([low, high]), file))
}

/// What the reader saw of its own end.
const READING: u8 = 0;
const REACHED_END: u8 = 1;
const FAILED: u8 = 2;

/// Hands `bytes` over as [`Delivery`] says, and records whether its end (or failure) was reached.
pub struct Feed {
    bytes: Vec<u8>,
    at: usize,
    piece: usize,
    fails_at_end: bool,
    end: Arc<AtomicU8>,
}

impl Feed {
    pub fn new(bytes: &[u8], delivery: Delivery) -> (Self, Arc<AtomicU8>) {
        let end = Arc::new(AtomicU8::new(READING));
        let feed = Feed {
            bytes: bytes.to_vec(),
            at: 0,
            piece: delivery.piece,
            fails_at_end: delivery.fails_at_end,
            end: end.clone(),
        };
        (feed, end)
    }
}

impl Read for Feed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = &self.bytes[self.at..];
        if left.is_empty() && !buf.is_empty() {
            if self.fails_at_end {
                self.end.store(FAILED, Ordering::SeqCst);
                return Err(io::Error::other("the connection was reset (injected)"));
            }
            self.end.store(REACHED_END, Ordering::SeqCst);
            return Ok(0);
        }
        let n = left.len().min(buf.len()).min(self.piece);
        buf[..n].copy_from_slice(&left[..n]);
        self.at += n;
        Ok(n)
    }
}

/// How a decoder's reading ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ending {
    /// `Ok(false)`: the input is exhausted.
    Exhausted,
    /// An error other than a bad record: reading stops.
    Failed,
}

/// What [`drive`] saw.
#[derive(Debug)]
pub struct Outcome {
    pub records: usize,
    pub bad_records: usize,
    pub ending: Ending,
}

/// Decodes `file` in `format`, delivered as `delivery` says, to the end, checking the contract;
/// `None` when the decoder cannot even start (a bad header, an unreadable first block). A text
/// format makes no more records than the file has bytes.
pub fn decode(format: &FormatConfig, delivery: Delivery, file: &[u8]) -> Option<Outcome> {
    decode_as(format, None, delivery, file, file.len())
}

/// [`decode`] in a named text `encoding`, with at most `record_limit` records and bad records:
/// a compressed format (a workbook) may hold more records than bytes.
pub fn decode_as(
    format: &FormatConfig,
    encoding: Option<TextEncoding>,
    delivery: Delivery,
    file: &[u8],
    record_limit: usize,
) -> Option<Outcome> {
    let (feed, end) = Feed::new(file, delivery);
    let mut decoder = match format.decoder(
        Box::new(feed),
        "fuzz",
        encoding,
        longshore::codecs::limit::DEFAULT_MAX_RECORD_BYTES,
    ) {
        Ok(decoder) => decoder,
        Err(CodecError::BadRecord { .. }) => panic!("a bad record before any record was asked for"),
        Err(_) => return None,
    };
    let outcome = drive(decoder.as_mut(), delivery.max, record_limit);
    if outcome.ending == Ending::Exhausted {
        // Exhausted means read to the end: never a silent stop partway, or on a failed read.
        match end.load(Ordering::SeqCst) {
            REACHED_END => {}
            FAILED => panic!("a failed read ended the input as if it were complete"),
            _ => panic!("the input ended before its end was read"),
        }
    }
    Some(outcome)
}

/// Reads `decoder` to the end as the file source does (on after a bad record, stop after any
/// other error), with `max` records a call, and asserts the [`Decoder`] contract: records are
/// appended (what is already in `out` stays), at most `max` of them, `Ok(true)` exactly when some
/// were, an error never comes with records, `Ok(false)` is final. `record_limit` bounds the
/// records and bad records, and so the calls: a decoder that goes past it loops or invents.
pub fn drive(decoder: &mut dyn Decoder, max: usize, record_limit: usize) -> Outcome {
    let sentinel = sentinel();
    let mut out = vec![sentinel.clone()];
    let mut outcome = Outcome {
        records: 0,
        bad_records: 0,
        ending: Ending::Failed,
    };
    loop {
        let result = decoder.next_batch(&mut out, max);
        assert!(
            out.first() == Some(&sentinel),
            "a decoder changed records already in `out`"
        );
        let appended = out.len() - 1;
        out.truncate(1);
        match result {
            Ok(true) => {
                assert!(
                    (1..=max).contains(&appended),
                    "Ok(true) with {appended} records for max {max}"
                );
                outcome.records += appended;
            }
            Ok(false) => {
                assert_eq!(appended, 0, "Ok(false) with records");
                let again = decoder.next_batch(&mut out, max);
                assert!(
                    matches!(again, Ok(false)) && out.len() == 1,
                    "Ok(false) was not final: then {again:?} with {} records",
                    out.len() - 1
                );
                outcome.ending = Ending::Exhausted;
                return outcome;
            }
            Err(error) => {
                assert_eq!(appended, 0, "an error came with records: {error}");
                if !matches!(error, CodecError::BadRecord { .. }) {
                    return outcome;
                }
                outcome.bad_records += 1;
            }
        }
        assert!(
            outcome.records + outcome.bad_records <= record_limit,
            "{} records and {} bad records, over the limit of {record_limit}",
            outcome.records,
            outcome.bad_records
        );
    }
}

/// A record no decoder makes, to see that decoders leave what is in `out` alone.
fn sentinel() -> Record {
    let mut record = Record::new();
    record.push(FieldName::from("\u{0}sentinel"), Value::Integer(-7));
    record
}
