//! The `sftp` and `ftps` sinks: records to files on a partner's server, never seen half-written.
//! Each output is encoded into a local spool file first (so that an upload interrupted by the
//! network starts again from its first byte, and the server's connection is not held open
//! while the source is slow), then, when the run prepares, uploaded under a hidden temporary
//! name in the target directory (`.orders.csv.part`) and its size on the server checked. Only
//! when the whole run commits is it renamed to its final name, and a marker file
//! (`orders.csv.done`) uploaded after it when the partner wants one. A failed run removes its
//! temporary uploads (and the next run those of a run that was killed: they are journaled);
//! one interrupted after recording its commit is finished by the next run.

use std::io::Seek;

use schemars::JsonSchema;
use serde::Deserialize;

use super::IfEmpty;
use super::output::{self, OutputEnd};
use super::publish::Publication;
use crate::codecs::{FormatConfig, TextEncoding};
use crate::config::{Invalid, Validate};
use crate::error::StageError;
use crate::filestore::{self, Connection, ServerConfig};
use crate::names::{self, MAX_NAME_BYTES};
use crate::record::Batch;
use crate::stage::{Encoder, RunContext, Sink, SinkReport};
use crate::state::{IfExists, PreparedOutput, RemoteOutput};
use crate::template::{PathTemplate, TemplateValues};

/// Uploads files to a server.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadSinkConfig<S> {
    /// The server and how to log in, e.g. `{ host = "sftp.partner.example", user = "etl",
    /// private_key = "~/.ssh/id_ed25519" }`. Required.
    pub server: S,
    /// Where to upload on the server, as a template: `{pipeline}`, `{run_date}`, `{run_ts}`,
    /// `{source_stem}` as for the `file` sink, and `{part}`, the file's number when the
    /// output is split. A relative path is relative to the login directory. Missing
    /// directories are created. Required.
    pub path: String,
    /// The output format, e.g. `{ type = "csv", delimiter = ";" }`. Default: inferred from
    /// the extension of `path`.
    pub format: Option<FormatConfig>,
    /// What to do when the file already exists on the server: `"replace"` it, `"fail"` the
    /// run, `"skip"` this output, or `"rename"`: upload under the first free numbered name
    /// (`orders-1.csv`, ...). Checked when the run prepares and again when it commits. Over
    /// SFTP, `"replace"` removes the old file just before the rename (SFTP version 3 has no
    /// overwriting rename), so for an instant the name is absent, never half-written.
    /// Default `"replace"`.
    #[serde(default)]
    pub if_exists: IfExists,
    /// The text encoding of the output, as for the `file` sink. Default UTF-8.
    pub encoding: Option<TextEncoding>,
    /// The name uploads have until the run commits, in the target directory, with `{name}`
    /// for the final file name (cut when the result would be over 255 bytes). Partners'
    /// pick-up jobs must ignore it. Default `".{name}.part"`.
    #[serde(default = "default_temp_name")]
    pub temp_name: String,
    /// An empty file uploaded beside each output once it is in place, for partners who wait for
    /// one, with `{name}` for the output's file name, e.g. `"{name}.done"`. Default: none.
    pub marker: Option<String>,
    /// The most records in one file: the output is split into files numbered by `{part}`
    /// (which `path` must then contain). Default: no limit.
    pub max_records_per_file: Option<u64>,
    /// The most bytes in one file (as written, after gzip): the output is split into files
    /// numbered by `{part}`, each closed at the first record boundary past the limit less
    /// 64 KiB, so a file stays under it unless one record is that large. Not for `excel`
    /// (a workbook's size is known only once it is complete). A CSV file that takes a field
    /// first seen after its header (see the csv format's `columns`) grows by the cells added
    /// to its earlier rows; past the limit that fails the run, naming the fields. Default: no
    /// limit.
    pub max_bytes_per_file: Option<u64>,
    /// What a run that gives this sink no record uploads (nothing new came, or only input
    /// without rows): `"skip"`, nothing; `"write"`, an empty output in the format's own form,
    /// as for the `file` sink (a CSV header row when the format lists `columns`), with its
    /// marker. `"write"` needs a `path` without `{source_stem}`. Default `"skip"`.
    #[serde(default)]
    pub if_empty: IfEmpty,
}

