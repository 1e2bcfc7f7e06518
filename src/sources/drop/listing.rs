//! Listing the drop, and the rules that make a listed file a candidate: the name patterns
//! (`include`, `exclude`, `ignore`), marker files (never data), this pipeline's claims an
//! earlier run left (taken up again whatever their names), names with control characters (left
//! on the server with a warning) and links (read only with `follow_symlinks`, when they point
//! to a regular file).

use std::collections::HashSet;

use super::Taken;
use super::claim::claimed_original;
use super::config::DropSourceConfig;
use crate::error::StageError;
use crate::filestore::{self, Connection, EntryKind, RemoteEntry};
use crate::names;

/// A file listed in the drop.
#[derive(Debug, Clone)]
pub(super) struct Dropped {
    pub(super) entry: RemoteEntry,
    /// Its path below `dir`.
    pub(super) relative: String,
}

/// A file that may be taken: as listed (a followed link as the file it points to), and as it
/// would be taken.
pub(super) type Candidate = (Dropped, Taken);

/// Where the drop is, and which of its names are candidates.
pub(super) struct Rules {
    /// The server's URL, which starts every file's ledger key.
    location: String,
    dir: String,
    recursive: bool,
    include: Patterns,
    exclude: Patterns,
    ignore: Patterns,
    /// `marker`: a file's marker file's name, with `{name}` for the file's.
    marker: Option<String>,
    follow_symlinks: bool,
    /// The end of this pipeline's claimed names (`.claimed-by-PIPELINE`), when claiming.
    pub(super) claim_suffix: Option<String>,
}

impl Rules {
    pub(super) fn new<S>(
        config: &DropSourceConfig<S>,
        location: &str,
        pipeline: &str,
    ) -> Result<Self, StageError> {
        Ok(Rules {
            location: location.to_string(),
            dir: config.dir.clone(),
            recursive: config.recursive,
            include: Patterns::new(&config.include)?,
            exclude: Patterns::new(&config.exclude)?,
            ignore: Patterns::new(&config.ignore)?,
            marker: config.marker.clone(),
            follow_symlinks: config.follow_symlinks,
            claim_suffix: config.claim.then(|| format!(".claimed-by-{pipeline}")),
        })
    }

    /// How the source names the file at `path`: the server's URL and the path (the ledger's
    /// key).
    pub(super) fn url(&self, path: &str) -> String {
        url(&self.location, path)
    }

    /// The path of the marker file of the file at `path`, when there are markers.
    fn marker_of(&self, path: &str) -> Option<String> {
        self.marker.as_ref().map(|pattern| {
            filestore::join(
                filestore::parent(path),
                &pattern.replace("{name}", filestore::file_name(path)),
            )
        })
    }

    /// `dropped` as taken under `path` (its path as dropped), `relative` below `dir`.
    fn taken_as(&self, dropped: &Dropped, path: String, relative: String) -> Taken {
        Taken {
            shown: self.url(&path),
            marker: self.marker_of(&path),
            path,
            read_from: dropped.entry.path.clone(),
            relative,
            size: dropped.entry.size,
            mtime: dropped.entry.mtime,
        }
    }

    /// The files in the drop (see [`Rules::entries`]), with a warning in `warnings` for each
    /// entry left out because its name has a control character.
    pub(super) fn list(
        &self,
        connection: &mut Connection,
        warnings: &mut Vec<String>,
    ) -> Result<Vec<Dropped>, StageError> {
        let (dropped, refused) = self.entries(connection)?;
        for path in refused {
            let warning = names::skipped_warning(&self.url(&path));
            tracing::warn!("{warning}");
            warnings.push(warning);
        }
        Ok(dropped)
    }

    /// The entries in `dir` that are not directories (and those below it, when `recursive`:
    /// not in directories `ignore` names, such as hidden ones, nor through links), with their
    /// paths below `dir`, in the order of their paths; and the paths of the entries left out
    /// because their names have a control character (see [`crate::names`]).
    pub(super) fn entries(
        &self,
        connection: &mut Connection,
    ) -> Result<(Vec<Dropped>, Vec<String>), StageError> {
        let mut files = Vec::new();
        let mut refused = Vec::new();
        let mut pending = vec![(self.dir.clone(), String::new())];
        while let Some((next, below)) = pending.pop() {
            for entry in connection.run("list", |store| store.list(&next))? {
                if names::has_control(&entry.name) {
                    refused.push(entry.path);
                    continue;
                }
                let relative = filestore::join(&below, &entry.name);
                if entry.is_dir() {
                    if self.recursive && !self.ignore.matches(&entry.name) {
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

    /// The candidates among the files `dropped`: this pipeline's claims a run that did not
    /// commit left, first, taken again as they are (under the names they were dropped with);
    /// then the files the name rules take. Each as the regular file it is, or a link's when
    /// links are followed; anything else is left out with a warning in `warnings`.
    pub(super) fn candidates(
        &self,
        connection: &mut Connection,
        dropped: &[Dropped],
        warnings: &mut Vec<String>,
    ) -> Result<Vec<Candidate>, StageError> {
        // Marker files are not data.
        let markers: HashSet<String> = dropped
            .iter()
            .filter_map(|d| self.marker_of(&d.entry.path))
            .collect();
        let mut resumed = Vec::new();
        let mut candidates = Vec::new();
        for file in dropped {
            let claimed = self
                .claim_suffix
                .as_deref()
                .and_then(|suffix| claimed_original(&file.entry.name, suffix));
            if claimed.is_none()
                && (self.ignore.matches(&file.entry.name)
                    || !self.include.matches(&file.relative)
                    || self.exclude.matches(&file.relative)
                    || markers.contains(&file.entry.path))
            {
                continue;
            }
            // Only regular files are data: links only when followed, to a file.
            let Some(file) = regular_file(
                connection,
                file,
                self.follow_symlinks,
                &self.location,
                warnings,
            )?
            else {
                continue;
            };
            if let Some(original) = claimed {
                let path = filestore::join(filestore::parent(&file.entry.path), original);
                let relative = filestore::join(filestore::parent(&file.relative), original);
                let taken = self.taken_as(&file, path, relative);
                resumed.push((file, taken));
                continue;
            }
            let taken = self.taken_as(&file, file.entry.path.clone(), file.relative.clone());
            candidates.push((file, taken));
        }
        resumed.extend(candidates);
        Ok(resumed)
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

/// The ledger's key of the file at `path`: the server's URL and the path.
fn url(location: &str, path: &str) -> String {
    if path.starts_with('/') {
        format!("{location}{path}")
    } else {
        format!("{location}/{path}")
    }
}

/// A listed file's modification time as the ledger records it, in nanoseconds.
pub(super) fn mtime_ns(entry: &RemoteEntry) -> i64 {
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
pub(super) fn followed(
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
