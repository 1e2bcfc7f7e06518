//! The `file` sink: records to local files, never half-written. Each output is encoded into a
//! hidden temporary file in the destination directory (`.orders.csv.XXXXXX.part`), fsynced,
//! and renamed over the final name only when the whole run commits; a failed run leaves the
//! destination exactly as it was.

use std::fs;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Deserialize;
use tempfile::NamedTempFile;

use super::IfEmpty;
use super::output::{self, OutputEnd};
use super::publish::{self, Obstacle, Publication};
use super::temp_journal;
use crate::codecs::{FormatConfig, TextEncoding};
use crate::config::{Invalid, Validate};
use crate::error::StageError;
use crate::names::{self, MAX_NAME_BYTES};
use crate::record::Batch;
use crate::stage::{Encoder, RunContext, Sink, SinkReport};
use crate::state::{IfExists, PreparedOutput};
use crate::template::{PathTemplate, TemplateValues};

/// Writes local files atomically.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    /// Where to write, as a template: `{pipeline}`, `{run_date}` (`2024-08-01`), `{run_ts}`
    /// (`20240801T020500`), `{source_stem}` (the source file's name without extension: one
    /// output per source file; made one safe file name: `/`, `\` and control characters
    /// percent-encoded, a stem of only dots, as of `...csv`, made underscores). `{{` and `}}`
    /// are literal braces. Relative paths are resolved against the pipeline file's directory;
    /// missing directories are created. What is at `path` must be a regular file or nothing:
    /// a directory, a device (`/dev/null`), a named pipe, a socket or a symbolic link is
    /// refused, since the atomic rename would replace the node itself (a link, not the file it
    /// points to; name that file instead). A path that is the source's input, that the
    /// source's glob would read back, or that another sink writes is refused too. Required.
    pub path: String,
    /// The output format, e.g. `{ type = "csv", delimiter = ";" }`. Default: inferred from
    /// the extension of `path`.
    pub format: Option<FormatConfig>,
    /// What to do when the output file already exists: `"replace"` it (atomically, only once
    /// the run succeeded), `"fail"` the run (publishing nothing), `"skip"` this output
    /// and leave the existing file alone, or `"rename"`: publish under the first free
    /// numbered name (`orders-1.csv`, `orders-2.csv`, ...). Default `"replace"`. A `path` with `{run_date}` but
    /// no `{run_ts}` names the same file for every run of a day: with `"replace"` a later run
    /// replaces what an earlier one delivered, so drop folders want `{run_ts}`.
    #[serde(default)]
    pub if_exists: IfExists,
    /// The text encoding of the output, e.g. `"windows-1252"` or `"utf-16le"` (any WHATWG
    /// label; UTF-16 is written with a byte-order mark). A character the encoding cannot
    /// represent fails the run, naming it. A path ending in `.gz` is gzip-compressed after
    /// encoding. Default UTF-8.
    pub encoding: Option<TextEncoding>,
    /// What a run that gives this sink no record publishes (nothing new came, or only input
    /// without rows): `"skip"`, nothing; `"write"`, an empty output in the format's own form:
    /// a CSV or TSV file with just its header row when the format lists `columns` (else 0
    /// bytes), a JSON document `[]` in its envelope, an XML root element without records,
    /// an `.xlsx` workbook without rows, 0 bytes of NDJSON. `"write"` needs a `path` without
    /// `{source_stem}`. Default `"skip"`.
    #[serde(default)]
    pub if_empty: IfEmpty,
}

impl Validate for FileSinkConfig {
    fn problems(&self) -> Vec<Invalid> {
        let mut problems = Vec::new();
        match PathTemplate::parse(&self.path) {
            Err(message) => problems.push(Invalid::new("path", message)),
            Ok(template) => {
                if template.uses_part() {
                    problems.push(Invalid::new(
                        "path",
                        "`{part}` numbers the files of a split upload; the file sink writes one file per output",
                    ));
                }
                problems.extend(super::if_empty_problem(&template, self.if_empty));
            }
        }
        problems.extend(output_problems(&self.path, &self.format, self.encoding));
        problems
    }
}

/// What is wrong with writing `format` in `encoding` to files named like `path`, for every sink
/// that writes files.
pub fn output_problems(
    path: &str,
    format: &Option<FormatConfig>,
    encoding: Option<TextEncoding>,
) -> Vec<Invalid> {
    let mut problems = FormatConfig::stage_problems(format, path);
    if let Some(format) = FormatConfig::named_or_inferred(format, path) {
        if let Some(message) = format.output_problem(path) {
            problems.push(Invalid::new("path", message));
        }
        if let Some(message) = format.encoding_problem(encoding) {
            problems.push(Invalid::new("encoding", message));
        }
    }
    problems
}

