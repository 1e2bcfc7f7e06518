//! Errors that say where: every error a user can see names the file and the position in it (or
//! the pipeline and stage), and, where there is one, what to do about it.
//!
//! Everything that goes wrong while data moves is a [`RunError`] wrapping a [`StageError`],
//! which in turn wraps a [`CodecError`] for bad input, or the error of the layer that failed
//! (an API, a server, the state store: each converts its own into a [`StageError`]).
//! Configuration problems are `pipeline::ConfigError`; the CLI maps both to exit codes.
//! This module is the bottom layer: it names no other module of the crate.

use std::fmt;
use std::io;

/// A position in an input file, as precise as its format allows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Position {
    /// 1-based line number.
    pub line: Option<u64>,
    /// 1-based column (characters within the line).
    pub column: Option<u64>,
    /// 1-based number of the record (data row) within the file.
    pub record: Option<u64>,
    /// The field the problem is in, by name or number.
    pub field: Option<String>,
}

impl Position {
    pub fn line(line: u64) -> Self {
        Position {
            line: Some(line),
            ..Position::default()
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(line) = self.line {
            parts.push(format!("line {line}"));
        }
        if let Some(column) = self.column {
            parts.push(format!("column {column}"));
        }
        if let Some(record) = self.record {
            parts.push(format!("record {record}"));
        }
        if let Some(field) = &self.field {
            parts.push(format!("field {field}"));
        }
        f.write_str(&parts.join(", "))
    }
}

/// Bad input or a failed read/write while decoding or encoding one file.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// Input the decoder cannot read past.
    #[error("{0}")]
    Malformed(Box<Malformed>),
    /// One bad record: the decoder can go on with the next one, so the record can be
    /// quarantined (rejects) instead of failing the run.
    #[error("{}", .malformed)]
    BadRecord {
        malformed: Box<Malformed>,
        /// The record's raw text, for the rejects file.
        raw: Option<String>,
    },
    #[error("{file}: cannot {action}")]
    Io {
        file: String,
        action: &'static str,
        #[source]
        source: io::Error,
    },
}

impl CodecError {
    pub fn io(file: &str, action: &'static str, source: io::Error) -> Self {
        CodecError::Io {
            file: file.to_string(),
            action,
            source,
        }
    }

    pub fn malformed(
        file: impl Into<String>,
        position: Position,
        message: impl Into<String>,
        hint: Option<String>,
    ) -> Self {
        CodecError::Malformed(Box::new(Malformed {
            file: file.into(),
            position,
            message: message.into(),
            hint,
        }))
    }
}

/// Input that is not what its format says, at a position in a file.
#[derive(Debug)]
pub struct Malformed {
    pub file: String,
    pub position: Position,
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // No position: the problem is with the file as a whole.
        let position = self.position.to_string();
        let at = if position.is_empty() {
            String::new()
        } else {
            format!("{position}: ")
        };
        write!(
            f,
            "{}: {at}{}{}",
            self.file,
            self.message,
            hint_suffix(&self.hint)
        )
    }
}

fn hint_suffix(hint: &Option<String>) -> String {
    hint.as_ref().map(|h| format!(". {h}")).unwrap_or_default()
}

/// Something a stage could not do.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("{path}: cannot {action}")]
    Io {
        path: String,
        action: String,
        #[source]
        source: io::Error,
    },
    /// A refusal that is not an I/O failure, with its explanation (e.g. a destination exists).
    #[error("{0}")]
    Refused(String),
    /// The layer below the stage failed: the state store, an API, a server. Its own error,
    /// shown as it is.
    #[error(transparent)]
    Failed(Box<dyn std::error::Error + Send + Sync>),
}

impl StageError {
    pub fn io(path: impl fmt::Display, action: impl Into<String>, source: io::Error) -> Self {
        StageError::Io {
            path: path.to_string(),
            action: action.into(),
            source,
        }
    }
}

/// A pipeline run that failed, naming the pipeline and the stage.
#[derive(Debug, thiserror::Error)]
#[error("pipeline `{pipeline}`: {stage} failed")]
pub struct RunError {
    pub pipeline: String,
    /// The stage as the pipeline file names it, e.g. `source (file)` or `sink 2 (file)`.
    pub stage: String,
    #[source]
    pub source: StageError,
}

impl RunError {
    pub fn new(pipeline: &str, stage: &str, source: StageError) -> Self {
        RunError {
            pipeline: pipeline.to_string(),
            stage: stage.to_string(),
            source,
        }
    }
}

/// True when an error was caused by writing to a closed pipe (`longshore ... | head`).
pub fn is_broken_pipe(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<io::Error>()
            && io.kind() == io::ErrorKind::BrokenPipe
        {
            return true;
        }
        current = e.source();
    }
    false
}

/// An error and its causes, outermost first, as messages and reports list them. A cause that
/// only repeats the one before it (`file is not a database`, then `Error code 26: file is not
/// a database`) is left out.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut chain = vec![error.to_string()];
    let mut cause = error.source();
    while let Some(e) = cause {
        let text = e.to_string();
        let last = chain.last().expect("not empty");
        if !text.contains(last.as_str()) && !last.contains(text.as_str()) {
            chain.push(text);
        }
        cause = e.source();
    }
    chain
}

/// [`error_chain`] on one line, as log lines and notifications show it.
pub fn error_chain_text(error: &(dyn std::error::Error + 'static)) -> String {
    error_chain(error).join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_input_names_file_position_and_hint() {
        let e = CodecError::malformed(
            "in/orders.csv",
            Position {
                line: Some(4),
                record: Some(3),
                ..Position::default()
            },
            "expected 5 fields, found 6",
            Some("set `flexible = true` to accept ragged rows".into()),
        );
        assert_eq!(
            e.to_string(),
            "in/orders.csv: line 4, record 3: expected 5 fields, found 6. \
             set `flexible = true` to accept ragged rows"
        );
    }

    #[test]
    fn broken_pipe_is_found_anywhere_in_the_chain() {
        let e = StageError::io("-", "write", io::Error::from(io::ErrorKind::BrokenPipe));
        let run = RunError {
            pipeline: "p".into(),
            stage: "sink 1 (file)".into(),
            source: e,
        };
        assert!(is_broken_pipe(&run));
        let other = StageError::Refused("no".into());
        assert!(!is_broken_pipe(&other));
    }
}
