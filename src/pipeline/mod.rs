//! Pipeline files: the top-level type a TOML pipeline file deserializes into, the closed enums
//! of its stages (each stage's table is its own module's type), and how a file is loaded and
//! checked ([`load`]). The types are the single source of truth: their `///` docs become the
//! JSON Schema (`longshore schema`) and the reference in the README (`schema --markdown`).

mod load;
pub mod overlap;
pub mod reference;

use std::fmt;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Deserialize;

pub use load::{Loading, load, parse};

use crate::config::{Invalid, Validate, Variables};

use crate::filestore::ftps::FtpServerConfig;
use crate::filestore::sftp::SftpServerConfig;
use crate::sinks::file::FileSinkConfig;
use crate::sinks::rejects::RejectsConfig;
use crate::sinks::stdout::StdoutSinkConfig;
use crate::sinks::upload::UploadSinkConfig;
use crate::sources::drop::DropSourceConfig;
use crate::sources::file::FileSourceConfig;
use crate::sources::http::HttpSourceConfig;
use crate::state::StateConfig;
use crate::transforms::cast::CastConfig;
use crate::transforms::money::MoneyConfig;
use crate::transforms::rename::RenameConfig;
use crate::transforms::select::SelectConfig;

/// What a run does when another run of the same pipeline holds the lock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OnOverlap {
    /// Exit 0 with a notice: the running one does the work.
    #[default]
    Skip,
    /// Wait until it finishes (or its lock goes stale), then run.
    Wait,
    /// Exit 1.
    Fail,
}

/// A pipeline file: one source, optional transforms applied in order, and one or more sinks
/// that each receive every record.
#[derive(Debug, Clone, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "longshore pipeline")]
pub struct PipelineConfig {
    /// The pipeline's name, used in logs, reports and the `{pipeline}` path placeholder.
    /// Default: the pipeline file's name without `.toml`.
    pub name: Option<String>,
    /// What the pipeline is for, for people reading it. Not used by the run.
    pub description: Option<String>,
    /// Where records come from.
    pub source: SourceConfig,
    /// Reshaping steps applied to every batch, in order. Default: none.
    #[serde(default)]
    pub transforms: Vec<TransformConfig>,
    /// Where records go. Every sink receives every record; at least one is required.
    pub sinks: Vec<SinkConfig>,
    /// What a run does when another run of this pipeline still holds its lock: `"skip"` (exit
    /// 0 with a notice, so cron does not alert), `"wait"` for it to finish, or `"fail"` (exit
    /// 1). Default `"skip"`.
    #[serde(default)]
    pub on_overlap: OnOverlap,
    /// The longest a run may take, in seconds. A run past it stops reading at the next file or
    /// page, publishes what it read completely, and exits 1; a lock older than this is
    /// considered abandoned and taken over. Default: no limit.
    pub max_runtime_secs: Option<u64>,
    /// Where the pipeline's state (cursors, ledger of delivered files, run history) is kept.
    /// Default: `.longshore/state.db` beside the pipeline file.
    pub state: Option<StateConfig>,
    /// Quarantine for records that cannot be read: each goes, with its file, position and
    /// reason, to a rejects file and the run goes on. Without it, the first bad record fails
    /// the run. Default: none.
    pub rejects: Option<RejectsConfig>,
    /// Messages sent after a run (on failure, success, or when no new data arrives).
    /// Default: none.
    #[serde(default)]
    pub notify: Vec<NotifyConfig>,
}

/// A loaded, checked pipeline, ready to build: the file as written (`config`, references
/// resolved) and what loading it found out.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// The name runs use: `config.name`, else the file's name without `.toml`.
    pub name: String,
    /// The pipeline file.
    pub file: PathBuf,
    pub config: PipelineConfig,
    /// The values of `--var NAME=VALUE` it was loaded with, for secrets resolved at run time.
    pub vars: Variables,
    /// What is allowed but unwise in the file (a secret written into it), each with its
    /// position: `validate` prints them, a run logs them and lists them in its report.
    pub warnings: Vec<String>,
}

