//! What a command can fail with (`Error`, the union of the library's errors), the exit code
//! of each, and how an error is shown: `error: ...` with its causes, or one JSON log object.

use std::path::PathBuf;

use super::logging::JSON_LOGS;
use crate::error::{RunError, error_chain};
use crate::pipeline::ConfigError;

/// Every error the library reports, classified for exit codes.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Run(#[from] RunError),
    /// A command line that cannot be carried out as given.
    #[error("{0}")]
    Usage(String),
    /// Writing the command's own output (a table, a schema) failed.
    #[error("cannot write to standard output")]
    Output(#[source] std::io::Error),
    /// The state store could not be read or changed (`longshore state`, `runs`).
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    /// The run report could not be written (`--report`).
    #[error("cannot write the run report to {}", .path.display())]
    Report {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// 2 for configuration and usage errors (fix the pipeline file or the command), 1 for a run
    /// that failed on its data or its environment (look at the input or the destination).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) | Error::Usage(_) => 2,
            Error::Run(_) | Error::Output(_) | Error::State(_) | Error::Report { .. } => 1,
        }
    }
}

/// `error: <what failed>` followed by each cause on its own line.
pub(super) fn render_error(error: &Error) -> String {
    let mut lines = error_chain(error).into_iter();
    let mut text = format!("error: {}", lines.next().unwrap_or_default());
    for cause in lines {
        text.push_str(&format!("\n  caused by: {cause}"));
    }
    text
}

/// Prints an error for people (`error: ...` and its causes), or, with JSON logs, logs it as one
/// JSON object so that a log collector sees it.
pub(super) fn report_error(error: &Error) {
    if JSON_LOGS.get().copied().unwrap_or(false) {
        let chain = error_chain(error);
        tracing::error!(causes = ?&chain[1..], "{}", chain.join(": "));
    } else {
        eprintln!("{}", render_error(error));
    }
}