/// One output file of this run.
struct Output {
    path: PathBuf,
    /// `None` when the file exists and `if_exists = "skip"`.
    pending: Option<Pending>,
}

struct Pending {
    temp: NamedTempFile,
    /// Present until the output is finished.
    encoder: Option<Box<dyn Encoder>>,
    /// Compression and the digest of the file's bytes.
    end: OutputEnd,
}

pub struct FileSink {
    cx: RunContext,
    /// Whether the outputs' SHA-256 is computed, for the run report (`convert` has none).
    hash_outputs: bool,
    template: PathTemplate,
    format: FormatConfig,
    if_exists: IfExists,
    encoding: Option<TextEncoding>,
    if_empty: IfEmpty,
    /// How to write to standard output instead, for the message refusing a device or a pipe as
    /// the output: `convert` takes `-`, a pipeline a `stdout` sink.
    to_stdout: &'static str,
    /// The output being written, then the finished ones in order.
    outputs: Vec<Output>,
    /// Once prepared: the outputs to publish, their temporary files no longer removed on drop
    /// (once the run has recorded its intent, only publishing or recovery may touch them).
    prepared: Vec<PreparedOutput>,
    /// Outputs left alone because they exist (`if_exists = "skip"`).
    skipped: Vec<String>,
    records: u64,
}

impl FileSink {
    pub fn new(config: &FileSinkConfig, cx: &RunContext) -> Result<Self, StageError> {
        Ok(FileSink {
            cx: cx.clone(),
            hash_outputs: true,
            template: PathTemplate::parse(&config.path).map_err(StageError::Refused)?,
            format: FormatConfig::named_or_inferred(&config.format, &config.path).ok_or_else(
                || StageError::Refused(format!("cannot tell the format of {}", config.path)),
            )?,
            if_exists: config.if_exists,
            encoding: config.encoding,
            if_empty: config.if_empty,
            to_stdout: publish::STDOUT_SINK,
            outputs: Vec::new(),
            prepared: Vec::new(),
            skipped: Vec::new(),
            records: 0,
        })
    }

    /// A sink writing exactly to `path` (no placeholders), for `longshore convert`: an input
    /// without records still gives the file asked for.
    pub fn to_path(
        path: &Path,
        format: FormatConfig,
        encoding: Option<TextEncoding>,
        cx: &RunContext,
    ) -> Self {
        FileSink {
            cx: cx.clone(),
            hash_outputs: false,
            template: PathTemplate::literal(&path.to_string_lossy()),
            format,
            if_exists: IfExists::Replace,
            encoding,
            if_empty: IfEmpty::Write,
            to_stdout: "write to standard output with `-`",
            outputs: Vec::new(),
            prepared: Vec::new(),
            skipped: Vec::new(),
            records: 0,
        }
    }

    fn target(&self, batch: &Batch) -> PathBuf {
        let stem = batch.origin.as_ref().map(|o| o.stem());
        self.cx.resolve(&self.template.render(&TemplateValues {
            pipeline: &self.cx.pipeline,
            started_at: self.cx.started_at,
            source_stem: stem,
            part: 1,
        }))
    }

    fn finish_current(&mut self) -> Result<(), StageError> {
        let Some(Output {
            path,
            pending: Some(pending),
        }) = self.outputs.last_mut()
        else {
            return Ok(());
        };
        let Some(encoder) = pending.encoder.take() else {
            return Ok(());
        };
        let widened = encoder.widened();
        encoder.finish()?;
        pending
            .end
            .finish()
            .map_err(|e| StageError::io(path.display(), "write", e))?;
        if let (Some(widened), FormatConfig::Csv(options)) = (widened, &self.format) {
            let shown = path.display().to_string();
            let temp = temp_file_for(&self.cx, path)?;
            let file = temp
                .as_file()
                .try_clone()
                .map_err(|e| StageError::io(&shown, "write", e))?;
            let gzip = crate::names::strip_gzip_suffix(&shown).is_some();
            pending.end = output::rewrite_widened(
                pending.temp.as_file(),
                output::Layers {
                    gzip,
                    hash: self.hash_outputs,
                },
                file,
                options,
                self.encoding,
                &shown,
                &widened,
            )?;
            // The first temporary file is removed as it is dropped.
            pending.temp = temp;
        }
        Ok(())
    }

