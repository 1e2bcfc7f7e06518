//! The `stdout` sink: records to standard output, for `longshore convert in.csv - --to ndjson`
//! and for piping a pipeline into other tools.

use schemars::JsonSchema;
use serde::Deserialize;

use crate::codecs::{FormatConfig, TextEncoding};
use crate::config::{Invalid, Validate};
use crate::error::{StageError, is_broken_pipe};
use crate::record::Batch;
use crate::stage::{Encoder, Sink, SinkReport};
use crate::state::PreparedOutput;

/// Writes to standard output.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StdoutSinkConfig {
    /// The output format, e.g. `{ type = "ndjson" }`. Required.
    pub format: FormatConfig,
    /// The text encoding of the output, as for the `file` sink. Default UTF-8.
    pub encoding: Option<TextEncoding>,
}

impl Validate for StdoutSinkConfig {
    fn problems(&self) -> Vec<Invalid> {
        self.format.problems()
    }
}

pub struct StdoutSink {
    encoder: Option<Box<dyn Encoder>>,
    records: u64,
}

impl StdoutSink {
    pub fn new(config: &StdoutSinkConfig) -> Result<Self, StageError> {
        Ok(StdoutSink {
            encoder: Some(config.format.encoder(
                Box::new(std::io::stdout()),
                "standard output",
                config.encoding,
            )?),
            records: 0,
        })
    }
}

impl Sink for StdoutSink {
    fn write_batch(&mut self, batch: &Batch) -> Result<(), StageError> {
        if let Some(encoder) = &mut self.encoder {
            match encoder.write_batch(&batch.records) {
                Ok(()) => self.records += batch.len() as u64,
                // The reader has gone (`| head`): it wanted no more, which is not a failure of
                // the run, and the other sinks still get everything.
                Err(e) if is_broken_pipe(&e) => self.encoder = None,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    fn prepare(&mut self) -> Result<Vec<PreparedOutput>, StageError> {
        if let Some(encoder) = self.encoder.take() {
            match encoder.finish() {
                Err(e) if !is_broken_pipe(&e) => return Err(e.into()),
                _ => {}
            }
        }
        // Already delivered as it was written: nothing waits to be published.
        Ok(Vec::new())
    }

    fn destination(&self, _: &Batch) -> String {
        "standard output".into()
    }

    fn commit(self: Box<Self>) -> Result<SinkReport, StageError> {
        Ok(SinkReport {
            published: vec!["-".into()],
            records: self.records,
            ..SinkReport::default()
        })
    }
}
