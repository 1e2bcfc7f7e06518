//! The `http` sink: records pushed to an API or a callback URL, `batch_size` records a request,
//! through the client the `http` source uses (`net::Client`: authentication, retries with
//! `Retry-After`, the rate-limit governor, redaction).
//!
//! A push cannot be taken back, so requests go out as records arrive, before the run's state
//! is committed; a run that fails or is killed afterwards reads the same input again. Each
//! request carries an idempotency key made from what it sends and where that sits in the input
//! (see [`idempotency_key`]), the same on every retry and on the rerun; the state store's
//! `outbox` records each key as `sent` before the request and `acknowledged` after a 2xx, and a
//! rerun skips what was acknowledged and resends the rest under the same keys. A receiver that
//! honours the key sees every record exactly once; one that ignores it sees duplicates only of
//! requests whose acknowledgement was lost (a connection reset after it stored the body, a kill
//! before the outbox noted the 2xx).

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use schemars::JsonSchema;
use serde::Deserialize;
use url::Url;

use crate::codecs::FormatConfig;
use crate::codecs::json::JsonOptions;
use crate::config::{Invalid, Secret, Validate};
use crate::error::{Position, StageError};
use crate::net::client::{Client, ClientSettings, Method, Post, Reading, Request, Sent};
use crate::net::config::{AuthConfig, RateLimitConfig, RetryConfig, request_problems, url_problem};
use crate::net::{HttpError, Secrets, tls_config};
use crate::record::{Batch, Record, Reject};
use crate::stage::{RunContext, Sink, SinkReport};
use crate::state::{OutboxStatus, PreparedOutput, SqliteStore, StateStore};

/// Pushes records to an HTTP endpoint (an API's bulk import, a callback URL):
/// `batch_size` records a request, as a JSON array, in an envelope, or as NDJSON, CSV or XML.
/// Every request carries an idempotency key, the same on retries and on the rerun after a
/// failure, and the state store's outbox keeps a rerun from sending again what the receiver
/// acknowledged. See `pipelines/examples/push-batch.toml`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpSinkConfig {
    /// Where the records go, e.g. `"https://api.example.com/v1/orders/bulk"`. `http://` or
    /// `https://`; HTTPS certificates are verified. Required.
    pub url: String,
    /// The request method: `"POST"` or `"PUT"`. Default `"POST"`.
    #[serde(default)]
    pub method: PushMethod,
    /// The most records one request carries; the last request of each source unit (a file,
    /// a page) may carry fewer. Between 1 and 100000. Default 100.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// The request body's format: `{ type = "json" }` (an array of records, `Content-Type:
    /// application/json`), `{ type = "ndjson" }` (`application/x-ndjson`), `{ type = "csv" }`
    /// (`text/csv`), `{ type = "xml", ... }` (`application/xml`) or `{ type = "json-array" }`.
    /// Spreadsheets are refused. Default `{ type = "json" }`.
    pub format: Option<FormatConfig>,
    /// The JSON pointer the records' array is put at in a JSON body, e.g. `"/records"` for
    /// `{"records": [...]}` or `"/data/items"` for `{"data": {"items": [...]}}`. Only with the
    /// JSON format. Default: none (the body is the array).
    pub envelope: Option<String>,
    /// The header the idempotency key is sent in. The key is the SHA-256 (64 hex digits) of
    /// the pipeline's name, its last successful run, the source unit (file or page) the
    /// records came from, the request's number within it and the body: the same on every
    /// retry and on the rerun after a failed or killed run, different for the next delivery.
    /// Default `"Idempotency-Key"`.
    #[serde(default = "default_idempotency_header")]
    pub idempotency_header: String,
    /// A PEM file of the CA certificates to trust instead of the public ones; relative paths
    /// are resolved against the pipeline file's directory. Default: Mozilla's root
    /// certificates.
    pub ca_file: Option<String>,
    /// Extra request headers, e.g. `{ X-Tenant = "acme", X-Api-Key = "${env:VENDOR_KEY}" }`. A
    /// value given as a reference, or in a header named like a secret, is never shown in a
    /// message or log. Default: none.
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    /// How requests authenticate, as for the `http` source. Default: none.
    pub auth: Option<AuthConfig>,
    /// Retries of failed requests, as for the `http` source: connection errors, timeouts and
    /// `statuses` are retried with the same idempotency key; 409 (the receiver still works on
    /// the same key) is always retried. Default: 5 tries, 429 and 5xx.
    #[serde(default)]
    pub retry: RetryConfig,
    /// Rate limits to respect beyond what the receiver's headers say, as for the `http`
    /// source.
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
    /// Seconds one request may take in all (connecting, sending, the answer); a request that
    /// times out is retried with the same key. Default 60.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