    fn open(&mut self, path: PathBuf) -> Result<(), StageError> {
        self.finish_current()?;
        let shown = path.display().to_string();
        if self.outputs.iter().any(|o| o.path == path) {
            return Err(StageError::Refused(format!(
                "two source files map to the same output {shown}: make the sink's `path` unique per source file"
            )));
        }
        // Whatever `if_exists` says: it is about files, and this is not one.
        if let Some(obstacle) = Obstacle::at(&path) {
            return Err(StageError::Refused(
                obstacle.message(&shown, self.to_stdout),
            ));
        }
        if path.exists() {
            match self.if_exists {
                IfExists::Fail => {
                    return Err(StageError::Refused(format!(
                        "{shown} already exists and the sink has `if_exists = \"fail\"`: move the file away, or set `if_exists` to \"replace\" or \"skip\""
                    )));
                }
                IfExists::Skip => {
                    tracing::info!(file = %shown, "output exists, skipped (if_exists = \"skip\")");
                    self.outputs.push(Output {
                        path,
                        pending: None,
                    });
                    return Ok(());
                }
                IfExists::Replace | IfExists::Rename => {}
            }
        }
        let dir = publish::parent_dir(&path);
        fs::create_dir_all(dir)
            .map_err(|e| StageError::io(dir.display(), "create the directory", e))?;
        let temp = temp_file_for(&self.cx, &path)?;
        let file = temp
            .as_file()
            .try_clone()
            .map_err(|e| StageError::io(&shown, "write", e))?;
        let gzip = crate::names::strip_gzip_suffix(&shown).is_some();
        let (writer, end) = output::writer(
            file,
            output::Layers {
                gzip,
                hash: self.hash_outputs,
            },
        );
        let encoder = self.format.file_encoder(writer, &shown, self.encoding)?;
        self.outputs.push(Output {
            path,
            pending: Some(Pending {
                temp,
                encoder: Some(encoder),
                end,
            }),
        });
        Ok(())
    }
}

/// A new temporary file beside `path`, listed in the run's journal.
fn temp_file_for(cx: &RunContext, path: &Path) -> Result<NamedTempFile, StageError> {
    let dir = publish::parent_dir(path);
    let name = path
        .file_name()
        .map_or_else(|| "output".into(), |n| n.to_string_lossy().into_owned());
    let journal = cx.temp_journal.as_deref().map(|j| (j, cx.run_id.as_str()));
    temp_file(dir, &name, journal)
        .map_err(|e| StageError::io(path.display(), "create a temporary file beside", e))
}

/// The random characters `tempfile` puts into a temporary file's name.
const TEMP_RANDOM_CHARS: usize = 6;

/// What a temporary file's name adds to the output's: `.`, `.XXXXXX` and `.part`.
const TEMP_NAME_EXTRA: usize = 1 + 1 + TEMP_RANDOM_CHARS + ".part".len();

/// A new temporary file for the output `name` in `dir`, named `.NAME.XXXXXX.part`: hidden, and
/// ignored by pick-up jobs. A name too long to fit (over 242 bytes) is cut, on a character
/// boundary: the journal records the exact path, and [`is_temp_file_name`] accepts the cut form.
/// A new temporary file for output `name` in `dir`, listed in `journal` (the journal, and the
/// run's id) *before* it is created: a run killed between the two would otherwise leave a file
/// no later run knows to remove (found by `scripts/soak`). Created like any new file: 0666
/// less the umask, not tempfile's private 0600.
fn temp_file(
    dir: &Path,
    name: &str,
    journal: Option<(&Path, &str)>,
) -> std::io::Result<NamedTempFile> {
    let prefix = format!(".{}.", names::cut(name, MAX_NAME_BYTES - TEMP_NAME_EXTRA));
    tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".part")
        .rand_bytes(TEMP_RANDOM_CHARS)
        .make_in(dir, |path| {
            if let Some((journal, run_id)) = journal {
                // A name taken meanwhile (tempfile then tries another) stays listed: removing
                // it later needs its random part to collide twice, and its shape checked.
                temp_journal::record(journal, path, run_id).map_err(std::io::Error::other)?;
            }
            fs::File::options()
                .read(true)
                .write(true)
                .create_new(true)
                .open(path)
        })
}

