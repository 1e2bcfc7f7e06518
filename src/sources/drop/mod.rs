//! The `sftp` and `ftps` sources: files partners drop on a server, picked up once each. A file
//! is taken only when it is complete (old enough, a minute by default; unchanged between two
//! listings; or announced by a marker file), read straight from the server into its decoder, and remembered in the
//! ledger (its URL, size, modification time, SHA-256) when the run commits, so that a rerun
//! takes what was not delivered and nothing twice. What happens to a file after that (kept,
//! deleted, moved to an archive) happens only once the run has committed; a run that stops
//! before leaves it where it was, and the next run does it for delivered files still there.
//!
//! Only regular files are data: a link in the drop (`passwd.csv -> /etc/passwd`) is skipped
//! with a warning unless `follow_symlinks` says the partner's links are to be read.
//!
//! Several consumers sharing a drop can claim files first: a taken file is renamed to a hidden
//! name of this pipeline's (`.orders.csv.claimed-by-PIPELINE`) before it is read, and a claim a
//! failed run left is taken up again by the next run of the same pipeline.
//!
//! A file or directory whose name has a control character (a newline, a tab, an escape) is not
//! taken: it is left on the server with a warning naming it escaped (see [`crate::names`]).

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use schemars::JsonSchema;
use serde::Deserialize;

use super::file::{FileSource, Listed, ReadOptions, Reprocess};
use crate::codecs::limit::DEFAULT_MAX_RECORD_BYTES;
use crate::codecs::types::{FieldType, Typing};
use crate::codecs::{FormatConfig, TextEncoding};
use crate::config::{Invalid, Validate};
use crate::error::StageError;
use crate::filestore::{self, Connection, EntryKind, RemoteEntry, ServerConfig};
use crate::names;
use crate::record::Batch;
use crate::stage::{RunContext, Source, SourceProgress};
use crate::state::StateStore;
use crate::template::{PathTemplate, TemplateValues};

