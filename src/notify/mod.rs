//! Notifications after a run (`[[notify]]` in a pipeline file). A cron job runs unattended, so
//! someone has to hear when a run fails and, just as important, when a feed quietly stops
//! delivering: a run that succeeds with nothing to read looks fine every time, so `stale` alerts
//! once when a dry spell crosses a threshold.
//!
//! Sending is best effort by design: the run's data is already delivered when notifications go
//! out, so a notification that cannot be sent is a warning in the report, never a failed run.
//! Messages about a failed notification name its target without secrets (header values and
//! passwords are never shown, URL query values are replaced with `***`).

use std::fmt;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::config::{Invalid, Validate};
use crate::stage::RunContext;
use crate::state::report::{Outcome, RunReport};

/// Declares a notification config: the fields every kind shares (when it is sent) and the kind's
/// own fields. The shared fields are written once here, so each kind's reference shows them with
/// the same docs and [`Trigger`] checks them in one place.
macro_rules! notify_config {
    (
        $(#[$meta:meta])*
        pub struct $name:ident { $($(#[$field_meta:meta])* pub $field:ident: $type:ty,)* }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, serde::Deserialize, schemars::JsonSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            /// Which runs send it: `"failure"` (the run failed), `"success"` (the run succeeded,
            /// including runs with nothing new), `"stale"` (no records read for
            /// `stale_after_runs` runs or `stale_after_hours` hours: sent once, by the run that
            /// crosses the threshold). A run sends at most one message per entry; `"stale"`
            /// wins over `"success"`. Required, at least one.
            pub on: Vec<$crate::notify::Event>,
            /// For `"stale"`: alert when this many consecutive runs (this one included; skipped
            /// overlapping runs not counted) read no records. Default: no run limit.
            pub stale_after_runs: Option<u32>,
            /// For `"stale"`: alert when this many hours (fractions allowed) have passed since
            /// the start of the last run that read records, or of the first recorded run if
            /// none did. Default: no time limit.
            pub stale_after_hours: Option<f64>,
            $($(#[$field_meta])* pub $field: $type,)*
        }

        impl $crate::notify::Triggered for $name {
            fn trigger(&self) -> $crate::notify::Trigger<'_> {
                $crate::notify::Trigger {
                    on: &self.on,
                    stale_after_runs: self.stale_after_runs,
                    stale_after_hours: self.stale_after_hours,
                }
            }
        }
    };
}

pub mod command;
pub mod email;
pub mod message;
pub mod webhook;

/// What a notification is sent for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// The run failed.
    Failure,
    /// The run succeeded (or found nothing new).
    Success,
    /// The run succeeded but no records have come in for too long.
    Stale,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Failure => "failure",
            Event::Success => "success",
            Event::Stale => "stale",
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The shared "when" of a notification entry, borrowed from its config.
#[derive(Debug, Clone, Copy)]
pub struct Trigger<'a> {
    pub on: &'a [Event],
    pub stale_after_runs: Option<u32>,
    pub stale_after_hours: Option<f64>,
}

impl Trigger<'_> {
    /// Problems with `on` and the stale thresholds.
    pub fn problems(&self) -> Vec<Invalid> {
        let mut problems = Vec::new();
        if self.on.is_empty() {
            problems.push(Invalid::new(
                "on",
                "`on` is empty: list when to send, e.g. `on = [\"failure\"]`",
            ));
        }
        for (index, event) in self.on.iter().enumerate() {
            if self.on[..index].contains(event) {
                problems.push(Invalid::new("on", format!("`{event}` is listed twice")));
            }
        }
        let stale = self.on.contains(&Event::Stale);
        if stale && self.stale_after_runs.is_none() && self.stale_after_hours.is_none() {
            problems.push(Invalid::new(
                "on",
                "`stale` needs `stale_after_runs` or `stale_after_hours`",
            ));
        }
        if self.stale_after_runs == Some(0) {
            problems.push(Invalid::new(
                "stale_after_runs",
                "`stale_after_runs` must be at least 1",
            ));
        }
        if self
            .stale_after_hours
            .is_some_and(|hours| !(hours.is_finite() && hours > 0.0))
        {
            problems.push(Invalid::new(
                "stale_after_hours",
                "`stale_after_hours` must be a positive number of hours",
            ));
        }
        for (key, set) in [
            ("stale_after_runs", self.stale_after_runs.is_some()),
            ("stale_after_hours", self.stale_after_hours.is_some()),
        ] {
            if set && !stale {
                problems.push(Invalid::new(
                    key,
                    format!("`{key}` has no effect unless `on` includes \"stale\""),
                ));
            }
        }
        problems
    }

    /// The event this run sends a message for, if any.
    pub fn event(&self, report: &RunReport, previous: &[RunReport]) -> Option<Event> {
        let wants = |event| self.on.contains(&event).then_some(event);
        match report.outcome {
            Outcome::Failure => wants(Event::Failure),
            Outcome::Success | Outcome::NothingNew => {
                let stale = self.on.contains(&Event::Stale)
                    && stale_crossed(
                        report,
                        previous,
                        self.stale_after_runs,
                        self.stale_after_hours,
                    );
                if stale {
                    Some(Event::Stale)
                } else {
                    wants(Event::Success)
                }
            }
            Outcome::Skipped => None,
        }
    }
}

/// Whether `report` is the run that crosses a stale threshold: it succeeded reading no records,
/// it is past a threshold, and no earlier successful run of the same dry spell was (so a job
/// every 10 minutes alerts once per dry spell, not every run).
///
/// `previous` is most recent first. Skipped runs are ignored. The dry spell is the unbroken run
/// of finished runs that read no records, ending with this one (a failed run that read nothing
/// extends it; any run that read records ends it). A run is past the thresholds when the dry
/// spell up to it is `after_runs` runs long, or when `after_hours` have passed between the start
/// of the last run that read records (or the first recorded run, if none did) and its start.
pub fn stale_crossed(
    report: &RunReport,
    previous: &[RunReport],
    after_runs: Option<u32>,
    after_hours: Option<f64>,
) -> bool {
    let dry_success = |run: &RunReport| {
        matches!(run.outcome, Outcome::Success | Outcome::NothingNew) && run.records_read == 0
    };
    if !dry_success(report) {
        return false;
    }
    let runs: Vec<&RunReport> = std::iter::once(report)
        .chain(previous)
        .filter(|run| run.outcome != Outcome::Skipped)
        .collect();
    let spell = runs.iter().take_while(|run| run.records_read == 0).count();
    let since = runs.get(spell).or(runs.last()).and_then(|run| started(run));
    // Whether runs[index] (in the dry spell) is past a threshold.
    let past = |index: usize| {
        let by_runs = after_runs.is_some_and(|limit| spell - index >= limit as usize);
        let by_hours = match (after_hours, since, started(runs[index])) {
            (Some(limit), Some(since), Some(at)) => {
                (at - since).num_milliseconds() as f64 / 3_600_000.0 >= limit
            }
            _ => false,
        };
        by_runs || by_hours
    };
    past(0) && !(1..spell).any(|index| dry_success(runs[index]) && past(index))
}

fn started(run: &RunReport) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    chrono::DateTime::parse_from_rfc3339(&run.started_at).ok()
}

/// What every kind of notification sends: the report, and why it is sent.
pub struct Notice<'a> {
    pub event: Event,
    pub report: &'a RunReport,
    /// `report.to_json()`, made once.
    pub json: &'a str,
}

