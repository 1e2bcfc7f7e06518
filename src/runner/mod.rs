//! Running a pipeline, safe to repeat from cron: take the pipeline's lock, recover what a
//! crashed run left, build every stage, stream batches from the source through the transforms
//! to every sink, then publish in the order that loses nothing and delivers nothing twice:
//! sinks prepare (durable, invisible) -> the state store records the intent -> sinks commit
//! (renames) -> the state (ledger, cursors, history) advances in one transaction. See
//! [`crate::state`] for how a crash at any point is recovered.
//!
//! The source (reading and decoding) runs on its own thread and hands batches over a bounded
//! channel, so decoding and encoding overlap on two cores while memory stays at a few batches.

mod recover;
mod table;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::codecs::FormatConfig;
use crate::codecs::TextEncoding;
use crate::error::{RunError, StageError};
use crate::pipeline::OnOverlap;
use crate::pipeline::overlap;
use crate::pipeline::{Pipeline, SourceConfig};
use crate::progress::RunProgress;
use crate::record::{Batch, Record};
use crate::sinks::IfEmpty;
use crate::sinks::file::FileSink;
use crate::sinks::publish;
use crate::sinks::temp_journal;
use crate::sources::file::{FileSource, ReadOptions, is_pattern};
use crate::stage::{RunContext, Sink, SinkReport, Source, SourceProgress, Transform};
use crate::state::report::{FileDigest, Outcome, PlannedOutput, RunReport, StageCounts};
use crate::state::{
    self, CommitIntent, DEFAULT_STATE_PATH, LockAttempt, LockOwner, PreparedOutput, SqliteStore,
    StateError, StateStore,
};

use crate::sinks::rejects::RejectsFile;
pub use table::write_table;

/// Records per batch: large enough to amortize per-batch work, small enough that a few batches
/// in flight stay within a few megabytes.
pub const BATCH_RECORDS: usize = 1024;
/// Batches buffered between the source thread and the sinks.
const BATCHES_IN_FLIGHT: usize = 4;
/// A lock held longer than this makes a skipped run (`on_overlap = "skip"`) a warning.
const LONG_HELD_LOCK_SECS: i64 = 3600;
/// How often a run waiting for another (`on_overlap = "wait"`) looks at the lock again.
const LOCK_POLL: Duration = Duration::from_millis(500);
/// The most earlier runs passed to notifications (those since the last run that read records,
/// for `stale`): a day of runs every minute.
const HISTORY_FOR_NOTIFY: usize = 1440;

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

/// A pipeline's stages, built and ready to run: the source, which runs on its own thread, and
/// the rest of the chain.
struct Stages {
    source: Box<dyn Source>,
    chain: Chain,
}

/// Everything after the source, each stage with the label messages use for it.
struct Chain {
    pipeline: String,
    source_label: String,
    transforms: Vec<(String, Box<dyn Transform>)>,
    sinks: Vec<(String, Box<dyn Sink>)>,
    rejects: Option<RejectsFile>,
}

impl Stages {
    /// Builds the source and transforms, and the sinks too when `with_sinks` (not for preview).
    fn build(
        pipeline: &Pipeline,
        cx: &RunContext,
        store: &mut dyn StateStore,
        with_sinks: bool,
    ) -> Result<Stages, RunError> {
        let fail = |stage: &str, source| RunError::new(&pipeline.name, stage, source);
        let source_label = format!("source ({})", pipeline.source.kind());
        let source = pipeline
            .source
            .spec()
            .build(cx, store)
            .map_err(|e| fail(&source_label, e))?;
        let transforms = pipeline
            .transforms
            .iter()
            .enumerate()
            .map(|(i, t)| {
                (
                    format!("transform {} ({})", i + 1, t.kind()),
                    t.spec().build(),
                )
            })
            .collect();
        let mut sinks = Vec::new();
        for (i, config) in pipeline.sinks.iter().enumerate().filter(|_| with_sinks) {
            let label = format!("sink {} ({})", i + 1, config.kind());
            let sink = config.spec().build(cx).map_err(|e| fail(&label, e))?;
            sinks.push((label, sink));
        }
        let rejects = match (&pipeline.rejects, with_sinks) {
            (Some(config), true) => {
                Some(RejectsFile::new(config, cx).map_err(|e| fail("rejects", e))?)
            }
            _ => None,
        };
        Ok(Stages {
            source,
            chain: Chain {
                pipeline: pipeline.name.clone(),
                source_label,
                transforms,
                sinks,
                rejects,
            },
        })
    }
}

