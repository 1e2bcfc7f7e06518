//! The `sftp` and `ftps` sources: files partners drop on a server, picked up once each. A file
//! is taken only when it is complete (old enough, unchanged between two listings, or announced
//! by a marker file), read straight from the server into its decoder, and remembered in the
//! ledger (its URL, size, modification time, SHA-256) when the run commits, so that a rerun
//! takes what was not delivered and nothing twice. What happens to a file after that (kept,
//! deleted, moved to an archive) happens only once the run has committed; a run that stops
//! before leaves it where it was, and the next run does it for delivered files still there.
//!
//! Several consumers sharing a drop can claim files first: a taken file is renamed to a hidden
//! name of this pipeline's (`.orders.csv.PIPELINE.claimed`) before it is read, and a claim a
//! failed run left is taken up again by the next run of the same pipeline.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use schemars::JsonSchema;
use serde::Deserialize;

use super::file::{FileSource, Listed, ReadOptions, Reprocess};
use crate::codecs::types::{FieldType, Typing};
use crate::codecs::{FormatConfig, TextEncoding};
use crate::config::{Invalid, Validate};
use crate::error::StageError;
use crate::filestore::{self, Connection, RemoteEntry, ServerConfig};
use crate::record::Batch;
use crate::sinks::template::{PathTemplate, TemplateValues};
use crate::stage::{RunContext, Source, SourceProgress};
use crate::state::StateStore;

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
    /// A file is taken only once its modification time is this many seconds old (by this
    /// machine's clock). Default: no minimum.
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
    /// `{run_date}`, `{run_ts}`), e.g. `"archive/{run_date}"`; created as needed. A file of the
    /// same name there is replaced. Required with `after = "move"`.
    pub archive_dir: Option<String>,
    /// Rename each file to a hidden name of this pipeline (`.NAME.PIPELINE.claimed`) before
    /// reading it, so that other consumers of the same drop leave it alone. Default `false`.
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
            (AfterPickup::Move, Some(dir)) => {
                if let Err(message) = PathTemplate::parse(dir) {
                    problems.push(Invalid::new("archive_dir", message));
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
        ));
        problems
    }
}

/// A name matcher: a pattern with a `/` is matched against the path below the directory, any
/// other against the file's name.
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
        self.0.iter().any(|pattern| {
            if pattern.as_str().contains('/') {
                pattern.matches(relative)
            } else {
                pattern.matches(name)
            }
        })
    }
}

/// A file this run takes.
#[derive(Debug, Clone)]
struct Taken {
    /// Its path on the server as dropped, and where it is read from (its claimed name, when
    /// claiming).
    path: String,
    read_from: String,
    /// How the source names it: the server's URL and the path.
    shown: String,
    marker: Option<String>,
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
    claim: bool,
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
        let claim_suffix = format!(".{}.claimed", cx.pipeline);
        let include = Patterns::new(&config.include)?;
        let exclude = Patterns::new(&config.exclude)?;
        let ignore = Patterns::new(&config.ignore)?;

