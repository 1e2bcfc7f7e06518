//! The `http` sink: records pushed to an API or a callback URL, `batch_size` records a request,
//! through the client the `http` source uses (`net::Client`: authentication, retries with
//! `Retry-After`, the rate-limit governor, redaction).
//!
//! A push cannot be taken back, so requests go out as records arrive, before the run's state
//! is committed; a run that fails or is killed afterwards reads the same input again. Each
//! request carries an idempotency key made from what it sends and where that sits in the input
//! (see [`idempotency_key`]), the same on every retry and on the rerun; the state store's
//! `outbox` records each key as `sent` and, after a 2xx, `acknowledged`, and a rerun skips what
//! was acknowledged and resends the rest under the same keys. A receiver that honours the key
//! sees every record exactly once; one that ignores it sees duplicates only of requests whose
//! acknowledgement was lost (a connection reset after it stored the body, a kill before the
//! outbox noted the 2xx).
//!
//! The outbox is written in groups ([`OUTBOX_GROUP`] requests, or a second's worth), one
//! transaction each: a transaction per request synced the disk eight times a request, which
//! took 86% of a batch push's time and 97% of a per-record one (docs/performance.md). A kill
//! loses at most the last group's acknowledgements: those requests are sent again, under the
//! same keys.

mod config;
mod senders;
mod url_template;

use std::collections::HashSet;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use url::Url;

use crate::codecs::FormatConfig;
use crate::codecs::ndjson::NdjsonOptions;
use crate::config::SecretValue;
use crate::error::{Position, StageError};
use crate::net::client::{Client, ClientSettings, Method};
use crate::net::{Auth, HttpError, Secrets, tls_config};
use crate::record::{Batch, Record, Reject, Value};
use crate::redact::Redactor;
use crate::sinks::IfEmpty;
use crate::sinks::file::{FileSink, FileSinkConfig};
use crate::stage::{RunContext, Sink, SinkReport};
use crate::state::IfExists;
use crate::state::report::PlannedRequest;
use crate::state::{OutboxStatus, PreparedOutput, SqliteStore, StateStore};
use senders::{Done, Job, Outcome, Outgoing, Senders, Step};

pub use config::{
    HttpSinkConfig, PushMethod, PushMode, ResponsesConfig, SignatureConfig, UpsertConfig,
};
use config::{content_type, default_batch_size};
pub use url_template::UrlTemplate;

/// The requests a dry run shows, at the most.
const PREVIEW_REQUESTS: usize = 3;

/// The bytes of a body a dry run shows, about.
const PREVIEW_BODY_BYTES: usize = 200;

/// Outbox entries written in one transaction at the most (two a request: `sent`, then
/// `acknowledged`).
const OUTBOX_GROUP: usize = 64;

