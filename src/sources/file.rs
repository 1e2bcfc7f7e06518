//! The `file` source: local files named by a path or a glob pattern, read one after the other
//! in the sorted order of their paths, so that reruns see the same order.

use std::collections::VecDeque;
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::codecs::FormatConfig;
use crate::config::{Invalid, Validate};
use crate::error::StageError;
use crate::record::{Batch, Origin};
use crate::stage::{Decoder, RunContext, Source};

/// Reads local files.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSourceConfig {
    /// The file to read, or a glob pattern matching the files to read (`*`, `?`, `[abc]`, and
    /// `**` for any number of directories), e.g. `"../samples/orders-*.csv"`. Relative paths are
    /// resolved against the pipeline file's directory. Files are read in the order of their
    /// paths (compared directory by directory). Hidden files (`.name`) match only a pattern
    /// that spells out the dot. A pattern that matches nothing yields no records; a plain path
    /// that does not exist is an error. Required.
    pub path: String,
    /// The files' format, e.g. `{ type = "csv", delimiter = ";" }`. Default: inferred from the
    /// extension in `path` (`.csv`, `.tsv`, `.ndjson`, `.jsonl`).
    pub format: Option<FormatConfig>,
}

fn is_pattern(path: &str) -> bool {
    path.contains(['*', '?', '['])
}

impl Validate for FileSourceConfig {
    fn problems(&self) -> Vec<Invalid> {
        let mut problems = Vec::new();
        if is_pattern(&self.path)
            && let Err(e) = glob::Pattern::new(&self.path)
        {
            problems.push(Invalid::new("path", format!("invalid glob pattern: {e}")));
        }
        problems.extend(FormatConfig::stage_problems(&self.format, &self.path));
        problems
    }
}

pub struct FileSource {
    files: VecDeque<PathBuf>,
    format: FormatConfig,
    current: Option<(Box<dyn Decoder>, Arc<Origin>)>,
}

impl FileSource {
    pub fn new(config: &FileSourceConfig, cx: &RunContext) -> Result<Self, StageError> {
        let path = cx.resolve(&config.path);
        let format =
            FormatConfig::named_or_inferred(&config.format, &config.path).ok_or_else(|| {
                StageError::Refused(format!(
                    "cannot tell the format of {}: set `format`",
                    config.path
                ))
            })?;
        if !is_pattern(&config.path) {
            return Self::from_path(path, format);
        }
        let pattern = cx.resolve_pattern(&config.path).display().to_string();
        let shown = path.display().to_string();
        let mut files = Vec::new();
        // Hidden files (an upload in progress is often `.name.part`) match only a pattern that
        // spells out the dot.
        let options = glob::MatchOptions {
            require_literal_leading_dot: true,
            ..glob::MatchOptions::new()
        };
        let matches = glob::glob_with(&pattern, options)
            .map_err(|e| StageError::Refused(format!("{shown}: invalid glob pattern: {e}")))?;
        for entry in matches {
            let file = entry.map_err(|e| {
                let path = e.path().display().to_string();
                StageError::io(path, "list the directory", e.into())
            })?;
            if file.is_file() {
                files.push(file);
            }
        }
        files.sort();
        if files.is_empty() {
            tracing::info!(pattern = %shown, "no file matches the source pattern");
        }
        Ok(FileSource {
            files: files.into(),
            format,
            current: None,
        })
    }

    /// A source reading exactly the file at `path` (no pattern), which must exist.
    pub fn from_path(path: PathBuf, format: FormatConfig) -> Result<Self, StageError> {
        std::fs::metadata(&path).map_err(|e| StageError::io(path.display(), "read the file", e))?;
        Ok(FileSource {
            files: VecDeque::from([path]),
            format,
            current: None,
        })
    }

    fn open_next(&mut self) -> Result<bool, StageError> {
        let Some(path) = self.files.pop_front() else {
            return Ok(false);
        };
        let shown = path.display().to_string();
        let file = File::open(&path).map_err(|e| StageError::io(&shown, "open the file", e))?;
        tracing::debug!(file = %shown, "reading");
        let decoder = self.format.decoder(Box::new(file), &shown)?;
        self.current = Some((decoder, Arc::new(Origin { path: shown })));
        Ok(true)
    }
}

impl Source for FileSource {
    fn next_batch(&mut self, out: &mut Batch, max: usize) -> Result<bool, StageError> {
        out.clear();
        loop {
            if self.current.is_none() && !self.open_next()? {
                return Ok(false);
            }
            let (decoder, origin) = self.current.as_mut().expect("a file is open");
            if decoder.next_batch(&mut out.records, max)? {
                out.origin = Some(origin.clone());
                return Ok(true);
            }
            self.current = None;
        }
    }
}
