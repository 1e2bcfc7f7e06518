//! A pull is one list, or, windowed, one list per time window. Each is started (by its first
//! page, or by its export job) and ended: its records counted against the advertised total and
//! `cap`, its window's records delivered, or the window split when they were cut off, and the
//! next window started. Paging can also stop early: at a configured limit, or when the run's
//! time runs out.

use std::sync::Arc;

use super::config::OnMismatch;
use super::paging::Paginator;
use super::{HttpError, HttpSource};
use crate::error::StageError;
use crate::record::Origin;

impl HttpSource {
    /// Starts pulling the time window `[from, until)`, holding its records when it may be
    /// capped.
    pub(super) fn start_window(&mut self, from: String, until: String) -> Result<(), StageError> {
        self.delivery.held = self.settings.cap.map(|_| Vec::new());
        if let Some(delta) = &mut self.delivery.delta {
            delta.set_window(&from, &until);
        }
        self.delivery.window = Some((from.clone(), until.clone()));
        self.start_list(Some(from), Some(until))
    }

    /// Starts pulling a list (the whole pull, or one time window) of the records from
    /// `cursor` until `until`: by its first page, or by its export job.
    pub(super) fn start_list(
        &mut self,
        cursor: Option<String>,
        until: Option<String>,
    ) -> Result<(), StageError> {
        let base = self
            .settings
            .list
            .url(cursor.as_deref(), until.as_deref(), None)?;
        self.paging.paginator = Paginator::new(&self.settings.pagination, base);
        self.paging.received = 0;
        if self.settings.job.is_some() {
            self.paging.job_for = Some((cursor, until));
        } else {
            self.paging.next = Some(self.paging.paginator.first());
        }
        Ok(())
    }

    /// The list (the whole pull, or a time window) ended: its totals are checked, its window
    /// delivered or split, and the next window started.
    pub(super) fn end_list(&mut self, origin: &Arc<Origin>) -> Result<(), StageError> {
        if !self.window_cut_off() {
            self.check_total()?;
            self.check_cap();
        }
        self.end_window(origin)
    }

    /// The current time window is pulled whole: its records are delivered, or, when they
    /// reached the cap, dropped and the window split in two. Then the next window starts.
    fn end_window(&mut self, origin: &Arc<Origin>) -> Result<(), StageError> {
        let cut_off = self.window_cut_off();
        let (Some((from, until)), Some(windows)) =
            (self.delivery.window.take(), self.delivery.windows.as_mut())
        else {
            return Ok(());
        };
        let held = self.delivery.held.take();
        if cut_off {
            tracing::info!(
                "{} records from {from} to {until} reach `cap` or fall short of the advertised total: asking for each half",
                self.paging.received
            );
            if let Err(message) = windows.split(&from, &until) {
                let url = self.shown(self.paging.paginator.base());
                return Err(HttpError::Paging { url, message }.into());
            }
        } else {
            if let Some(mut records) = held {
                if let Some(delta) = &mut self.delivery.delta {
                    delta
                        .filter(&mut records, 1)
                        .map_err(|message| HttpError::Paging {
                            url: format!("{} (from {from} to {until})", origin.path),
                            message,
                        })?;
                }
                self.delivery.delivered += records.len() as u64;
                self.delivery.ready.extend(records);
                self.delivery.ready_origin = Some(origin.clone());
            }
            if let Some(delta) = &mut self.delivery.delta {
                delta.window_delivered(&until);
            }
        }
        if let Some((from, until)) = windows.next() {
            self.start_window(from, until)?;
        }
        Ok(())
    }

    /// Whether the current time window's answer was cut off (it reached `cap`, or fell short
    /// of the advertised total) and is to be split: only windowed pulls with `cap` split.
    fn window_cut_off(&self) -> bool {
        let Some(cap) = self.settings.cap.filter(|_| self.delivery.window.is_some()) else {
            return false;
        };
        self.paging.received >= cap
            || self
                .paging
                .paginator
                .expected()
                .is_some_and(|expected| expected > self.paging.received)
    }

    /// An answer that reached `cap` without time windows to split it was probably cut off.
    fn check_cap(&mut self) {
        if let Some(cap) = self.settings.cap
            && self.delivery.window.is_none()
            && self.paging.received >= cap
        {
            let message = format!(
                "the answer holds {} records, `cap` = {cap}: it was probably cut off there; pull in time windows (`incremental.window`) to get the rest",
                self.paging.received
            );
            tracing::warn!("{message}");
            self.report.warnings.push(message);
        }
    }

    /// Compares the records received with the advertised total.
    fn check_total(&mut self) -> Result<(), StageError> {
        let Some(expected) = self.paging.paginator.expected() else {
            return Ok(());
        };
        if expected == self.paging.received {
            return Ok(());
        }
        let message = if self.settings.pagination.is_paged() {
            format!(
                "received {} records, but the API advertised {expected}: records may have been added or removed while paging, or the server caps the page size below `limit`",
                self.paging.received
            )
        } else {
            format!(
                "the answer holds {} records, but the API advertised {expected}: the export was cut off (pull it in time windows with `incremental.window` and `cap`)",
                self.paging.received
            )
        };
        match self.settings.on_total_mismatch {
            OnMismatch::Fail => Err(HttpError::Paging {
                url: self.shown(self.paging.paginator.base()),
                message: format!("{message} (`on_total_mismatch = \"warn\"` delivers them anyway)"),
            }
            .into()),
            OnMismatch::Warn => {
                tracing::warn!("{message}");
                self.report.warnings.push(message);
                Ok(())
            }
        }
    }

    /// Paging stops at a configured limit: what follows is not read, which the report says.
    pub(super) fn stop_at_limit(&mut self, limit: String) {
        let message =
            format!("stopped at {limit}, as configured: the rest of the list was not read");
        tracing::warn!("{message}");
        self.report.warnings.push(message);
        self.paging.cut_short = true;
    }

    /// Paging stops before the list's end, for `reason` (the run's time ran out): the report
    /// says why.
    pub(super) fn stop_early(&mut self, reason: String) {
        self.paging.cut_short = true;
        self.report.progress.stopped_early = Some(reason);
    }
}

/// "1 page", "2 pages".
pub(super) fn pages(count: u64) -> String {
    if count == 1 {
        "1 page".into()
    } else {
        format!("{count} pages")
    }
}