/// The HMAC-SHA256 of `body` under `secret`, lowercase hex.
pub fn hmac_sha256_hex(secret: &[u8], body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let tag = ring::hmac::sign(&key, body);
    tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The idempotency key of a request: SHA-256 of the pipeline, the delivery it belongs to (the
/// last successful run before it: the same for a rerun after a failure or a kill, another once
/// a run delivered, so a body that comes again in a later delivery is sent again), the source
/// unit the records came from, the request's number within the unit, its target (method and
/// URL: a `DELETE` has no body, an upsert's follow-up has the first request's), and the body.
pub fn idempotency_key(
    pipeline: &str,
    delivery: &str,
    unit: &str,
    number: u64,
    target: &str,
    body: &[u8],
) -> String {
    let mut input = Vec::with_capacity(body.len() + 256);
    for part in [pipeline, delivery, unit, &number.to_string(), target] {
        input.extend_from_slice(part.as_bytes());
        input.push(0);
    }
    input.extend_from_slice(body);
    crate::digest::sha256_hex(&input)
}

/// What a job's answers are settled with: its records, where they came from.
struct Ticket {
    records: Vec<Record>,
    /// The unit's number of the first record (0-based).
    first_record: u64,
    unit: Option<String>,
}

/// A request prepared for sending, or why it is not sent.
enum Prepared {
    Send(Box<Outgoing>),
    /// An earlier run's request with the same key was acknowledged: not sent again.
    AcknowledgedBefore,
    /// A dry run: noted, not sent.
    Planned,
}

/// How one request went.
enum Pushed {
    /// The receiver acknowledged it now.
    Acknowledged,
    /// An earlier run's request with the same key was acknowledged: not sent again.
    AcknowledgedBefore,
    /// Refused (a 4xx that refuses records, or one of the request's `final` statuses).
    Refused(HttpError),
    /// A dry run: not sent.
    Planned,
}

/// The upsert's follow-up, ready.
struct Upsert {
    on: Vec<u16>,
    method: Method,
    url: UrlTemplate,
}

/// What signs the bodies.
struct Signer {
    header: String,
    prefix: String,
    secret: SecretValue,
}

pub struct HttpSink {
    /// Send the requests, `concurrency` at a time.
    senders: Senders<Ticket>,
    /// Requests of the same resource (URL) are sent in order, whatever `concurrency`.
    ordered: bool,
    /// The URL (`mode = "batch"`: without placeholders).
    url: UrlTemplate,
    /// Shows URLs without their secrets.
    redactor: Arc<Mutex<Redactor>>,
    /// The URL as messages show it.
    shown: String,
    mode: PushMode,
    method: Method,
    fields: Option<Vec<String>>,
    upsert: Option<Upsert>,
    signer: Option<Signer>,
    format: FormatConfig,
    content_type: &'static str,
    idempotency_header: String,
    batch_size: usize,
    pipeline: String,
    /// The last successful run's id: see [`idempotency_key`].
    delivery: String,
    /// The outbox; `None` without a state store (outside pipeline runs).
    outbox: Option<SqliteStore>,
    /// The keys the outbox holds as acknowledged, read once.
    acknowledged: HashSet<String>,
    /// Outbox entries not written yet, and since when.
    unsaved: Vec<(String, OutboxStatus)>,
    unsaved_since: Option<Instant>,
    /// Refused records go to the rejects (else they fail the run).
    quarantine: bool,
    /// Records not sent yet, all of `unit`.
    pending: Vec<Record>,
    /// The source unit (file, page) of the records at hand.
    unit: Option<String>,
    /// Requests made of the current unit so far.
    requests_in_unit: u64,
    /// Records of the current unit sent (or set aside) so far.
    records_in_unit: u64,
    rejects: Vec<Reject>,
    /// Records the receiver acknowledged this run.
    delivered: u64,
    /// Records an earlier run's acknowledged requests carried, not sent again.
    acknowledged_before: u64,
    /// A dry run (`RunContext::read_only`): nothing is sent, the first requests are noted.
    read_only: bool,
    /// The configured headers and the credentials' header as a dry run shows them, secrets
    /// as `***`.
    shown_headers: Vec<String>,
    /// A dry run's first requests, and whether the last one still waits for its record count.
    previews: Vec<PlannedRequest>,
    preview_uncounted: bool,
    /// The answers file, and its lines not written yet.
    responses: Option<Responses>,
}

/// The answers file (`responses`): a file sink, published at commit like the rejects file.
struct Responses {
    sink: FileSink,
    fields: Vec<String>,
    lines: Vec<Record>,
}

/// Answers kept before they are written to the answers file.
const RESPONSES_GROUP: usize = 256;

impl HttpSink {
    pub fn new(config: &HttpSinkConfig, cx: &RunContext) -> Result<Self, StageError> {
        let url = UrlTemplate::parse(&config.url)
            .map_err(|e| StageError::Refused(format!("`url`: {e}")))?;
        let Secrets {
            headers,
            auth,
            mut redactor,
        } = Secrets::resolve(&config.headers, config.auth.as_ref(), cx)?;
        let mut shown_headers: Vec<String> = headers
            .iter()
            .map(|(name, value)| format!("{name}: {}", redactor.text(value.expose())))
            .collect();
        match &auth {
            Auth::Header(name, _) => shown_headers.push(format!("{name}: ***")),
            Auth::OAuth(_) => shown_headers.push("authorization: ***".into()),
            Auth::None | Auth::Query(..) => {}
        }
        let signer = match &config.signature {
            Some(signature) => {
                let secret = signature
                    .secret
                    .resolve(&cx.references())
                    .map_err(|e| StageError::Refused(format!("`signature.secret`: {e}")))?;
                redactor.add(secret.expose());
                Some(Signer {
                    header: signature.header.clone(),
                    prefix: signature.prefix.clone(),
                    secret,
                })
            }
            None => None,
        };
        let upsert = match &config.upsert {
            Some(upsert) => Some(Upsert {
                on: upsert.on.clone(),
                method: upsert.method.method(),
                url: UrlTemplate::parse(&upsert.url)
                    .map_err(|e| StageError::Refused(format!("`upsert.url`: {e}")))?,
            }),
            None => None,
        };
        // The template as written (a parsed URL would show `%7Bid%7D`), query values and
        // secrets hidden.
        let shown = redactor.text(&crate::redact::redact_url(&config.url));
        let mut retry = config.retry.clone();
        // The receiver still works on a request with the same key: ask again later.
        if !retry.statuses.contains(&409) {
            retry.statuses.push(409);
        }
        let settings = ClientSettings {
            timeout_secs: config.timeout_secs,
            // One per sending thread, and one for an OAuth token endpoint.
            connections: config.concurrency + 1,
            retry,
            rate_limit: config.rate_limit.clone(),
        };
        let tls = tls_config(config.ca_file.as_deref(), cx)?;
        let redactor = Arc::new(Mutex::new(redactor));
        let client = Client::new(settings, tls, headers, auth, redactor.clone(), cx.deadline);
        let senders = Senders::new(Arc::new(client), config.concurrency, config.ordered);
        let (outbox, delivery, acknowledged) = match &cx.state_path {
            // A dry run reads the keys the run would use, and writes nothing.
            Some(path) if cx.read_only => match SqliteStore::open_read_only(path)? {
                Some(mut store) => {
                    let delivery = store.last_success(&cx.pipeline)?.unwrap_or_default();
                    let acknowledged = store.acknowledged_keys(&cx.pipeline)?;
                    (None, delivery, acknowledged)
                }
                None => (None, String::new(), HashSet::new()),
            },
            Some(path) => {
                let mut store = SqliteStore::open(path)?;
                let delivery = store.last_success(&cx.pipeline)?.unwrap_or_default();
                let acknowledged = store.acknowledged_keys(&cx.pipeline)?;
                (Some(store), delivery, acknowledged)
            }
            None => (None, String::new(), HashSet::new()),
        };
        let responses = match &config.responses {
            Some(responses) => Some(Responses {
                sink: FileSink::new(
                    &FileSinkConfig {
                        path: responses.path.clone(),
                        format: Some(FormatConfig::Ndjson(NdjsonOptions::default())),
                        if_exists: IfExists::Replace,
                        encoding: None,
                        // Published only when there are answers.
                        if_empty: IfEmpty::Skip,
                    },
                    cx,
                )?,
                fields: responses.fields.clone(),
                lines: Vec::new(),
            }),
            None => None,
        };
        let format = config.body_format();
        let content_type = match config.mode {
            PushMode::Batch => content_type(&format).unwrap_or("application/octet-stream"),
            PushMode::Record => "application/json",
        };
        Ok(HttpSink {
            senders,
            ordered: config.ordered,
            url,
            redactor,
            shown,
            mode: config.mode,
            method: config.method.method(),
            fields: config.fields.clone(),
            upsert,
            signer,
            content_type,
            format,
            idempotency_header: config.idempotency_header.clone(),
            batch_size: config.batch_size.unwrap_or_else(default_batch_size),
            pipeline: cx.pipeline.clone(),
            delivery,
            outbox,
            acknowledged,
            unsaved: Vec::new(),
            unsaved_since: None,
            quarantine: cx.quarantine,
            pending: Vec::new(),
            unit: None,
            requests_in_unit: 0,
            records_in_unit: 0,
            rejects: Vec::new(),
            delivered: 0,
            acknowledged_before: 0,
            read_only: cx.read_only,
            shown_headers,
            previews: Vec::new(),
            preview_uncounted: false,
            responses,
        })
    }

    /// `records` as a batch request's body.
    fn encode(&self, records: &[Record]) -> Result<Vec<u8>, StageError> {
        let buffer = SharedBuffer::default();
        let mut encoder = self
            .format
            .encoder(Box::new(buffer.clone()), &self.shown, None)?;
        encoder.write_batch(records)?;
        encoder.finish()?;
        Ok(std::mem::take(&mut *buffer.0.lock().expect("not poisoned")))
    }

    /// `record` as a per-record request's body: a JSON object of its `fields` (or all).
    fn record_body(&self, record: &Record) -> Vec<u8> {
        let mut body = Vec::new();
        match &self.fields {
            None => crate::record::json::write_nested_record(&mut body, record),
            Some(fields) => {
                let mut subset = Record::with_capacity(fields.len());
                for name in fields {
                    if let Some(value) = record.get(name) {
                        subset.push(name.as_str().into(), value.clone());
                    }
                }
                crate::record::json::write_nested_record(&mut body, &subset);
            }
        }
        body
    }

    /// Sends the pending records, `batch_size` a request; with `all`, the last, shorter
    /// request too.
    fn send_pending(&mut self, all: bool) -> Result<(), StageError> {
        while self.pending.len() >= self.batch_size || (all && !self.pending.is_empty()) {
            let take = self.batch_size.min(self.pending.len());
            let records: Vec<Record> = self.pending.drain(..take).collect();
            self.push_batch(records)?;
        }
        Ok(())
    }

    /// One batch request.
    fn push_batch(&mut self, records: Vec<Record>) -> Result<(), StageError> {
        let body = self.encode(&records)?;
        let number = self.requests_in_unit;
        self.requests_in_unit += 1;
        let first_record = self.records_in_unit;
        self.records_in_unit += records.len() as u64;
        let url = self
            .url
            .render(&Record::new())
            .map_err(StageError::Refused)?;
        let first = match self.prepare(self.method, &url, number, "", body, &[])? {
            Prepared::Send(outgoing) => *outgoing,
            Prepared::AcknowledgedBefore => {
                return self.settle(Pushed::AcknowledgedBefore, &records, first_record, None);
            }
            Prepared::Planned => return self.settle(Pushed::Planned, &records, first_record, None),
        };
        // Batches all go to one URL: `ordered` sends them one at a time.
        let lane = self.ordered.then(String::new);
        self.dispatch(
            lane,
            Job {
                ticket: Ticket {
                    records,
                    first_record,
                    unit: self.unit.clone(),
                },
                first,
                follow_up: None,
            },
        )
    }

    /// Counts what a request delivered, or sets its refused records aside.
    fn settle(
        &mut self,
        pushed: Pushed,
        records: &[Record],
        first_record: u64,
        unit: Option<&str>,
    ) -> Result<(), StageError> {
        match pushed {
            Pushed::Planned => {
                if std::mem::take(&mut self.preview_uncounted)
                    && let Some(preview) = self.previews.last_mut()
                {
                    preview.records = records.len() as u64;
                }
            }
            Pushed::Acknowledged => self.delivered += records.len() as u64,
            Pushed::AcknowledgedBefore => self.acknowledged_before += records.len() as u64,
            Pushed::Refused(error) => self.refuse(records, first_record, unit, error)?,
        }
        Ok(())
    }

    /// One record's request (and the upsert's follow-up).
    fn push_record(&mut self, record: &Record) -> Result<(), StageError> {
        let number = self.records_in_unit;
        self.records_in_unit += 1;
        let records = std::slice::from_ref(record);
        let unit = self.unit.clone();
        let url = match self.url.render(record) {
            Ok(url) => url,
            Err(reason) => return self.set_aside(records, number, unit.as_deref(), &reason, None),
        };
        let body = match self.method {
            Method::Delete => Vec::new(),
            _ => self.record_body(record),
        };
        let follow_up = match &self.upsert {
            None => None,
            Some(upsert) => {
                let method = upsert.method;
                let url = match upsert.url.render(record) {
                    Ok(url) => url,
                    Err(reason) => {
                        return self.set_aside(records, number, unit.as_deref(), &reason, None);
                    }
                };
                let key = self.key(method, &url, number, "then", &body);
                // A follow-up an earlier run saw acknowledged: the record is there, as it
                // should be.
                if self.acknowledged.contains(&key) {
                    self.acknowledged_before += 1;
                    return Ok(());
                }
                Some(self.outgoing(method, url, key, body.clone(), Vec::new()))
            }
        };
        // The resource the record is: where the follow-up goes, else the request's URL.
        let lane = self.ordered.then(|| {
            follow_up
                .as_ref()
                .map_or(&url, |follow_up| &follow_up.url)
                .to_string()
        });
        // The answers that send the follow-up instead.
        let on = self
            .upsert
            .as_ref()
            .map(|upsert| upsert.on.clone())
            .unwrap_or_default();
        let first = match self.prepare(self.method, &url, number, "", body, &on)? {
            Prepared::Send(outgoing) => *outgoing,
            Prepared::AcknowledgedBefore => {
                return self.settle(Pushed::AcknowledgedBefore, records, number, None);
            }
            Prepared::Planned => return self.settle(Pushed::Planned, records, number, None),
        };
        self.dispatch(
            lane,
            Job {
                ticket: Ticket {
                    records: vec![record.clone()],
                    first_record: number,
                    unit,
                },
                first,
                follow_up,
            },
        )
    }

    /// Hands `job` to the senders, then settles the jobs that ended (waiting for one while
    /// as many as the senders take are in flight).
    fn dispatch(&mut self, lane: Option<String>, job: Job<Ticket>) -> Result<(), StageError> {
        while self.senders.full() {
            self.settle_ended(true, false)?;
        }
        self.senders.submit(lane.as_deref(), job);
        self.settle_ended(false, false)
    }

    /// Settles the jobs that ended; with `wait`, waits for one first; with `all`, for all.
    /// After a job that fails the run, nothing more is sent: the jobs in flight are waited
    /// for (what they achieved goes to the outbox), and the first failure is returned.
    fn settle_ended(&mut self, wait: bool, all: bool) -> Result<(), StageError> {
        let mut waiting = wait || all;
        while let Some(done) = self.senders.next_done(waiting) {
            waiting = all;
            if let Err(error) = self.settle_done(done) {
                self.senders.stop();
                while let Some(done) = self.senders.next_done(true) {
                    // The run fails with the first error; these only note what was achieved.
                    let _ = self.settle_done(done);
                }
                return Err(error);
            }
        }
        Ok(())
    }

    /// Notes and counts what became of a job's requests.
    fn settle_done(&mut self, done: Done<Ticket>) -> Result<(), StageError> {
        let Done { ticket, steps } = done;
        let followed_up = steps.len() > 1;
        let mut last = None;
        for (index, step) in steps.into_iter().enumerate() {
            let Step {
                method,
                url,
                key,
                outcome,
            } = step;
            if index > 0 {
                // The follow-up's key is noted once it was sent.
                self.note(&key, OutboxStatus::Sent)?;
            }
            last = Some(match outcome {
                Outcome::Answered { status, body } => {
                    self.note(&key, OutboxStatus::Acknowledged)?;
                    self.keep_answer(status, &key, method, &url, &body)?;
                    Pushed::Acknowledged
                }
                Outcome::Refused { status, error } => {
                    self.keep_answer(status, &key, method, &url, &[])?;
                    if index == 0 && followed_up {
                        tracing::debug!(url = %self.show(&url), "HTTP {status}: the record exists; sent the follow-up");
                    }
                    Pushed::Refused(error)
                }
                Outcome::OutOfTime(reason) => {
                    return Err(StageError::Refused(format!(
                        "{} {}: not sent, {reason}; the next run sends it with the same idempotency key",
                        method.as_str(),
                        self.show(&url)
                    )));
                }
                Outcome::Failed(error) => return Err(error.into()),
            });
        }
        match last {
            Some(pushed) => self.settle(
                pushed,
                &ticket.records,
                ticket.first_record,
                ticket.unit.as_deref(),
            ),
            // Not sent: the run stopped first.
            None => Ok(()),
        }
    }

    /// Keeps an answer for the answers file (`responses`), writing them in groups.
    fn keep_answer(
        &mut self,
        status: u16,
        key: &str,
        method: Method,
        url: &Url,
        body: &[u8],
    ) -> Result<(), StageError> {
        if self.responses.is_none() {
            return Ok(());
        }
        let shown = self.show(url);
        let responses = self.responses.as_mut().expect("checked above");
        let json = (!responses.fields.is_empty() && !body.is_empty())
            .then(|| serde_json::from_slice::<serde_json::Value>(body).ok())
            .flatten();
        let mut line = Record::with_capacity(4 + responses.fields.len());
        line.push("status".into(), Value::Integer(status.into()));
        line.push("idempotency_key".into(), Value::String(key.into()));
        line.push("method".into(), Value::String(method.as_str().into()));
        line.push("url".into(), Value::String(shown.as_str().into()));
        for pointer in &responses.fields {
            let value = json
                .as_ref()
                .and_then(|json| json.pointer(pointer))
                .map_or(Value::Null, record_value);
            line.push(pointer.as_str().into(), value);
        }
        responses.lines.push(line);
        if responses.lines.len() >= RESPONSES_GROUP {
            self.write_answers()?;
        }
        Ok(())
    }

    /// Writes the answers kept so far to the answers file.
    fn write_answers(&mut self) -> Result<(), StageError> {
        if let Some(responses) = &mut self.responses
            && !responses.lines.is_empty()
        {
            let batch = Batch {
                records: std::mem::take(&mut responses.lines),
                ..Batch::default()
            };
            responses.sink.write_batch(&batch)?;
        }
        Ok(())
    }

    /// Notes a dry run's request, while fewer than [`PREVIEW_REQUESTS`] are.
    fn preview(&mut self, outgoing: &Outgoing) {
        if self.previews.len() >= PREVIEW_REQUESTS {
            return;
        }
        let Outgoing {
            method,
            url,
            key,
            body,
            headers: extra,
            ..
        } = outgoing;
        let mut headers = self.shown_headers.clone();
        if *method != Method::Delete {
            headers.push(format!("Content-Type: {}", self.content_type));
        }
        headers.push(format!("{}: {key}", self.idempotency_header));
        headers.extend(extra.iter().map(|(name, value)| format!("{name}: {value}")));
        let redactor = crate::net::client::lock(&self.redactor);
        let shown = redactor.text(&body_excerpt(body));
        let url = redactor.url(url);
        drop(redactor);
        self.previews.push(PlannedRequest {
            method: method.as_str().to_string(),
            url,
            headers,
            records: 0,
            body_bytes: body.len() as u64,
            body: shown,
        });
        // `settle` counts the records of the request just noted.
        self.preview_uncounted = true;
    }

    fn show(&self, url: &Url) -> String {
        crate::net::client::lock(&self.redactor).url(url)
    }

    fn key(&self, method: Method, url: &Url, number: u64, role: &str, body: &[u8]) -> String {
        let unit = self.unit.as_deref().unwrap_or_default();
        let target = format!("{role}{} {url}", method.as_str());
        idempotency_key(&self.pipeline, &self.delivery, unit, number, &target, body)
    }

    /// Notes where the push under `key` stands, writing the outbox once a group is full or a
    /// second old.
    fn note(&mut self, key: &str, status: OutboxStatus) -> Result<(), StageError> {
        if self.outbox.is_none() {
            return Ok(());
        }
        if status == OutboxStatus::Acknowledged {
            self.acknowledged.insert(key.to_string());
        }
        self.unsaved.push((key.to_string(), status));
        let since = *self.unsaved_since.get_or_insert_with(Instant::now);
        if self.unsaved.len() >= OUTBOX_GROUP || since.elapsed() >= Duration::from_secs(1) {
            self.save_outbox()?;
        }
        Ok(())
    }

    /// Writes the outbox entries not written yet, in one transaction.
    fn save_outbox(&mut self) -> Result<(), StageError> {
        self.unsaved_since = None;
        if let Some(outbox) = &mut self.outbox
            && !self.unsaved.is_empty()
        {
            outbox.record_outbox(&self.pipeline, &self.unsaved)?;
            self.unsaved.clear();
        }
        Ok(())
    }

    /// The request under `key`, signed if the pipeline signs.
    fn outgoing(
        &self,
        method: Method,
        url: Url,
        key: String,
        body: Vec<u8>,
        final_statuses: Vec<u16>,
    ) -> Outgoing {
        let headers = match &self.signer {
            Some(signer) => vec![(
                signer.header.clone(),
                format!(
                    "{}{}",
                    signer.prefix,
                    hmac_sha256_hex(signer.secret.expose().as_bytes(), &body)
                ),
            )],
            None => Vec::new(),
        };
        Outgoing {
            method,
            url,
            key,
            body,
            content_type: self.content_type,
            idempotency_header: self.idempotency_header.clone(),
            headers,
            final_statuses,
        }
    }

    /// Request number `number` of the unit (`role` tells an upsert's follow-up from the first
    /// request), ready to send and noted as sent; or not sent because the outbox holds its key
    /// as acknowledged, or because this is a dry run. `final_statuses` are answers not
    /// retried.
    fn prepare(
        &mut self,
        method: Method,
        url: &Url,
        number: u64,
        role: &str,
        body: Vec<u8>,
        final_statuses: &[u16],
    ) -> Result<Prepared, StageError> {
        let key = self.key(method, url, number, role, &body);
        if self.acknowledged.contains(&key) {
            tracing::debug!(url = %self.show(url), key = %key, "acknowledged by an earlier run: not sent again");
            return Ok(Prepared::AcknowledgedBefore);
        }
        let outgoing = self.outgoing(method, url.clone(), key, body, final_statuses.to_vec());
        if self.read_only {
            // A dry run sends nothing, whoever calls.
            self.preview(&outgoing);
            return Ok(Prepared::Planned);
        }
        self.note(&outgoing.key, OutboxStatus::Sent)?;
        Ok(Prepared::Send(Box::new(outgoing)))
    }

    /// A refused request's records to the rejects, or the run fails with `error`.
    fn refuse(
        &mut self,
        records: &[Record],
        first_record: u64,
        unit: Option<&str>,
        error: HttpError,
    ) -> Result<(), StageError> {
        let HttpError::Request {
            method,
            url,
            message,
            ..
        } = &error
        else {
            return Err(error.into());
        };
        let reason = format!("{method} {url} refused the records: {message}");
        self.set_aside(records, first_record, unit, &reason, Some(error))
    }

    /// `records` (from number `first_record` of `unit`, 0-based) to the rejects with
    /// `reason`; without `[rejects]` the run fails, with `error` if there is one.
    fn set_aside(
        &mut self,
        records: &[Record],
        first_record: u64,
        unit: Option<&str>,
        reason: &str,
        error: Option<HttpError>,
    ) -> Result<(), StageError> {
        if !self.quarantine {
            return Err(match error {
                Some(error) => error.into(),
                None => StageError::Refused(format!(
                    "{} {}: record {} of {}: {reason}",
                    self.method.as_str(),
                    self.shown,
                    first_record + 1,
                    unit.unwrap_or("the input")
                )),
            });
        }
        for (offset, record) in records.iter().enumerate() {
            let mut raw = Vec::new();
            crate::record::json::write_nested_record(&mut raw, record);
            self.rejects.push(Reject {
                file: unit.unwrap_or_default().to_string(),
                position: Position {
                    record: Some(first_record + offset as u64 + 1),
                    ..Position::default()
                },
                reason: reason.to_string(),
                raw: Some(String::from_utf8_lossy(&raw).into_owned()),
            });
        }
        Ok(())
    }
}

/// A JSON value from an answer as a record's value.
fn record_value(json: &serde_json::Value) -> Value {
    match json {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Value::Integer(i),
            (None, Some(_)) if n.is_f64() => Value::Float(n.as_f64().unwrap_or_default()),
            _ => Value::Decimal(n.to_string().as_str().into()),
        },
        serde_json::Value::String(text) => Value::String(text.as_str().into()),
        serde_json::Value::Array(items) => Value::Array(items.iter().map(record_value).collect()),
        serde_json::Value::Object(fields) => {
            let mut record = Record::with_capacity(fields.len());
            for (name, value) in fields {
                record.push(name.as_str().into(), record_value(value));
            }
            Value::Object(record)
        }
    }
}

/// The first [`PREVIEW_BODY_BYTES`] or so of `body` on one line: cut at a character,
/// line breaks and other control characters escaped, `…` after it when there is more.
fn body_excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim_end_matches(['\n', '\r']);
    let mut excerpt = String::new();
    for (at, c) in text.char_indices() {
        if at >= PREVIEW_BODY_BYTES {
            excerpt.push('…');
            break;
        }
        match c {
            '\n' => excerpt.push_str("\\n"),
            '\r' => excerpt.push_str("\\r"),
            '\t' => excerpt.push_str("\\t"),
            c if c.is_control() => excerpt.push_str(&c.escape_unicode().to_string()),
            c => excerpt.push(c),
        }
    }
    excerpt
}