/// The method of a push.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum PushMethod {
    #[default]
    Post,
    Put,
}

fn default_batch_size() -> usize {
    100
}

fn default_idempotency_header() -> String {
    "Idempotency-Key".into()
}

fn default_timeout_secs() -> u64 {
    60
}

/// The largest answer read (and ignored): enough for any acknowledgement.
const ANSWER_BYTES: u64 = 16 * 1024 * 1024;

impl HttpSinkConfig {
    /// The body's format, the envelope applied.
    fn body_format(&self) -> FormatConfig {
        let format = self
            .format
            .clone()
            .unwrap_or_else(|| FormatConfig::Json(JsonOptions::default()));
        match (format, &self.envelope) {
            (FormatConfig::Json(options), Some(envelope)) => FormatConfig::Json(JsonOptions {
                records: envelope.clone(),
                ..options
            }),
            (format, _) => format,
        }
    }
}

/// The `Content-Type` of a body in `format`; `None` for a format a request cannot carry.
fn content_type(format: &FormatConfig) -> Option<&'static str> {
    match format {
        FormatConfig::Json(_) | FormatConfig::JsonArray(_) => Some("application/json"),
        FormatConfig::Ndjson(_) => Some("application/x-ndjson"),
        FormatConfig::Csv(_) => Some("text/csv"),
        FormatConfig::Xml(_) => Some("application/xml"),
        _ => None,
    }
}

impl Validate for HttpSinkConfig {
    fn problems(&self) -> Vec<Invalid> {
        let mut problems = Vec::new();
        if let Some(problem) = url_problem(&self.url) {
            problems.push(Invalid::new("url", problem));
        }
        if !(1..=100_000).contains(&self.batch_size) {
            problems.push(Invalid::new("batch_size", "must be between 1 and 100000"));
        }
        if let Some(format) = &self.format {
            problems.extend(format.problems());
            if content_type(format).is_none() {
                problems.push(Invalid::new(
                    "format",
                    "a request body is JSON, NDJSON, CSV or XML",
                ));
            }
        }
        if let Some(envelope) = &self.envelope {
            match &self.format {
                None | Some(FormatConfig::Json(_)) => {}
                Some(_) => problems.push(Invalid::new(
                    "envelope",
                    "an envelope is JSON: leave `format` out or make it `{ type = \"json\" }`",
                )),
            }
            if matches!(&self.format, Some(FormatConfig::Json(o)) if !o.records.is_empty()) {
                problems.push(Invalid::new(
                    "envelope",
                    "set `envelope` or the format's `records`, not both",
                ));
            }
            if !envelope.starts_with('/') {
                problems.push(Invalid::new(
                    "envelope",
                    format!("`{envelope}` is not a JSON pointer: start it with `/`"),
                ));
            }
        }
        for name in self
            .headers
            .keys()
            .chain(std::iter::once(&self.idempotency_header))
        {
            if name.parse::<ureq::http::HeaderName>().is_err() {
                problems.push(Invalid::new(
                    "headers",
                    format!("`{name}` is not a valid header name"),
                ));
            }
        }
        problems.extend(request_problems(
            self.auth.as_ref(),
            &self.retry,
            &self.rate_limit,
        ));
        if self.timeout_secs == 0 {
            problems.push(Invalid::new("timeout_secs", "must be at least 1"));
        }
        problems
    }
}

/// The idempotency key of a request: SHA-256 of the pipeline, the delivery it belongs to (the
/// last successful run before it: the same for a rerun after a failure or a kill, another once
/// a run delivered, so a body that comes again in a later delivery is sent again), the source
/// unit the records came from, the request's number within the unit, and the body.
pub fn idempotency_key(
    pipeline: &str,
    delivery: &str,
    unit: &str,
    number: u64,
    body: &[u8],
) -> String {
    let mut input = Vec::with_capacity(body.len() + 128);
    for part in [pipeline, delivery, unit, &number.to_string()] {
        input.extend_from_slice(part.as_bytes());
        input.push(0);
    }
    input.extend_from_slice(body);
    crate::digest::sha256_hex(&input)
}

