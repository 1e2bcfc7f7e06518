//! Taking the pipeline's lock, and what a run does when another holds it (`on_overlap`); and
//! claiming the pipeline's name in the state store, so two pipeline files of the same name do
//! not share a lock, a ledger and a history.

use std::path::Path;
use std::time::Duration;

use super::Run;
use crate::error::{RunError, StageError};
use crate::pipeline::OnOverlap;
use crate::state::{LockAttempt, LockOwner};

/// A lock held longer than this makes a skipped run (`on_overlap = "skip"`) a warning.
const LONG_HELD_LOCK_SECS: i64 = 3600;
/// How often a run waiting for another (`on_overlap = "wait"`) looks at the lock again.
const LOCK_POLL: Duration = Duration::from_millis(500);

impl Run<'_> {
    /// Takes the pipeline's lock; false when another run holds it and `on_overlap = "skip"`.
    pub(super) fn lock(&mut self) -> Result<bool, RunError> {
        let mut announced_wait = false;
        loop {
            // Stamped now: the age of the holder's lock is measured from this attempt.
            let owner = LockOwner::this_process(&self.cx.run_id);
            let store = self.store.as_deref_mut().expect("opened before locking");
            let attempt = store
                .try_lock(
                    &self.pipeline.name,
                    &owner,
                    self.pipeline.config.max_runtime_secs,
                )
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
            match self.pipeline.config.on_overlap {
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
    pub(super) fn claim_name(&mut self, state_path: &Path) -> Result<(), RunError> {
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
}