/// Picks up files dropped on a server.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PickupSourceConfig<S> {
    /// The server and how to log in, e.g. `{ host = "sftp.partner.example", user = "etl",
    /// private_key = "~/.ssh/id_ed25519" }`. Required.
    pub server: S,
    /// The directory on the server the files are dropped in; a relative path is relative to
    /// the login directory. Required.
    pub dir: String,
    /// Also take files in the directories below `dir`. Default `false`.
    #[serde(default)]
    pub recursive: bool,
    /// Read a symbolic link in the drop as the file it points to. By default links (and
    /// anything else that is not a regular file) are skipped with a warning, so that a link
    /// such as `passwd.csv -> /etc/passwd` is not delivered as the partner's data. A link to a
    /// directory is always skipped (never listed into). Default `false`.
    #[serde(default)]
    pub follow_symlinks: bool,
    /// Glob patterns of the files to take (`*`, `?`, `[abc]`), matched against the file's
    /// name, or, for a pattern with a `/`, its path below `dir`. Default `["*"]`.
    #[serde(default = "default_include")]
    pub include: Vec<String>,
    /// Glob patterns of files to leave alone, matched like `include`. Default: none.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Names never taken, because they are files still being written or hidden: default
    /// `[".*", "*.part", "*.tmp"]`; `[]` takes them all.
    #[serde(default = "default_ignore")]
    pub ignore: Vec<String>,
    /// The order files are read in: `"name"` (their paths, sorted) or `"mtime"` (oldest
    /// first, then by path). Default `"name"`.
    #[serde(default)]
    pub order: PickupOrder,
    /// The most files taken in one run; the rest wait for the next. Default: no limit.
    pub max_files: Option<usize>,
    /// A file is taken only once its modification time (as the server gives it) is this many
    /// seconds old by this machine's clock. Default 60, unless `marker` or `stable_secs` says
    /// when a file is complete (then 0); 0 takes files at once.
    pub min_age_secs: Option<u64>,
    /// A file is taken only if its size and modification time are the same on two listings
    /// this many seconds apart (the run waits that long once). Default: one listing.
    pub stable_secs: Option<u64>,
    /// A file is taken only once a marker file beside it exists, named by this pattern with
    /// `{name}` for the file's name, e.g. `"{name}.done"` or `"{name}.ok"`. Marker files are
    /// never read as data, and are deleted or moved with their file. Default: none.
    pub marker: Option<String>,
    /// When a file an earlier run delivered is still there: `"changed"` (taken again when its
    /// content changed: a different size, or a different modification time and SHA-256, which
    /// is then read from the server), `"never"`, or `"always"` (no ledger). Default
    /// `"changed"`.
    #[serde(default)]
    pub reprocess: Reprocess,
    /// What happens to a file once the run that read it has committed: `"keep"` it,
    /// `"delete"` it, or `"move"` it to `archive_dir`. Default `"keep"`.
    #[serde(default)]
    pub after: AfterPickup,
    /// Where `after = "move"` moves files, as a template on the server (`{pipeline}`,
    /// `{run_date}`, `{run_ts}`), e.g. `"archive/{run_date}"`; created as needed. Files keep
    /// their paths below `dir`; a file of the same name there is replaced. With `recursive`,
    /// it must not be inside `dir`. Required with `after = "move"`.
    pub archive_dir: Option<String>,
    /// Rename each file to a hidden name of this pipeline (`.NAME.claimed-by-PIPELINE`) before
    /// reading it, so that other consumers of the same drop leave it alone; a claim a failed
    /// run left is read by the next run. With `after = "keep"` the file gets its name back
    /// once delivered. Default `false`.
    #[serde(default)]
    pub claim: bool,
    /// Add the file's `_file_name`, `_file_path` (on the server), `_file_size` (bytes) and
    /// `_file_mtime` (a timestamp) to every record, for transforms and outputs. Default
    /// `false`.
    #[serde(default)]
    pub file_fields: bool,
    /// The files' format, e.g. `{ type = "csv", delimiter = ";" }`. Default: inferred from
    /// each file's name (`.csv`, `.xml`, ...; through `.gz`, and each member's name in a
    /// `.zip`). Gzip files and zip archives are unpacked on the fly.
    pub format: Option<FormatConfig>,
    /// The text encoding of files without a byte-order mark, as for the `file` source.
    /// Default: UTF-8.
    pub encoding: Option<TextEncoding>,
    /// Give text values the type they read as, as for the `file` source. Default `false`.
    #[serde(default)]
    pub infer_types: bool,
    /// The type of named fields, as for the `file` source. Default: none.
    pub schema: Option<BTreeMap<String, FieldType>>,
    /// The most bytes one compressed file may unpack to. Default 4294967296 (4 GiB).
    pub max_unpacked_bytes: Option<u64>,
    /// The most entries a zip archive may have. Default 10000.
    pub max_zip_members: Option<usize>,
    /// The most bytes one record may take in a file, as for the `file` source. Default
    /// 67108864 (64 MiB).
    pub max_record_bytes: Option<u64>,
}

fn default_include() -> Vec<String> {
    vec!["*".into()]
}

fn default_ignore() -> Vec<String> {
    vec![".*".into(), "*.part".into(), "*.tmp".into()]
}

/// The order dropped files are read in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PickupOrder {
    #[default]
    Name,
    Mtime,
}

/// What happens to a picked-up file once its run committed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AfterPickup {
    #[default]
    Keep,
    Delete,
    Move,
}

impl std::fmt::Display for AfterPickup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AfterPickup::Keep => "keep",
            AfterPickup::Delete => "delete",
            AfterPickup::Move => "move",
        })
    }
}

/// `min_age_secs` when neither it, `marker` nor `stable_secs` is set: a file modified within
/// the last minute may still be being written.
const DEFAULT_MIN_AGE_SECS: u64 = 60;

