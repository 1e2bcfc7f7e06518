//! The five stage kinds a pipeline is made of, as traits. Every stage is a trait object built
//! from its config (`Box<dyn Source>`, ...), so the runner drives any chain the same way:
//! batches flow from the source through the transforms to every sink, and only a sink's
//! `commit` makes anything visible.

use crate::error::{CodecError, StageError};
use crate::record::{Batch, Record};

/// Where records come from. Sources stream: each call fills `out` with the next batch.
pub trait Source: Send {
    /// Replaces the contents of `out` with the next records (at most `max` of them).
    /// Returns `Ok(false)`, with `out` empty, once the source is exhausted.
    fn next_batch(&mut self, out: &mut Batch, max: usize) -> Result<bool, StageError>;
}

/// Turns a byte stream into records.
pub trait Decoder: Send {
    /// Appends up to `max` records to `out`. Returns `Ok(false)` once the input is exhausted and
    /// nothing was appended.
    fn next_batch(&mut self, out: &mut Vec<Record>, max: usize) -> Result<bool, CodecError>;
}

/// Turns records into bytes on the writer it was built with.
pub trait Encoder: Send {
    fn write_batch(&mut self, records: &[Record]) -> Result<(), CodecError>;
    /// Writes any trailer and flushes everything to the underlying writer.
    fn finish(self: Box<Self>) -> Result<(), CodecError>;
}

/// Reshapes records in place.
pub trait Transform: Send {
    fn apply(&mut self, batch: &mut Batch) -> Result<(), StageError>;
}

/// Where records go. Nothing a sink writes is visible until `commit`; dropping a sink without
/// committing it discards everything it wrote.
pub trait Sink: Send {
    fn write_batch(&mut self, batch: &Batch) -> Result<(), StageError>;
    /// Publishes what was written, atomically per output file.
    fn commit(self: Box<Self>) -> Result<SinkReport, StageError>;
}

/// What a sink delivered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkReport {
    /// Final paths of the files made visible, in the order they were published.
    pub published: Vec<String>,
    /// Paths that already existed and were left alone (`if_exists = "skip"`).
    pub skipped: Vec<String>,
    pub records: u64,
}