        let entries = list(&mut connection, &config.dir, config.recursive)?;
        let names: HashSet<&str> = entries.iter().map(|e| e.path.as_str()).collect();
        let marker_of = |path: &str| {
            config.marker.as_ref().map(|pattern| {
                filestore::join(
                    filestore::parent(path),
                    &pattern.replace("{name}", filestore::file_name(path)),
                )
            })
        };
        // Marker files are not data.
        let markers: HashSet<String> = entries.iter().filter_map(|e| marker_of(&e.path)).collect();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);

        let mut candidates: Vec<(RemoteEntry, Taken)> = Vec::new();
        for entry in &entries {
            // This pipeline's claims, left by a run that did not commit: taken again.
            if config.claim
                && let Some(original) = claimed_original(&entry.name, &claim_suffix)
            {
                let path = filestore::join(filestore::parent(&entry.path), original);
                candidates.push((
                    entry.clone(),
                    Taken {
                        shown: format!("{location}/{path}"),
                        marker: marker_of(&path),
                        path,
                        read_from: entry.path.clone(),
                    },
                ));
                continue;
            }
            let relative = entry
                .path
                .strip_prefix(&config.dir)
                .unwrap_or(&entry.path)
                .trim_start_matches('/');
            if ignore.matches(relative)
                || !include.matches(relative)
                || exclude.matches(relative)
                || markers.contains(&entry.path)
            {
                continue;
            }
            let marker = marker_of(&entry.path);
            if let Some(marker) = &marker
                && !names.contains(marker.as_str())
            {
                tracing::debug!(file = %entry.path, "no marker file yet, left for a later run");
                continue;
            }
            if let Some(min_age) = config.min_age_secs
                && entry.mtime.is_none_or(|mtime| now - mtime < min_age as i64)
            {
                tracing::debug!(file = %entry.path, "too recent, left for a later run");
                continue;
            }
            candidates.push((
                entry.clone(),
                Taken {
                    shown: format!("{location}/{}", entry.path),
                    path: entry.path.clone(),
                    read_from: entry.path.clone(),
                    marker,
                },
            ));
        }

        if let Some(seconds) = config.stable_secs {
            candidates = keep_stable(
                &mut connection,
                candidates,
                &config.dir,
                config.recursive,
                Duration::from_secs(seconds),
                cx,
            )?;
        }

        let mut progress = SourceProgress::default();
        let mut leftovers = Vec::new();
        let mut chosen = Vec::new();
        for (entry, taken) in candidates {
            let key = taken.shown.clone();
            let ledger = config.reprocess != Reprocess::Always;
            let delivered = match ledger {
                true => store
                    .ledger_entry(&cx.pipeline, &key)
                    .map_err(|e| StageError::State(Box::new(e)))?,
                false => None,
            };
            if let Some(delivered) = delivered {
                let unchanged = config.reprocess == Reprocess::Never
                    || is_unchanged(&mut connection, &entry, &taken, &delivered)?;
                if unchanged {
                    tracing::debug!(file = %key, run = %delivered.run_id, "already delivered, skipped");
                    progress.already_processed.push(key);
                    leftovers.push(taken);
                    continue;
                }
                tracing::info!(file = %key, "changed since it was delivered, reading it again");
            }
            chosen.push((entry, taken));
        }
        match config.order {
            PickupOrder::Name => chosen.sort_by(|a, b| a.1.path.cmp(&b.1.path)),
            PickupOrder::Mtime => {
                chosen.sort_by(|a, b| (a.0.mtime, &a.1.path).cmp(&(b.0.mtime, &b.1.path)))
            }
        }
        if let Some(max) = config.max_files
            && chosen.len() > max
        {
            tracing::info!(
                taken = max,
                waiting = chosen.len() - max,
                "max_files reached: the rest wait for the next run"
            );
            chosen.truncate(max);
        }

        let mut taken = Vec::new();
        let mut listed = Vec::new();
        for (entry, mut file) in chosen {
            if config.claim && file.read_from == file.path {
                let claimed = filestore::join(
                    filestore::parent(&file.path),
                    &format!(".{}{claim_suffix}", filestore::file_name(&file.path)),
                );
                let renamed =
                    connection.run("claim", |store| store.rename(&file.path, &claimed, false));
                if let Err(e) = renamed {
                    tracing::info!(file = %file.shown, error = %e, "not claimed (another consumer may have taken it), left alone");
                    continue;
                }
                file.read_from = claimed;
            }
            listed.push(Listed {
                path: file.read_from.clone().into(),
                shown: file.shown.clone(),
                file_path: file.path.clone(),
                key: file.shown.clone(),
                mtime_ns: mtime_ns(&entry),
                size: entry.size,
            });
            taken.push(file);
        }

        let read = ReadOptions {
            format: config.format.clone(),
            encoding: config.encoding,
            limits: super::file::limits(config.max_unpacked_bytes, config.max_zip_members),
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
            leftovers: if config.after == AfterPickup::Keep {
                Vec::new()
            } else {
                leftovers
            },
            delivered: HashSet::new(),
            after: config.after,
            archive_dir: config
                .archive_dir
                .as_deref()
                .map(PathTemplate::parse)
                .transpose()
                .map_err(StageError::Refused)?,
            claim: config.claim,
            cx: cx.clone(),
        })
    }

    /// Keeps, deletes or archives one delivered file (and its marker).
    fn finish(&mut self, file: &Taken) -> Result<(), filestore::StoreError> {
        let archive = self.archive_dir.as_ref().map(|template| {
            template.render(&TemplateValues {
                pipeline: &self.cx.pipeline,
                started_at: self.cx.started_at,
                source_stem: None,
                part: 1,
            })
        });
        let (after, claim) = (self.after, self.claim);
        let connection = self
            .inner
            .connection()
            .expect("a pickup source reads from a server");
        connection.run("finish", |store| {
            let mut files = vec![(file.read_from.clone(), file.path.clone())];
            if let Some(marker) = &file.marker {
                files.push((marker.clone(), marker.clone()));
            }
            for (now_at, dropped_as) in &files {
                match after {
                    AfterPickup::Keep if claim && now_at != dropped_as => {
                        store.rename(now_at, dropped_as, false)?
                    }
                    AfterPickup::Keep => {}
                    AfterPickup::Delete => store.remove(now_at)?,
                    AfterPickup::Move => {
                        let dir = archive
                            .as_deref()
                            .expect("validated: archive_dir with move");
                        store.create_dir_all(dir)?;
                        let to = filestore::join(dir, filestore::file_name(dropped_as));
                        store.rename(now_at, &to, true)?;
                    }
                }
            }
            Ok(())
        })
    }
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

/// The name a claimed file was dropped under, if `name` is one of this pipeline's claims.
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

/// The files in `dir` (and below it, when `recursive`).
fn list(
    connection: &mut Connection,
    dir: &str,
    recursive: bool,
) -> Result<Vec<RemoteEntry>, StageError> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_string()];
    while let Some(next) = pending.pop() {
        for entry in connection.run("list", |store| store.list(&next))? {
            if entry.is_dir {
                if recursive {
                    pending.push(entry.path);
                }
            } else {
                files.push(entry);
            }
        }
    }
    Ok(files)
}

/// The candidates whose size and modification time are the same on a second listing of the
/// drop `wait` later (listed the same way, so FTP's minute-precise times compare alike).
fn keep_stable(
    connection: &mut Connection,
    candidates: Vec<(RemoteEntry, Taken)>,
    dir: &str,
    recursive: bool,
    wait: Duration,
    cx: &RunContext,
) -> Result<Vec<(RemoteEntry, Taken)>, StageError> {
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
    let again: BTreeMap<String, RemoteEntry> = list(connection, dir, recursive)?
        .into_iter()
        .map(|entry| (entry.path.clone(), entry))
        .collect();
    Ok(candidates
        .into_iter()
        .filter(|(entry, taken)| {
            let same = again
                .get(&entry.path)
                .is_some_and(|now| now.size == entry.size && now.mtime == entry.mtime);
            if !same {
                tracing::info!(file = %taken.shown, "still changing, left for a later run");
            }
            same
        })
        .collect())
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
                    file.shown,
                    match self.after {
                        AfterPickup::Keep => "keep",
                        AfterPickup::Delete => "delete",
                        AfterPickup::Move => "move",
                    }
                ));
            }
        }
        warnings
    }
}