impl<S: ServerConfig> Validate for PickupSourceConfig<S> {
    fn problems(&self) -> Vec<Invalid> {
        let mut problems = filestore::server_problems(&self.server);
        for (key, patterns) in [
            ("include", &self.include),
            ("exclude", &self.exclude),
            ("ignore", &self.ignore),
        ] {
            for pattern in patterns {
                if let Err(e) = glob::Pattern::new(pattern) {
                    problems.push(Invalid::new(
                        key,
                        format!("invalid glob pattern `{pattern}`: {e}"),
                    ));
                }
            }
        }
        if let Some(marker) = &self.marker
            && (!marker.contains("{name}") || marker.contains('/') || marker == "{name}")
        {
            problems.push(Invalid::new(
                "marker",
                "must be a file name made of `{name}` and more, e.g. \"{name}.done\"",
            ));
        }
        match (&self.after, &self.archive_dir) {
            (AfterPickup::Move, None) => problems.push(Invalid::new(
                "archive_dir",
                "is required with `after = \"move\"`: where to move the files",
            )),
            (AfterPickup::Move, Some(archive)) => {
                if let Err(message) = PathTemplate::parse(archive) {
                    problems.push(Invalid::new("archive_dir", message));
                }
                // A relative archive is inside a `dir` of "" or "." (the login directory).
                let inside = match self.dir.trim_end_matches('/') {
                    "" | "." => !archive.starts_with('/'),
                    dir => archive.starts_with(&format!("{dir}/")),
                };
                if self.recursive && inside {
                    problems.push(Invalid::new(
                        "archive_dir",
                        "is inside `dir`, which `recursive` reads: archived files would be picked up again",
                    ));
                }
            }
            (_, Some(_)) => problems.push(Invalid::new(
                "archive_dir",
                "is used by `after = \"move\"` only",
            )),
            (_, None) => {}
        }
        if self.max_files == Some(0) {
            problems.push(Invalid::new("max_files", "must be at least 1"));
        }
        problems.extend(super::file::read_problems(
            &self.format,
            None,
            self.encoding,
            self.schema.as_ref(),
            self.max_unpacked_bytes,
            self.max_record_bytes,
        ));
        problems
    }
}

/// A name matcher: a pattern with a `/` is matched against the path below the directory (`*`
/// not crossing a `/`), any other against the file's name.
struct Patterns(Vec<glob::Pattern>);

impl Patterns {
    fn new(patterns: &[String]) -> Result<Self, StageError> {
        patterns
            .iter()
            .map(|p| {
                glob::Pattern::new(p)
                    .map_err(|e| StageError::Refused(format!("invalid glob pattern `{p}`: {e}")))
            })
            .collect::<Result<_, _>>()
            .map(Patterns)
    }

    fn matches(&self, relative: &str) -> bool {
        let name = filestore::file_name(relative);
        let options = glob::MatchOptions {
            require_literal_separator: true,
            ..glob::MatchOptions::new()
        };
        self.0.iter().any(|pattern| {
            if pattern.as_str().contains('/') {
                pattern.matches_with(relative, options)
            } else {
                pattern.matches_with(name, options)
            }
        })
    }
}

/// A file listed in the drop.
#[derive(Debug, Clone)]
struct Dropped {
    entry: RemoteEntry,
    /// Its path below `dir`.
    relative: String,
}

/// A file this run takes, or one an earlier run delivered that is still to be finished.
#[derive(Debug, Clone)]
struct Taken {
    /// Its path on the server as dropped, and where it is read from (its claimed name, when
    /// claiming).
    path: String,
    read_from: String,
    /// Its path below `dir`, kept in the archive.
    relative: String,
    /// How the source names it (the server's URL and the path): the ledger's key.
    shown: String,
    marker: Option<String>,
    /// As listed, to tell whether it changed before it is deleted or moved.
    size: u64,
    mtime: Option<i64>,
}