/// When a notification is sent: its `on` and stale limits, which every kind has (the
/// `notify_config!` macro declares them and implements this).
pub trait Triggered {
    fn trigger(&self) -> Trigger<'_>;
}

/// What a kind of notification's config does: it is checked, and it sends a notice.
pub trait NotifySpec: Triggered + Validate {
    /// What messages call it: its kind and where it goes, without secrets.
    fn target(&self) -> String;

    /// The files it needs that are not there, relative paths taken from `base_dir`: broken
    /// alerting is found by `validate`, not by the failure it was meant to report.
    fn missing_files(&self, _base_dir: &std::path::Path) -> Vec<Invalid> {
        Vec::new()
    }

    fn send(&self, notice: &Notice, cx: &RunContext) -> Result<(), String>;
}

/// Sends every notification whose `on` matches this run. Never fails: returns one warning per
/// notification that could not be sent (already logged with tracing::warn!).
pub fn send_all(
    entries: &[&dyn NotifySpec],
    report: &RunReport,
    previous: &[RunReport],
    cx: &RunContext,
) -> Vec<String> {
    let json = report.to_json();
    let mut warnings = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let Some(event) = entry.trigger().event(report, previous) else {
            continue;
        };
        let notice = Notice {
            event,
            report,
            json: &json,
        };
        // A bug in a notifier must not fail a run whose data is already delivered.
        let sent =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| entry.send(&notice, cx)))
                .unwrap_or_else(|_| Err("the notifier panicked".to_string()));
        let (number, target) = (index + 1, entry.target());
        match sent {
            Ok(()) => {
                tracing::info!(pipeline = %cx.pipeline, "notification {number} ({target}) for {event} sent")
            }
            Err(error) => {
                let warning =
                    format!("notification {number} ({target}) for {event} not sent: {error}");
                tracing::warn!(pipeline = %cx.pipeline, "{warning}");
                warnings.push(warning);
            }
        }
    }
    warnings
}

