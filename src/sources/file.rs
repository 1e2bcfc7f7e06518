//! The `file` source: local files named by a path or a glob pattern, read one after the other
//! in the sorted order of their paths, so that reruns see the same order. A file delivered by
//! an earlier run is skipped (the ledger in the state store), unless its content changed.
//! A file a pattern matches whose path has a control character (a newline, a tab, an escape) is
//! not read: it is skipped with a warning naming it escaped (see [`crate::names`]).
//!
//! A file must not change while it is read (here for local files and those on servers alike):
//! one gone or changed by the time it is opened is skipped with a warning (nothing of it was
//! read); one whose bytes at the end, or whose size and modification time after, are not as
//! listed fails the run, since its first records are already in the sinks' outputs: a torn
//! last record is never delivered, and the next run reads the file whole.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::codecs::limit::DEFAULT_MAX_RECORD_BYTES;
use crate::codecs::types::{FieldType, Typing};
use crate::codecs::unpack::{self, Part, UnpackLimits, Unpacked};
use crate::codecs::{FormatConfig, TextEncoding};
use crate::config::{Invalid, Validate};
use crate::digest::{HashingReader, SharedDigest, sha256_file};
use crate::error::{CodecError, StageError};
use crate::filestore::Connection;
use crate::names;
use crate::record::{Batch, FieldName, Origin, Reject};
use crate::stage::{Decoder, RunContext, Source, SourceProgress};
use crate::state::report::FileDigest;
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
    /// extension in `path` (`.csv`, `.tsv`, `.ndjson`, `.jsonl`, `.json`, `.xml`, ...), looking through
    /// `.gz`; for a zip archive, from each member's name. Gzip files and zip archives are
    /// recognized by their content and unpacked on the fly, whatever their names; every file
    /// in an archive is read, in the archive's order (directories, hidden files and
    /// `__MACOSX/` entries skipped), and names its records' origin as `archive.zip/member`.
    pub format: Option<FormatConfig>,
    /// When a file that an earlier run delivered is read again: `"changed"` (only when its
    /// content changed: a different size or SHA-256 under the same path), `"never"`, or
    /// `"always"` (every run reads every file; no ledger). Delivered files are remembered in the
    /// state store by their full path; `longshore state forget` makes one be read again.
    /// Default `"changed"`.
    #[serde(default)]
    pub reprocess: Reprocess,
    /// The text encoding of files without a byte-order mark, e.g. `"windows-1252"`,
    /// `"iso-8859-15"`, `"shift_jis"` (any WHATWG label). A byte-order mark (UTF-8, UTF-16LE,
    /// UTF-16BE) always wins. XML files without either follow their declaration. Bytes that
    /// are invalid in the encoding become U+FFFD. Default: UTF-8 (invalid UTF-8 is an error).
    pub encoding: Option<TextEncoding>,
    /// Give text values the type they read as: integers (`42`; not `007`, a code), exact
    /// decimals (`1.50`), `true`/`false`, ISO 8601 dates and timestamps. For formats without
    /// types (CSV, XML); each value on its own. Fields in `schema` are typed by it instead.
    /// Default `false`: text stays text.
    #[serde(default)]
    pub infer_types: bool,
    /// The type of named fields, e.g. `{ amount = "decimal", created = { type = "timestamp",
    /// format = "%d/%m/%Y %H:%M", timezone = "Europe/Berlin" } }`: `string`, `integer`,
    /// `float`, `decimal`, `bool`, `timestamp`, `datetime`, `date`. A value that does not fit
    /// makes its record a reject (with `[rejects]`) or fails the run. Default: none.
    pub schema: Option<std::collections::BTreeMap<String, FieldType>>,
    /// The most bytes one compressed file (all members of a zip together) may unpack to: a
    /// guard against decompression bombs. Default 4294967296 (4 GiB).
    pub max_unpacked_bytes: Option<u64>,
    /// The most entries a zip archive may have (directories included). Default 10000.
    pub max_zip_members: Option<usize>,
    /// The most bytes one record may take in the file (a CSV row, an NDJSON line, an element of
    /// a JSON array or a JSON document that is one object, an XML record element), a guard
    /// against a broken or hostile file whose one huge record would take all memory; a larger
    /// record fails the run (JSON is measured a read buffer at a time, so one up to 512 KiB
    /// over may pass). In XML, text or markup that long outside the records fails it too.
    /// Excel workbooks are read cell by cell, within the zip limits. Default 67108864 (64 MiB).
    pub max_record_bytes: Option<u64>,
    /// Add the file's `_file_name`, `_file_path`, `_file_size` (bytes) and `_file_mtime` (a
    /// timestamp) to every record, for transforms and outputs. Default `false`.
    #[serde(default)]
    pub file_fields: bool,
}

