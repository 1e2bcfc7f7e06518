//! The run report: one JSON document per run saying what happened, for operators and for
//! machines. It is written with `--report PATH`, kept in the state store (`longshore runs`), and
//! is what notifications send.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Everything a run did, whatever its outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub pipeline: String,
    /// Unique per run: `20240801T020500Z-3f9a1c`.
    pub run_id: String,
    /// RFC 3339, local time with offset.
    pub started_at: String,
    pub finished_at: String,
    pub duration_secs: f64,
    pub outcome: Outcome,
    /// Nothing was written and no state moved (`--dry-run`).
    pub dry_run: bool,
    /// Records read from the source (rejects not included).
    pub records_read: u64,
    /// Per stage, in pipeline order: records in and out, bytes where the stage knows them.
    pub stages: Vec<StageCounts>,
    /// Source files read this run.
    pub files_read: Vec<FileDigest>,
    /// Source files left alone because an earlier run delivered them (same path and content).
    pub files_already_processed: Vec<String>,
    /// Files published.
    pub files_written: Vec<FileDigest>,
    /// A dry run: what each sink would have written where.
    pub planned: Vec<PlannedOutput>,
    pub rejects: RejectCounts,
    /// Incremental cursors before and after the run, by name.
    pub cursor_before: BTreeMap<String, String>,
    pub cursor_after: BTreeMap<String, String>,
    /// Why the run failed or stopped early: the error and each cause, outermost first.
    pub error: Vec<String>,
    /// Warnings an operator should read (a stale lock taken over, a notification not sent).
    pub warnings: Vec<String>,
    /// An API source's requests: sent, retried, answered 429, and the waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<RequestCounts>,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every record delivered and the state saved.
    Success,
    /// No record to deliver: the source found nothing new, or only input without records
    /// (an empty page, a file with just its header). The state advanced as for a success (a
    /// file read is not read again, a cursor moved is saved). Sinks published nothing, except
    /// the empty outputs of those with `if_empty = "write"` (listed in `files_written`): the
    /// outcome says what came, whatever a sink makes of it.
    NothingNew,
    /// Another run of the pipeline held the lock (`on_overlap = "skip"`).
    Skipped,
    Failure,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::NothingNew => "nothing_new",
            Outcome::Skipped => "skipped",
            Outcome::Failure => "failure",
        }
    }
}

/// One stage's counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageCounts {
    /// `source (file)`, `transform 1 (rename)`, `sink 2 (file)`, `rejects`.
    pub stage: String,
    pub records_in: u64,
    pub records_out: u64,
    /// Bytes read (source) or written (sinks); 0 where not known.
    pub bytes: u64,
}

/// A file read or written, with what identifies its content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    pub path: String,
    pub size: u64,
    /// Lowercase hex SHA-256 of the bytes.
    pub sha256: String,
}

/// Records a sink would write to one destination (`--dry-run`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedOutput {
    /// `sink 1 (file)`, or `rejects`.
    pub sink: String,
    /// Where; none when the sink would write nothing (no records, `if_empty = "skip"`).
    pub destination: Option<String>,
    pub records: u64,
    /// Only for a run without records: the sink's `if_empty`, which decides whether it would
    /// write an empty output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_empty: Option<String>,
    /// A sink that sends requests (`http`): the first it would send, in order (at most
    /// three), as they would go out. Requests an earlier run had acknowledged are not among
    /// them: they would not be sent again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requests: Vec<PlannedRequest>,
}

/// A request a dry run would have sent, as messages show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedRequest {
    /// `POST`, `PUT`, `PATCH` or `DELETE`.
    pub method: String,
    /// The URL, query values and secrets shown as `***`.
    pub url: String,
    /// `Name: value`, in the order they would be sent; secret values (credentials, headers
    /// given by reference or named like a secret) shown as `***`. The idempotency key is the
    /// one the run would send.
    pub headers: Vec<String>,
    /// The records the request would carry.
    pub records: u64,
    /// The body's size in bytes.
    pub body_bytes: u64,
    /// The body's first 200 bytes or so, on one line (line breaks as `\n`), `…` after it when
    /// there is more; secrets shown as `***`.
    pub body: String,
}

/// Records quarantined in the rejects file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RejectCounts {
    pub total: u64,
    /// Reason (without the position) to count.
    pub by_reason: BTreeMap<String, u64>,
    /// Where they were written.
    pub file: Option<String>,
}

impl RunReport {
    /// The report of a run that has just started: nothing done yet, outcome `failure` until
    /// the run says otherwise.
    pub fn new(pipeline: &str, run_id: &str, started_at: &str) -> Self {
        RunReport {
            pipeline: pipeline.to_string(),
            run_id: run_id.to_string(),
            started_at: started_at.to_string(),
            finished_at: String::new(),
            duration_secs: 0.0,
            outcome: Outcome::Failure,
            dry_run: false,
            records_read: 0,
            stages: Vec::new(),
            files_read: Vec::new(),
            files_already_processed: Vec::new(),
            files_written: Vec::new(),
            planned: Vec::new(),
            rejects: RejectCounts::default(),
            cursor_before: BTreeMap::new(),
            cursor_after: BTreeMap::new(),
            error: Vec::new(),
            warnings: Vec::new(),
            requests: None,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report serializes") + "\n"
    }
}

/// What the source's requests cost, for the run report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCounts {
    /// Requests sent, retries included (OAuth token requests not).
    pub requests: u64,
    pub retries: u64,
    /// Answers `429 Too Many Requests`.
    pub rate_limited: u64,
    /// Waits for a rate limit or before a retry, and their total.
    pub waits: u64,
    pub waited_ms: u64,
    /// Time windows halved because their answer reached `cap`.
    pub window_splits: u64,
    /// Time from sending requests to having their answers (a page's whole body; a streamed
    /// body's headers), in microseconds: what the run spent on the API rather than on itself.
    pub round_trip_us: u64,
    /// Time the fetch threads had nothing to ask for, because the pages they had fetched ahead
    /// were not yet decoded, in microseconds (summed over the threads). A large share of the
    /// run means the decoding, not the API, sets the pace: more `concurrency` will not help.
    #[serde(default)]
    pub waiting_for_decoder_us: u64,
}