/// What `temp_name` and `marker` stand for the output's file name with.
const NAME: &str = "{name}";

/// Whether `name` is a name `temp_name` (`pattern`) gives, for any output's name: the
/// temporary-file journal removes nothing else from a server.
pub fn is_temp_name(pattern: &str, name: &str) -> bool {
    let glob: Vec<String> = pattern.split(NAME).map(glob::Pattern::escape).collect();
    glob::Pattern::new(&glob.join("*")).is_ok_and(|glob| {
        glob.matches_with(
            name,
            glob::MatchOptions {
                require_literal_separator: true,
                ..glob::MatchOptions::new()
            },
        )
    })
}

fn default_temp_name() -> String {
    ".{name}.part".into()
}

/// Bytes left for the encoder's buffer when a file nears `max_bytes_per_file`.
const SPLIT_MARGIN: u64 = 64 * 1024;

/// Records written between two checks of a file's size.
const SIZE_CHECK_RECORDS: usize = 64;

impl<S: ServerConfig> Validate for UploadSinkConfig<S> {
    fn problems(&self) -> Vec<Invalid> {
        let mut problems = filestore::server_problems(&self.server);
        match PathTemplate::parse(&self.path) {
            Err(message) => problems.push(Invalid::new("path", message)),
            Ok(template) => {
                problems.extend(super::if_empty_problem(&template, self.if_empty));
                let split =
                    self.max_records_per_file.is_some() || self.max_bytes_per_file.is_some();
                if split && !template.uses_part() {
                    problems.push(Invalid::new(
                        "path",
                        "must contain `{part}` to number the files `max_records_per_file` or `max_bytes_per_file` split the output into",
                    ));
                }
                if !split && template.uses_part() {
                    problems.push(Invalid::new(
                        "path",
                        "`{part}` numbers the files of a split output: set `max_records_per_file` or `max_bytes_per_file`",
                    ));
                }
            }
        }
        problems.extend(super::file::output_problems(
            &self.path,
            &self.format,
            self.encoding,
        ));
        for (key, pattern) in [
            ("temp_name", Some(&self.temp_name)),
            ("marker", self.marker.as_ref()),
        ] {
            let Some(pattern) = pattern else { continue };
            if !pattern.contains("{name}") || pattern.contains('/') {
                problems.push(Invalid::new(
                    key,
                    "must be a file name containing `{name}` (the output's name), e.g. \".{name}.part\"",
                ));
            }
        }
        if self.temp_name == "{name}" {
            problems.push(Invalid::new(
                "temp_name",
                "must differ from the final name, or readers see half-written files",
            ));
        }
        if let Some(marker) = &self.marker
            && (marker == "{name}" || *marker == self.temp_name)
        {
            problems.push(Invalid::new(
                "marker",
                "must differ from the output's name and `temp_name`, or the empty marker replaces a file",
            ));
        }
        if self.max_records_per_file == Some(0)
            || self
                .max_bytes_per_file
                .is_some_and(|max| max <= SPLIT_MARGIN)
        {
            problems.push(Invalid::new(
                if self.max_records_per_file == Some(0) {
                    "max_records_per_file"
                } else {
                    "max_bytes_per_file"
                },
                format!("is too small: at least 1 record, more than {SPLIT_MARGIN} bytes"),
            ));
        }
        if self.max_bytes_per_file.is_some()
            && FormatConfig::named_or_inferred(&self.format, &self.path)
                .is_some_and(|f| f.is_binary())
        {
            problems.push(Invalid::new(
                "max_bytes_per_file",
                "does not apply to workbooks and Parquet files, whose size is known only once complete: use `max_records_per_file`",
            ));
        }
        problems
    }
}

/// One output file of this run, spooled locally until the run prepares.
struct Spooled {
    /// The final path on the server.
    path: String,
    /// What `{part}` was, and the path with `{part}` at 1, to tell whether a batch continues
    /// this output.
    part: u32,
    first_part_path: String,
    /// Unnamed (unlinked at once): the kernel frees it when the run ends, however it ends.
    spool: std::fs::File,
    /// Present until the output is finished.
    encoder: Option<Box<dyn Encoder>>,
    end: OutputEnd,
    records: u64,
}