impl Chain {
    fn fail(&self, stage: &str, source: StageError) -> RunError {
        RunError::new(&self.pipeline, stage, source)
    }

    /// Runs every transform over `batch`, in order.
    fn transform(&mut self, batch: &mut Batch) -> Result<(), RunError> {
        for (label, transform) in &mut self.transforms {
            transform
                .apply(batch)
                .map_err(|e| RunError::new(&self.pipeline, label, e))?;
        }
        Ok(())
    }

    /// Every sink, and the rejects file last.
    fn all_sinks(&mut self) -> impl Iterator<Item = (&str, &mut dyn Sink)> {
        let sinks = self
            .sinks
            .iter_mut()
            .map(|(label, sink)| (label.as_str(), sink.as_mut() as &mut dyn Sink));
        let rejects = self
            .rejects
            .iter_mut()
            .map(|r| ("rejects", &mut r.sink as &mut dyn Sink));
        sinks.chain(rejects)
    }
}

/// What streaming did.
#[derive(Default)]
struct Streamed {
    records_read: u64,
    /// Records that reached the sinks (each reaches every sink), the rejects file aside.
    records_to_sinks: u64,
    source: SourceProgress,
    /// Per transform, then per sink: records in and out.
    counts: Vec<(u64, u64)>,
    /// Dry run: per sink (rejects last), records per destination in order of first use.
    plan: Vec<Vec<(String, u64)>>,
}

