//! The `sftp` and `ftps` sources' configuration: the server, the drop directory, which files
//! are taken and when, how they are read, and what happens to them after the run committed.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::codecs::types::FieldType;
use crate::codecs::{FormatConfig, TextEncoding};
use crate::config::{Invalid, Validate};
use crate::filestore::{self, ServerConfig};
use crate::sources::file::Reprocess;
use crate::template::PathTemplate;

/// Picks up files dropped on a server.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DropSourceConfig<S> {
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

// `PickupOrder` and `AfterPickup` name the JSON Schema's definitions (docs/pipeline.schema.json),
// which editors show: they keep their names.

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

impl<S: ServerConfig> Validate for DropSourceConfig<S> {
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
        problems.extend(crate::sources::file::read_problems(
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
