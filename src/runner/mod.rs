//! Running a pipeline, safe to repeat from cron: take the pipeline's lock, recover what a
//! crashed run left, build every stage, stream batches from the source through the transforms
//! to every sink, then publish in the order that loses nothing and delivers nothing twice:
//! sinks prepare (durable, invisible) -> the state store records the intent -> sinks commit
//! (renames) -> the state (ledger, cursors, history) advances in one transaction. See
//! [`crate::state`] for how a crash at any point is recovered.
//!
//! The source (reading and decoding) runs on its own thread and hands batches over a bounded
//! channel, so decoding and encoding overlap on two cores while memory stays at a few batches.
//!
//! Here are the entry points and the top-level flow ([`run`], `Run::execute`); each step has a
//! file: `lock.rs` (the lock, `on_overlap`, the name claim), `recover.rs` (what a crashed run
//! left), `stages.rs` and `stream.rs` (the stages, the source thread), `commit.rs` (the
//! two-phase commit), `dry_run.rs` (the plan a dry run prints), `report.rs` (the report, and
//! the end of every run: notifications, history, unlock). `convert.rs` and `preview.rs` reuse
//! the stages and the streaming; `crash.rs` has the crash points of the crash tests.

mod commit;
mod convert;
mod crash;
mod dry_run;
mod lock;
mod preview;
mod recover;
mod report;
mod stages;
mod stream;
mod table;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{RunError, StageError};
use crate::pipeline::Pipeline;
use crate::sinks::IfEmpty;
use crate::stage::RunContext;
use crate::state::report::{Outcome, RunReport};
use crate::state::{DEFAULT_STATE_PATH, SqliteStore, StateError, StateStore};

pub use convert::convert;
pub use preview::preview;
pub use table::write_table;

use report::new_report;
use stages::{Chain, Stages};
use stream::stream;

/// Records per batch: large enough to amortize per-batch work, small enough that a few batches
/// in flight stay within a few megabytes.
pub const BATCH_RECORDS: usize = 1024;

/// How to run, beyond the pipeline file.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The state file, overriding the pipeline's `[state]` (`--state`, `LONGSHORE_STATE`).
    pub state_path: Option<PathBuf>,
    /// Read and transform everything, write nothing, move no state (`--dry-run`).
    pub dry_run: bool,
}

/// How a run ended: its report, and the error if it failed.
#[derive(Debug)]
pub struct Finished {
    pub report: RunReport,
    pub error: Option<RunError>,
    /// The notifications that could not be sent (also in the report's warnings): a failed
    /// run whose failure alert was not sent is said where the failure is.
    pub not_notified: Vec<String>,
}

/// Runs a pipeline: every record to every sink, or nothing visible anywhere, recorded in the
/// pipeline's state so the next run goes on where this one stopped. Never panics on a failure:
/// the returned [`Finished`] carries the error and a report of what happened.
pub fn run(pipeline: &Pipeline, options: &RunOptions) -> Finished {
    let mut cx = RunContext::new(&pipeline.name, pipeline.base_dir());
    cx.vars = std::sync::Arc::new(pipeline.vars.clone());
    cx.read_only = options.dry_run;
    cx.deadline = pipeline
        .config
        .max_runtime_secs
        .map(|secs| Instant::now() + Duration::from_secs(secs));
    cx.quarantine = pipeline.config.rejects.is_some();
    let state_path = state_path(pipeline, options.state_path.clone());
    // A dry run's sinks only read the state (`read_only`): the http sink, which keys its
    // requests will use.
    cx.state_path = Some(state_path.clone());
    if !options.dry_run {
        cx.temp_journal = Some(temp_journal_path(&state_path, &pipeline.name));
    }
    let mut run = Run {
        pipeline,
        report: new_report(&cx, options.dry_run),
        cx,
        store: None,
        locked: false,
        intent_pending: false,
        committed: false,
    };
    for warning in &pipeline.warnings {
        run.warn(warning.clone());
    }
    let result = run.execute(&state_path, options.dry_run);
    run.finish(result)
}

/// Where the pipeline's state is: `given` (`--state`), else its `[state] path`, else
/// `.longshore/state.db` beside the pipeline file.
pub fn state_path(pipeline: &Pipeline, given: Option<PathBuf>) -> PathBuf {
    given.unwrap_or_else(|| {
        let configured = pipeline
            .config
            .state
            .as_ref()
            .and_then(|s| s.path.as_deref());
        let cx = RunContext::new(&pipeline.name, pipeline.base_dir());
        cx.resolve(configured.unwrap_or(DEFAULT_STATE_PATH))
    })
}

/// The temporary-file journal of a pipeline: beside its state file, named after the pipeline
/// (readably) and a hash of its name (so that `a.b` and `a_b` never share one).
fn temp_journal_path(state_path: &Path, pipeline: &str) -> PathBuf {
    let dir = state_path.parent().unwrap_or(Path::new(""));
    let readable: String = pipeline
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let hash = crate::digest::sha256_hex(pipeline.as_bytes());
    dir.join("temp")
        .join(format!("{readable}-{}.list", &hash[..12]))
}

/// One run in progress.
struct Run<'p> {
    pipeline: &'p Pipeline,
    cx: RunContext,
    report: RunReport,
    store: Option<Box<dyn StateStore>>,
    /// Whether this run holds the pipeline's lock (to release it at the end).
    locked: bool,
    /// Whether a commit intent (this run's, or the crashed one it failed to recover) is
    /// recorded and unfinished: its temporary files are then left for the next run to publish.
    intent_pending: bool,
    /// Whether this run's outputs were published and its state saved.
    committed: bool,
}

