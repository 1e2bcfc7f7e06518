//! The two-phase commit: every sink prepares (durable, invisible), the state store records
//! the intent, every sink commits (renames), then the state advances with the run recorded,
//! in one transaction. A failure before the intent leaves every destination untouched; a
//! crash after it is finished by the next run (`recover.rs`).

use super::Run;
use super::crash::crash_point;
use super::stages::Chain;
use crate::error::{RunError, StageError};
use crate::pipeline::{SourceConfig, overlap};
use crate::sinks::publish;
use crate::sources::file::is_pattern;
use crate::stage::{Sink, SourceProgress};
use crate::state::report::{FileDigest, Outcome};
use crate::state::{self, CommitIntent, PreparedOutput, StateError};

impl Run<'_> {
    /// Prepares every sink, records the intent, commits every sink, then saves the state.
    /// `no_records`: no record reached a sink, and there are no rejects; the outcome is then
    /// `nothing_new`, whatever empty outputs `if_empty = "write"` publishes.
    pub(super) fn publish(
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
        let pattern = match &self.pipeline.config.source {
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
}
