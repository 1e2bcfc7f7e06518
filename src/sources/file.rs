//! The `file` source: local files named by a path or a glob pattern, read one after the other
//! in the sorted order of their paths, so that reruns see the same order. A file delivered by
//! an earlier run is skipped (the ledger in the state store), unless its content changed.

use std::collections::VecDeque;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::codecs::FormatConfig;
use crate::config::{Invalid, Validate};
use crate::digest::{HashingReader, SharedDigest, sha256_file};
use crate::error::{CodecError, StageError};
use crate::record::{Batch, Origin, Reject};
use crate::report::FileDigest;
use crate::stage::{Decoder, RunContext, Source, SourceProgress};
use crate::state::{LedgerEntry, StateChange, StateStore};

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
    /// extension in `path` (`.csv`, `.tsv`, `.ndjson`, `.jsonl`, `.json`, `.xml`).
    pub format: Option<FormatConfig>,
    /// When a file that an earlier run delivered is read again: `"changed"` (only when its
    /// content changed: a different size or SHA-256 under the same path), `"never"`, or
    /// `"always"` (every run reads every file; no ledger). Delivered files are remembered in the
    /// state store by their full path; `longshore state forget` makes one be read again.
    /// Default `"changed"`.
    #[serde(default)]
    pub reprocess: Reprocess,
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

/// When a file that an earlier run delivered is read again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Reprocess {
    /// Only when its content changed: a different size or SHA-256 under the same path.
    #[default]
    Changed,
    /// Never, even when its content changed.
    Never,
    /// On every run: no ledger is kept (for a file that is rewritten in place on purpose).
    Always,
}

/// A file to read, as it was when listed.
struct Listed {
    path: PathBuf,
    /// The canonical path: the ledger's key, the same whatever the working directory.
    key: String,
    mtime_ns: i64,
}

/// The file being read.
struct Reading {
    decoder: Box<dyn Decoder>,
    origin: Arc<Origin>,
    listed: Listed,
    digest: SharedDigest,
}

pub struct FileSource {
    files: VecDeque<Listed>,
    files_listed: usize,
    format: FormatConfig,
    current: Option<Reading>,
    cx: Option<RunContext>,
    /// Ledger entries are made unless `reprocess = "always"` or outside a pipeline run.
    ledger: bool,
    progress: SourceProgress,
}

impl FileSource {
    /// The files `config` names, less those the ledger says were delivered already.
    pub fn new(
        config: &FileSourceConfig,
        cx: &RunContext,
        store: &mut dyn StateStore,
    ) -> Result<Self, StageError> {
        let path = cx.resolve(&config.path);
        let format =
            FormatConfig::named_or_inferred(&config.format, &config.path).ok_or_else(|| {
                StageError::Refused(format!(
                    "cannot tell the format of {}: set `format`",
                    config.path
                ))
            })?;
        let files = if is_pattern(&config.path) {
            list_matches(cx, &config.path, &path)?
        } else {
            std::fs::metadata(&path)
                .map_err(|e| StageError::io(path.display(), "read the file", e))?;
            vec![path]
        };
        let mut source = FileSource {
            files: VecDeque::new(),
            files_listed: 0,
            format,
            current: None,
            cx: Some(cx.clone()),
            ledger: config.reprocess != Reprocess::Always,
            progress: SourceProgress::default(),
        };
        // A file matched twice (itself and through a symlink) is read once.
        let mut keys = std::collections::HashSet::new();
        for path in files {
            let listed = listed(path)?;
            let shown = listed.path.display().to_string();
            if !keys.insert(listed.key.clone()) {
                tracing::debug!(file = %shown, "the same file as one listed before, skipped");
                continue;
            }
            let delivered = match store
                .ledger_entry(&cx.pipeline, &listed.key)
                .map_err(|e| StageError::State(Box::new(e)))?
            {
                _ if !source.ledger => None,
                None => None,
                Some(entry) => Some(entry),
            };
            if let Some(entry) = delivered {
                let unchanged = config.reprocess == Reprocess::Never
                    || is_unchanged(&listed, &entry)
                        .map_err(|e| StageError::io(&shown, "read the file", e))?;
                if unchanged {
                    tracing::debug!(file = %shown, run = %entry.run_id, "already delivered, skipped");
                    source.progress.already_processed.push(shown);
                    continue;
                }
                tracing::info!(file = %shown, "changed since it was delivered, reading it again");
            }
            source.files.push_back(listed);
        }
        source.files_listed = source.files.len();
        Ok(source)
    }

    /// A source reading exactly the file at `path` (no pattern, no ledger), which must exist.
    pub fn from_path(path: PathBuf, format: FormatConfig) -> Result<Self, StageError> {
        std::fs::metadata(&path).map_err(|e| StageError::io(path.display(), "read the file", e))?;
        Ok(FileSource {
            files: VecDeque::from([listed(path)?]),
            files_listed: 1,
            format,
            current: None,
            cx: None,
            ledger: false,
            progress: SourceProgress::default(),
        })
    }