impl Run<'_> {
    fn fail(&self, stage: &str, source: StageError) -> RunError {
        RunError::new(&self.pipeline.name, stage, source)
    }

    fn state_failed(&self, error: StateError) -> RunError {
        self.fail("state store", StageError::from(error))
    }

    fn warn(&mut self, message: String) {
        tracing::warn!(pipeline = %self.pipeline.name, "{message}");
        self.report.warnings.push(message);
    }

    fn execute(&mut self, state_path: &Path, dry_run: bool) -> Result<Outcome, RunError> {
        let store: Box<dyn StateStore> = if dry_run {
            match SqliteStore::open_read_only(state_path) {
                Ok(Some(store)) => Box::new(store),
                Ok(None) => Box::new(SqliteStore::in_memory()),
                Err(e) => return Err(self.state_failed(e)),
            }
        } else {
            Box::new(SqliteStore::open(state_path).map_err(|e| self.state_failed(e))?)
        };
        self.store = Some(store);
        if !dry_run {
            if !self.lock()? {
                return Ok(Outcome::Skipped);
            }
            self.claim_name(state_path)?;
            self.recover()?;
        }
        let pipeline = self.pipeline;
        let store = self.store.as_deref_mut().expect("opened above");
        let cursors = store.cursors(&pipeline.name);
        self.report.cursor_before = cursors.map_err(|e| self.state_failed(e))?;
        self.report.cursor_after = self.report.cursor_before.clone();
        let store = self.store.as_deref_mut().expect("opened above");
        let stages = Stages::build(pipeline, &self.cx, store, true)?;
        let Stages {
            mut source,
            mut chain,
        } = stages;
        let (streamed, result) = stream(&mut source, &mut chain, &self.cx, dry_run);
        // Also for a failed run: its report says how far it got.
        self.record_streamed(&chain, &streamed);
        result?;
        let read_anything = streamed.source.units > 0;
        if let Some(reason) = streamed
            .source
            .stopped_early
            .as_deref()
            .filter(|_| !read_anything)
        {
            return Err(self.out_of_time(reason));
        }
        self.check_rejects(&chain)?;
        let has_rejects = chain.rejects.as_ref().is_some_and(|r| r.total > 0);
        let no_records = streamed.records_to_sinks == 0 && !has_rejects;
        if dry_run {
            self.plan(&chain, streamed.plan, streamed.requests, no_records);
            return Ok(if no_records {
                Outcome::NothingNew
            } else {
                Outcome::Success
            });
        }
        let writes_empty = pipeline
            .config
            .sinks
            .iter()
            .any(|sink| sink.spec().if_empty() == Some(IfEmpty::Write));
        let outcome = if no_records && !writes_empty && streamed.source.changes.is_empty() {
            // No output and no state to move: nothing to commit.
            Ok(Outcome::NothingNew)
        } else {
            self.publish(chain, streamed.source, no_records)
        };
        // Once the commit is saved, or when there was none to make (input an earlier run
        // delivered may still wait for what follows its commit).
        if self.committed || outcome.is_ok() {
            for warning in source.after_commit() {
                self.warn(warning);
            }
        }
        if let Ok(Outcome::NothingNew) = outcome {
            self.log_nothing_new(read_anything);
        }
        outcome
    }

    /// Says, at info, that the run had no record to deliver and what it published anyway.
    fn log_nothing_new(&self, read_anything: bool) {
        let what = if read_anything {
            "nothing new: no records"
        } else {
            "nothing new to read"
        };
        let written = &self.report.files_written;
        let outputs = if written.is_empty() {
            ", nothing written".to_string()
        } else {
            let paths: Vec<&str> = written.iter().map(|f| f.path.as_str()).collect();
            format!(
                "; published {} without records (if_empty = \"write\")",
                paths.join(", ")
            )
        };
        tracing::info!("pipeline `{}`: {what}{outputs}", self.pipeline.name);
    }

    /// The run stopped early at its time limit.
    fn out_of_time(&self, reason: &str) -> RunError {
        let limit = self.pipeline.config.max_runtime_secs.unwrap_or_default();
        self.fail(
            "run",
            StageError::Refused(format!(
                "max_runtime_secs = {limit} reached: {reason}; what was read completely was published, and the next run goes on with the rest"
            )),
        )
    }

    fn check_rejects(&self, chain: &Chain) -> Result<(), RunError> {
        let (Some(rejects), Some(config)) = (&chain.rejects, &self.pipeline.config.rejects) else {
            return Ok(());
        };
        let Some(max) = config.max_rejects else {
            return Ok(());
        };
        let total = self.report.records_read + rejects.unreadable;
        if !max.exceeded(rejects.total, total) {
            return Ok(());
        }
        Err(self.fail(
            "rejects",
            StageError::Refused(format!(
                "{} of {total} records were rejected, more than max_rejects = {max}: nothing was published. The first: {}",
                rejects.total,
                rejects.first.as_deref().unwrap_or("-")
            )),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipelines_with_similar_names_keep_their_own_temp_journal() {
        let state = Path::new("/srv/etl/.longshore/state.db");
        let dotted = temp_journal_path(state, "a.b");
        let underscored = temp_journal_path(state, "a_b");
        assert_ne!(dotted, underscored);
        assert!(
            dotted.starts_with("/srv/etl/.longshore/temp")
                && dotted.to_string_lossy().ends_with(".list")
                && dotted
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("a_b-"),
            "{}",
            dotted.display()
        );
    }
}