pub struct UploadSink {
    cx: RunContext,
    connection: Connection,
    template: PathTemplate,
    format: FormatConfig,
    encoding: Option<TextEncoding>,
    if_exists: IfExists,
    temp_name: String,
    marker: Option<String>,
    max_records: Option<u64>,
    max_bytes: Option<u64>,
    if_empty: IfEmpty,
    /// The output being written, then the finished ones in order.
    outputs: Vec<Spooled>,
    /// Once prepared: the uploads to publish.
    prepared: Vec<PreparedOutput>,
    /// Outputs left alone because they exist (`if_exists = "skip"`).
    skipped: Vec<String>,
    records: u64,
}

impl UploadSink {
    pub fn new<S: ServerConfig>(
        config: &UploadSinkConfig<S>,
        cx: &RunContext,
    ) -> Result<Self, StageError> {
        Ok(UploadSink {
            cx: cx.clone(),
            connection: config.server.connection(cx)?,
            template: PathTemplate::parse(&config.path).map_err(StageError::Refused)?,
            format: FormatConfig::named_or_inferred(&config.format, &config.path).ok_or_else(
                || StageError::Refused(format!("cannot tell the format of {}", config.path)),
            )?,
            encoding: config.encoding,
            if_exists: config.if_exists,
            temp_name: config.temp_name.clone(),
            marker: config.marker.clone(),
            max_records: config.max_records_per_file,
            max_bytes: config.max_bytes_per_file,
            if_empty: config.if_empty,
            outputs: Vec::new(),
            prepared: Vec::new(),
            skipped: Vec::new(),
            records: 0,
        })
    }

    fn target(&self, batch: &Batch, part: u32) -> String {
        let stem = batch.origin.as_ref().map(|o| o.stem());
        self.template.render(&TemplateValues {
            pipeline: &self.cx.pipeline,
            started_at: self.cx.started_at,
            source_stem: stem,
            part,
        })
    }

    /// The temporary path of the upload `path`: beside it, named by `pattern` (`{name}` the
    /// file name of `path`, cut on a character boundary where the result would be longer than
    /// a file name can be).
    fn temp_path(path: &str, pattern: &str) -> String {
        let count = pattern.matches(NAME).count();
        let fixed = pattern.len() - NAME.len() * count;
        let room = MAX_NAME_BYTES.saturating_sub(fixed) / count.max(1);
        let name = pattern.replace(NAME, names::cut(filestore::file_name(path), room));
        filestore::join(filestore::parent(path), &name)
    }

    fn finish_current(&mut self) -> Result<(), StageError> {
        let Some(output) = self.outputs.last_mut() else {
            return Ok(());
        };
        let Some(encoder) = output.encoder.take() else {
            return Ok(());
        };
        let widened = encoder.widened();
        encoder.finish()?;
        output
            .end
            .finish()
            .map_err(|e| StageError::io(&output.path, "write the spool file of", e))?;
        if let (Some(widened), FormatConfig::Csv(options)) = (widened, &self.format) {
            let spool = tempfile::tempfile()
                .map_err(|e| StageError::io(&output.path, "create a spool file for", e))?;
            let file = spool
                .try_clone()
                .map_err(|e| StageError::io(&output.path, "create a spool file for", e))?;
            let gzip = crate::names::strip_gzip_suffix(&output.path).is_some();
            output.end = output::rewrite_widened(
                &output.spool,
                output::Layers { gzip, hash: true },
                file,
                options,
                self.encoding,
                &output.path,
                &widened,
            )?;
            output.spool = spool;
            let size = output.end.digest.bytes();
            if let Some(max) = self.max_bytes.filter(|&max| size > max) {
                return Err(StageError::Refused(format!(
                    "{}: with the columns that first appeared after its header ({}), the file takes {size} bytes, over `max_bytes_per_file` = {max}: list every column in the csv format's `columns`, so that each file is written at its size from the start",
                    output.path,
                    widened.columns[widened.first_width..].join(", ")
                )));
            }
        }
        Ok(())
    }

