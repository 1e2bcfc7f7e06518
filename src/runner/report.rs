//! The run's report from start to end: begun with the run, filled in with what streaming did,
//! and at the end (`finish`, whatever happened) completed with the outcome, sent to the
//! notifications, recorded in the run history; then this run's temporary-file journal is
//! cleaned and the lock released.

use std::sync::atomic::Ordering;

use super::stages::Chain;
use super::stream::Streamed;
use super::{Finished, Run};
use crate::error::RunError;
use crate::error::{error_chain, error_chain_text};
use crate::sinks::temp_journal;
use crate::stage::RunContext;
use crate::state::report::{Outcome, RunReport, StageCounts};

/// The most earlier runs passed to notifications (those since the last run that read records,
/// for `stale`): a day of runs every minute.
const HISTORY_FOR_NOTIFY: usize = 1440;

pub(super) fn new_report(cx: &RunContext, dry_run: bool) -> RunReport {
    RunReport {
        dry_run,
        ..RunReport::new(&cx.pipeline, &cx.run_id, &rfc3339(cx.started_at))
    }
}

fn rfc3339(time: chrono::DateTime<chrono::Local>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Millis, false)
}

impl Run<'_> {
    pub(super) fn record_streamed(&mut self, chain: &Chain, streamed: &Streamed) {
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
        report.warnings.extend(streamed.warnings.iter().cloned());
        report.requests = streamed.source.requests.clone();
    }

    pub(super) fn stamp_end(&mut self) {
        let now = chrono::Local::now();
        self.report.finished_at = rfc3339(now);
        self.report.duration_secs = (now - self.cx.started_at)
            .to_std()
            .unwrap_or_default()
            .as_secs_f64();
    }

    /// Records the outcome, releases the lock and sends notifications.
    pub(super) fn finish(mut self, result: Result<Outcome, RunError>) -> Finished {
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