impl Pipeline {
    /// Its sinks, as what every sink does.
    pub fn sink_specs(&self) -> Vec<&dyn crate::sinks::SinkSpec> {
        self.config.sinks.iter().map(SinkConfig::spec).collect()
    }

    /// Its notifications, as what every notification does.
    pub fn notify_specs(&self) -> Vec<&dyn crate::notify::NotifySpec> {
        self.config.notify.iter().map(NotifyConfig::spec).collect()
    }

    /// The directory relative paths in the pipeline file are resolved against: the one holding
    /// the pipeline file, so a cron job finds the same files whatever its working directory.
    pub fn base_dir(&self) -> &Path {
        self.file.parent().unwrap_or(Path::new(""))
    }
}

/// Declares a stage config enum tagged by `type`: its kinds, how each kind's table is
/// deserialized (directly, so errors keep their exact position in the file), and dispatch of
/// [`Validate`] and of the stage's spec trait (`SourceSpec`, ...), which each kind's config
/// type implements in its own module. A new kind is one line here.
macro_rules! stage_configs {
    ($(#[$meta:meta])* $name:ident, $role:literal, $spec:path { $($(#[$vmeta:meta])* $kind:literal => $variant:ident($config:ty)),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, JsonSchema)]
        #[serde(tag = "type")]
        // Built once per run: the size of a config does not matter.
        #[allow(clippy::large_enum_variant)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $kind)] $variant($config),)+
        }

        impl $name {
            /// The `type` it was declared with.
            pub fn kind(&self) -> &'static str {
                match self { $($name::$variant(_) => $kind,)+ }
            }

            /// The kind's own config, as what every kind of this stage does.
            pub fn spec(&self) -> &dyn $spec {
                match self { $($name::$variant(config) => config,)+ }
            }
        }

        impl load::TaggedSection for $name {
            const ROLE: &'static str = $role;
            const KINDS: &'static [&'static str] = &[$($kind),+];
            fn deserialize_kind(
                kind: &str,
                table: toml::de::ValueDeserializer<'_>,
            ) -> Option<Result<Self, toml::de::Error>> {
                match kind {
                    $($kind => Some(<$config as serde::Deserialize>::deserialize(table).map($name::$variant)),)+
                    _ => None,
                }
            }
        }

        impl Validate for $name {
            fn problems(&self) -> Vec<Invalid> {
                match self { $($name::$variant(config) => config.problems(),)+ }
            }
        }
    };
}

stage_configs! {
    /// Where records come from, chosen by `type`.
    SourceConfig, "source", crate::sources::SourceSpec {
        /// Local files: a path or a glob pattern.
        "file" => File(FileSourceConfig),
        /// A REST API: one request or every page of a list, optionally only what changed
        /// since the last run.
        "http" => Http(HttpSourceConfig),
        /// Files dropped on an SFTP server, each picked up once it is complete.
        "sftp" => Sftp(DropSourceConfig<SftpServerConfig>),
        /// Files dropped on an FTPS (or, with `tls = "none"`, plain FTP) server, each picked
        /// up once it is complete.
        "ftps" => Ftps(DropSourceConfig<FtpServerConfig>),
    }
}