pub struct PickupSource {
    inner: FileSource,
    /// The files taken, and those delivered by earlier runs still waiting for `after`.
    taken: Vec<Taken>,
    leftovers: Vec<Taken>,
    /// The files read to the end (by how they are shown), once the reading is over.
    delivered: HashSet<String>,
    after: AfterPickup,
    archive_dir: Option<PathTemplate>,
    cx: RunContext,
}

impl PickupSource {
    pub fn new<S: ServerConfig>(
        config: &PickupSourceConfig<S>,
        cx: &RunContext,
        store: &mut dyn StateStore,
    ) -> Result<Self, StageError> {
        let mut connection = config.server.connection(cx)?;
        let location = connection.location().to_string();
        let claim_suffix = format!(".claimed-by-{}", cx.pipeline);
        let include = Patterns::new(&config.include)?;
        let exclude = Patterns::new(&config.exclude)?;
        let ignore = Patterns::new(&config.ignore)?;

        let (dropped, refused) = list(&mut connection, &config.dir, config.recursive, &ignore)?;
        let mut progress = SourceProgress::default();
        for path in refused {
            let warning = names::skipped_warning(&url(&location, &path));
            tracing::warn!("{warning}");
            progress.warnings.push(warning);
        }
        let names: HashSet<&str> = dropped.iter().map(|d| d.entry.path.as_str()).collect();
        let marker_of = |path: &str| {
            config.marker.as_ref().map(|pattern| {
                filestore::join(
                    filestore::parent(path),
                    &pattern.replace("{name}", filestore::file_name(path)),
                )
            })
        };
        // Marker files are not data.
        let markers: HashSet<String> = dropped
            .iter()
            .filter_map(|d| marker_of(&d.entry.path))
            .collect();
        let taken_as = |dropped: &Dropped, path: String, relative: String| Taken {
            shown: url(&location, &path),
            marker: marker_of(&path),
            path,
            read_from: dropped.entry.path.clone(),
            relative,
            size: dropped.entry.size,
            mtime: dropped.entry.mtime,
        };

        // This pipeline's claims a run that did not commit left are taken again as they are;
        // other files once the ledger has not seen them and they are ready.
        let mut resumed = Vec::new();
        let mut candidates = Vec::new();
        for file in &dropped {
            let claimed = config
                .claim
                .then(|| claimed_original(&file.entry.name, &claim_suffix))
                .flatten();
            if claimed.is_none()
                && (ignore.matches(&file.entry.name)
                    || !include.matches(&file.relative)
                    || exclude.matches(&file.relative)
                    || markers.contains(&file.entry.path))
            {
                continue;
            }
            // Only regular files are data: links only when followed, to a file.
            let Some(file) = regular_file(
                &mut connection,
                file,
                config.follow_symlinks,
                &location,
                &mut progress.warnings,
            )?
            else {
                continue;
            };
            if let Some(original) = claimed {
                let path = filestore::join(filestore::parent(&file.entry.path), original);
                let relative = filestore::join(filestore::parent(&file.relative), original);
                let taken = taken_as(&file, path, relative);
                resumed.push((file, taken));
                continue;
            }
            let taken = taken_as(&file, file.entry.path.clone(), file.relative.clone());
            candidates.push((file, taken));
        }

        let mut leftovers = Vec::new();
        let mut ready = Vec::new();
        for (file, taken) in resumed.into_iter().chain(candidates) {
            let is_claim = taken.read_from != taken.path;
            let delivered = match config.reprocess {
                Reprocess::Always => None,
                Reprocess::Changed | Reprocess::Never => store
                    .ledger_entry(&cx.pipeline, &taken.shown)
                    .map_err(StageError::from)?,
            };
            if let Some(delivered) = delivered {
                // `never` reads nothing again, not even to hash it.
                let unchanged = match config.reprocess {
                    Reprocess::Never => {
                        file.entry.size == delivered.size
                            && mtime_ns(&file.entry) == delivered.mtime_ns
                    }
                    _ => is_unchanged(&mut connection, &file.entry, &taken, &delivered)?,
                };
                if unchanged {
                    tracing::debug!(file = %taken.shown, run = %delivered.run_id, "already delivered, skipped");
                    progress.already_processed.push(taken.shown.clone());
                    // Still to be deleted, archived, or given its name back.
                    if config.after != AfterPickup::Keep || is_claim {
                        leftovers.push(taken);
                    }
                    continue;
                }
                if config.reprocess == Reprocess::Never {
                    tracing::info!(file = %taken.shown, "changed since it was delivered, left alone (reprocess = \"never\")");
                    continue;
                }
                tracing::info!(file = %taken.shown, "changed since it was delivered, reading it again");
            }
            if is_claim || is_ready(config, &file.entry, &names, &taken) {
                ready.push((file, taken));
            }
        }
        if let Some(seconds) = config.stable_secs {
            ready = keep_stable(
                &mut connection,
                ready,
                &config.dir,
                config.recursive,
                &ignore,
                Duration::from_secs(seconds),
                cx,
            )?;
        }
        match config.order {
            PickupOrder::Name => ready.sort_by(|a, b| a.1.path.cmp(&b.1.path)),
            PickupOrder::Mtime => ready
                .sort_by(|a, b| (a.0.entry.mtime, &a.1.path).cmp(&(b.0.entry.mtime, &b.1.path))),
        }
        if let Some(max) = config.max_files
            && ready.len() > max
        {
            tracing::info!(
                taken = max,
                waiting = ready.len() - max,
                "max_files reached: the rest wait for the next run"
            );
            ready.truncate(max);
        }

        let mut taken = Vec::new();
        let mut listed = Vec::new();
        for (file, mut chosen) in ready {
            // A dry run or a preview changes nothing on the server.
            if config.claim && chosen.read_from == chosen.path && !cx.read_only {
                let claimed_name = format!(".{}{claim_suffix}", filestore::file_name(&chosen.path));
                if claimed_name.len() > names::MAX_NAME_BYTES {
                    // Left alone every run in silence otherwise: the rename would fail.
                    let warning = format!(
                        "{} is not taken: its claimed name `.NAME{claim_suffix}` would be {} bytes, more than a file name can be ({}); shorten the file's name (or the pipeline's, or set `claim = false`)",
                        chosen.shown,
                        claimed_name.len(),
                        names::MAX_NAME_BYTES
                    );
                    tracing::warn!("{warning}");
                    progress.warnings.push(warning);
                    continue;
                }
                let claimed = filestore::join(filestore::parent(&chosen.path), &claimed_name);
                let renamed =
                    connection.run("claim", |store| store.rename(&chosen.path, &claimed, false));
                if let Err(e) = renamed {
                    // Another consumer's claim took it away: as it should be. Still there, the
                    // file cannot be claimed (permissions), and would be left alone every run.
                    let still_there = connection
                        .run("stat", |store| store.stat(&chosen.path))
                        .is_ok_and(|entry| entry.is_some());
                    if still_there {
                        let warning =
                            format!("{} is not taken: it cannot be claimed ({e})", chosen.shown);
                        tracing::warn!("{warning}");
                        progress.warnings.push(warning);
                    } else {
                        tracing::info!(file = %chosen.shown, "not claimed: another consumer took it");
                    }
                    continue;
                }
                chosen.read_from = claimed;
            }
            listed.push(Listed {
                path: chosen.read_from.clone().into(),
                shown: chosen.shown.clone(),
                file_path: chosen.path.clone(),
                key: chosen.shown.clone(),
                mtime_ns: mtime_ns(&file.entry),
                size: file.entry.size,
                inode: None,
            });
            taken.push(chosen);
        }

        let read = ReadOptions {
            format: config.format.clone(),
            encoding: config.encoding,
            limits: super::file::limits(config.max_unpacked_bytes, config.max_zip_members),
            max_record_bytes: config.max_record_bytes.unwrap_or(DEFAULT_MAX_RECORD_BYTES),
            typing: Typing::new(config.infer_types, config.schema.as_ref()),
            file_fields: config.file_fields,
        };
        let mut inner = FileSource::remote(
            connection,
            listed,
            read,
            cx,
            config.reprocess != Reprocess::Always,
        );
        inner.add_progress(progress);
        Ok(PickupSource {
            inner,
            taken,
            leftovers,
            delivered: HashSet::new(),
            after: config.after,
            archive_dir: config
                .archive_dir
                .as_deref()
                .map(PathTemplate::parse)
                .transpose()
                .map_err(StageError::Refused)?,
            cx: cx.clone(),
        })
    }

