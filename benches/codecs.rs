//! Codec throughput in memory, without files or threads: how fast each decoder and encoder is
//! on its own, to see which side of a conversion limits it. Run with `cargo bench --bench codecs`.
//! NDJSON decoding uses its parsing threads here as in a run. End-to-end figures against other
//! tools come from `scripts/bench`.

use std::io::{Cursor, Write};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use longshore::codecs::FormatConfig;
use longshore::codecs::limit::DEFAULT_MAX_RECORD_BYTES;
use longshore::record::Record;

// The allocator the binary uses, so the figures match it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ROWS: usize = 200_000;
const ROUNDS: usize = 5;
/// The size of the one text node of the long-text XML document, and of the zero-filled input.
const LONG_BYTES: usize = 64 << 20;

/// A writer that keeps what it was given, so encoders do real work and the bytes can be decoded.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("not poisoned").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Orders-like CSV: quoted fields with commas and quotes, unicode, empty (null) fields.
fn sample_csv() -> Vec<u8> {
    let cities = ["Rotterdam", "Köln", "São Paulo", "東京", "Zürich"];
    let notes = [
        "",
        "Leave at door",
        "Deliver to dock 4, ask for \"\"Jan\"\"",
    ];
    let mut csv = String::from(
        "order_id,customer_id,customer_name,status,currency,total,tax,items,created_at,updated_at,ship_city,note\n",
    );
    for i in 0..ROWS {
        let note = notes[i % notes.len()];
        csv.push_str(&format!(
            "SO-{},C-{:05},\"Silva, Ana\",completed,EUR,{}.{:02},{}.{:02},{},2024-08-01T10:{:02}:00Z,2024-08-02T11:{:02}:00Z,{},{}\n",
            1_000_000 + i,
            i % 99_991,
            i % 5000,
            i % 100,
            i % 900,
            i % 97,
            i % 40,
            i % 60,
            (i + 7) % 60,
            cities[i % cities.len()],
            if note.is_empty() { String::new() } else { format!("\"{note}\"") },
        ));
    }
    csv.into_bytes()
}

/// An XML document whose one record holds one long text node: a piece of text that goes on
/// over many reads, which the XML splitter must scan once, not again after each read.
fn long_text_xml() -> Vec<u8> {
    let mut xml = b"<orders><order><note>".to_vec();
    xml.extend(b"abcdefghij".iter().cycle().take(LONG_BYTES));
    xml.extend_from_slice(b"</note></order></orders>\n");
    xml
}

/// A decoder of `bytes` in `format`, as a run makes one with `max_record_bytes`.
fn decoder_of(
    format: &FormatConfig,
    bytes: &[u8],
    max_record_bytes: u64,
) -> Box<dyn longshore::stage::Decoder> {
    format
        .decoder(
            Box::new(Cursor::new(bytes.to_vec())),
            "bench",
            None,
            max_record_bytes,
        )
        .expect("decoder")
}

/// Decodes input that is not valid, up to its error (default record limit).
fn decode_to_error(format: &FormatConfig, bytes: &[u8]) {
    let mut decoder = decoder_of(format, bytes, DEFAULT_MAX_RECORD_BYTES);
    let mut records = Vec::new();
    while let Ok(more) = decoder.next_batch(&mut records, 1024) {
        assert!(more, "invalid input");
    }
}

fn decode(format: &FormatConfig, bytes: &[u8]) -> Vec<Record> {
    decode_limited(format, bytes, DEFAULT_MAX_RECORD_BYTES)
}

fn decode_limited(format: &FormatConfig, bytes: &[u8], max_record_bytes: u64) -> Vec<Record> {
    let mut decoder = decoder_of(format, bytes, max_record_bytes);
    let mut records = Vec::with_capacity(ROWS);
    while decoder.next_batch(&mut records, 1024).expect("valid input") {}
    records
}

fn encode(format: &FormatConfig, records: &[Record]) -> Vec<u8> {
    let sink = Sink::default();
    let mut encoder = format
        .encoder(Box::new(sink.clone()), "bench", None)
        .expect("encoder");
    for batch in records.chunks(1024) {
        encoder.write_batch(batch).expect("encodes");
    }
    encoder.finish().expect("flushes");
    sink.0.lock().expect("not poisoned").clone()
}

/// The best of `ROUNDS` timings of `work`, as MB/s of `bytes`.
fn measure(label: &str, bytes: usize, mut work: impl FnMut()) {
    let best = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            work();
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    println!(
        "{label:<16} {:>8.0} MB/s  ({:.1} MB in {best:.3} s)",
        bytes as f64 / 1e6 / best,
        bytes as f64 / 1e6
    );
}

fn main() {
    let csv_format = FormatConfig::from_name("csv").expect("csv");
    let ndjson_format = FormatConfig::from_name("ndjson").expect("ndjson");
    let csv = sample_csv();
    let records = decode(&csv_format, &csv);
    let ndjson = encode(&ndjson_format, &records);
    println!(
        "{ROWS} rows, best of {ROUNDS}; MB/s of the text side (input to decode, output of encode)"
    );
    measure("csv decode", csv.len(), || drop(decode(&csv_format, &csv)));
    measure("csv encode", csv.len(), || {
        drop(encode(&csv_format, &records))
    });
    measure("ndjson decode", ndjson.len(), || {
        drop(decode(&ndjson_format, &ndjson))
    });
    measure("ndjson encode", ndjson.len(), || {
        drop(encode(&ndjson_format, &records))
    });
    let xml_format = FormatConfig::from_name("xml").expect("xml");
    let long_text = long_text_xml();
    // Its one record is larger than the default limit.
    let limit = 2 * LONG_BYTES as u64;
    measure("xml long text", long_text.len(), || {
        drop(decode_limited(&xml_format, &long_text, limit))
    });
    let zeros = vec![0; LONG_BYTES];
    measure("xml zero-filled", zeros.len(), || {
        decode_to_error(&xml_format, &zeros)
    });
}