/// Whether `name` has the shape of the name [`temp_file`] gives: `.NAME.XXXXXX.part`, NAME not
/// empty, XXXXXX six letters or digits. The temporary-file journal removes nothing else.
pub(super) fn is_temp_file_name(name: &str) -> bool {
    let Some(inner) = name
        .strip_prefix('.')
        .and_then(|name| name.strip_suffix(".part"))
    else {
        return false;
    };
    inner.rsplit_once('.').is_some_and(|(output, random)| {
        !output.is_empty()
            && random.len() == TEMP_RANDOM_CHARS
            && random.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

impl Sink for FileSink {
    fn write_batch(&mut self, batch: &Batch) -> Result<(), StageError> {
        if batch.is_empty() {
            return Ok(());
        }
        let target = self.target(batch);
        if self.outputs.last().is_none_or(|o| o.path != target) {
            self.open(target)?;
        }
        let output = self.outputs.last_mut().expect("an output is open");
        if let Some(Pending {
            encoder: Some(encoder),
            ..
        }) = &mut output.pending
        {
            encoder.write_batch(&batch.records)?;
            self.records += batch.len() as u64;
        }
        Ok(())
    }

    fn prepare(&mut self) -> Result<Vec<PreparedOutput>, StageError> {
        if self.outputs.is_empty() && self.if_empty == IfEmpty::Write {
            // No record came, and the partner wants a file anyway: "nothing today" is news.
            let target = self.target(&Batch::default());
            self.open(target)?;
        }
        self.finish_current()?;
        let mut dirs = Vec::new();
        for output in &mut self.outputs {
            let Some(pending) = &output.pending else {
                continue;
            };
            let shown = output.path.display();
            pending
                .temp
                .as_file()
                .sync_all()
                .map_err(|e| StageError::io(&shown, "flush to disk", e))?;
            let dir = publish::parent_dir(&output.path).to_path_buf();
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
            // Refuse now what publishing would refuse, so that no sink has published yet: a
            // directory, a device, a pipe or a link that appeared while the run was writing.
            if let Some(obstacle) = Obstacle::at(&output.path) {
                return Err(StageError::Refused(
                    obstacle.message(&shown.to_string(), self.to_stdout),
                ));
            }
            if output.path.exists() {
                match self.if_exists {
                    IfExists::Replace | IfExists::Rename => {}
                    IfExists::Fail => {
                        return Err(StageError::Refused(format!(
                            "{shown} appeared while the run was writing it and the sink has `if_exists = \"fail\"`"
                        )));
                    }
                    IfExists::Skip => {
                        tracing::info!(file = %shown, "output appeared during the run, skipped (if_exists = \"skip\")");
                        output.pending = None;
                    }
                }
            }
        }
        // The temporary files' names must survive a power cut as well as their content.
        for dir in dirs {
            publish::sync_dir(&dir).map_err(|e| StageError::io(dir.display(), "flush", e))?;
        }
        for output in std::mem::take(&mut self.outputs) {
            let Some(pending) = output.pending else {
                self.skipped.push(output.path.display().to_string());
                continue;
            };
            let (size, sha256) = pending.end.digest.finish();
            let temp = pending.temp.into_temp_path().keep().map_err(|e| {
                StageError::io(output.path.display(), "keep the temporary file of", e.error)
            })?;
            self.prepared.push(PreparedOutput {
                path: output.path,
                temp,
                size,
                sha256,
                if_exists: self.if_exists,
                remote: None,
            });
        }
        Ok(self.prepared.clone())
    }

    fn destination(&self, batch: &Batch) -> String {
        self.target(batch).display().to_string()
    }

    fn commit(self: Box<Self>) -> Result<SinkReport, StageError> {
        let mut report = SinkReport {
            records: self.records,
            skipped: self.skipped,
            ..SinkReport::default()
        };
        for output in self.prepared {
            let shown = output.path.display().to_string();
            match output.publish() {
                Ok(Publication::Published(path)) => {
                    tracing::debug!(file = %path.display(), "published");
                    if path != output.path {
                        report
                            .renamed
                            .push((shown.clone(), path.display().to_string()));
                    }
                    report.published.push(path.display().to_string());
                }
                Ok(Publication::Skipped) => report.skipped.push(shown),
                Err(e) => {
                    return Err(StageError::io(
                        &shown,
                        "move the finished file into place",
                        e,
                    ));
                }
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_fit_and_are_recognized() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["orders.csv".to_string(), "é".repeat(125), "a".repeat(255)] {
            let temp = temp_file(dir.path(), &name, None).unwrap();
            let temp_name = temp.path().file_name().unwrap().to_str().unwrap();
            assert!(temp_name.len() <= MAX_NAME_BYTES, "{temp_name}");
            assert!(is_temp_file_name(temp_name), "{temp_name}");
        }
        assert!(!is_temp_file_name(".profile"));
        assert!(!is_temp_file_name("y.csv.AbC123.part"));
        assert!(!is_temp_file_name("..AbC123.part"));
        assert!(!is_temp_file_name(".x.AbC12.part"));
        assert!(!is_temp_file_name(".x.AbC-23.part"));
    }
}