    /// Keeps (with its name back, if claimed), deletes or archives one delivered file, and its
    /// marker first (so that a marker never announces a file that is gone). Each step is safe
    /// to repeat: a step whose answer was lost is found done.
    fn finish(&mut self, file: &Taken) -> Result<(), filestore::StoreError> {
        let archive = self.archive_dir.as_ref().map(|template| {
            template.render(&TemplateValues {
                pipeline: &self.cx.pipeline,
                started_at: self.cx.started_at,
                source_stem: None,
                part: 1,
            })
        });
        let after = self.after;
        if after == AfterPickup::Keep && file.read_from == file.path {
            return Ok(());
        }
        let connection = self
            .inner
            .connection()
            .expect("a pickup source reads from a server");
        // Dropped again since it was read: the new file is the next run's.
        let now = connection.run("look up", |store| store.stat(&file.read_from))?;
        if let Some(now) = now
            && (now.size != file.size || now.mtime != file.mtime)
        {
            return Err(filestore::StoreError {
                location: connection.location().to_string(),
                message: format!(
                    "{} changed after it was read: left for the next run",
                    file.read_from
                ),
                transient: false,
            });
        }
        // (where it is now, where it was dropped, its path below `dir`)
        let mut steps = Vec::new();
        if let Some(marker) = &file.marker {
            let relative = filestore::join(
                filestore::parent(&file.relative),
                filestore::file_name(marker),
            );
            steps.push((marker.clone(), marker.clone(), relative));
        }
        steps.push((
            file.read_from.clone(),
            file.path.clone(),
            file.relative.clone(),
        ));
        for (now_at, dropped_as, relative) in steps {
            match after {
                AfterPickup::Keep if now_at != dropped_as => {
                    move_once(connection, &now_at, &dropped_as, false)?
                }
                AfterPickup::Keep => {}
                AfterPickup::Delete => connection.run("remove", |store| store.remove(&now_at))?,
                AfterPickup::Move => {
                    let dir = archive
                        .as_deref()
                        .expect("validated: archive_dir with move");
                    let to = filestore::join(dir, &relative);
                    connection.run("create the archive directory", |store| {
                        store.create_dir_all(filestore::parent(&to))
                    })?;
                    move_once(connection, &now_at, &to, true)?;
                }
            }
        }
        Ok(())
    }
}

