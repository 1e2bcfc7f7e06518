//! Finishing a commit that a crashed run left behind: its outputs are published through the
//! pipeline's sinks, then its state changes applied (see [`recover`]).

use std::path::PathBuf;

use crate::sinks::publish::Destinations;
use crate::state::report::RunReport;
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
