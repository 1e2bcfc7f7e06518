//! Sinks: where records go. Each config kind builds a `Box<dyn Sink>`; nothing a sink writes
//! is visible before the run commits. A run without records publishes no file unless the sink
//! asks for its empty one (`IfEmpty`): an empty file every cron run is noise to most partners.

pub mod file;
pub mod output;
pub mod publish;
pub mod rejects;
pub mod stdout;
pub mod temp_journal;
pub mod upload;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::Invalid;
use crate::error::StageError;
use crate::pipeline::SinkConfig;
use crate::stage::{RunContext, Sink};
use crate::template::PathTemplate;

/// What a sink that writes files publishes for a run that gives it no record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum IfEmpty {
    /// Nothing: a run without records leaves no file behind.
    #[default]
    Skip,
    /// An empty output, as the format writes one without records.
    Write,
}

impl IfEmpty {
    pub fn as_str(self) -> &'static str {
        match self {
            IfEmpty::Skip => "skip",
            IfEmpty::Write => "write",
        }
    }
}

/// What is wrong with `if_empty` for outputs named by `template`: an empty output written for
/// a run without records has no source file to take `{source_stem}` from.
fn if_empty_problem(template: &PathTemplate, if_empty: IfEmpty) -> Option<Invalid> {
    (if_empty == IfEmpty::Write && template.uses_source_stem()).then(|| {
        Invalid::new(
            "if_empty",
            "`if_empty = \"write\"` needs a `path` without `{source_stem}`: a run without records has no source file to name its empty output after",
        )
    })
}

impl SinkConfig {
    pub fn build(&self, cx: &RunContext) -> Result<Box<dyn Sink>, StageError> {
        Ok(match self {
            SinkConfig::File(config) => Box::new(file::FileSink::new(config, cx)?),
            SinkConfig::Stdout(config) => Box::new(stdout::StdoutSink::new(config)?),
            SinkConfig::Sftp(config) => Box::new(upload::UploadSink::new(config, cx)?),
            SinkConfig::Ftps(config) => Box::new(upload::UploadSink::new(config, cx)?),
        })
    }

    /// What the sink publishes for a run that gives it no record; `None` for standard output,
    /// which publishes no file.
    pub fn if_empty(&self) -> Option<IfEmpty> {
        match self {
            SinkConfig::File(config) => Some(config.if_empty),
            SinkConfig::Stdout(_) => None,
            SinkConfig::Sftp(config) => Some(config.if_empty),
            SinkConfig::Ftps(config) => Some(config.if_empty),
        }
    }
}