    fn open_next(&mut self) -> Result<bool, StageError> {
        if let Some(cx) = &self.cx
            && cx.past_deadline()
            && !self.files.is_empty()
        {
            self.progress.stopped_early = Some(format!(
                "stopped after {} of {} files",
                self.files_listed - self.files.len(),
                self.files_listed
            ));
            self.files.clear();
        }
        let Some(listed) = self.files.pop_front() else {
            return Ok(false);
        };
        let shown = listed.path.display().to_string();
        let file =
            File::open(&listed.path).map_err(|e| StageError::io(&shown, "open the file", e))?;
        tracing::debug!(file = %shown, "reading");
        let counter = self.cx.as_ref().map(|cx| cx.bytes_read.clone());
        let (reader, digest) = HashingReader::new(file, counter);
        let decoder = self.format.decoder(Box::new(reader), &shown)?;
        self.current = Some(Reading {
            decoder,
            origin: Arc::new(Origin { path: shown }),
            listed,
            digest,
        });
        Ok(true)
    }

    /// Records a file read to its end.
    fn finish_file(&mut self, reading: Reading) {
        let (size, sha256) = reading.digest.finish();
        self.progress.units += 1;
        self.progress.files_read.push(FileDigest {
            path: reading.origin.path.clone(),
            size,
            sha256: sha256.clone(),
        });
        if let (true, Some(cx)) = (self.ledger, &self.cx) {
            self.progress.changes.push(StateChange::Ledger(LedgerEntry {
                path: reading.listed.key,
                size,
                mtime_ns: reading.listed.mtime_ns,
                sha256,
                processed_at: cx.started_at.to_rfc3339(),
                run_id: cx.run_id.clone(),
            }));
        }
    }
}

/// The regular files matching a glob pattern, sorted.
fn list_matches(cx: &RunContext, pattern: &str, shown: &Path) -> Result<Vec<PathBuf>, StageError> {
    let pattern = cx.resolve_pattern(pattern).display().to_string();
    let shown = shown.display().to_string();
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
    Ok(files)
}

fn listed(path: PathBuf) -> Result<Listed, StageError> {
    let shown = path.display().to_string();
    let meta = std::fs::metadata(&path).map_err(|e| StageError::io(&shown, "read the file", e))?;
    let key = std::fs::canonicalize(&path)
        .map_err(|e| StageError::io(&shown, "read the file", e))?
        .display()
        .to_string();
    let mtime_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i64);
    Ok(Listed {
        path,
        key,
        mtime_ns,
    })
}

/// Whether a listed file still has the content the ledger recorded: the same size and
/// modification time, or else (touched, copied again) the same SHA-256.
fn is_unchanged(listed: &Listed, entry: &LedgerEntry) -> std::io::Result<bool> {
    let size = std::fs::metadata(&listed.path)?.len();
    if size != entry.size {
        return Ok(false);
    }
    if listed.mtime_ns == entry.mtime_ns {
        return Ok(true);
    }
    Ok(sha256_file(&listed.path)?.1 == entry.sha256)
}

impl Source for FileSource {
    fn next_batch(&mut self, out: &mut Batch, max: usize) -> Result<bool, StageError> {
        out.clear();
        loop {
            if self.current.is_none() && !self.open_next()? {
                return Ok(false);
            }
            let reading = self.current.as_mut().expect("a file is open");
            match reading.decoder.next_batch(&mut out.records, max) {
                Ok(true) => {
                    out.origin = Some(reading.origin.clone());
                    return Ok(true);
                }
                Ok(false) => {
                    let done = self.current.take().expect("a file is open");
                    self.finish_file(done);
                    if !out.rejects.is_empty() {
                        return Ok(true);
                    }
                }
                Err(CodecError::BadRecord { malformed, raw })
                    if self.cx.as_ref().is_some_and(|cx| cx.quarantine) =>
                {
                    out.origin = Some(reading.origin.clone());
                    out.rejects.push(Reject {
                        file: malformed.file,
                        position: malformed.position,
                        reason: malformed.message,
                        raw,
                    });
                    if out.rejects.len() >= max {
                        return Ok(true);
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn progress(&mut self) -> SourceProgress {
        std::mem::take(&mut self.progress)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::SqliteStore;

    #[test]
    fn past_the_deadline_it_stops_before_the_next_file_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.csv"), "id\n1\n2\n").unwrap();
        std::fs::write(dir.path().join("b.csv"), "id\n3\n").unwrap();
        let cx = RunContext::new("p", dir.path());
        let config = FileSourceConfig {
            path: "*.csv".into(),
            format: None,
            reprocess: Reprocess::Changed,
        };
        let mut source = FileSource::new(&config, &cx, &mut SqliteStore::in_memory()).unwrap();
        let mut batch = Batch::default();
        assert!(source.next_batch(&mut batch, 10).unwrap());
        assert_eq!(batch.len(), 2);
        // The limit passes while a.csv is being delivered.
        source.cx.as_mut().unwrap().deadline = Some(std::time::Instant::now());
        assert!(!source.next_batch(&mut batch, 10).unwrap());
        let progress = source.progress();
        assert_eq!(progress.units, 1);
        assert_eq!(progress.files_read.len(), 1);
        assert!(progress.files_read[0].path.ends_with("a.csv"));
        assert_eq!(progress.changes.len(), 1, "a ledger entry for a.csv only");
        assert_eq!(
            progress.stopped_early.as_deref(),
            Some("stopped after 1 of 2 files")
        );
    }
}
