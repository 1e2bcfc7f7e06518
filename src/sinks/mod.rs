//! Sinks: where records go. Each kind's config type implements [`SinkSpec`], which builds its
//! `Box<dyn Sink>`; nothing a sink writes is visible before the run commits. A run without records publishes no file unless the sink
//! asks for its empty one (`IfEmpty`): an empty file every cron run is noise to most partners.

pub mod file;
pub mod http;
pub mod output;
pub mod publish;
pub mod rejects;
pub mod stdout;
pub mod temp_journal;
pub mod upload;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::{Invalid, Validate};
use crate::error::StageError;
use crate::filestore::ServerConfig;
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

/// What a kind of sink's config does: it is checked, it builds the sink, and it tells the
/// runner what the sink writes (for the checks made before anything is published).
pub trait SinkSpec: Validate {
    fn build(&self, cx: &RunContext) -> Result<Box<dyn Sink>, StageError>;

    /// What the sink publishes for a run that gives it no record; `None` for a sink that
    /// publishes no file (standard output).
    fn if_empty(&self) -> Option<IfEmpty> {
        None
    }

    /// The path template of the local files it writes, if it writes local files.
    fn destination(&self) -> Option<&str> {
        None
    }

    /// The path template of the files it writes, here or on a server, if it writes files.
    fn path(&self) -> Option<&str> {
        self.destination()
    }

    /// The server it uploads to, if it uploads.
    fn server(&self) -> Option<&dyn ServerConfig> {
        None
    }

    /// The pattern of the temporary names it uploads under, if it uploads.
    fn temp_name(&self) -> Option<&str> {
        None
    }
}

impl SinkSpec for file::FileSinkConfig {
    fn build(&self, cx: &RunContext) -> Result<Box<dyn Sink>, StageError> {
        Ok(Box::new(file::FileSink::new(self, cx)?))
    }

    fn if_empty(&self) -> Option<IfEmpty> {
        Some(self.if_empty)
    }

    fn destination(&self) -> Option<&str> {
        Some(&self.path)
    }
}

impl SinkSpec for stdout::StdoutSinkConfig {
    fn build(&self, _cx: &RunContext) -> Result<Box<dyn Sink>, StageError> {
        Ok(Box::new(stdout::StdoutSink::new(self)?))
    }
}

impl<S: ServerConfig> SinkSpec for upload::UploadSinkConfig<S> {
    fn build(&self, cx: &RunContext) -> Result<Box<dyn Sink>, StageError> {
        Ok(Box::new(upload::UploadSink::new(self, cx)?))
    }

    fn if_empty(&self) -> Option<IfEmpty> {
        Some(self.if_empty)
    }

    fn server(&self) -> Option<&dyn ServerConfig> {
        Some(&self.server)
    }

    fn temp_name(&self) -> Option<&str> {
        Some(&self.temp_name)
    }

    fn path(&self) -> Option<&str> {
        Some(&self.path)
    }
}

impl SinkSpec for http::HttpSinkConfig {
    fn build(&self, cx: &RunContext) -> Result<Box<dyn Sink>, StageError> {
        Ok(Box::new(http::HttpSink::new(self, cx)?))
    }
}