/// A writer whose bytes the encoder's owner takes back afterwards.
#[derive(Clone, Default)]
struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .expect("not poisoned")
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A run that failed while pushing keeps what its requests achieved: the rerun skips them.
impl Drop for HttpSink {
    fn drop(&mut self) {
        // Requests in flight end first: what they achieved goes to the outbox.
        self.senders.stop();
        while let Some(done) = self.senders.next_done(true) {
            let _ = self.settle_done(done);
        }
        if let Err(e) = self.save_outbox() {
            tracing::warn!(url = %self.shown, "the outbox could not be written ({e}): the last requests are sent again, under the same keys, by the next run");
        }
    }
}

impl Sink for HttpSink {
    fn write_batch(&mut self, batch: &Batch) -> Result<(), StageError> {
        let unit = batch.origin.as_ref().map(|origin| origin.path.clone());
        if unit != self.unit {
            // A unit's requests never carry another unit's records: its keys stay the same
            // whatever input comes before or after it on the rerun.
            self.send_pending(true)?;
            self.unit = unit;
            self.requests_in_unit = 0;
            self.records_in_unit = 0;
        }
        match self.mode {
            PushMode::Batch => {
                self.pending.extend(batch.records.iter().cloned());
                self.send_pending(false)
            }
            PushMode::Record => batch
                .records
                .iter()
                .try_for_each(|record| self.push_record(record)),
        }
    }

