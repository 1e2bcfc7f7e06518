//! The five stage kinds a pipeline is made of, as traits. Every stage is a trait object built
//! from its config (`Box<dyn Source>`, ...), so the runner drives any chain the same way:
//! batches flow from the source through the transforms to every sink, and only a sink's
//! `commit` makes anything visible.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use crate::config::join_clean;
use crate::error::{CodecError, StageError};
use crate::record::{Batch, FieldName, Record};
use crate::state::report::FileDigest;
use crate::state::{PreparedOutput, StateChange};

/// Where records come from. Sources stream: each call fills `out` with the next batch.
pub trait Source: Send {
    /// Replaces the contents of `out` with the next records (at most `max` of them) and the
    /// rejects among them. Returns `Ok(false)`, with `out` empty, once the source is exhausted.
    fn next_batch(&mut self, out: &mut Batch, max: usize) -> Result<bool, StageError>;

    /// What the source read completely, and the state changes that delivering it makes (ledger
    /// entries, cursors). Called once the source is exhausted or stopped.
    fn progress(&mut self) -> SourceProgress;

    /// Called once the run's outputs are published and its state saved, or once it found
    /// nothing new: what the source does to its input then (a drop source deletes or archives
    /// the files it, or an earlier run, delivered). Never in a dry run. Returns
    /// warnings: a failure here loses nothing, the files were delivered, and the next run
    /// finishes the job.
    fn after_commit(&mut self) -> Vec<String> {
        Vec::new()
    }
}

/// What a source has read completely so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceProgress {
    /// Units of input (files, pages) read to the end. Zero means there was nothing new.
    pub units: u64,
    pub files_read: Vec<FileDigest>,
    /// Files skipped because an earlier run delivered them.
    pub already_processed: Vec<String>,
    pub changes: Vec<StateChange>,
    /// Why the source stopped before the end (the run's time limit), if it did.
    pub stopped_early: Option<String>,
    /// What an operator should know of the reading (an advertised total not matched).
    pub warnings: Vec<String>,
    /// What an API source's requests cost.
    pub requests: Option<crate::state::report::RequestCounts>,
}

/// Turns a byte stream into records.
pub trait Decoder: Send {
    /// Appends up to `max` records to `out`. Returns `Ok(false)` once the input is exhausted and
    /// nothing was appended. An error never comes with records appended; after a
    /// [`CodecError::BadRecord`] the next call goes on with the record after the bad one.
    fn next_batch(&mut self, out: &mut Vec<Record>, max: usize) -> Result<bool, CodecError>;

    /// What an operator should know of the input that is no error (a doubled byte-order mark,
    /// skipped), taken once: the source passes it on to the run's warnings.
    fn take_warnings(&mut self) -> Vec<String> {
        Vec::new()
    }
}

/// Turns records into bytes on the writer it was built with.
pub trait Encoder: Send {
    fn write_batch(&mut self, records: &[Record]) -> Result<(), CodecError>;
    /// Writes any trailer and flushes everything to the underlying writer.
    fn finish(self: Box<Self>) -> Result<(), CodecError>;
    /// Whether the output's columns grew after its first rows were written (a CSV file whose
    /// records brought a field after the header): its owner rewrites the complete output then.
    fn widened(&self) -> Option<Widened> {
        None
    }
}

/// A CSV output whose columns grew after rows were written, to be rewritten by `codecs::csv::widen`.
#[derive(Debug, Clone, PartialEq)]
pub struct Widened {
    /// Every column, in order of first appearance: the ones of the header written first.
    pub columns: Vec<FieldName>,
    /// How many columns the rows written first have.
    pub first_width: usize,
    /// Whether the file starts with a header row.
    pub has_header: bool,
}

/// Reshapes records in place.
pub trait Transform: Send {
    fn apply(&mut self, batch: &mut Batch) -> Result<(), StageError>;

    /// Called once the source is exhausted: the records the transform held back (`dedupe`
    /// with `keep = "last"`), as batches that each come from one origin, with their numbers.
    /// The runner passes them through the transforms after this one (whose own `finish`
    /// comes after) to the sinks. Default: nothing held.
    fn finish(&mut self) -> Result<Vec<Batch>, StageError> {
        Ok(Vec::new())
    }

    /// What an operator should know of what it did that is no error (values a `cast` made
    /// null as asked), taken once when the input ends: the runner puts them in the run's
    /// warnings.
    fn take_warnings(&mut self) -> Vec<String> {
        Vec::new()
    }
}

/// Where records go. Nothing a sink writes is visible until `commit`. Dropping a sink before
/// `prepare` discards everything it wrote; after `prepare` its temporary files stay (they may
/// belong to a recorded commit intent), and the runner removes them when they will not be
/// published.
///
/// The runner finishes a run in two phases so that fan-out to several sinks is all or nothing
/// as far as the file system allows: `prepare` on every sink (encode the rest, flush, fsync:
/// everything that can fail on data or disk space), then, once the state store has recorded
/// what is about to be published, `commit` on every sink (renames).
pub trait Sink: Send {
    fn write_batch(&mut self, batch: &Batch) -> Result<(), StageError>;
    /// Makes everything written durable but not yet visible, and says which temporary file
    /// will become which output.
    fn prepare(&mut self) -> Result<Vec<PreparedOutput>, StageError>;
    /// Publishes what was prepared, atomically per output file.
    fn commit(self: Box<Self>) -> Result<SinkReport, StageError>;
    /// Where `batch` would be written, for `--dry-run`.
    fn destination(&self, batch: &Batch) -> String;