    fn open(&mut self, path: String, part: u32, first_part_path: String) -> Result<(), StageError> {
        self.finish_current()?;
        if self.outputs.iter().any(|o| o.path == path) {
            return Err(StageError::Refused(format!(
                "two source files map to the same output {path}: make the sink's `path` unique per source file"
            )));
        }
        let spool = tempfile::tempfile()
            .map_err(|e| StageError::io(&path, "create a spool file for", e))?;
        let file = spool
            .try_clone()
            .map_err(|e| StageError::io(&path, "create a spool file for", e))?;
        let gzip = crate::names::strip_gzip_suffix(&path).is_some();
        let (writer, end) = output::writer(file, output::Layers { gzip, hash: true });
        let encoder = self.format.file_encoder(writer, &path, self.encoding)?;
        self.outputs.push(Spooled {
            path,
            part,
            first_part_path,
            spool,
            encoder: Some(encoder),
            end,
            records: 0,
        });
        Ok(())
    }

    /// Whether the open output has no room for another record.
    fn is_full(&self) -> bool {
        let Some(output) = self.outputs.last() else {
            return false;
        };
        self.max_records.is_some_and(|max| output.records >= max)
            || self
                .max_bytes
                .is_some_and(|max| output.end.digest.bytes() >= max - SPLIT_MARGIN)
    }

    /// Uploads one finished output under its temporary name and checks its size there.
    fn upload(&mut self, output: &mut Spooled) -> Result<Option<PreparedOutput>, StageError> {
        let path = output.path.clone();
        let temp = Self::temp_path(&path, &self.temp_name);
        let (size, sha256) = output.end.digest.finish();
        let if_exists = self.if_exists;
        if let Some(journal) = &self.cx.temp_journal {
            super::temp_journal::record_remote(
                journal,
                self.connection.location(),
                &temp,
                &self.cx.run_id,
            )?;
        }
        let uploaded = self.connection.run("upload", |store| {
            if matches!(if_exists, IfExists::Fail | IfExists::Skip) && store.stat(&path)?.is_some()
            {
                return Ok(false);
            }
            store.create_dir_all(filestore::parent(&path))?;
            let spool = &mut output.spool;
            spool.rewind().map_err(|e| store_io(&path, e))?;
            let written = store.upload(&temp, spool)?;
            let arrived = store.stat(&temp)?.map(|entry| entry.size);
            if written != size || arrived != Some(size) {
                return Err(filestore::StoreError {
                    location: String::new(),
                    message: format!(
                        "the upload of {temp} is incomplete: {size} bytes sent, the server has {}",
                        arrived.map_or("none".to_string(), |n| n.to_string())
                    ),
                    transient: true,
                });
            }
            Ok(true)
        })?;
        if !uploaded {
            return match if_exists {
                IfExists::Fail => Err(StageError::Refused(format!(
                    "{path} already exists on {} and the sink has `if_exists = \"fail\"`: move the file away, or set `if_exists` to \"replace\", \"rename\" or \"skip\"",
                    self.connection.location()
                ))),
                _ => {
                    tracing::info!(file = %path, "output exists on the server, skipped (if_exists = \"skip\")");
                    self.skipped.push(path);
                    Ok(None)
                }
            };
        }
        Ok(Some(PreparedOutput {
            path: path.clone().into(),
            temp: temp.into(),
            size,
            sha256,
            if_exists,
            remote: Some(RemoteOutput {
                location: self.connection.location().to_string(),
                marker: self.marker.clone(),
            }),
        }))
    }
}

fn store_io(path: &str, error: std::io::Error) -> filestore::StoreError {
    filestore::StoreError {
        location: String::new(),
        message: format!("cannot read the spool file of {path}: {error}"),
        transient: false,
    }
}

impl Sink for UploadSink {
    fn write_batch(&mut self, batch: &Batch) -> Result<(), StageError> {
        if batch.is_empty() {
            return Ok(());
        }
        let first_part_path = self.target(batch, 1);
        let mut records = &batch.records[..];
        while !records.is_empty() {
            let continues = self
                .outputs
                .last()
                .is_some_and(|o| o.first_part_path == first_part_path && o.encoder.is_some());
            if !continues {
                self.open(first_part_path.clone(), 1, first_part_path.clone())?;
            } else if self.is_full() {
                let part = self.outputs.last().map_or(1, |o| o.part + 1);
                let path = self.target(batch, part);
                self.open(path, part, first_part_path.clone())?;
            }
            let room = match self.max_records {
                Some(max) => (max - self.outputs.last().map_or(0, |o| o.records)) as usize,
                None => records.len(),
            };
            let step = room.min(if self.max_bytes.is_some() {
                SIZE_CHECK_RECORDS
            } else {
                records.len()
            });
            let (now, rest) = records.split_at(step.min(records.len()));
            let output = self.outputs.last_mut().expect("an output is open");
            output
                .encoder
                .as_mut()
                .expect("the open output has its encoder")
                .write_batch(now)?;
            output.records += now.len() as u64;
            self.records += now.len() as u64;
            records = rest;
        }
        Ok(())
    }