/// Runs a pipeline: every record to every sink, or nothing visible anywhere, recorded in the
/// pipeline's state so the next run goes on where this one stopped. Never panics on a failure:
/// the returned [`Finished`] carries the error and a report of what happened.
pub fn run(pipeline: &Pipeline, options: &RunOptions) -> Finished {
    let mut cx = RunContext::new(&pipeline.name, pipeline.base_dir());
    cx.vars = std::sync::Arc::new(pipeline.vars.clone());
    cx.read_only = options.dry_run;
    cx.deadline = pipeline
        .max_runtime_secs
        .map(|secs| Instant::now() + Duration::from_secs(secs));
    cx.quarantine = pipeline.rejects.is_some();
    let state_path = state_path(pipeline, options.state_path.clone());
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
        let configured = pipeline.state.as_ref().and_then(|s| s.path.as_deref());
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

fn new_report(cx: &RunContext, dry_run: bool) -> RunReport {
    RunReport {
        dry_run,
        ..RunReport::new(&cx.pipeline, &cx.run_id, &rfc3339(cx.started_at))
    }
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
            self.plan(&chain, streamed.plan, no_records);
            return Ok(if no_records {
                Outcome::NothingNew
            } else {
                Outcome::Success
            });
        }
        let writes_empty = pipeline
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

    /// A dry run's plan: what each sink would write where, and, for a run without records,
    /// whether each sink that writes files would write an empty one (`if_empty`).
    fn plan(&mut self, chain: &Chain, plan: Vec<Vec<(String, u64)>>, no_records: bool) {
        let labels = chain
            .sinks
            .iter()
            .map(|(label, _)| label.as_str())
            .chain(chain.rejects.iter().map(|_| "rejects"));
        for (sink, destinations) in labels.zip(plan) {
            self.report
                .planned
                .extend(
                    destinations
                        .into_iter()
                        .map(|(destination, records)| PlannedOutput {
                            sink: sink.to_string(),
                            destination: Some(destination),
                            records,
                            if_empty: None,
                        }),
                );
        }
        if !no_records {
            return;
        }
        for ((label, sink), config) in chain.sinks.iter().zip(&self.pipeline.sinks) {
            let Some(if_empty) = config.spec().if_empty() else {
                continue;
            };
            self.report.planned.push(PlannedOutput {
                sink: label.clone(),
                destination: (if_empty == IfEmpty::Write)
                    .then(|| sink.destination(&Batch::default())),
                records: 0,
                if_empty: Some(if_empty.as_str().to_string()),
            });
        }
    }

    /// The run stopped early at its time limit.
    fn out_of_time(&self, reason: &str) -> RunError {
        let limit = self.pipeline.max_runtime_secs.unwrap_or_default();
        self.fail(
            "run",
            StageError::Refused(format!(
                "max_runtime_secs = {limit} reached: {reason}; what was read completely was published, and the next run goes on with the rest"
            )),
        )
    }

    /// Takes the pipeline's lock; false when another run holds it and `on_overlap = "skip"`.
    fn lock(&mut self) -> Result<bool, RunError> {
        let mut announced_wait = false;
        loop {
            // Stamped now: the age of the holder's lock is measured from this attempt.
            let owner = LockOwner::this_process(&self.cx.run_id);
            let store = self.store.as_deref_mut().expect("opened before locking");
            let attempt = store
                .try_lock(&self.pipeline.name, &owner, self.pipeline.max_runtime_secs)
                .map_err(|e| self.state_failed(e))?;
            let holder = match attempt {
                LockAttempt::Acquired { taken_over } => {
                    self.locked = true;
                    if let Some((stale, reason)) = taken_over {
                        self.warn(format!(
                            "took over the lock of run {}: {reason}",
                            stale.run_id
                        ));
                    }
                    return Ok(true);
                }
                LockAttempt::Held(holder) => holder,
            };
            let running = format!(
                "run {} (pid {} on {}) is still running",
                holder.run_id, holder.pid, holder.host
            );
            match self.pipeline.on_overlap {
                OnOverlap::Skip => {
                    let held_secs = chrono::Utc::now().timestamp() - holder.locked_at;
                    if held_secs > LONG_HELD_LOCK_SECS {
                        // Every run skipping for hours looks like success to cron: say it loudly.
                        self.warn(format!(
                            "skipped: {running}, and has held the lock for {} min; if it is stuck, stop it (`longshore state show` names it)",
                            held_secs / 60
                        ));
                    } else {
                        tracing::info!(pipeline = %self.pipeline.name, "skipped: {running} (on_overlap = \"skip\")");
                    }
                    return Ok(false);
                }
                OnOverlap::Fail => {
                    return Err(self.fail(
                        "lock",
                        StageError::Refused(format!("{running} (on_overlap = \"fail\")")),
                    ));
                }
                OnOverlap::Wait => {
                    if !announced_wait {
                        tracing::info!(pipeline = %self.pipeline.name, "waiting: {running} (on_overlap = \"wait\")");
                        announced_wait = true;
                    }
                    std::thread::sleep(LOCK_POLL);
                }
            }
        }
    }

    /// Records that the pipeline's name is its file's in the state store, and refuses a name
    /// another pipeline file still uses there: the two would share a lock, a ledger and a run
    /// history (two `pipeline.toml` in different folders, both named by their file).
    fn claim_name(&mut self, state_path: &Path) -> Result<(), RunError> {
        // The path as invoked, made absolute lexically (not through links): a deploy that
        // points `current -> releases/v2` keeps the name with `current/orders.toml`.
        let cwd = std::env::current_dir().unwrap_or_default();
        let file = crate::config::join_clean(&cwd, &self.pipeline.file.to_string_lossy());
        let store = self.store.as_deref_mut().expect("opened before");
        let other = store
            .claim_name(&self.pipeline.name, &file)
            .map_err(|e| self.state_failed(e))?;
        match other {
            None => Ok(()),
            Some(other) => Err(self.fail(
                "state store",
                StageError::Refused(format!(
                    "{} and {} are both named `{}` in the state store {}: they would share its lock, ledger and run history; set a different `name` in one of them (the default name is the file's name)",
                    file.display(),
                    other.display(),
                    self.pipeline.name,
                    state_path.display()
                )),
            )),
        }
    }

    /// Finishes what a crashed run left, and removes its temporary files.
    fn recover(&mut self) -> Result<(), RunError> {
        let pipeline = &self.pipeline.name;
        let store = self.store.as_deref_mut().expect("opened before recovery");
        // One connection to each server, for the recovery and the cleanup after it.
        let (sinks, cx) = (self.pipeline.sink_specs(), self.cx.clone());
        let mut destinations = publish::Destinations::new(sinks, &cx);
        let recovered = recover::recover(
            store,
            pipeline,
            &self.cx.run_id,
            &mut destinations,
            |intent| {
                let mut report = new_report(&self.cx, false);
                report.run_id = intent.run_id.clone();
                report.outcome = Outcome::Success;
                report.warnings.push(format!(
                    "published by run {} after this run was interrupted while publishing",
                    self.cx.run_id
                ));
                report.files_written = intent
                    .outputs
                    .iter()
                    .map(|o| FileDigest {
                        path: o.path.display().to_string(),
                        size: o.size,
                        sha256: o.sha256.clone(),
                    })
                    .collect();
                report
            },
        );
        if recovered.is_err() {
            // Its temporary files are still to be published.
            self.intent_pending = true;
        }
        if let Some(recover::Recovery { run_id, outputs }) =
            recovered.map_err(|e| self.state_failed(e))?
        {
            let finished = match outputs.as_slice() {
                [] => String::new(),
                outputs => format!("finished publishing {} and ", join_paths(outputs)),
            };
            self.warn(format!(
                "run {run_id} was interrupted while publishing; {finished}saved its state"
            ));
        }
        if let Some(journal) = self.cx.temp_journal.clone() {
            let cleaned = temp_journal::clean(&journal, &mut |temp| {
                destinations.remove_temp(temp.location, temp.path)
            })
            .map_err(|e| {
                self.fail(
                    "cleanup",
                    StageError::io(journal.display(), "remove the temporary files listed in", e),
                )
            })?;
            if !cleaned.removed.is_empty() {
                self.warn(format!(
                    "removed temporary files an interrupted run left: {}",
                    cleaned.removed.join(", ")
                ));
            }
            if !cleaned.refused.is_empty() {
                self.warn(format!(
                    "the temporary-file journal {} listed what is not a temporary file of this pipeline's, left alone: {}",
                    journal.display(),
                    cleaned.refused.join(", ")
                ));
            }
        }
        Ok(())
    }

    fn record_streamed(&mut self, chain: &Chain, streamed: &Streamed) {
        let report = &mut self.report;
        report.records_read = streamed.records_read;
        report.files_read = streamed.source.files_read.clone();
        report.files_already_processed = streamed.source.already_processed.clone();
        report.stages.push(StageCounts {
            stage: chain.source_label.clone(),
            records_in: streamed.records_read,
            records_out: streamed.records_read,
            bytes: self.cx.bytes_read.load(Ordering::Relaxed),
        });
        let labels = chain
            .transforms
            .iter()
            .map(|(label, _)| label.as_str())
            .chain(chain.sinks.iter().map(|(label, _)| label.as_str()))
            .chain(chain.rejects.iter().map(|_| "rejects"));
        for (label, &(records_in, records_out)) in labels.zip(&streamed.counts) {
            report.stages.push(StageCounts {
                stage: label.to_string(),
                records_in,
                records_out,
                bytes: 0,
            });
        }
        if let Some(rejects) = &chain.rejects {
            report.rejects.total = rejects.total;
            report.rejects.by_reason = rejects.by_reason.clone();
        }
        report
            .warnings
            .extend(streamed.source.warnings.iter().cloned());
        report.requests = streamed.source.requests.clone();
    }

    fn check_rejects(&self, chain: &Chain) -> Result<(), RunError> {
        let (Some(rejects), Some(config)) = (&chain.rejects, &self.pipeline.rejects) else {
            return Ok(());
        };
        let Some(max) = config.max_rejects else {
            return Ok(());
        };
        let total = self.report.records_read + rejects.total;
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

    /// Prepares every sink, records the intent, commits every sink, then saves the state.
    /// `no_records`: no record reached a sink, and there are no rejects; the outcome is then
    /// `nothing_new`, whatever empty outputs `if_empty = "write"` publishes.
    fn publish(
        &mut self,
        mut chain: Chain,
        source: SourceProgress,
        no_records: bool,
    ) -> Result<Outcome, RunError> {
        // Per sink (the rejects file last, when there are rejects): what it will publish.
        let mut prepared: Vec<(String, Vec<PreparedOutput>)> = Vec::new();
        let has_rejects = chain.rejects.as_ref().is_some_and(|r| r.total > 0);
        for (label, sink) in chain.all_sinks() {
            if label == "rejects" && !has_rejects {
                continue;
            }
            match sink.prepare() {
                Ok(outputs) => prepared.push((label.to_string(), outputs)),
                Err(e) => {
                    // What the sinks before it prepared will not be published either.
                    let earlier: Vec<PreparedOutput> = prepared
                        .into_iter()
                        .flat_map(|(_, outputs)| outputs)
                        .collect();
                    publish::Destinations::new(self.pipeline.sink_specs(), &self.cx)
                        .discard(&earlier);
                    return Err(self.fail(label, e));
                }
            }
        }
        let outputs: Vec<PreparedOutput> = prepared
            .iter()
            .flat_map(|(_, o)| o.iter().cloned())
            .collect();
        let pattern = match &self.pipeline.source {
            SourceConfig::File(config) if is_pattern(&config.path) => {
                Some(self.cx.resolve_pattern(&config.path))
            }
            _ => None,
        };
        if let Some((label, message)) =
            overlap::check(&prepared, &source.files_read, pattern.as_deref())
        {
            publish::Destinations::new(self.pipeline.sink_specs(), &self.cx).discard(&outputs);
            return Err(self.fail(&label, StageError::Refused(message)));
        }
        crash_point("after-prepare");
        let absolute: std::io::Result<Vec<PreparedOutput>> =
            outputs.iter().map(PreparedOutput::absolute).collect();
        let absolute = absolute.map_err(|e| {
            self.fail(
                "publish",
                StageError::io("the working directory", "read", e),
            )
        })?;
        let intent = CommitIntent {
            run_id: self.cx.run_id.clone(),
            outputs: absolute,
            changes: source.changes,
        };
        let store = self.store.as_deref_mut().expect("opened before publishing");
        if let Err(e) = store.begin_commit(&self.pipeline.name, &intent) {
            publish::Destinations::new(self.pipeline.sink_specs(), &self.cx).discard(&outputs);
            if matches!(e, StateError::LockLost { .. }) {
                // The journal and the lock are the other run's now.
                self.locked = false;
            }
            return Err(self.state_failed(e));
        }
        self.intent_pending = true;
        // From here the cursors move with the outputs (a crash is recovered by the next run).
        for change in &intent.changes {
            if let state::StateChange::Cursor { name, value } = change {
                self.report.cursor_after.insert(name.clone(), value.clone());
            }
        }
        crash_point("after-intent");
        let mut sinks: Vec<(String, Box<dyn Sink>)> = chain.sinks;
        if let Some(rejects) = chain.rejects.filter(|r| r.total > 0) {
            sinks.push(("rejects".into(), Box::new(rejects.sink)));
        }
        let mut published = Vec::new();
        let mut renamed = Vec::new();
        for (label, sink) in sinks {
            let report = sink.commit().map_err(|e| {
                tracing::error!(
                    pipeline = %self.pipeline.name,
                    "publishing stopped partway: the next run publishes the rest of this run's outputs before anything else"
                );
                self.fail(&label, e)
            })?;
            published.extend(report.published);
            renamed.extend(report.renamed);
        }
        crash_point("after-commit");
        for (label, outputs) in &prepared {
            // Under the name each was published as (numbered, for `if_exists = "rename"`).
            let files: Vec<FileDigest> = outputs
                .iter()
                .filter_map(|o| {
                    let prepared = o.path.display().to_string();
                    let path = match renamed.iter().find(|(from, _)| *from == prepared) {
                        Some((_, to)) => to.clone(),
                        None => published.contains(&prepared).then_some(prepared)?,
                    };
                    Some(FileDigest {
                        path,
                        size: o.size,
                        sha256: o.sha256.clone(),
                    })
                })
                .collect();
            if let Some(stage) = self.report.stages.iter_mut().find(|s| s.stage == *label) {
                stage.bytes = files.iter().map(|f| f.size).sum();
            }
            if label == "rejects" {
                self.report.rejects.file = files.first().map(|f| f.path.clone());
            }
            self.report.files_written.extend(files);
        }
        if let Some(reason) = &source.stopped_early {
            self.report.outcome = Outcome::Failure;
            let error = self.out_of_time(reason);
            self.complete_commit()?;
            return Err(error);
        }
        let outcome = if no_records {
            Outcome::NothingNew
        } else {
            Outcome::Success
        };
        // Recorded with the state, in one transaction.
        self.report.outcome = outcome;
        self.complete_commit()?;
        Ok(outcome)
    }

    /// Applies the state changes and records the run (its report as it stands now).
    fn complete_commit(&mut self) -> Result<(), RunError> {
        self.stamp_end();
        let pipeline = &self.pipeline.name;
        let run_id = &self.cx.run_id;
        let store = self.store.as_deref_mut().expect("opened before publishing");
        match store.finish_commit(pipeline, run_id, run_id, &self.report) {
            Ok(()) => {
                self.intent_pending = false;
                self.committed = true;
                Ok(())
            }
            Err(e) => {
                if matches!(e, StateError::CommitLost { .. }) {
                    self.locked = false;
                } else {
                    tracing::error!(
                        %pipeline,
                        "the outputs were published but the state could not be saved: the next run saves it once the state store works again (if the store is replaced instead, the same input is delivered again)"
                    );
                }
                Err(self.state_failed(e))
            }
        }
    }

    fn stamp_end(&mut self) {
        let now = chrono::Local::now();
        self.report.finished_at = rfc3339(now);
        self.report.duration_secs = (now - self.cx.started_at)
            .to_std()
            .unwrap_or_default()
            .as_secs_f64();
    }

    /// Records the outcome, releases the lock and sends notifications.
    fn finish(mut self, result: Result<Outcome, RunError>) -> Finished {
        let error = match result {
            Ok(outcome) => {
                self.report.outcome = outcome;
                None
            }
            Err(error) => {
                self.report.outcome = Outcome::Failure;
                self.report.error = error_chain(&error);
                Some(error)
            }
        };
        self.stamp_end();
        let pipeline = self.pipeline.name.clone();
        let mut not_notified = Vec::new();
        // A run that could not take the lock (the store is unwritable, or another run holds
        // it with `on_overlap = "fail"`) leaves the history to the runs that could.
        let recordable = self.locked || self.report.outcome == Outcome::Skipped;
        if !self.report.dry_run
            && recordable
            && let Some(store) = self.store.as_deref_mut()
        {
            let previous = store
                .runs_since_records(&pipeline, HISTORY_FOR_NOTIFY + 1)
                .unwrap_or_default()
                .into_iter()
                .filter(|r| r.run_id != self.report.run_id)
                .take(HISTORY_FOR_NOTIFY)
                .collect::<Vec<_>>();
            not_notified = crate::notify::send_all(
                &self.pipeline.notify_specs(),
                &self.report,
                &previous,
                &self.cx,
            );
            self.report.warnings.extend(not_notified.iter().cloned());
            let store = self.store.as_deref_mut().expect("checked above");
            if let Err(e) = store.record_run(&pipeline, &self.report) {
                tracing::warn!(%pipeline, "cannot record the run in the state store: {}", error_chain_text(&e));
            }
            // Every temporary file of this run is gone now (published, or removed on drop),
            // unless publishing stopped partway: the next run publishes those. Temporary
            // uploads stay listed unless this run published them: those of a failed run were
            // removed as it failed, as far as their servers could be reached, and the next
            // run makes sure.
            if let Some(journal) = self
                .cx
                .temp_journal
                .as_deref()
                .filter(|_| self.locked && !self.intent_pending)
            {
                let (committed, run_id) = (self.committed, &self.cx.run_id);
                if let Ok(cleaned) = temp_journal::clean(journal, &mut |temp| {
                    if committed && temp.run_id == run_id {
                        temp_journal::Removal::Absent
                    } else {
                        temp_journal::Removal::Kept
                    }
                }) && !cleaned.refused.is_empty()
                {
                    tracing::warn!(%pipeline, journal = %journal.display(), "the temporary-file journal listed what is not a temporary file of this pipeline's, left alone: {}", cleaned.refused.join(", "));
                }
            }
            if self.locked
                && let Err(e) = store.unlock(&pipeline, &self.cx.run_id)
            {
                tracing::warn!(%pipeline, "cannot release the run lock (the next run takes it over): {}", error_chain_text(&e));
            }
        }
        Finished {
            report: self.report,
            error,
            not_notified,
        }
    }
}

/// Streams every batch from the source through the transforms to the sinks (or, in a dry run,
/// counts what each sink would receive where). What was streamed is returned even when
/// streaming failed.
fn stream(
    source: &mut Box<dyn Source>,
    chain: &mut Chain,
    cx: &RunContext,
    dry_run: bool,
) -> (Streamed, Result<(), RunError>) {
    let mut streamed = Streamed {
        counts: vec![
            (0, 0);
            chain.transforms.len() + chain.sinks.len() + chain.rejects.iter().len()
        ],
        plan: vec![Vec::new(); chain.sinks.len() + chain.rejects.iter().len()],
        ..Streamed::default()
    };
    let progress = RunProgress::start(&chain.pipeline);
    let mut batches = 0u64;
    let result = std::thread::scope(|scope| -> Result<(), RunError> {
        let (sender, receiver) = mpsc::sync_channel::<Result<Batch, StageError>>(BATCHES_IN_FLIGHT);
        let source = &mut *source;
        let reader = std::thread::Builder::new().name("source".into());
        let spawned = reader.spawn_scoped(scope, move || {
            loop {
                let mut batch = Batch::default();
                let next = match source.next_batch(&mut batch, BATCH_RECORDS) {
                    Ok(true) => Ok(batch),
                    Ok(false) => return,
                    Err(e) => Err(e),
                };
                let failed = next.is_err();
                // A closed channel means the receiving side failed and stopped: stop too.
                if sender.send(next).is_err() || failed {
                    return;
                }
            }
        });
        if let Err(e) = spawned {
            return Err(chain.fail(
                &chain.source_label,
                StageError::io("the source", "start a thread", e),
            ));
        }
        for next in receiver {
            let mut batch = next.map_err(|e| chain.fail(&chain.source_label, e))?;
            streamed.records_read += batch.len() as u64;
            let rejected = chain.rejects.as_mut().map(|r| r.take(&mut batch));
            for (index, (label, transform)) in chain.transforms.iter_mut().enumerate() {
                streamed.counts[index].0 += batch.len() as u64;
                transform
                    .apply(&mut batch)
                    .map_err(|e| RunError::new(&chain.pipeline, label, e))?;
                streamed.counts[index].1 += batch.len() as u64;
            }
            streamed.records_to_sinks += batch.len() as u64;
            let first_sink = chain.transforms.len();
            let pipeline = chain.pipeline.clone();
            for (index, (label, sink)) in chain.all_sinks().enumerate() {
                let batch = if label == "rejects" {
                    rejected.as_ref().expect("rejects configured")
                } else {
                    &batch
                };
                if batch.is_empty() {
                    continue;
                }
                let count = &mut streamed.counts[first_sink + index];
                count.0 += batch.len() as u64;
                count.1 += batch.len() as u64;
                if dry_run {
                    add_to_plan(
                        &mut streamed.plan[index],
                        sink.destination(batch),
                        batch.len(),
                    );
                } else {
                    sink.write_batch(batch)
                        .map_err(|e| RunError::new(&pipeline, label, e))?;
                }
            }
            batches += 1;
            if batches == 1 {
                crash_point("after-first-batch");
            }
            let file = batch.origin.as_ref().map(|o| o.path.as_str());
            progress.update(
                streamed.records_read,
                cx.bytes_read.load(Ordering::Relaxed),
                file,
            );
        }
        Ok(())
    });
    streamed.source = source.progress();
    (streamed, result)
}

fn add_to_plan(plan: &mut Vec<(String, u64)>, destination: String, records: usize) {
    match plan.iter_mut().find(|(d, _)| *d == destination) {
        Some((_, count)) => *count += records as u64,
        None => plan.push((destination, records as u64)),
    }
}

fn rfc3339(time: chrono::DateTime<chrono::Local>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Millis, false)
}

