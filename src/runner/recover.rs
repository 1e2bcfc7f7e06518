//! Finishing what a crashed run left behind before a run reads anything: the commit it had
//! begun (its outputs published through the pipeline's sinks, then its state changes applied,
//! see [`recover`]), and the temporary files its journal lists.

use std::path::PathBuf;

use super::Run;
use super::report::new_report;
use crate::error::{RunError, StageError};
use crate::sinks::publish::{self, Destinations};
use crate::sinks::temp_journal;
use crate::state::report::{FileDigest, Outcome, RunReport};
use crate::state::{CommitIntent, StateError, StateStore};

/// What recovering an interrupted commit did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// The interrupted run.
    pub run_id: String,
    /// Its outputs, now all published (or skipped, per `if_exists = "skip"`).
    pub outputs: Vec<PathBuf>,
}

/// Finishes the commit a crashed run of `pipeline` left behind: publishes the outputs it had
/// not published yet, then applies its state changes, so that its input is not delivered
/// again. Call with the lock held (by `locked_by`), before reading any state.
///
/// Once an intent is recorded, nothing but publishing removes its temporary files (the run
/// keeps them on failure, and the temporary-file journal is not cleaned while an intent is
/// pending), so a temporary file that is gone was published: its final file may have been
/// picked up and moved by a consumer since. `destinations` reaches the servers of uploads.
pub(crate) fn recover(
    store: &mut dyn StateStore,
    pipeline: &str,
    locked_by: &str,
    destinations: &mut Destinations,
    report: impl FnOnce(&CommitIntent) -> RunReport,
) -> Result<Option<Recovery>, StateError> {
    let Some(intent) = store.pending_commit(pipeline)? else {
        return Ok(None);
    };
    for output in &intent.outputs {
        destinations
            .finish(output)
            .map_err(|source| StateError::Recover {
                path: output.path.clone(),
                source,
            })?;
    }
    store.finish_commit(pipeline, &intent.run_id, locked_by, &report(&intent))?;
    Ok(Some(Recovery {
        outputs: intent.outputs.iter().map(|o| o.path.clone()).collect(),
        run_id: intent.run_id,
    }))
}

impl Run<'_> {
    /// Finishes what a crashed run left, and removes its temporary files.
    pub(super) fn recover(&mut self) -> Result<(), RunError> {
        let pipeline = &self.pipeline.name;
        let store = self.store.as_deref_mut().expect("opened before recovery");
        // One connection to each server, for the recovery and the cleanup after it.
        let (sinks, cx) = (self.pipeline.sink_specs(), self.cx.clone());
        let mut destinations = publish::Destinations::new(sinks, &cx);
        let recovered = recover(
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
        if let Some(Recovery { run_id, outputs }) = recovered.map_err(|e| self.state_failed(e))? {
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
}

fn join_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
