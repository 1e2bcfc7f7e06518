//! Sinks: where records go. Each config kind builds a `Box<dyn Sink>`; nothing a sink writes
//! is visible before the run commits.

pub mod file;
pub mod output;
pub mod publish;
pub mod stdout;
pub mod temp_journal;
pub mod template;
pub mod upload;

use crate::config::SinkConfig;
use crate::error::StageError;
use crate::stage::{RunContext, Sink};

impl SinkConfig {
    pub fn build(&self, cx: &RunContext) -> Result<Box<dyn Sink>, StageError> {
        Ok(match self {
            SinkConfig::File(config) => Box::new(file::FileSink::new(config, cx)?),
            SinkConfig::Stdout(config) => Box::new(stdout::StdoutSink::new(config)?),
            SinkConfig::Sftp(config) => Box::new(upload::UploadSink::new(config, cx)?),
            SinkConfig::Ftps(config) => Box::new(upload::UploadSink::new(config, cx)?),
        })
    }
}