pub struct HttpSink {
    client: Client,
    url: Url,
    /// The URL as messages show it.
    shown: String,
    method: Method,
    format: FormatConfig,
    content_type: &'static str,
    idempotency_header: String,
    batch_size: usize,
    pipeline: String,
    /// The last successful run's id: see [`idempotency_key`].
    delivery: String,
    /// The outbox; `None` without a state store (outside pipeline runs).
    outbox: Option<SqliteStore>,
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
}

impl HttpSink {
    pub fn new(config: &HttpSinkConfig, cx: &RunContext) -> Result<Self, StageError> {
        let url =
            Url::parse(&config.url).map_err(|e| StageError::Refused(format!("`url`: {e}")))?;
        let Secrets {
            headers,
            auth,
            redactor,
        } = Secrets::resolve(&config.headers, config.auth.as_ref(), cx)?;
        let shown = redactor.url(&url);
        let mut retry = config.retry.clone();
        // The receiver still works on a request with the same key: ask again later.
        if !retry.statuses.contains(&409) {
            retry.statuses.push(409);
        }
        let settings = ClientSettings {
            timeout_secs: config.timeout_secs,
            connections: 2,
            retry,
            rate_limit: config.rate_limit.clone(),
        };
        let tls = tls_config(config.ca_file.as_deref(), cx)?;
        let redactor = Arc::new(Mutex::new(redactor));
        let client = Client::new(settings, tls, headers, auth, redactor, cx.deadline);
        let (outbox, delivery) = match &cx.state_path {
            Some(path) => {
                let mut store = SqliteStore::open(path)?;
                let delivery = store.last_success(&cx.pipeline)?.unwrap_or_default();
                (Some(store), delivery)
            }
            None => (None, String::new()),
        };
        let format = config.body_format();
        Ok(HttpSink {
            client,
            url,
            shown,
            method: match config.method {
                PushMethod::Post => Method::Post,
                PushMethod::Put => Method::Put,
            },
            content_type: content_type(&format).unwrap_or("application/octet-stream"),
            format,
            idempotency_header: config.idempotency_header.clone(),
            batch_size: config.batch_size,
            pipeline: cx.pipeline.clone(),
            delivery,
            outbox,
            quarantine: cx.quarantine,
            pending: Vec::new(),
            unit: None,
            requests_in_unit: 0,
            records_in_unit: 0,
            rejects: Vec::new(),
            delivered: 0,
            acknowledged_before: 0,
        })
    }

    /// `records` as a request body.
    fn encode(&self, records: &[Record]) -> Result<Vec<u8>, StageError> {
        let buffer = SharedBuffer::default();
        let mut encoder = self
            .format
            .encoder(Box::new(buffer.clone()), &self.shown, None)?;
        encoder.write_batch(records)?;
        encoder.finish()?;
        Ok(std::mem::take(&mut *buffer.0.lock().expect("not poisoned")))
    }

    /// Sends the pending records, `batch_size` a request; with `all`, the last, shorter
    /// request too.
    fn send_pending(&mut self, all: bool) -> Result<(), StageError> {
        while self.pending.len() >= self.batch_size || (all && !self.pending.is_empty()) {
            let take = self.batch_size.min(self.pending.len());
            let records: Vec<Record> = self.pending.drain(..take).collect();
            self.push(&records)?;
        }
        Ok(())
    }