/// Whether a source `path` is a glob pattern rather than one file.
pub(crate) fn is_pattern(path: &str) -> bool {
    path.contains(['*', '?', '['])
}

/// How a glob is matched: `*` stays within a directory, and hidden files (an upload in
/// progress is often `.name.part`) match only a pattern that spells out the dot.
pub(crate) fn glob_options() -> glob::MatchOptions {
    glob::MatchOptions {
        require_literal_separator: true,
        require_literal_leading_dot: true,
        ..glob::MatchOptions::new()
    }
}

impl Validate for FileSourceConfig {
    fn problems(&self) -> Vec<Invalid> {
        let mut problems = Vec::new();
        if is_pattern(&self.path)
            && let Err(e) = glob::Pattern::new(&self.path)
        {
            problems.push(Invalid::new("path", format!("invalid glob pattern: {e}")));
        }
        problems.extend(read_problems(
            &self.format,
            Some(&self.path),
            self.encoding,
            self.schema.as_ref(),
            self.max_unpacked_bytes,
            self.max_record_bytes,
        ));
        problems
    }
}

/// What is wrong with the options that say how files are read (shared by every source that
/// reads files). `path` names the files when it is known, to infer their format from.
pub(crate) fn read_problems(
    format: &Option<FormatConfig>,
    path: Option<&str>,
    encoding: Option<TextEncoding>,
    schema: Option<&std::collections::BTreeMap<String, FieldType>>,
    max_unpacked_bytes: Option<u64>,
    max_record_bytes: Option<u64>,
) -> Vec<Invalid> {
    let mut problems = Vec::new();
    // Without a format, an archive's members are each of the format their names imply, and
    // files without a known path each of the format their own names imply.
    let inferred_later = format.is_none() && path.is_none_or(unpack::is_zip_name);
    if !inferred_later {
        problems.extend(FormatConfig::stage_problems(format, path.unwrap_or("")));
    }
    for (field, field_type) in schema.into_iter().flatten() {
        if let Some(problem) = field_type.problem() {
            problems.push(Invalid::new(format!("schema.{field}"), problem));
        }
    }
    if let Some(format) = FormatConfig::named_or_inferred(format, path.unwrap_or(""))
        && let Some(message) = format.encoding_problem(encoding)
    {
        problems.push(Invalid::new("encoding", message));
    }
    if max_unpacked_bytes == Some(0) {
        problems.push(Invalid::new("max_unpacked_bytes", "must be at least 1"));
    }
    if max_record_bytes == Some(0) {
        problems.push(Invalid::new("max_record_bytes", "must be at least 1"));
    }
    problems
}