    fn end_of_input(&mut self) -> Result<(), StageError> {
        self.send_pending(true)?;
        self.settle_ended(true, true)?;
        self.save_outbox()?;
        self.write_answers()?;
        if self.acknowledged_before > 0 {
            tracing::info!(
                url = %self.shown,
                "{} records were acknowledged by an earlier run (same idempotency keys): not sent again",
                self.acknowledged_before
            );
        }
        Ok(())
    }

    fn take_rejects(&mut self) -> Vec<Reject> {
        std::mem::take(&mut self.rejects)
    }

    fn plan_batch(&mut self, batch: &Batch) -> Result<(), StageError> {
        if !self.read_only || self.previews.len() >= PREVIEW_REQUESTS {
            return Ok(());
        }
        self.write_batch(batch)?;
        // What the receiver would refuse is not known without sending.
        self.rejects.clear();
        Ok(())
    }

    fn planned_requests(&mut self) -> Result<Vec<PlannedRequest>, StageError> {
        if self.read_only && self.previews.len() < PREVIEW_REQUESTS {
            self.send_pending(true)?;
        }
        Ok(std::mem::take(&mut self.previews))
    }

    fn prepare(&mut self) -> Result<Vec<PreparedOutput>, StageError> {
        // Everything was sent by now (`end_of_input`): only the answers file is published.
        self.write_answers()?;
        match &mut self.responses {
            Some(responses) => responses.sink.prepare(),
            None => Ok(Vec::new()),
        }
    }