    /// One request: skipped when the outbox holds its key as acknowledged.
    fn push(&mut self, records: &[Record]) -> Result<(), StageError> {
        let body = self.encode(records)?;
        let unit = self.unit.clone().unwrap_or_default();
        let key = idempotency_key(
            &self.pipeline,
            &self.delivery,
            &unit,
            self.requests_in_unit,
            &body,
        );
        self.requests_in_unit += 1;
        let first_record = self.records_in_unit;
        self.records_in_unit += records.len() as u64;
        if let Some(outbox) = &mut self.outbox {
            if outbox.outbox_status(&self.pipeline, &key)? == Some(OutboxStatus::Acknowledged) {
                tracing::debug!(url = %self.shown, key = %key, "acknowledged by an earlier run: not sent again");
                self.acknowledged_before += records.len() as u64;
                return Ok(());
            }
            outbox.set_outbox_status(&self.pipeline, &key, OutboxStatus::Sent)?;
        }
        let request = Request {
            url: self.url.clone(),
            post: Some(Post {
                method: self.method,
                body,
                content_type: self.content_type,
                idempotency_header: self.idempotency_header.clone(),
                idempotency_key: key.clone(),
            }),
            reading: Reading::Whole(ANSWER_BYTES),
            credentials: true,
        };
        match self.client.send(&request) {
            Ok(Sent::Answered(_)) => {
                if let Some(outbox) = &mut self.outbox {
                    outbox.set_outbox_status(&self.pipeline, &key, OutboxStatus::Acknowledged)?;
                }
                self.delivered += records.len() as u64;
                Ok(())
            }
            Ok(Sent::OutOfTime(reason)) => Err(StageError::Refused(format!(
                "{} {}: not sent, {reason}; the next run sends it with the same idempotency key",
                self.method.as_str(),
                self.shown
            ))),
            Err(HttpError::Request {
                status: Some(status),
                message,
                ..
            }) if self.quarantine && refused_records(status) => {
                let reason = format!(
                    "{} {} refused the records: {message}",
                    self.method.as_str(),
                    self.shown
                );
                for (offset, record) in records.iter().enumerate() {
                    let mut raw = Vec::new();
                    crate::record::json::write_nested_record(&mut raw, record);
                    self.rejects.push(Reject {
                        file: unit.clone(),
                        position: Position {
                            record: Some(first_record + offset as u64 + 1),
                            ..Position::default()
                        },
                        reason: reason.clone(),
                        raw: Some(String::from_utf8_lossy(&raw).into_owned()),
                    });
                }
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Whether an answer with `status` (after the retries) refuses the request's records, which
/// then go to the rejects: a 4xx other than 401 and 403 (the credentials, which fail the run
/// at once), 409 (a key still in flight after every retry) and 429 (the rate limit).
fn refused_records(status: u16) -> bool {
    (400..500).contains(&status) && !matches!(status, 401 | 403 | 409 | 429)
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
        self.pending.extend(batch.records.iter().cloned());
        self.send_pending(false)
    }

    fn end_of_input(&mut self) -> Result<(), StageError> {
        self.send_pending(true)?;
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

    fn prepare(&mut self) -> Result<Vec<PreparedOutput>, StageError> {
        // Everything was sent by now (`end_of_input`): nothing is published by renaming.
        Ok(Vec::new())
    }

    fn commit(self: Box<Self>) -> Result<SinkReport, StageError> {
        Ok(SinkReport {
            records: self.delivered + self.acknowledged_before,
            ..SinkReport::default()
        })
    }

    fn destination(&self, _batch: &Batch) -> String {
        format!("{} {}", self.method.as_str(), self.shown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(toml: &str) -> Vec<String> {
        let config: HttpSinkConfig = toml::from_str(toml).expect("the table parses");
        config
            .problems()
            .into_iter()
            .map(|p| format!("{}: {}", p.key, p.message))
            .collect()
    }

    #[test]
    fn keys_change_with_every_part() {
        let key = idempotency_key("p", "run-1", "orders.csv", 0, b"[1]");
        assert_eq!(key.len(), 64);
        assert_eq!(key, idempotency_key("p", "run-1", "orders.csv", 0, b"[1]"));
        for other in [
            idempotency_key("q", "run-1", "orders.csv", 0, b"[1]"),
            idempotency_key("p", "run-2", "orders.csv", 0, b"[1]"),
            idempotency_key("p", "run-1", "other.csv", 0, b"[1]"),
            idempotency_key("p", "run-1", "orders.csv", 1, b"[1]"),
            idempotency_key("p", "run-1", "orders.csv", 0, b"[2]"),
            // The parts cannot slide into each other.
            idempotency_key("p", "run-1", "orders.cs", 0, b"v[1]"),
        ] {
            assert_ne!(key, other);
        }
    }

    #[test]
    fn the_table_is_checked() {
        assert_eq!(
            problems("url = \"https://api.example.com/bulk\"\nenvelope = \"/records\""),
            Vec::<String>::new()
        );
        assert_eq!(
            problems(
                "url = \"ftp://x\"\nbatch_size = 0\nenvelope = \"records\"\nformat = { type = \"csv\" }\nidempotency_header = \"bad header\"\ntimeout_secs = 0"
            ),
            [
                "url: must start with `http://` or `https://`",
                "batch_size: must be between 1 and 100000",
                "envelope: an envelope is JSON: leave `format` out or make it `{ type = \"json\" }`",
                "envelope: `records` is not a JSON pointer: start it with `/`",
                "headers: `bad header` is not a valid header name",
                "timeout_secs: must be at least 1",
            ]
        );
        assert!(
            toml::from_str::<HttpSinkConfig>("url = \"http://x\"\nmethod = \"PATCH\"").is_err()
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