/// Renames `from` to `to`, or finds it done (`from` gone, `to` there) by a try whose answer was
/// lost: never replaces `to` with nothing.
fn move_once(
    connection: &mut Connection,
    from: &str,
    to: &str,
    replace: bool,
) -> Result<(), filestore::StoreError> {
    connection.run("move", |store| {
        if store.stat(from)?.is_none() && store.stat(to)?.is_some() {
            return Ok(());
        }
        store.rename(from, to, replace)
    })
}

/// The ledger's key of the file at `path`: the server's URL and the path.
fn url(location: &str, path: &str) -> String {
    if path.starts_with('/') {
        format!("{location}{path}")
    } else {
        format!("{location}/{path}")
    }
}

/// Whether a file not delivered yet is complete by the readiness rules: its marker is there,
/// and it is old enough.
fn is_ready<S>(
    config: &PickupSourceConfig<S>,
    entry: &RemoteEntry,
    names: &HashSet<&str>,
    taken: &Taken,
) -> bool {
    if let Some(marker) = &taken.marker
        && !names.contains(marker.as_str())
    {
        tracing::debug!(file = %entry.path, "no marker file yet, left for a later run");
        return false;
    }
    let min_age =
        config
            .min_age_secs
            .unwrap_or(if config.marker.is_some() || config.stable_secs.is_some() {
                0
            } else {
                DEFAULT_MIN_AGE_SECS
            });
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    if min_age > 0 && entry.mtime.is_none_or(|mtime| now - mtime < min_age as i64) {
        tracing::debug!(file = %entry.path, "too recent, left for a later run");
        return false;
    }
    true
}