stage_configs! {
    /// A reshaping step, chosen by `type`.
    TransformConfig, "transform", crate::transforms::TransformSpec {
        /// Casts fields to types (numbers, exact decimals, booleans, times in time zones).
        "cast" => Cast(CastConfig),
        /// Converts integer minor units (cents) to exact decimal amounts, and back.
        "money" => Money(MoneyConfig),
        /// Renames fields.
        "rename" => Rename(RenameConfig),
        /// Keeps only the listed fields (names or globs), in the listed order.
        "select" => Select(SelectConfig),
        /// Removes fields, by name or glob.
        "drop" => Drop(crate::transforms::drop::DropConfig),
        /// Puts the listed fields first, the others after them in their order.
        "reorder" => Reorder(crate::transforms::reorder::ReorderConfig),
        /// Sets fields to constants or to text templates over the record and the run.
        "set" => Set(crate::transforms::set::SetConfig),
        /// Replaces values by a lookup: a table in the pipeline file or a CSV reference file.
        "map" => Map(crate::transforms::map::MapConfig),
        /// Makes nested objects (and optionally arrays) flat fields: `customer.address.city`.
        "flatten" => Flatten(crate::transforms::flatten::FlattenConfig),
        /// One record per element of an array field (orders to order lines).
        "unnest" => Unnest(crate::transforms::unnest::UnnestConfig),
        /// Keeps the records that meet a condition.
        "filter" => Filter(crate::transforms::filter::FilterConfig),
        /// Checks fields and rules; records that fail go to the rejects with the check they
        /// failed.
        "validate" => Validate(crate::transforms::validate::ValidateConfig),
        /// Delivers one record per key, the first or the last of each.
        "dedupe" => Dedupe(crate::transforms::dedupe::DedupeConfig),
        /// A SQL query over all the records (table `input`) and reference files, by polars
        /// (the `polars` feature): totals, joins, top-N.
        "sql" => Sql(crate::transforms::sql::SqlConfig),
    }
}

stage_configs! {
    /// Where records go, chosen by `type`.
    SinkConfig, "sink", crate::sinks::SinkSpec {
        /// A local file, written atomically.
        "file" => File(FileSinkConfig),
        /// Standard output, for piping into other tools. Not atomic: a reader sees records as
        /// they are written.
        "stdout" => Stdout(StdoutSinkConfig),
        /// Files uploaded to an SFTP server, under a temporary name until the run commits.
        "sftp" => Sftp(UploadSinkConfig<SftpServerConfig>),
        /// Files uploaded to an FTPS (or, with `tls = "none"`, plain FTP) server, under a
        /// temporary name until the run commits.
        "ftps" => Ftps(UploadSinkConfig<FtpServerConfig>),
        /// Records pushed to an HTTP endpoint, a batch or a record a request (the URL filled
        /// from the record, an optional upsert), each with an idempotency key and optionally
        /// an HMAC signature; sent before the run commits, never twice once acknowledged.
        "http" => Http(crate::sinks::http::HttpSinkConfig),
    }
}

stage_configs! {
    /// A message sent after a run, chosen by `type`.
    NotifyConfig, "notify", crate::notify::NotifySpec {
        /// POSTs the run report as JSON to a URL.
        "webhook" => Webhook(crate::notify::webhook::WebhookConfig),
        /// Sends an email over SMTP.
        "email" => Email(crate::notify::email::EmailConfig),
        /// Runs a program with the run report on its standard input.
        "command" => Command(crate::notify::command::CommandConfig),
    }
}

/// One problem in a pipeline file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub column: usize,
    pub message: String,
    /// What to do about it, e.g. the nearest known key for a typo.
    pub help: Option<String>,
}

/// A pipeline file that cannot be used. Exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read pipeline file {}", .file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", Problems { file, problems })]
    Invalid {
        file: PathBuf,
        problems: Vec<Problem>,
    },
}

struct Problems<'a> {
    file: &'a Path,
    problems: &'a [Problem],
}

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.problems.len();
        write!(
            f,
            "{} has {count} problem{}:",
            self.file.display(),
            if count == 1 { "" } else { "s" }
        )?;
        for problem in self.problems {
            write!(
                f,
                "\n  {}:{}:{}: {}",
                self.file.display(),
                problem.line,
                problem.column,
                problem.message
            )?;
            if let Some(help) = &problem.help {
                write!(f, "\n      help: {help}")?;
            }
        }
        Ok(())
    }
}

/// The JSON Schema of pipeline files, generated from [`PipelineConfig`].
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(PipelineConfig);
    serde_json::to_string_pretty(&schema).expect("a schema serializes") + "\n"
}