    /// Called once the source is exhausted, before `prepare` and never in a dry run: a sink
    /// that sends as it goes (the `http` sink) sends what it still holds. Whatever it sends
    /// cannot be taken back, so it happens before the run's state is committed.
    fn end_of_input(&mut self) -> Result<(), StageError> {
        Ok(())
    }

    /// The records the sink set aside since it was last asked (a receiver refused them with a
    /// 4xx): the runner writes them to the rejects file. Only with `[rejects]`
    /// (`RunContext::quarantine`); without, the sink fails the run instead.
    fn take_rejects(&mut self) -> Vec<crate::record::Reject> {
        Vec::new()
    }

    /// A dry run's batch (`RunContext::read_only`): a sink that sends requests works out the
    /// first ones it would send, and sends nothing. Other sinks write nothing either.
    fn plan_batch(&mut self, _batch: &Batch) -> Result<(), StageError> {
        Ok(())
    }

    /// After a dry run's last batch: the first requests the sink would have sent.
    fn planned_requests(
        &mut self,
    ) -> Result<Vec<crate::state::report::PlannedRequest>, StageError> {
        Ok(Vec::new())
    }
}

/// What a sink delivered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkReport {
    /// Final paths of the files made visible, in the order they were published.
    pub published: Vec<String>,
    /// Outputs published under another name than they were prepared for
    /// (`if_exists = "rename"`): (prepared, published).
    pub renamed: Vec<(String, String)>,
    /// Paths that already existed and were left alone (`if_exists = "skip"`).
    pub skipped: Vec<String>,
    pub records: u64,
}

/// What every stage may need to know about the run it is part of.
#[derive(Debug, Clone)]
pub struct RunContext {
    /// The pipeline's name.
    pub pipeline: String,
    /// Relative paths in the pipeline file are resolved against this directory.
    pub base_dir: std::path::PathBuf,
    /// When the run started, for `{run_date}` and `{run_ts}`.
    pub started_at: chrono::DateTime<chrono::Local>,
    pub run_id: String,
    /// Sources stop at the next unit boundary (file, page) after this instant.
    pub deadline: Option<Instant>,
    /// Bad records go to the rejects instead of failing the run.
    pub quarantine: bool,
    /// Where sinks list the temporary files they create, so that the next run can remove what
    /// a killed run left behind. `None` outside pipeline runs (`convert`).
    pub temp_journal: Option<std::path::PathBuf>,
    /// Bytes read by the source so far, for the progress display.
    pub bytes_read: Arc<AtomicU64>,
    /// A dry run or a preview: stages change nothing anywhere (a drop source claims no file).
    pub read_only: bool,
    /// The values of `--var NAME=VALUE`, for `${var:NAME}` in secrets resolved at run time.
    pub vars: Arc<crate::config::Variables>,
    /// The state store's file, for a sink that keeps its own records in it (the `http` sink's
    /// outbox; a dry run only reads it). `None` outside pipeline runs.
    pub state_path: Option<std::path::PathBuf>,
}

impl RunContext {
    /// Where the pipeline file's references are resolved: `--var` values, and its folder for
    /// relative `${file:…}` paths.
    pub fn references(&self) -> crate::config::Resolver<'_> {
        crate::config::Resolver {
            vars: &self.vars,
            base_dir: &self.base_dir,
        }
    }

    /// A context for a run of `pipeline` starting now, with no limits.
    pub fn new(pipeline: &str, base_dir: &std::path::Path) -> Self {
        let started_at = chrono::Local::now();
        RunContext {
            pipeline: pipeline.to_string(),
            base_dir: base_dir.to_path_buf(),
            run_id: format!(
                "{}-{:06x}",
                started_at.format("%Y%m%dT%H%M%S"),
                fastrand::u32(..0x100_0000)
            ),
            started_at,
            deadline: None,
            quarantine: false,
            temp_journal: None,
            bytes_read: Arc::default(),
            read_only: false,
            vars: Arc::default(),
            state_path: None,
        }
    }

    /// True once the run's time limit has passed.
    pub fn past_deadline(&self) -> bool {
        self.deadline
            .is_some_and(|deadline| Instant::now() >= deadline)
    }

    /// `path` from a pipeline file as a path to open: `~/` expanded, relative paths joined to
    /// the base directory, `.` and `..` removed lexically (so messages show tidy paths).
    pub fn resolve(&self, path: &str) -> std::path::PathBuf {
        join_clean(&self.base_dir, path)
    }

    /// Like [`RunContext::resolve`] for a glob pattern: the base directory's own `*`, `?`, `[`
    /// are escaped, so that only the pattern's wildcards are wildcards.
    pub fn resolve_pattern(&self, pattern: &str) -> std::path::PathBuf {
        let base = glob::Pattern::escape(&self.base_dir.to_string_lossy());
        join_clean(std::path::Path::new(&base), pattern)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn relative_paths_resolve_against_the_pipeline_directory() {
        let cx = RunContext::new("p", &PathBuf::from("pipelines"));
        assert_eq!(
            cx.resolve("../samples/a.csv"),
            PathBuf::from("samples/a.csv")
        );
        assert_eq!(cx.resolve("./x/../y.csv"), PathBuf::from("pipelines/y.csv"));
        assert_eq!(cx.resolve("/abs/z.csv"), PathBuf::from("/abs/z.csv"));
        let outside = RunContext {
            base_dir: PathBuf::new(),
            ..cx
        };
        assert_eq!(outside.resolve("../up.csv"), PathBuf::from("../up.csv"));
        let odd = RunContext {
            base_dir: PathBuf::from("drops [2024]"),
            ..outside
        };
        assert_eq!(
            odd.resolve_pattern("*.csv"),
            PathBuf::from("drops [[]2024[]]/*.csv")
        );
    }
}