/// Whether a listed file still has the content the ledger recorded: the same size and
/// modification time, or else (uploaded again, touched) the same SHA-256, read from the server.
fn is_unchanged(
    connection: &mut Connection,
    entry: &RemoteEntry,
    file: &Taken,
    delivered: &crate::state::LedgerEntry,
) -> Result<bool, StageError> {
    if entry.size != delivered.size {
        return Ok(false);
    }
    if mtime_ns(entry) == delivered.mtime_ns {
        return Ok(true);
    }
    let sha256 = connection.run("read", |store| {
        let reader = store.open(&file.read_from)?;
        crate::digest::sha256_reader(reader).map_err(|e| filestore::StoreError {
            location: String::new(),
            message: format!("cannot read {}: {e}", file.read_from),
            transient: true,
        })
    })?;
    Ok(sha256.1 == delivered.sha256)
}

/// The name a claimed file was dropped under, if `name` is one of this pipeline's claims
/// (`.NAME.claimed-by-PIPELINE`).
fn claimed_original<'a>(name: &'a str, suffix: &str) -> Option<&'a str> {
    name.strip_prefix('.')?
        .strip_suffix(suffix)
        .filter(|original| !original.is_empty())
}

fn mtime_ns(entry: &RemoteEntry) -> i64 {
    entry
        .mtime
        .map_or(0, |seconds| seconds.saturating_mul(1_000_000_000))
}

/// `file` as the regular file it is, or, for a link when `follow`, the one it points to;
/// `None`, with a warning in `warnings`, for anything else (links not followed, links to
/// directories or to nothing, pipes, devices).
fn regular_file(
    connection: &mut Connection,
    file: &Dropped,
    follow: bool,
    location: &str,
    warnings: &mut Vec<String>,
) -> Result<Option<Dropped>, StageError> {
    let problem = match file.entry.kind {
        EntryKind::File => return Ok(Some(file.clone())),
        EntryKind::Symlink if follow => match followed(connection, &file.entry)? {
            Some(entry) => {
                return Ok(Some(Dropped {
                    entry,
                    relative: file.relative.clone(),
                }));
            }
            None => "is a symbolic link to a directory or to nothing: skipped",
        },
        EntryKind::Symlink => {
            "is a symbolic link: skipped (`follow_symlinks = true` reads links to files)"
        }
        EntryKind::Dir | EntryKind::Other => "is not a regular file: skipped",
    };
    let warning = format!("{} {problem}", shown_name(&url(location, &file.entry.path)));
    tracing::warn!("{warning}");
    warnings.push(warning);
    Ok(None)
}

/// The file a link points to, under the link's path and name, if it is a regular file.
fn followed(
    connection: &mut Connection,
    link: &RemoteEntry,
) -> Result<Option<RemoteEntry>, StageError> {
    let target = connection.run("look up", |store| store.stat(&link.path))?;
    Ok(target
        .filter(|target| target.kind == EntryKind::File)
        .map(|target| RemoteEntry {
            size: target.size,
            mtime: target.mtime,
            kind: EntryKind::File,
            ..link.clone()
        }))
}