    fn prepare(&mut self) -> Result<Vec<PreparedOutput>, StageError> {
        if self.outputs.is_empty() && self.if_empty == IfEmpty::Write {
            // No record came, and the partner wants a file anyway: "nothing today" is news.
            let path = self.target(&Batch::default(), 1);
            self.open(path.clone(), 1, path)?;
        }
        self.finish_current()?;
        for mut output in std::mem::take(&mut self.outputs) {
            match self.upload(&mut output) {
                Ok(Some(prepared)) => self.prepared.push(prepared),
                Ok(None) => {}
                Err(e) => {
                    // What was uploaded will not be published.
                    self.remove_uploads();
                    return Err(e);
                }
            }
        }
        Ok(self.prepared.clone())
    }

    fn destination(&self, batch: &Batch) -> String {
        format!("{}/{}", self.connection.location(), self.target(batch, 1))
    }

    fn commit(mut self: Box<Self>) -> Result<SinkReport, StageError> {
        let mut report = SinkReport {
            records: self.records,
            skipped: std::mem::take(&mut self.skipped),
            ..SinkReport::default()
        };
        for output in std::mem::take(&mut self.prepared) {
            let temp = output.temp.to_string_lossy().into_owned();
            let mut first_try = true;
            let published = self.connection.run("publish", |store| {
                // Gone before the first try: someone removed it (a retry finds it gone because
                // the try before renamed it).
                if first_try {
                    let there = store.stat(&temp)?.is_some();
                    first_try = false;
                    if !there {
                        return Err(filestore::StoreError {
                            location: String::new(),
                            message: format!(
                                "the temporary upload {temp} vanished from the server before it was published"
                            ),
                            transient: false,
                        });
                    }
                }
                output.publish_remote(store)
            })?;
            match published {
                Publication::Published(path) => {
                    let shown = path.display().to_string();
                    if path != output.path {
                        report
                            .renamed
                            .push((output.path.display().to_string(), shown.clone()));
                    }
                    tracing::debug!(server = %self.connection.location(), file = %shown, "published");
                    report.published.push(shown);
                }
                Publication::Skipped => report.skipped.push(output.path.display().to_string()),
            }
        }
        Ok(report)
    }
}

impl UploadSink {
    /// Removes the temporary uploads this sink made (a later one failed). Best effort.
    fn remove_uploads(&mut self) {
        for output in std::mem::take(&mut self.prepared) {
            let temp = output.temp.to_string_lossy().into_owned();
            if let Err(e) = self.connection.run("remove", |store| store.remove(&temp)) {
                tracing::warn!(file = %temp, error = %e, "cannot remove a temporary upload");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_upload_names_fit_and_are_recognized() {
        let long = "a".repeat(250);
        let temp = UploadSink::temp_path(&format!("out/{long}"), ".{name}.part");
        let name = filestore::file_name(&temp);
        assert_eq!(name.len(), MAX_NAME_BYTES);
        assert_eq!(temp, format!("out/.{}.part", &long[..249]));
        assert!(is_temp_name(".{name}.part", name));
        assert_eq!(
            UploadSink::temp_path("out/a.csv", "{name}.tmp"),
            "out/a.csv.tmp"
        );
        assert!(is_temp_name("{name}.tmp", "a.csv.tmp"));
        assert!(!is_temp_name(".{name}.part", ".profile"));
        assert!(!is_temp_name("{name}.tmp", "a.csv"));
        assert!(!is_temp_name("[{name}].tmp", "a.tmp"));
        assert!(is_temp_name("[{name}].tmp", "[a].tmp"));
    }
}
