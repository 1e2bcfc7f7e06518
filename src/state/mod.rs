//! What a pipeline remembers between runs: its incremental cursors, the ledger of source files
//! it delivered, the push outbox, its run history and its lock. Reruns are safe because of it: a
//! delivered file is not delivered again, and a crash is recovered from on the next run.
//!
//! Stages and the runner talk to a [`StateStore`] trait object; [`sqlite::SqliteStore`] (one
//! SQLite file beside the pipeline) is the backend today, and a shared one (PostgreSQL, for runs
//! that move between machines) can be added behind the same trait.
//!
//! The commit protocol makes "nothing lost, nothing twice" hold across crashes:
//! 1. sinks prepare their outputs (temporary files, fsynced);
//! 2. [`StateStore::begin_commit`] records the intent: which temporary file becomes which final
//!    file, and the state changes (ledger entries, cursors) that go with it;
//! 3. sinks commit (rename);
//! 4. [`StateStore::finish_commit`] applies the changes and the run's history in one transaction.
//!
//! A run that finds an unfinished intent first [`recover`]s it: it publishes what the crashed
//! run had not, then applies its state.

pub mod intent;
pub mod lock;
pub mod report;
pub mod sqlite;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use lock::{LockAttempt, LockOwner};
pub use sqlite::SqliteStore;

pub use intent::{CommitIntent, IfExists, PreparedOutput, RemoteOutput};

use crate::state::report::RunReport;

/// Where a pipeline keeps its state.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// The SQLite file holding the state; relative paths are resolved against the pipeline
    /// file's directory. Several pipelines may share one file. `--state` and `LONGSHORE_STATE`
    /// override it. Default `.longshore/state.db`.
    pub path: Option<String>,
}

impl crate::config::Validate for StateConfig {
    fn problems(&self) -> Vec<crate::config::Invalid> {
        match &self.path {
            Some(path) if path.trim().is_empty() => {
                vec![crate::config::Invalid::new("path", "must not be empty")]
            }
            _ => Vec::new(),
        }
    }
}

/// The state file of a pipeline whose file is in `base_dir`, when nothing overrides it.
pub const DEFAULT_STATE_PATH: &str = ".longshore/state.db";

/// A source file an earlier run delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// The file's canonical path.
    pub path: String,
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// Lowercase hex SHA-256 of the content.
    pub sha256: String,
    /// When the run that delivered it started (RFC 3339), and its id.
    pub processed_at: String,
    pub run_id: String,
}

/// A change to a pipeline's state that takes effect only once the run's outputs are published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StateChange {
    /// An incremental cursor moves to `value`.
    Cursor { name: String, value: String },
    /// A source file was delivered.
    Ledger(LedgerEntry),
}

/// Where an idempotent push stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxStatus {
    /// Sent, but the receiver's acknowledgement was not seen: resend with the same key.
    Sent,
    /// The receiver acknowledged it: never send again.
    Acknowledged,
}

/// What `longshore state show` prints.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StateSummary {
    pub cursors: BTreeMap<String, String>,
    pub ledger_files: u64,
    pub outbox_pending: u64,
    pub outbox_acknowledged: u64,
    pub lock: Option<LockOwner>,
    /// The run id of a commit that was interrupted and not yet recovered.
    pub pending_commit: Option<String>,
}

/// The state store failed. Exit code 1: the run did not (fully) happen.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "cannot open the state store {} (if it is damaged, move it aside to start afresh: every source file is then delivered again)",
        .path.display()
    )]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot create the state store (or its directory) at {}", .path.display())]
    Directory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the state store {} was written by a newer longshore (schema version {found}, this one knows up to {known}): upgrade longshore",
        .path.display()
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("the state store {} could not {action}", .path.display())]
    Sql {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error("the state store {} holds data this longshore cannot read ({what})", .path.display())]
    Corrupt { path: PathBuf, what: String },
    /// The file at the store's path is not the one this run opened any more: what the run
    /// saved would go to a deleted or moved file, and the next run would start afresh.
    #[error(
        "the state store {} was deleted or replaced while the run went on: what it saves would be lost, and the next run would deliver everything again. Put the file back, or run again to start afresh with the new one",
        .path.display()
    )]
    Replaced { path: PathBuf },
    /// A store file of 0 bytes: SQLite would take it for a new store, and every source file
    /// would be delivered again.
    #[error(
        "the state store {} is empty (0 bytes): it was truncated, not created; restore it from a backup, or remove it to start afresh (every source file is then delivered again)",
        .path.display()
    )]
    Empty { path: PathBuf },
    #[error(
        "cannot finish publishing {} for a run that was interrupted: fix the cause and run again",
        .path.display()
    )]
    Recover {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "another run ({run_id}) took over the lock of pipeline `{pipeline}` while this one was running: nothing was published"
    )]
    LockLost { pipeline: String, run_id: String },
    #[error(
        "another run ({run_id}) took over the lock of pipeline `{pipeline}` while this one was publishing: its state was not saved by this run (the run holding the lock finishes publishing and saves it)"
    )]
    CommitLost { pipeline: String, run_id: String },
    #[error(
        "run {} of pipeline `{pipeline}` is in progress (pid {} on {}): try again once it has finished",
        .holder.run_id, .holder.pid, .holder.host
    )]
    Busy {
        pipeline: String,
        holder: Box<LockOwner>,
    },
    #[error(
        "run {run_id} of pipeline `{pipeline}` was interrupted while publishing: run the pipeline once to finish publishing, then try again"
    )]
    Unfinished { pipeline: String, run_id: String },
}