/// The unpacking limits from a source's options, defaults where not set.
pub(crate) fn limits(
    max_unpacked_bytes: Option<u64>,
    max_zip_members: Option<usize>,
) -> UnpackLimits {
    let defaults = UnpackLimits::default();
    UnpackLimits {
        max_unpacked_bytes: max_unpacked_bytes.unwrap_or(defaults.max_unpacked_bytes),
        max_members: max_zip_members.unwrap_or(defaults.max_members),
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
pub(crate) struct Listed {
    /// Where to open it: a local path, or the path on the source's server.
    pub path: PathBuf,
    /// How messages and records' origins name it: the path, or the server's URL and the path.
    pub shown: String,
    /// Its path as `_file_path` gives it: on a server, the path it was dropped under (it may be
    /// read from a claimed name).
    pub file_path: String,
    /// The ledger's key: the canonical path, the same whatever the working directory; for a
    /// file on a server, its URL.
    pub key: String,
    pub mtime_ns: i64,
    /// Bytes, when listed.
    pub size: u64,
    /// A local regular file's device and inode number, when listed; `None` for a file on a
    /// server, and for a local one that is not a regular file (a pipe), which is read as it
    /// comes, unchecked.
    pub inode: Option<(u64, u64)>,
}

/// Where the files of a source are opened.
pub(crate) enum Opener {
    Local,
    /// On a server, streamed from it.
    Remote(Connection),
}

/// The file being read.
struct Reading {
    /// Its streams: one, or one per member of a zip archive.
    parts: Unpacked,
    /// Of the stream being read.
    decoder: Box<dyn Decoder>,
    /// Records the decoder gave so far, for the position of a value that does not fit the
    /// schema.
    records: u64,
    origin: Arc<Origin>,
    listed: Listed,
    digest: SharedDigest,
    /// A local file's handle, to see after reading whether it changed meanwhile.
    handle: Option<File>,
}

/// How files are read: the same for every file of a source.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// `None`: from each file's (or member's) name.
    pub format: Option<FormatConfig>,
    pub encoding: Option<TextEncoding>,
    pub limits: UnpackLimits,
    /// The most bytes one record may take (see [`crate::codecs::limit`]).
    pub max_record_bytes: u64,
    /// `None`: records stay as decoded.
    pub typing: Option<Typing>,
    /// Add `_file_name`, `_file_path`, `_file_size` and `_file_mtime` to every record.
    pub file_fields: bool,
}

pub struct FileSource {
    opener: Opener,
    files: VecDeque<Listed>,
    files_listed: usize,
    read: ReadOptions,
    current: Option<Reading>,
    cx: Option<RunContext>,
    /// Ledger entries are made unless `reprocess = "always"` or outside a pipeline run.
    ledger: bool,
    progress: SourceProgress,
    /// The file being read (as shown) and how its size turned out not to be the listed one,
    /// once its end was reached.
    size_check: Option<(String, SizeMismatch)>,
}

impl FileSource {
    /// The files `config` names, less those the ledger says were delivered already.
    pub fn new(
        config: &FileSourceConfig,
        cx: &RunContext,
        store: &mut dyn StateStore,
    ) -> Result<Self, StageError> {
        let path = cx.resolve(&config.path);
        let format = FormatConfig::named_or_inferred(&config.format, &config.path);
        if format.is_none() && !unpack::is_zip_name(&config.path) {
            return Err(StageError::Refused(format!(
                "cannot tell the format of {}: set `format`",
                config.path
            )));
        }
        let files = if is_pattern(&config.path) {
            list_matches(cx, &config.path, &path)?
        } else {
            std::fs::metadata(&path)
                .map_err(|e| StageError::io(path.display(), "read the file", e))?;
            vec![path]
        };
        let mut source = FileSource {
            opener: Opener::Local,
            files: VecDeque::new(),
            files_listed: 0,
            read: ReadOptions {
                format,
                encoding: config.encoding,
                limits: limits(config.max_unpacked_bytes, config.max_zip_members),
                max_record_bytes: config.max_record_bytes.unwrap_or(DEFAULT_MAX_RECORD_BYTES),
                typing: Typing::new(config.infer_types, config.schema.as_ref()),
                file_fields: config.file_fields,
            },
            current: None,
            cx: Some(cx.clone()),
            ledger: config.reprocess != Reprocess::Always,
            progress: SourceProgress::default(),
            size_check: None,
        };
        if files.is_empty()
            && is_pattern(&config.path)
            && let Some(folder) = missing_folder(&cx.resolve(&config.path))
        {
            // Nothing matched because there is nothing to look in: a share not mounted, a
            // path mistyped. The run ends "nothing new", so the report must say it.
            let warning = format!(
                "the folder {} of the source's `path` does not exist (a share that is not mounted, or a mistyped path?)",
                folder.display()
            );
            tracing::warn!("{warning}");
            source.progress.warnings.push(warning);
        }
        // A file matched twice (itself and through a symlink) is read once.
        let mut keys = std::collections::HashSet::new();
        for path in files {
            // A name the pattern matched comes from whoever writes the directory.
            if is_pattern(&config.path) && names::has_control(&path.to_string_lossy()) {
                let warning = names::skipped_warning(&path.to_string_lossy());
                tracing::warn!("{warning}");
                source.progress.warnings.push(warning);
                continue;
            }
            let listed = listed(path)?;
            let shown = listed.shown.clone();
            if !keys.insert(listed.key.clone()) {
                tracing::debug!(file = %shown, "the same file as one listed before, skipped");
                continue;
            }
            let delivered = match store
                .ledger_entry(&cx.pipeline, &listed.key)
                .map_err(StageError::from)?
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
    pub fn from_path(path: PathBuf, read: ReadOptions) -> Result<Self, StageError> {
        std::fs::metadata(&path).map_err(|e| StageError::io(path.display(), "read the file", e))?;
        Ok(FileSource {
            opener: Opener::Local,
            files: VecDeque::from([listed(path)?]),
            files_listed: 1,
            read,
            current: None,
            cx: None,
            ledger: false,
            progress: SourceProgress::default(),
            size_check: None,
        })
    }

    /// A source reading `files` from a server through `connection`, in the order given.
    /// Ledger entries are made for them (keyed by their URLs) when `ledger`.
    pub(crate) fn remote(
        connection: Connection,
        files: Vec<Listed>,
        read: ReadOptions,
        cx: &RunContext,
        ledger: bool,
    ) -> Self {
        FileSource {
            opener: Opener::Remote(connection),
            files_listed: files.len(),
            files: files.into(),
            read,
            current: None,
            cx: Some(cx.clone()),
            ledger,
            progress: SourceProgress::default(),
            size_check: None,
        }
    }

    /// The server the files are read from, for a source reading from one.
    pub(crate) fn connection(&mut self) -> Option<&mut Connection> {
        match &mut self.opener {
            Opener::Remote(connection) => Some(connection),
            Opener::Local => None,
        }
    }

    /// Adds what was found before reading (files already delivered, entries skipped with a
    /// warning) to the progress.
    pub(crate) fn add_progress(&mut self, found: SourceProgress) {
        self.progress
            .already_processed
            .extend(found.already_processed);
        self.progress.warnings.extend(found.warnings);
    }

    /// Skips a listed file with a warning: it is not delivered by this run, and the next run
    /// sees it again.
    fn skip(&mut self, listed: &Listed, why: &str) {
        let warning = format!("{} {why}: skipped", listed.shown);
        tracing::warn!("{warning}");
        self.progress.warnings.push(warning);
    }

    /// `listed` opened, checked to be the file that was listed; `None` (after a warning) when it
    /// is gone, changed since, or on a server cannot be opened by its listed name: nothing of it
    /// has been read, so the run goes on with the other files.
    fn open_listed(&mut self, listed: &Listed) -> Result<Option<Opened>, StageError> {
        let shown = &listed.shown;
        let problem = match &mut self.opener {
            Opener::Local => match File::open(&listed.path) {
                Ok(file) => {
                    if listed.inode.is_none() {
                        return Ok(Some((Box::new(file), None)));
                    }
                    let now = file
                        .metadata()
                        .map_err(|e| StageError::io(shown, "read the file", e))?;
                    match local_change(listed, &now, true) {
                        None => {
                            let handle = file
                                .try_clone()
                                .map_err(|e| StageError::io(shown, "open the file", e))?;
                            return Ok(Some((Box::new(file), Some(handle))));
                        }
                        Some(change) => format!("changed since it was listed ({change})"),
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    "is gone since it was listed".to_string()
                }
                Err(e) => return Err(StageError::io(shown, "open the file", e)),
            },
            Opener::Remote(connection) => {
                let path = listed.path.to_string_lossy();
                match connection.run("look up", |store| store.stat(&path))? {
                    None => "is gone since it was listed (or cannot be found by its listed name)"
                        .to_string(),
                    Some(now) => match remote_change(listed, &now, "now") {
                        Some(change) => format!("changed since it was listed ({change})"),
                        None => match connection.run("download", |store| store.open(&path)) {
                            Ok(reader) => return Ok(Some((reader, None))),
                            // The server's refusal, not the connection's failure.
                            Err(e) if !e.transient => {
                                format!("cannot be opened by its listed name ({})", e.message)
                            }
                            Err(e) => return Err(e.into()),
                        },
                    },
                }
            }
        };
        self.skip(listed, &problem);
        Ok(None)
    }

    /// The error of a read that failed. A file that changed while it was read is named as the
    /// reason instead of what the decoder made of it: found at its end not to have its listed
    /// size, or, when the decoder stopped before the end on what it could not read (a row
    /// joined from the old content and the new, `expected 4 fields, found 6`), found changed
    /// by a look at it then.
    fn read_failed(&mut self, error: StageError) -> StageError {
        if let Some((shown, mismatch)) = &self.size_check
            && let Some(what) = mismatch.get()
        {
            return changed_while_read(shown, what);
        }
        let malformed = matches!(
            error,
            StageError::Codec(CodecError::Malformed(_) | CodecError::BadRecord { .. })
        );
        if !malformed {
            return error;
        }
        let Some(reading) = self.current.take() else {
            return error;
        };
        let Reading {
            parts,
            decoder,
            listed,
            handle,
            ..
        } = reading;
        drop((parts, decoder));
        if let Opener::Remote(connection) = &mut self.opener {
            // A download given up on midway leaves an FTP connection waiting for its reply.
            connection.disconnect();
        }
        match change_after_read(&mut self.opener, &listed, handle.as_ref()) {
            Ok(Some(what)) => changed_while_read(&listed.shown, &what),
            // Unchanged (or it cannot be looked at): the decoder's error is the reason.
            _ => error,
        }
    }

    /// Checks that a file read to its end did not change while it was read: the same size
    /// and modification time as listed (and on a server, still there under its name).
    fn check_after_read(
        &mut self,
        listed: &Listed,
        handle: Option<File>,
    ) -> Result<(), StageError> {
        match change_after_read(&mut self.opener, listed, handle.as_ref())? {
            Some(what) => Err(changed_while_read(&listed.shown, &what)),
            None => Ok(()),
        }
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
        let Some((file, handle)) = self.open_listed(&listed)? else {
            return Ok(true);
        };
        let shown = listed.shown.clone();
        tracing::debug!(file = %shown, "reading");
        // A regular file's bytes are counted against its listed size, at its end.
        let file: Box<dyn Read + Send> =
            match listed.inode.is_some() || matches!(self.opener, Opener::Remote(_)) {
                true => {
                    let mismatch = SizeMismatch::default();
                    self.size_check = Some((shown.clone(), mismatch.clone()));
                    Box::new(SizeChecked {
                        inner: file,
                        listed: listed.size,
                        read: 0,
                        mismatch,
                    })
                }
                false => {
                    self.size_check = None;
                    file
                }
            };
        // Outside a pipeline run (`convert`) no ledger or report records the file's hash.
        let (reader, digest) = match &self.cx {
            Some(cx) => HashingReader::new(file, Some(cx.bytes_read.clone())),
            None => HashingReader::counting(file),
        };
        // A workbook is a zip archive itself: only one named `.zip` is an archive of files.
        let workbook = !unpack::is_zip_name(&shown)
            && FormatConfig::named_or_inferred(&self.read.format, &shown)
                .is_some_and(|format| format.is_binary());
        let mut parts = unpack::unpack(Box::new(reader), &shown, self.read.limits, !workbook)?;
        let Some(part) = parts.next_part()? else {
            // An archive with no files in it: read, and nothing in it.
            self.finish_file(listed, digest, handle)?;
            return Ok(true);
        };
        let (decoder, origin) = self.decoder(part)?;
        self.current = Some(Reading {
            parts,
            decoder,
            records: 0,
            origin,
            listed,
            digest,
            handle,
        });
        Ok(true)
    }

    /// The decoder of one stream of a file, and the origin its records name.
    fn decoder(&self, part: Part) -> Result<(Box<dyn Decoder>, Arc<Origin>), StageError> {
        let format = match &self.read.format {
            Some(format) => format.clone(),
            None => FormatConfig::infer(&part.name).ok_or_else(|| {
                StageError::Refused(format!(
                    "cannot tell the format of {} from its name: set the source's `format` (one of {})",
                    part.label,
                    FormatConfig::names()
                ))
            })?,
        };
        let decoder = format.decoder(
            part.reader,
            &part.label,
            self.read.encoding,
            self.read.max_record_bytes,
        )?;
        Ok((decoder, Arc::new(Origin { path: part.label })))
    }

    /// Records a file read to its end, once it is found not to have changed meanwhile.
    fn finish_file(
        &mut self,
        listed: Listed,
        digest: SharedDigest,
        handle: Option<File>,
    ) -> Result<(), StageError> {
        self.check_after_read(&listed, handle)?;
        let (size, sha256) = digest.finish();
        self.progress.units += 1;
        self.progress.files_read.push(FileDigest {
            path: listed.shown,
            size,
            sha256: sha256.clone(),
        });
        if let (true, Some(cx)) = (self.ledger, &self.cx) {
            self.progress.changes.push(StateChange::Ledger(LedgerEntry {
                path: listed.key,
                size,
                mtime_ns: listed.mtime_ns,
                sha256,
                processed_at: cx.started_at.to_rfc3339(),
                run_id: cx.run_id.clone(),
            }));
        }
        Ok(())
    }
}

/// A listed file opened: its stream, and for a local file, a handle to look at it again after
/// reading.
type Opened = (Box<dyn Read + Send>, Option<File>);

/// How the bytes of a file read to its end differ from its listed size (`size 1000 listed,
/// 1500 read`), once they were found to.
type SizeMismatch = Arc<std::sync::OnceLock<String>>;

/// A file's bytes, counted: at the end, as many as its listed size must have come, or the read
/// fails there (before a decoder makes a record of a cut last line).
struct SizeChecked {
    inner: Box<dyn Read + Send>,
    listed: u64,
    read: u64,
    mismatch: SizeMismatch,
}

impl Read for SizeChecked {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.read += read as u64;
        if read == 0 && !buffer.is_empty() && self.read != self.listed {
            let what = self
                .mismatch
                .get_or_init(|| format!("size {} listed, {} read", self.listed, self.read));
            return Err(std::io::Error::other(what.clone()));
        }
        Ok(read)
    }
}

/// The error of a file that changed while it was read: nothing of the run is delivered (its
/// records may be in the sinks' outputs already, which the failed run discards), and the
/// ledger does not have it, so the next run reads it again.
fn changed_while_read(shown: &str, what: &str) -> StageError {
    StageError::Refused(format!(
        "{shown} changed while it was read ({what}): this run delivers nothing, and the next run reads the file again"
    ))
}

/// How a file that was read (to its end, or until the decoder stopped) is not as listed now:
/// for a local file, what its open handle shows; on a server, its path (gone since: nothing to
/// compare with; read to its end, its bytes were as many as listed).
fn change_after_read(
    opener: &mut Opener,
    listed: &Listed,
    handle: Option<&File>,
) -> Result<Option<String>, StageError> {
    Ok(match opener {
        Opener::Local => match handle {
            Some(handle) => {
                let now = handle
                    .metadata()
                    .map_err(|e| StageError::io(&listed.shown, "read the file", e))?;
                local_change(listed, &now, false)
            }
            None => None,
        },
        Opener::Remote(connection) => {
            let path = listed.path.to_string_lossy();
            connection
                .run("look up", |store| store.stat(&path))?
                .and_then(|now| remote_change(listed, &now, "after reading"))
        }
    })
}

/// How a local file is not the one listed: another file under its name (`at_open`), another
/// size or modification time.
fn local_change(listed: &Listed, now: &std::fs::Metadata, at_open: bool) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let when = if at_open { "now" } else { "after reading" };
    if at_open && listed.inode != Some((now.dev(), now.ino())) {
        return Some("another file under its name now".into());
    }
    if now.len() != listed.size {
        return Some(format!("size {} listed, {} {when}", listed.size, now.len()));
    }
    if mtime_ns(now) != listed.mtime_ns {
        return Some(format!(
            "modified again: modification time not the listed one {when}"
        ));
    }
    None
}

/// How a file on a server is not as listed: another size, or another modification time
/// (when the server tells it both times).
fn remote_change(
    listed: &Listed,
    now: &crate::filestore::RemoteEntry,
    when: &str,
) -> Option<String> {
    if now.size != listed.size {
        return Some(format!("size {} listed, {} {when}", listed.size, now.size));
    }
    let now_ns = now
        .mtime
        .map(|seconds| seconds.saturating_mul(1_000_000_000));
    match now_ns {
        Some(ns) if listed.mtime_ns != 0 && ns != listed.mtime_ns => Some(format!(
            "modified again: modification time not the listed one {when}"
        )),
        _ => None,
    }
}

fn mtime_ns(meta: &std::fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i64)
}

/// Adds the fields `file_fields` asks for, describing `file`, to `records`.
fn add_file_fields(records: &mut [crate::record::Record], file: &Listed) {
    use crate::record::Value;
    let path = &file.file_path;
    let name = path.rsplit('/').next().unwrap_or(path);
    // Unknown (0) when the server gave none.
    let mtime = match file.mtime_ns {
        0 => Value::Null,
        ns => Value::Timestamp(chrono::DateTime::from_timestamp_nanos(ns).fixed_offset()),
    };
    let fields: [(&str, Value); 4] = [
        ("_file_name", Value::String(name.into())),
        ("_file_path", Value::String(path.as_str().into())),
        ("_file_size", Value::Integer(file.size as i64)),
        ("_file_mtime", mtime),
    ];
    let fields: Vec<(FieldName, Value)> = fields
        .into_iter()
        .map(|(name, value)| (FieldName::from(name), value))
        .collect();
    for record in records {
        for (name, value) in &fields {
            record.insert(name.clone(), value.clone());
        }
    }
}

/// Types the records just decoded into `out`. One whose value does not fit is moved to the
/// rejects when quarantining, else the error.
fn type_records(
    typing: &Typing,
    out: &mut Batch,
    reading: &mut Reading,
    quarantine: bool,
) -> Result<(), CodecError> {
    let first = reading.records;
    reading.records += out.records.len() as u64;
    typing.apply_to_decoded(
        &mut out.records,
        &reading.origin.path,
        first,
        quarantine,
        &mut out.rejects,
    )
}

/// The folder a glob pattern's matches must be in (its leading part without wildcards), when
/// it does not exist.
fn missing_folder(pattern: &Path) -> Option<PathBuf> {
    let folder: PathBuf = pattern
        .components()
        .take_while(|part| !is_pattern(&part.as_os_str().to_string_lossy()))
        .collect();
    (!folder.as_os_str().is_empty() && !folder.exists()).then_some(folder)
}

/// The regular files matching a glob pattern, sorted.
fn list_matches(cx: &RunContext, pattern: &str, shown: &Path) -> Result<Vec<PathBuf>, StageError> {
    let pattern = cx.resolve_pattern(pattern).display().to_string();
    let shown = shown.display().to_string();
    let mut files = Vec::new();
    let matches = glob::glob_with(&pattern, glob_options())
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
    use std::os::unix::fs::MetadataExt;
    let shown = path.display().to_string();
    let meta = std::fs::metadata(&path).map_err(|e| StageError::io(&shown, "read the file", e))?;
    let key = std::fs::canonicalize(&path)
        .map_err(|e| StageError::io(&shown, "read the file", e))?
        .display()
        .to_string();
    Ok(Listed {
        shown: path.display().to_string(),
        file_path: path.display().to_string(),
        path,
        key,
        mtime_ns: mtime_ns(&meta),
        size: meta.len(),
        inode: meta.is_file().then(|| (meta.dev(), meta.ino())),
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
        self.next_records(out, max)
            .map_err(|error| self.read_failed(error))
    }

    fn progress(&mut self) -> SourceProgress {
        std::mem::take(&mut self.progress)
    }
}

impl FileSource {
    /// The next batch of records, from the file being read or the next one.
    fn next_records(&mut self, out: &mut Batch, max: usize) -> Result<bool, StageError> {
        out.clear();
        loop {
            if self.current.is_none() && !self.open_next()? {
                return Ok(false);
            }
            // None: the file was skipped, or was an archive with nothing in it.
            let Some(reading) = self.current.as_mut() else {
                continue;
            };
            match reading.decoder.next_batch(&mut out.records, max) {
                Ok(true) => {
                    out.origin = Some(reading.origin.clone());
                    if self.read.file_fields {
                        add_file_fields(&mut out.records, &reading.listed);
                    }
                    if let Some(typing) = &self.read.typing {
                        let quarantine = self.cx.as_ref().is_some_and(|cx| cx.quarantine);
                        type_records(typing, out, reading, quarantine)?;
                    }
                    return Ok(true);
                }
                Ok(false) => {
                    for warning in reading.decoder.take_warnings() {
                        tracing::warn!("{warning}");
                        self.progress.warnings.push(warning);
                    }
                    if let Some(part) = reading.parts.next_part()? {
                        let (decoder, origin) = self.decoder(part)?;
                        let reading = self.current.as_mut().expect("a file is open");
                        reading.decoder = decoder;
                        reading.records = 0;
                        reading.origin = origin;
                    } else {
                        let done = self.current.take().expect("a file is open");
                        // The reader is closed first (an FTP download's reply is read).
                        drop(done.parts);
                        drop(done.decoder);
                        self.finish_file(done.listed, done.digest, done.handle)?;
                    }
                    if !out.rejects.is_empty() {
                        return Ok(true);
                    }
                }
                Err(CodecError::BadRecord { malformed, raw })
                    if self.cx.as_ref().is_some_and(|cx| cx.quarantine) =>
                {
                    out.origin = Some(reading.origin.clone());
                    out.rejects.push(Reject::of_bad_record(*malformed, raw));
                    if out.rejects.len() >= max {
                        return Ok(true);
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
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
            encoding: None,
            max_unpacked_bytes: None,
            max_zip_members: None,
            max_record_bytes: None,
            infer_types: false,
            schema: None,
            file_fields: false,
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