/// The last `max` bytes of `text` (at a character boundary), marked when cut.
fn tail(text: &str, max: usize) -> String {
    let text = text.trim_end();
    if text.len() <= max {
        return text.to_string();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &text[start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run that started `minutes` after midnight and read `records`.
    fn run(minutes: i64, outcome: Outcome, records: u64) -> RunReport {
        let at = chrono::DateTime::parse_from_rfc3339("2024-08-01T00:00:00+02:00").unwrap()
            + chrono::Duration::minutes(minutes);
        RunReport {
            finished_at: at.to_rfc3339(),
            duration_secs: 1.0,
            outcome,
            records_read: records,
            ..RunReport::new("orders", &format!("run-{minutes}"), &at.to_rfc3339())
        }
    }

    /// Which of `history` (oldest first) would alert, as indexes.
    fn alerts(history: &[RunReport], runs: Option<u32>, hours: Option<f64>) -> Vec<usize> {
        (0..history.len())
            .filter(|&i| {
                let previous: Vec<RunReport> = history[..i].iter().rev().cloned().collect();
                stale_crossed(&history[i], &previous, runs, hours)
            })
            .collect()
    }

    use Outcome::{Failure, NothingNew, Skipped, Success};

    #[test]
    fn stale_by_runs_alerts_once_per_dry_spell() {
        let history = vec![
            run(0, Success, 5),
            run(10, NothingNew, 0),
            run(20, Skipped, 0),
            run(30, NothingNew, 0),
            run(40, Success, 0), // third dry run in a row (the skipped one does not count)
            run(50, NothingNew, 0),
            run(60, Success, 3), // records again: the spell ends
            run(70, NothingNew, 0),
            run(80, NothingNew, 0),
            run(90, NothingNew, 0),
        ];
        assert_eq!(alerts(&history, Some(3), None), vec![4, 9]);
        assert_eq!(alerts(&history, Some(1), None), vec![1, 7]);
    }

    #[test]
    fn stale_by_hours_alerts_once_when_the_threshold_is_crossed() {
        // A cron job every 10 minutes; records last read at minute 0.
        let mut history = vec![run(0, Success, 7)];
        history.extend((1..=12).map(|i| run(i * 10, NothingNew, 0)));
        assert_eq!(alerts(&history, None, Some(1.0)), vec![6]);
        // Never any records: counted from the first recorded run.
        let never: Vec<RunReport> = (0..=8).map(|i| run(i * 10, NothingNew, 0)).collect();
        assert_eq!(alerts(&never, None, Some(0.5)), vec![3]);
        // Either threshold: the first one crossed alerts, the other then stays quiet.
        assert_eq!(alerts(&history, Some(2), Some(1.0)), vec![2]);
    }

    #[test]
    fn failures_extend_the_spell_but_do_not_use_up_the_alert() {
        let history = vec![
            run(0, Success, 1),
            run(10, NothingNew, 0),
            run(20, Failure, 0), // crosses 2 runs, but only a success can be stale
            run(30, NothingNew, 0),
            run(40, NothingNew, 0),
        ];
        assert_eq!(alerts(&history, Some(2), None), vec![3]);
        // A failed run that read records ends the spell: records did come in.
        let history = vec![
            run(0, NothingNew, 0),
            run(10, Failure, 4),
            run(20, NothingNew, 0),
        ];
        assert_eq!(alerts(&history, Some(2), None), Vec::<usize>::new());
    }

    #[test]
    fn a_run_that_read_records_or_failed_or_was_skipped_is_never_stale() {
        for (outcome, records) in [(Success, 1), (Failure, 0), (Skipped, 0)] {
            let history = vec![
                run(0, NothingNew, 0),
                run(10, NothingNew, 0),
                run(20, outcome, records),
            ];
            assert_eq!(
                alerts(&history, Some(1), Some(0.01)),
                vec![0],
                "{outcome:?}"
            );
        }
    }

    #[test]
    fn events_follow_the_outcome() {
        let on = [Event::Failure, Event::Success, Event::Stale];
        let trigger = Trigger {
            on: &on,
            stale_after_runs: Some(1),
            stale_after_hours: None,
        };
        assert_eq!(
            trigger.event(&run(0, Failure, 0), &[]),
            Some(Event::Failure)
        );
        assert_eq!(
            trigger.event(&run(0, Success, 2), &[]),
            Some(Event::Success)
        );
        assert_eq!(
            trigger.event(&run(0, NothingNew, 0), &[]),
            Some(Event::Stale)
        );
        assert_eq!(trigger.event(&run(0, Skipped, 0), &[]), None);
        let failure_only = Trigger {
            on: &[Event::Failure],
            ..trigger
        };
        assert_eq!(failure_only.event(&run(0, Success, 2), &[]), None);
    }

    #[test]
    fn trigger_problems() {
        let messages = |on: &[Event], runs, hours| -> Vec<String> {
            Trigger {
                on,
                stale_after_runs: runs,
                stale_after_hours: hours,
            }
            .problems()
            .into_iter()
            .map(|p| p.to_string())
            .collect()
        };
        assert!(messages(&[Event::Failure], None, None).is_empty());
        assert!(messages(&[Event::Stale], Some(3), Some(0.5)).is_empty());
        assert_eq!(
            messages(&[], None, None),
            ["on: `on` is empty: list when to send, e.g. `on = [\"failure\"]`"]
        );
        assert_eq!(
            messages(&[Event::Stale, Event::Stale], None, None),
            [
                "on: `stale` is listed twice",
                "on: `stale` needs `stale_after_runs` or `stale_after_hours`"
            ]
        );
        assert_eq!(
            messages(&[Event::Stale], Some(0), Some(-1.0)),
            [
                "stale_after_runs: `stale_after_runs` must be at least 1",
                "stale_after_hours: `stale_after_hours` must be a positive number of hours"
            ]
        );
        assert_eq!(
            messages(&[Event::Failure], Some(2), None),
            ["stale_after_runs: `stale_after_runs` has no effect unless `on` includes \"stale\""]
        );
    }

    #[test]
    fn tails_cut_at_character_boundaries() {
        assert_eq!(tail("short\n", 10), "short");
        assert_eq!(tail("ééé", 3), "…é");
    }
}