/// One pipeline's memory between runs. Every method is about the pipeline it is given, so one
/// store can hold many pipelines.
pub trait StateStore: Send {
    /// Where the store is, for messages.
    fn location(&self) -> &Path;

    /// Takes the pipeline's run lock unless a live run holds it. A lock whose holder is dead
    /// (same host, process gone) or older than `stale_after_secs` is taken over.
    fn try_lock(
        &mut self,
        pipeline: &str,
        owner: &LockOwner,
        stale_after_secs: Option<u64>,
    ) -> Result<LockAttempt, StateError>;
    /// Releases the lock if `run_id` holds it.
    fn unlock(&mut self, pipeline: &str, run_id: &str) -> Result<(), StateError>;
    /// Records that the name `pipeline` is the pipeline file `file`'s on this host; returns the
    /// other file that has the name, when one that still exists does (two files of one name
    /// would share a lock, a ledger and a history).
    fn claim_name(&mut self, pipeline: &str, file: &Path) -> Result<Option<PathBuf>, StateError>;

    fn cursors(&mut self, pipeline: &str) -> Result<BTreeMap<String, String>, StateError>;
    fn ledger_entry(
        &mut self,
        pipeline: &str,
        path: &str,
    ) -> Result<Option<LedgerEntry>, StateError>;

    /// Records what the run is about to publish. Fails with [`StateError::LockLost`] when
    /// `intent.run_id` no longer holds the lock.
    fn begin_commit(&mut self, pipeline: &str, intent: &CommitIntent) -> Result<(), StateError>;
    /// The commit a crashed run left unfinished, if any.
    fn pending_commit(&mut self, pipeline: &str) -> Result<Option<CommitIntent>, StateError>;
    /// In one transaction: applies the state changes of `run_id`'s pending commit, forgets the
    /// intent and records `report` in the run history. `locked_by` is the run holding the lock
    /// (`run_id` itself, or the run recovering its commit). Fails with
    /// [`StateError::CommitLost`] when that run no longer holds the lock or the intent is gone
    /// (another run finished it).
    fn finish_commit(
        &mut self,
        pipeline: &str,
        run_id: &str,
        locked_by: &str,
        report: &RunReport,
    ) -> Result<(), StateError>;

    /// Adds (or replaces, by run id) a run in the history.
    fn record_run(&mut self, pipeline: &str, report: &RunReport) -> Result<(), StateError>;
    /// The most recent runs, newest first.
    fn runs(&mut self, pipeline: &str, limit: usize) -> Result<Vec<RunReport>, StateError>;
    /// The runs since the last one that read records (that one included; all runs if none
    /// did), newest first, at most `limit`: what "no new data for N runs or hours" is judged on.
    fn runs_since_records(
        &mut self,
        pipeline: &str,
        limit: usize,
    ) -> Result<Vec<RunReport>, StateError>;

    fn summary(&mut self, pipeline: &str) -> Result<StateSummary, StateError>;
    /// Forgets the cursors, the ledger and the outbox (the history stays); with `cursor`, sets
    /// that cursor instead of leaving none. Like [`StateStore::forget`], refused
    /// ([`StateError::Busy`], [`StateError::Unfinished`]) while a run is live or a commit is
    /// unfinished, whose own state would undo the change.
    fn reset(&mut self, pipeline: &str, cursor: Option<(&str, &str)>) -> Result<(), StateError>;
    /// Removes one file from the ledger, so the next run processes it again. False when the
    /// ledger did not have it.
    fn forget(&mut self, pipeline: &str, path: &str) -> Result<bool, StateError>;

    /// The push keys of `pipeline` the outbox holds as acknowledged.
    fn acknowledged_keys(
        &mut self,
        pipeline: &str,
    ) -> Result<std::collections::HashSet<String>, StateError>;
    /// Records where pushes stand, all in one transaction (one sync to disk for the lot).
    fn record_outbox(
        &mut self,
        pipeline: &str,
        entries: &[(String, OutboxStatus)],
    ) -> Result<(), StateError>;
    /// The id of the pipeline's latest run that ended `success` (its state committed), if any:
    /// it stays the same from a run that failed or crashed to its rerun, and changes once a
    /// run delivered, so push keys made with it repeat exactly for a rerun.
    fn last_success(&mut self, pipeline: &str) -> Result<Option<String>, StateError>;
}

impl From<StateError> for crate::error::StageError {
    fn from(error: StateError) -> Self {
        crate::error::StageError::Failed(Box::new(error))
    }
}