    fn commit(mut self: Box<Self>) -> Result<SinkReport, StageError> {
        let records = self.delivered + self.acknowledged_before;
        let report = match self.responses.take() {
            Some(responses) => Box::new(responses.sink).commit()?,
            None => SinkReport::default(),
        };
        Ok(SinkReport { records, ..report })
    }

    fn destination(&self, _batch: &Batch) -> String {
        format!("{} {}", self.method.as_str(), self.shown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_change_with_every_part() {
        let key = |p, d, u, n, t, b: &[u8]| idempotency_key(p, d, u, n, t, b);
        let first = key("p", "run-1", "orders.csv", 0, "POST u", b"[1]");
        assert_eq!(first.len(), 64);
        assert_eq!(first, key("p", "run-1", "orders.csv", 0, "POST u", b"[1]"));
        for other in [
            key("q", "run-1", "orders.csv", 0, "POST u", b"[1]"),
            key("p", "run-2", "orders.csv", 0, "POST u", b"[1]"),
            key("p", "run-1", "other.csv", 0, "POST u", b"[1]"),
            key("p", "run-1", "orders.csv", 1, "POST u", b"[1]"),
            key("p", "run-1", "orders.csv", 0, "PATCH u", b"[1]"),
            key("p", "run-1", "orders.csv", 0, "POST v", b"[1]"),
            key("p", "run-1", "orders.csv", 0, "POST u", b"[2]"),
            // The parts cannot slide into each other.
            key("p", "run-1", "orders.cs", 0, "POST u", b"v[1]"),
            key("p", "run-1", "orders.csv", 0, "POST u[", b"1]"),
        ] {
            assert_ne!(first, other);
        }
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // RFC 4231, test case 2.
        assert_eq!(
            hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn bodies_are_encoded_with_their_content_type() {
        let config: HttpSinkConfig =
            toml::from_str("url = \"http://x\"\nenvelope = \"/data/items\"").unwrap();
        let format = config.body_format();
        assert_eq!(content_type(&format), Some("application/json"));
        let cx = RunContext::new("p", std::path::Path::new("."));
        let sink = HttpSink::new(&config, &cx).unwrap();
        let mut record = Record::new();
        record.push("id".into(), crate::record::Value::Integer(1));
        let body = sink.encode(&[record.clone(), record]).unwrap();
        assert_eq!(
            String::from_utf8(body).unwrap(),
            "{\"data\":{\"items\":[{\"id\":1},{\"id\":1}]}}\n"
        );
    }
}