fn join_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// An error and its causes, outermost first, as messages and reports list them. A cause that
/// only repeats the one before it (`file is not a database`, then `Error code 26: file is not
/// a database`) is left out.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut chain = vec![error.to_string()];
    let mut cause = error.source();
    while let Some(e) = cause {
        let text = e.to_string();
        let last = chain.last().expect("not empty");
        if !text.contains(last.as_str()) && !last.contains(text.as_str()) {
            chain.push(text);
        }
        cause = e.source();
    }
    chain
}

fn error_chain_text(error: &(dyn std::error::Error + 'static)) -> String {
    error_chain(error).join(": ")
}

/// For crash tests: when `LONGSHORE_CRASH_AT` names this point, the process aborts here, as a
/// `kill -9` or a power cut would stop it (no destructor runs, nothing is cleaned up).
fn crash_point(point: &str) {
    static CRASH_AT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let at = CRASH_AT.get_or_init(|| std::env::var("LONGSHORE_CRASH_AT").ok());
    if at.as_deref() == Some(point) {
        #[allow(clippy::print_stderr)] // the crash tests read it; logging may not be set up
        {
            eprintln!("LONGSHORE_CRASH_AT={point}: aborting");
        }
        std::process::abort();
    }
}

/// Converts one file to another (`longshore convert`): a one-file source, no transforms and a
/// file sink (or standard output for `-`). No state, no lock: a one-off.
pub fn convert(
    input: &Path,
    output: &Path,
    read: ReadOptions,
    to: FormatConfig,
    to_encoding: Option<TextEncoding>,
) -> Result<SinkReport, RunError> {
    let cx = RunContext::new("convert", Path::new(""));
    let fail = |stage: &str, source| RunError::new(&cx.pipeline, stage, source);
    let source = FileSource::from_path(input.to_path_buf(), read).map_err(|e| fail("input", e))?;
    let sink: Box<dyn Sink> = if output == Path::new("-") {
        let config = crate::sinks::stdout::StdoutSinkConfig {
            format: to,
            encoding: to_encoding,
        };
        Box::new(crate::sinks::stdout::StdoutSink::new(&config).map_err(|e| fail("output", e))?)
    } else {
        Box::new(FileSink::to_path(output, to, to_encoding, &cx))
    };
    let mut chain = Chain {
        pipeline: cx.pipeline.clone(),
        source_label: "input".into(),
        transforms: Vec::new(),
        sinks: vec![("output".into(), sink)],
        rejects: None,
    };
    stream(
        &mut (Box::new(source) as Box<dyn Source>),
        &mut chain,
        &cx,
        false,
    )
    .1?;
    let (label, mut sink) = chain.sinks.pop().expect("one sink");
    let outputs = sink.prepare().map_err(|e| fail(&label, e))?;
    sink.commit().map_err(|e| {
        publish::Destinations::new(Vec::new(), &cx).discard(&outputs);
        fail(&label, e)
    })
}

/// The first `limit` records after the transforms, with nothing written anywhere. Every file
/// the source names is read, delivered before or not.
pub fn preview(pipeline: &Pipeline, limit: usize) -> Result<Vec<Record>, RunError> {
    let mut cx = RunContext::new(&pipeline.name, pipeline.base_dir());
    cx.vars = std::sync::Arc::new(pipeline.vars.clone());
    cx.read_only = true;
    let mut store = SqliteStore::in_memory();
    let Stages {
        mut source,
        mut chain,
    } = Stages::build(pipeline, &cx, &mut store, false)?;
    let mut records = Vec::new();
    let mut batch = Batch::default();
    while records.len() < limit {
        let wanted = (limit - records.len()).min(BATCH_RECORDS);
        match source.next_batch(&mut batch, wanted) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(chain.fail(&chain.source_label, e)),
        }
        chain.transform(&mut batch)?;
        records.append(&mut batch.records);
    }
    records.truncate(limit);
    Ok(records)
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