/// A name as a message shows it: quoted and escaped (`{:?}`) when it has characters that would
/// hide in a log line (control characters, spaces at either end).
fn shown_name(name: &str) -> String {
    let odd = name.chars().any(char::is_control) || name.trim() != name;
    match odd {
        true => format!("{name:?}"),
        false => name.to_string(),
    }
}

/// The entries in `dir` that are not directories (and those below it, when `recursive`: not
/// in directories `ignore` names, such as hidden ones, nor through links), with their paths
/// below `dir`; and the paths of the entries left out because their names have a control
/// character (see [`crate::names`]).
fn list(
    connection: &mut Connection,
    dir: &str,
    recursive: bool,
    ignore: &Patterns,
) -> Result<(Vec<Dropped>, Vec<String>), StageError> {
    let mut files = Vec::new();
    let mut refused = Vec::new();
    let mut pending = vec![(dir.to_string(), String::new())];
    while let Some((next, below)) = pending.pop() {
        for entry in connection.run("list", |store| store.list(&next))? {
            if names::has_control(&entry.name) {
                refused.push(entry.path);
                continue;
            }
            let relative = filestore::join(&below, &entry.name);
            if entry.is_dir() {
                if recursive && !ignore.matches(&entry.name) {
                    pending.push((entry.path.clone(), relative));
                }
            } else {
                files.push(Dropped { entry, relative });
            }
        }
    }
    // In the order of their paths, whatever the server's: warnings come in the same order.
    files.sort_by(|a, b| a.entry.path.cmp(&b.entry.path));
    Ok((files, refused))
}

/// The candidates whose size and modification time are the same on a second listing of the
/// drop `wait` later.
fn keep_stable(
    connection: &mut Connection,
    candidates: Vec<(Dropped, Taken)>,
    dir: &str,
    recursive: bool,
    ignore: &Patterns,
    wait: Duration,
    cx: &RunContext,
) -> Result<Vec<(Dropped, Taken)>, StageError> {
    if candidates.is_empty() {
        return Ok(candidates);
    }
    let wait = match cx.deadline {
        Some(deadline) => wait.min(deadline.saturating_duration_since(std::time::Instant::now())),
        None => wait,
    };
    tracing::info!(
        seconds = wait.as_secs(),
        "waiting to see which dropped files are complete"
    );
    std::thread::sleep(wait);
    let mut again: BTreeMap<String, RemoteEntry> = list(connection, dir, recursive, ignore)?
        .0
        .into_iter()
        .map(|file| (file.entry.path.clone(), file.entry))
        .collect();
    let mut stable = Vec::new();
    for (file, taken) in candidates {
        let now = match again.remove(&file.entry.path) {
            // A link taken is followed: its file is compared.
            Some(link) if link.kind == EntryKind::Symlink => followed(connection, &link)?,
            now => now,
        };
        let same =
            now.is_some_and(|now| now.size == file.entry.size && now.mtime == file.entry.mtime);
        if same {
            stable.push((file, taken));
        } else {
            tracing::info!(file = %taken.shown, "still changing, left for a later run");
        }
    }
    Ok(stable)
}

impl Source for PickupSource {
    fn next_batch(&mut self, out: &mut Batch, max: usize) -> Result<bool, StageError> {
        self.inner.next_batch(out, max)
    }

    fn progress(&mut self) -> SourceProgress {
        let progress = self.inner.progress();
        self.delivered
            .extend(progress.files_read.iter().map(|f| f.path.clone()));
        progress
    }

    fn after_commit(&mut self) -> Vec<String> {
        let mut files: Vec<Taken> = std::mem::take(&mut self.leftovers);
        files.extend(
            std::mem::take(&mut self.taken)
                .into_iter()
                .filter(|file| self.delivered.contains(&file.shown)),
        );
        let mut warnings = Vec::new();
        for file in files {
            if let Err(e) = self.finish(&file) {
                warnings.push(format!(
                    "{} was delivered, but `after = \"{}\"` failed: {e}; the next run tries again",
                    file.shown, self.after
                ));
            }
        }
        warnings
    }
}
