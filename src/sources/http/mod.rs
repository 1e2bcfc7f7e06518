//! The `http` source: records from a REST API, one request or every page of a list, decoded
//! by the codec layer like any file. Paging (`paging.rs`) decides what comes next and checks
//! itself; the client (`client.rs`) retries, waits for rate limits and authenticates
//! (`auth.rs`), on fetch threads (`fetch.rs`) that get the next pages while this one is
//! decoded; delta pulls (`delta.rs`) remember where the last run got to, in time windows
//! (`window.rs`) when asked; export jobs (`job.rs`) are created, awaited and downloaded; with
//! `children` (`children.rs`), each record of the list leads to requests for its children,
//! which are delivered instead.
//!
//! The pages of a list are read whole (a page that breaks off is retried); a single answer (an
//! export) streams into its decoder whatever its size.

mod auth;
mod children;
mod client;
pub mod config;
mod delta;
mod fetch;
mod job;
mod paging;
mod resolver;
mod sparse;
mod window;

use std::collections::{BTreeMap, VecDeque};
use std::io::Read;
use std::sync::Arc;

use url::Url;

pub(crate) use crate::redact::{Redactor, names_a_secret};

use self::auth::Auth;
use self::children::FanOut;
use self::client::{Answer, Body, Client, Reading, Request, Sent};
pub use self::config::HttpSourceConfig;
use self::config::{BodyError, JobConfig, OnMismatch, Pagination};
use self::delta::Delta;
use self::fetch::Fetcher;
use self::paging::{PageFacts, Paginator, Step};
use self::sparse::sparse;
use self::window::{Windows, window_seconds};
use crate::codecs::json::{JsonOptions, json_error};
use crate::codecs::{FormatConfig, TextEncoding};
use crate::error::{CodecError, StageError};
use crate::record::{Batch, Origin, Record, Reject, Value};
use crate::stage::{Decoder, RunContext, Source, SourceProgress};
use crate::state::StateStore;

/// A request or a page that failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// A request that failed for good (after its retries), with the answer's own explanation.
    #[error("{method} {url}: {message}")]
    Request {
        method: &'static str,
        /// The URL, secrets redacted.
        url: String,
        status: Option<u16>,
        message: String,
    },
    /// Paging that cannot go on: a loop, a total that does not match, a body too large.
    #[error("{url}: {message}")]
    Paging { url: String, message: String },
    /// A child request answered 404 or 410, without `[rejects]` to set the parent aside.
    #[error(
        "{0}; the parent record's child is gone (deleted after the list was read?): a `[rejects]` table sets such records aside and lets the run go on"
    )]
    ChildGone(Box<HttpError>),
}

/// The page being decoded.
struct Page {
    decoder: Box<dyn Decoder>,
    url: Url,
    /// Its number, from 1.
    number: u64,
    facts: PageFacts,
    records: u64,
    /// The SHA-256 of a page of a list (to catch the same page served twice); `None` for a
    /// single answer, which streams.
    sha256: Option<String>,
    origin: Arc<Origin>,
    /// The start of the body, filled as it is read: shown when its records cannot be found.
    beginning: Arc<std::sync::Mutex<Vec<u8>>>,
}

/// Reads through `inner`, adding the bytes read to a counter (the progress display's) and
/// keeping the first ones (for messages).
struct Counting<R> {
    inner: R,
    counter: Arc<std::sync::atomic::AtomicU64>,
    beginning: Arc<std::sync::Mutex<Vec<u8>>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.counter
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        let mut beginning = client::lock(&self.beginning);
        let room = EXCERPT_BYTES.saturating_sub(beginning.len()).min(n);
        beginning.extend_from_slice(&buf[..room]);
        Ok(n)
    }
}

/// A body paging reads values from, as JSON.
fn parse_json(bytes: &[u8], label: &str) -> Result<serde_json::Value, CodecError> {
    serde_json::from_slice(bytes).map_err(|e| json_error(label, &e, true))
}

pub struct HttpSource {
    settings: Settings,
    requests: Requests,
    paging: PagingState,
    delivery: DeliveryState,
    report: Report,
    cx: RunContext,
}

/// What the source was configured with: fixed for the run.
struct Settings {
    /// How each list's URL is made.
    list: ListRequest,
    pagination: Pagination,
    job: Option<JobConfig>,
    cap: Option<u64>,
    format: FormatConfig,
    encoding: Option<TextEncoding>,
    /// Where an answer says it failed, though its status is a success.
    body_error: Option<BodyError>,
    max_page_bytes: u64,
    max_record_bytes: u64,
    max_pages: Option<u64>,
    max_records: Option<u64>,
    on_total_mismatch: OnMismatch,
}

/// Sending the requests, and the pages asked for ahead.
struct Requests {
    /// Sends the requests, on a thread of its own.
    fetcher: Fetcher,
    /// Shared with the client, which learns fetched tokens.
    redactor: Arc<std::sync::Mutex<Redactor>>,
    /// Pages requested ahead, oldest first, while the one before is decoded.
    prefetched: VecDeque<Url>,
    /// Pages to have requested ahead, when they are known (`concurrency`, at least 4).
    ahead: u64,
}

/// Where paging is: the current list, the page being decoded, and how paging ended.
struct PagingState {
    /// Pages the current list (the whole pull, or one time window).
    paginator: Paginator,
    /// The next page to request; `None` once paging ended.
    next: Option<Url>,
    page: Option<Page>,
    /// Pages opened, in all lists.
    pages: u64,
    /// Records received in the current list (before delta filtering), for the total check
    /// and the cap.
    received: u64,
    /// The list (cursor, until) whose export job is still to run before its file is fetched.
    job_for: Option<(Option<String>, Option<String>)>,
    /// Export jobs created, for their idempotency keys.
    jobs: u64,
    /// Paging was cut short (a cap or the time limit): no total check, and the cursor moves
    /// only if records came in order.
    cut_short: bool,
    /// Paging ended: there is nothing more to read.
    finished: bool,
}

/// What is delivered, and when: the time windows, the records held until their window is known
/// whole, and the cursor.
struct DeliveryState {
    /// The time windows still to pull, when the pull is windowed.
    windows: Option<Windows>,
    /// The window being pulled.
    window: Option<(String, String)>,
    /// With `cap`: the current window's records, held until it is known not to be capped.
    held: Option<Vec<Record>>,
    /// Records of a window delivered whole, waiting to be handed out.
    ready: VecDeque<Record>,
    ready_origin: Option<Arc<Origin>>,
    /// The cursor of an incremental pull, and the records the last run delivered.
    delta: Option<Delta>,
    /// Records delivered.
    delivered: u64,
}

/// What the run's report is to say, gathered until it asks.
struct Report {
    warnings: Vec<String>,
    progress: SourceProgress,
}

impl HttpSource {
    pub fn new(
        config: &HttpSourceConfig,
        cx: &RunContext,
        store: &mut dyn StateStore,
    ) -> Result<Self, StageError> {
        let mut redactor = Redactor::default();
        let mut headers = Vec::new();
        for (name, secret) in &config.headers {
            let (value, referenced) = secret
                .resolve_all(&cx.references())
                .map_err(|e| StageError::Refused(format!("header `{name}`: {e}")))?;
            // A reference is a secret; so is text in a header whose name says it holds one.
            // Other text (`Accept = "application/json"`) is shown as it is.
            if !secret.is_literal() || names_a_secret(name) {
                redactor.add(value.expose());
            }
            for referenced in &referenced {
                redactor.add_part(referenced);
            }
            headers.push((name.clone(), value));
        }
        // A key in a query parameter (`api_key = "${env:LOGS_KEY}"`) is shown as `***`.
        for name in config.query.keys().filter(|name| names_a_secret(name)) {
            redactor.add_query_parameter(name);
        }
        let auth = Auth::new(config.auth.as_ref(), cx, &mut redactor)
            .map_err(|(field, e)| StageError::Refused(format!("`{field}`: {e}")))?;
        let mut delta = match &config.incremental {
            None => None,
            Some(incremental) => {
                let cursors = store.cursors(&cx.pipeline).map_err(StageError::from)?;
                let sent_in = match &incremental.param {
                    Some(param) => format!("the parameter `{param}`"),
                    None => {
                        let uses: Vec<String> = config
                            .query
                            .iter()
                            .filter(|(_, value)| value.to_string().contains("{cursor}"))
                            .map(|(name, _)| format!("`{name}`"))
                            .collect();
                        match uses.is_empty() {
                            true => "the cursor in `job.body`".to_string(),
                            false => format!("the `query` value {}", uses.join(", ")),
                        }
                    }
                };
                Some(Delta::new(incremental, sent_in, &cursors).map_err(StageError::Refused)?)
            }
        };
        let list = ListRequest {
            url: config.url.clone(),
            query: config.query.clone(),
            cursor_param: config.incremental.as_ref().and_then(|i| i.param.clone()),
        };
        let cursor = delta.as_ref().and_then(Delta::sent_value);
        // `{until}`: a windowed pull's end (`end`, else now); otherwise `end` if set.
        let until = match (&delta, &config.incremental) {
            (Some(delta), Some(incremental)) if incremental.window.is_some() => delta
                .end_value(incremental.end.as_deref())
                .map_err(StageError::Refused)?,
            (_, Some(incremental)) => incremental.end.clone(),
            _ => None,
        };
        let window_length = config
            .incremental
            .as_ref()
            .and_then(|i| i.window.as_deref())
            .and_then(window_seconds);
        let (windows, window) = match window_length {
            None => {
                if let (Some(delta), Some(until)) = (&mut delta, &until) {
                    delta.ask_until(until);
                }
                (None, None)
            }
            Some(seconds) => {
                let (Some(from), Some(until)) = (&cursor, &until) else {
                    return Err(StageError::Refused(
                        "a windowed pull needs a start: set `incremental.initial`".into(),
                    ));
                };
                let mut windows =
                    Windows::new(from, until, seconds).map_err(StageError::Refused)?;
                let first = windows.next();
                (Some(windows), first)
            }
        };
        // Replaced by the first list's own (`start_list`, below).
        let paginator = Paginator::new(&config.pagination, list.url(None, None, None)?);
        let tls = tls_config(config.ca_file.as_deref(), cx)?;
        let redactor = Arc::new(std::sync::Mutex::new(redactor));
        let client = Client::new(config, tls, headers, auth, redactor.clone(), cx.deadline);
        let fetcher = Fetcher::start(Arc::new(client), config.concurrency as usize)
            .map_err(|e| StageError::io("the HTTP source", "start its thread", e))?;
        let windowed = windows.is_some();
        let mut source = HttpSource {
            settings: Settings {
                list,
                pagination: config.pagination.clone(),
                job: config.job.clone(),
                cap: config.cap,
                format: config
                    .format
                    .clone()
                    .unwrap_or(FormatConfig::Json(JsonOptions::default())),
                encoding: config.encoding,
                body_error: config.error.clone(),
                max_page_bytes: config.max_page_bytes,
                max_record_bytes: config.max_record_bytes,
                max_pages: config.max_pages,
                max_records: config.max_records,
                on_total_mismatch: config.on_total_mismatch,
            },
            requests: Requests {
                fetcher,
                redactor,
                prefetched: VecDeque::new(),
                // Four ahead even on one connection: the next request goes out as soon as one
                // is answered, not when the source has looked at it, and a slow page is made up
                // for.
                ahead: u64::from(config.concurrency).max(4),
            },
            paging: PagingState {
                paginator,
                next: None,
                page: None,
                pages: 0,
                received: 0,
                job_for: None,
                jobs: 0,
                cut_short: false,
                finished: false,
            },
            delivery: DeliveryState {
                windows,
                window: None,
                held: None,
                ready: VecDeque::new(),
                ready_origin: None,
                delta,
                delivered: 0,
            },
            report: Report {
                warnings: Vec::new(),
                progress: SourceProgress::default(),
            },
            cx: cx.clone(),
        };
        match window {
            Some((from, until)) => source.start_window(from, until)?,
            // Windowed, with nothing between the cursor and the end: nothing to pull.
            None if windowed => {}
            None => source.start_list(cursor, until)?,
        }
        Ok(source)
    }

    /// The JSON pointers of the body values paging and the `error` check read.
    fn body_pointers(&self) -> Vec<&str> {
        with_error_pointers(
            self.paging.paginator.body_pointers(),
            self.settings.body_error.as_ref(),
        )
    }

    /// `url` as messages show it: secrets redacted.
    fn shown(&self, url: &Url) -> String {
        client::lock(&self.requests.redactor).url(url)
    }

    /// Starts pulling the time window `[from, until)`, holding its records when it may be
    /// capped.
    fn start_window(&mut self, from: String, until: String) -> Result<(), StageError> {
        self.delivery.held = self.settings.cap.map(|_| Vec::new());
        if let Some(delta) = &mut self.delivery.delta {
            delta.set_window(&from, &until);
        }
        self.delivery.window = Some((from.clone(), until.clone()));
        self.start_list(Some(from), Some(until))
    }

    /// Starts pulling a list (the whole pull, or one time window) of the records from
    /// `cursor` until `until`: by its first page, or by its export job.
    fn start_list(
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

    /// Requests the next page and starts decoding it; false when paging has ended.
    fn open_next(&mut self) -> Result<bool, StageError> {
        if let Some((cursor, until)) = self.paging.job_for.take() {
            match self.run_job(cursor.as_deref(), until.as_deref())? {
                Some(file) => self.paging.next = Some(file),
                None => return Ok(false),
            }
        }
        let Some(url) = self.paging.next.take() else {
            return Ok(false);
        };
        if self
            .settings
            .max_pages
            .is_some_and(|max| self.paging.pages >= max)
        {
            self.stop_at_limit(format!("`max_pages` = {}", self.paging.pages));
            return Ok(false);
        }
        if self.cx.past_deadline() {
            self.stop_early(format!("stopped after {}", pages(self.paging.pages)));
            return Ok(false);
        }
        // Pages of a list are read whole, so that a connection that breaks off mid-page is
        // retried; a single answer (an export) streams into the decoder whatever its size,
        // unless a value must be read from its body (a total).
        let reading = if self.settings.pagination.is_paged() || !self.body_pointers().is_empty() {
            Reading::Whole(self.settings.max_page_bytes)
        } else {
            Reading::Stream
        };
        if self.requests.prefetched.front() == Some(&url) {
            self.requests.prefetched.pop_front();
        } else {
            self.discard_prefetched();
            let request = Request::page_of(self.paging.paginator.base(), url.clone(), reading);
            self.requests.fetcher.request(request);
        }
        let answer = match self.requests.fetcher.answer() {
            Ok(Sent::Answered(answer)) => answer,
            Ok(Sent::OutOfTime(reason)) => {
                self.stop_early(format!(
                    "stopped after {}: {reason}",
                    pages(self.paging.pages)
                ));
                return Ok(false);
            }
            Err(HttpError::Request {
                status: Some(status),
                ..
            }) if self.paging.paginator.confirming && ends_a_list(status) => {
                tracing::info!(
                    "the page after a short one was answered HTTP {status}: the list ended there"
                );
                let origin = Arc::new(Origin {
                    path: self.shown(&url),
                });
                self.end_list(&origin)?;
                return self.open_next();
            }
            Err(e) => return Err(e.into()),
        };
        self.paging.pages += 1;
        // Where redirects led: relative next links start there.
        let url = answer.url.clone();
        let shown = self.shown(&url);
        let label = format!("{shown} (page {})", self.paging.pages);
        let paging_error = |message: String| HttpError::Paging {
            url: label.clone(),
            message,
        };
        let beginning = Arc::default();
        let (decoder, sha256, facts) = match answer.body {
            Body::Whole(bytes) => {
                self.cx
                    .bytes_read
                    .fetch_add(bytes.len() as u64, std::sync::atomic::Ordering::Relaxed);
                let sha256 = crate::digest::sha256_hex(&bytes);
                let json = page_values(
                    &bytes,
                    self.paging.paginator.body_pointers(),
                    self.settings.body_error.as_ref(),
                    &label,
                    &self.requests.redactor,
                )?;
                let facts = self
                    .paging
                    .paginator
                    .facts(&answer.headers, json.as_ref())
                    .map_err(paging_error)?;
                *client::lock(&beginning) = bytes[..bytes.len().min(EXCERPT_BYTES)].to_vec();
                let decoder = self.settings.format.decoder_of_bytes(
                    bytes,
                    &label,
                    self.settings.encoding,
                    self.settings.max_record_bytes,
                )?;
                (decoder, Some(sha256), facts)
            }
            Body::Stream(stream) => {
                let facts = self
                    .paging
                    .paginator
                    .facts(&answer.headers, None)
                    .map_err(paging_error)?;
                let stream = Counting {
                    inner: stream,
                    counter: self.cx.bytes_read.clone(),
                    beginning: beginning.clone(),
                };
                let decoder = self.settings.format.decoder(
                    Box::new(stream),
                    &label,
                    self.settings.encoding,
                    self.settings.max_record_bytes,
                )?;
                (decoder, None, facts)
            }
        };
        // The next pages, when they are known already, are asked for now: they arrive while
        // this one is decoded.
        if !self.cx.past_deadline() {
            let room = self
                .settings
                .max_pages
                .map_or(u64::MAX, |max| max.saturating_sub(self.paging.pages));
            let ahead = self.requests.ahead.min(room);
            for k in self.requests.prefetched.len() as u64 + 1..=ahead {
                let Some(next) = self.paging.paginator.predict(&url, &facts, k) else {
                    break;
                };
                let request = Request::page_of(self.paging.paginator.base(), next.clone(), reading);
                self.requests.fetcher.request(request);
                self.requests.prefetched.push_back(next);
            }
        }
        self.paging.page = Some(Page {
            decoder,
            origin: Arc::new(Origin { path: shown }),
            url,
            number: self.paging.pages,
            facts,
            records: 0,
            sha256,
            beginning,
        });
        Ok(true)
    }

    /// Pages asked for ahead that paging did not go to (the last page was not full after all,
    /// or the list ended): their answers, whatever they are, are not wanted.
    fn discard_prefetched(&mut self) {
        for _ in self.requests.prefetched.drain(..) {
            let _ = self.requests.fetcher.answer();
        }
    }

    /// Sends one request on the fetch thread and parses its answer as JSON; `None` when the
    /// run's time ran out.
    fn call(&mut self, request: Request) -> Result<Option<serde_json::Value>, StageError> {
        self.discard_prefetched();
        let label = self.shown(&request.url);
        self.requests.fetcher.request(request);
        match self.requests.fetcher.answer()? {
            Sent::OutOfTime(reason) => {
                self.stop_early(reason);
                Ok(None)
            }
            Sent::Answered(Answer {
                body: Body::Whole(bytes),
                ..
            }) => Ok(Some(parse_json(&bytes, &label)?)),
            Sent::Answered(_) => unreachable!("a whole answer was asked for"),
        }
    }

    /// The page is decoded: decides what comes next.
    fn finish_page(&mut self, page: Page) -> Result<(), StageError> {
        self.report.progress.units += 1;
        if self
            .settings
            .max_records
            .is_some_and(|max| self.delivery.delivered >= max)
        {
            self.stop_at_limit(format!("`max_records` = {}", self.delivery.delivered));
            return Ok(());
        }
        let step = self
            .paging
            .paginator
            .after(&page.url, page.facts, page.records, page.sha256)
            .map_err(|message| HttpError::Paging {
                url: format!("{} (page {})", page.origin.path, page.number),
                message,
            })?;
        for warning in self.paging.paginator.warnings.drain(..) {
            tracing::warn!("{warning}");
            self.report.warnings.push(warning);
        }
        match step {
            Step::Fetch(url) => self.paging.next = Some(url),
            Step::End(reason) => {
                tracing::debug!("paging ended after {} pages: {reason}", self.paging.pages);
                self.end_list(&page.origin)?;
            }
        }
        Ok(())
    }

    /// The list (the whole pull, or a time window) ended: its totals are checked, its window
    /// delivered or split, and the next window started.
    fn end_list(&mut self, origin: &Arc<Origin>) -> Result<(), StageError> {
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
    fn stop_at_limit(&mut self, limit: String) {
        let message =
            format!("stopped at {limit}, as configured: the rest of the list was not read");
        tracing::warn!("{message}");
        self.report.warnings.push(message);
        self.paging.cut_short = true;
    }

    fn stop_early(&mut self, reason: String) {
        self.paging.cut_short = true;
        self.report.progress.stopped_early = Some(reason);
    }
}

impl Source for HttpSource {
    fn next_batch(&mut self, out: &mut Batch, max: usize) -> Result<bool, StageError> {
        out.clear();
        loop {
            if !self.delivery.ready.is_empty() {
                let take = self.delivery.ready.len().min(max);
                out.records.extend(self.delivery.ready.drain(..take));
                out.origin = self.delivery.ready_origin.clone();
                return Ok(true);
            }
            if self.paging.finished {
                return Ok(false);
            }
            let Some(page) = self.paging.page.as_mut() else {
                if !self.open_next()? {
                    self.paging.finished = true;
                }
                continue;
            };
            match page.decoder.next_batch(&mut out.records, max) {
                Ok(true) => {
                    let got = out.records.len() as u64;
                    page.records += got;
                    self.paging.received += got;
                    out.origin = Some(page.origin.clone());
                    if page.records == 1 && reads_whole_document(&self.settings.format) {
                        let paged = self.settings.pagination.is_paged();
                        let checked = self.settings.body_error.is_some();
                        if let Some(warning) =
                            check_single_object(&out.records, &page.beginning, paged, checked)
                                .map_err(|message| HttpError::Paging {
                                    url: format!("{} (page {})", page.origin.path, page.number),
                                    message: client::lock(&self.requests.redactor).text(&message),
                                })?
                        {
                            tracing::warn!("{warning}");
                            self.report.warnings.push(warning);
                        }
                    }
                    if let Some(held) = &mut self.delivery.held {
                        // Held until the window proves not capped.
                        held.append(&mut out.records);
                        continue;
                    }
                    if let Some(delta) = &mut self.delivery.delta {
                        let first = page.records - got + 1;
                        delta.filter(&mut out.records, first).map_err(|message| {
                            HttpError::Paging {
                                url: format!("{} (page {})", page.origin.path, page.number),
                                message,
                            }
                        })?;
                    }
                    self.delivery.delivered += out.records.len() as u64;
                    if !out.records.is_empty() {
                        return Ok(true);
                    }
                }
                Ok(false) => {
                    let mut page = self.paging.page.take().expect("a page is open");
                    for warning in page.decoder.take_warnings() {
                        tracing::warn!("{warning}");
                        self.report.warnings.push(warning);
                    }
                    self.finish_page(page)?;
                    if !out.rejects.is_empty() {
                        return Ok(true);
                    }
                }
                Err(CodecError::BadRecord { malformed, raw }) if self.cx.quarantine => {
                    page.records += 1;
                    self.paging.received += 1;
                    out.origin = Some(page.origin.clone());
                    out.rejects.push(Reject::of_bad_record(*malformed, raw));
                    if out.rejects.len() >= max {
                        return Ok(true);
                    }
                }
                Err(CodecError::Malformed(mut malformed)) if malformed.position.line.is_none() => {
                    // The records are not where they should be: the answer may be an error
                    // that came with a success status. What it says matters more than where
                    // the records should be.
                    let excerpt =
                        client::one_line(&String::from_utf8_lossy(&client::lock(&page.beginning)));
                    let detail = serde_json::from_str(&excerpt)
                        .ok()
                        .as_ref()
                        .and_then(client::json_error_detail)
                        .map(|detail| client::lock(&self.requests.redactor).text(&detail));
                    // What an API echoes may hold a secret (`invalid key sk_live…`).
                    let excerpt = client::lock(&self.requests.redactor).text(&excerpt);
                    match detail {
                        Some(detail) => {
                            malformed.message =
                                format!("{}; the API says: {detail}", malformed.message);
                            malformed.hint = Some(
                                "if the API reports errors in successful answers, set `error` (e.g. `error = { at = \"/success\", is = false }`) so that they fail with its message"
                                    .into(),
                            );
                        }
                        None => {
                            malformed.message =
                                format!("{} (the answer: {excerpt})", malformed.message)
                        }
                    }
                    return Err(CodecError::Malformed(malformed).into());
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn progress(&mut self) -> SourceProgress {
        let mut progress = std::mem::take(&mut self.report.progress);
        if let Some(delta) = &self.delivery.delta {
            add_delta_progress(
                delta,
                self.paging.finished && !self.paging.cut_short,
                &mut progress,
            );
        }
        progress.warnings.append(&mut self.report.warnings);
        let mut counts = self.requests.fetcher.counts();
        counts.window_splits = self.delivery.windows.as_ref().map_or(0, |w| w.splits);
        progress.requests = Some(counts);
        progress
    }
}

/// Whether answers in `format` are one JSON document (which `error` can look into).
pub(super) fn is_json_document(format: &FormatConfig) -> bool {
    matches!(format, FormatConfig::Json(_) | FormatConfig::JsonArray(_))
}

/// Whether `format` reads a JSON answer's whole document (no `records` pointer): then an
/// object there is one record.
pub(super) fn reads_whole_document(format: &FormatConfig) -> bool {
    matches!(format, FormatConfig::Json(options) if options.records.is_empty())
}

/// Fields that hold the records of an envelope, by the names APIs give them.
const ENVELOPE_FIELDS: [&str; 9] = [
    "results", "data", "items", "records", "rows", "entries", "hits", "value", "objects",
];

/// Fields of an API's error report.
const ERROR_REPORT_FIELDS: [&str; 13] = [
    "success",
    "ok",
    "error",
    "errors",
    "message",
    "msg",
    "code",
    "detail",
    "details",
    "status",
    "error_code",
    "error_description",
    "title",
];

/// Checks the first record of an answer read as a whole JSON document (`records` unset),
/// whose body starts with `beginning`. When the document is one object, it is one record:
/// right for `GET /orders/123/`, but a list's page that is an object is an envelope whose
/// `records` was forgotten (an error), an object that says it failed and has nothing but an
/// error report's fields is an error report (an error; with other fields, a warning), and an
/// object holding an array of objects under an envelope's name (`results`) was probably meant
/// as its records (a warning, returned). `errors_checked`: `error` decides what is an error.
pub(super) fn check_single_object(
    records: &[Record],
    beginning: &std::sync::Mutex<Vec<u8>>,
    paged: bool,
    errors_checked: bool,
) -> Result<Option<String>, String> {
    let starts_with_object = client::lock(beginning)
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        == Some(&b'{');
    let Some(record) = records.first().filter(|_| starts_with_object) else {
        return Ok(None);
    };
    let failed = ["success", "ok"]
        .iter()
        .any(|flag| matches!(record.get(flag), Some(Value::Bool(false))))
        || ["error", "errors"]
            .iter()
            .any(|name| match record.get(name) {
                None | Some(Value::Null | Value::Bool(false) | Value::Integer(0)) => false,
                Some(Value::String(text)) => !text.is_empty(),
                Some(Value::Array(items)) => !items.is_empty(),
                Some(Value::Object(fields)) => !fields.is_empty(),
                Some(_) => true,
            });
    if failed && !errors_checked {
        let mut json = Vec::new();
        crate::record::json::write_record(&mut json, record, &mut Default::default());
        let detail = serde_json::from_slice(&json)
            .ok()
            .as_ref()
            .and_then(client::json_error_detail)
            .unwrap_or_else(|| client::one_line(&String::from_utf8_lossy(&json)));
        let report_only = record
            .names()
            .all(|name| ERROR_REPORT_FIELDS.contains(&name.as_ref()));
        if report_only {
            return Err(format!(
                "the answer is an error report, not a record: {detail}. If the API reports errors in successful answers, set `error` (e.g. `error = {{ at = \"/success\", is = false }}`)"
            ));
        }
        return Ok(Some(format!(
            "the answer, read as one record, looks like an error report: {detail}. If it is one, set `error` (e.g. `error = {{ at = \"/success\", is = false }}`) so that it fails the run"
        )));
    }
    let envelope = ENVELOPE_FIELDS
        .iter()
        .find_map(|name| match record.get(name) {
            Some(Value::Array(items)) if matches!(items.first(), Some(Value::Object(_))) => {
                Some((*name, items.len()))
            }
            _ => None,
        });
    if paged {
        let hint = envelope.map_or_else(
            || "the pointer of its array of records".to_string(),
            |(name, _)| format!("`\"/{name}\"`"),
        );
        return Err(format!(
            "a page of the list is one JSON object, not an array of records: set the format's `records` to {hint}"
        ));
    }
    Ok(envelope.map(|(name, count)| {
        format!(
            "the answer is one JSON object, read as one record, and its `{name}` holds {count} objects: if those are the records, set the format's `records = \"/{name}\"`"
        )
    }))
}

/// Whether an answer with `status` to the request that only confirms the end of a list (the
/// page after a short one) means there is no such page: APIs refuse a page past the end with
/// 400 (WordPress), 404 (DRF page numbers), 416 or 422.
pub(super) fn ends_a_list(status: u16) -> bool {
    matches!(status, 400 | 404 | 416 | 422)
}

/// The most bytes of an answer shown when its records cannot be found.
const EXCERPT_BYTES: usize = 300;

/// `pointers` and those the `error` check reads.
fn with_error_pointers<'a>(
    mut pointers: Vec<&'a str>,
    check: Option<&'a BodyError>,
) -> Vec<&'a str> {
    if let Some(check) = check {
        pointers.push(&check.at);
        pointers.extend(check.message.as_deref());
    }
    pointers
}

/// The values at the JSON pointers paging reads (`paging`) in a page read whole, once the
/// `error` check passed: an answer that says it failed is an error with its message. `None`
/// when nothing is read from the body.
pub(super) fn page_values(
    bytes: &[u8],
    paging: Vec<&str>,
    check: Option<&BodyError>,
    label: &str,
    redactor: &std::sync::Mutex<Redactor>,
) -> Result<Option<serde_json::Value>, StageError> {
    let pointers = with_error_pointers(paging, check);
    if pointers.is_empty() {
        return Ok(None);
    }
    // A page that does not parse is parsed again whole: serde_json's errors say more there
    // ("trailing comma" rather than "key must be a string").
    let json = match sparse(bytes, &pointers) {
        Ok(values) => values,
        Err(_) => parse_json(bytes, label)?,
    };
    if let Some(check) = check {
        let found = json.pointer(&check.at);
        if check.failed(found) {
            let message = body_error_message(check, Some(&json), bytes);
            return Err(HttpError::Request {
                method: "GET",
                url: label.to_string(),
                status: Some(200),
                // What an API echoes may hold a secret (`invalid key sk_live…`).
                message: client::lock(redactor).text(&format!(
                    "the API answered with an error (`{}` = {}): {message}",
                    check.at,
                    found.map_or_else(String::new, |v| v.to_string())
                )),
            }
            .into());
        }
    }
    Ok(Some(json))
}

/// What an answer that says it failed (`error`) gives as its message: at `message`, else in the
/// usual places, else the start of the answer.
fn body_error_message(
    check: &BodyError,
    sparse: Option<&serde_json::Value>,
    body: &[u8],
) -> String {
    if let Some(message) = check
        .message
        .as_deref()
        .and_then(|pointer| sparse?.pointer(pointer))
    {
        return message
            .as_str()
            .map_or_else(|| message.to_string(), str::to_string);
    }
    serde_json::from_slice(body)
        .ok()
        .as_ref()
        .and_then(client::json_error_detail)
        .unwrap_or_else(|| {
            client::one_line(&String::from_utf8_lossy(
                &body[..body.len().min(EXCERPT_BYTES)],
            ))
        })
}

/// Builds the `http` source: the list's records, or, with `children`, their children.
pub fn source(
    config: &HttpSourceConfig,
    cx: &RunContext,
    store: &mut dyn StateStore,
) -> Result<Box<dyn Source>, StageError> {
    let list = HttpSource::new(config, cx, store)?;
    Ok(match &config.children {
        None => Box::new(list),
        Some(children) => Box::new(FanOut::new(list, children, config)?),
    })
}

/// Adds the cursor's state changes to `progress`. `complete`: the whole list was read (not cut
/// short by the time limit or a cap).
fn add_delta_progress(delta: &Delta, complete: bool, progress: &mut SourceProgress) {
    let (changes, warnings) = delta.changes(complete);
    progress.changes.extend(changes);
    for warning in warnings {
        tracing::warn!("{warning}");
        progress.warnings.push(warning);
    }
    if delta.skipped > 0 {
        tracing::info!(
            "{} records skipped: delivered by the last run",
            delta.skipped
        );
    }
}

/// "1 page", "2 pages".
fn pages(count: u64) -> String {
    if count == 1 {
        "1 page".into()
    } else {
        format!("{count} pages")
    }
}

/// TLS as configured: the public roots, or the CA certificates of `ca_file` instead.
fn tls_config(ca_file: Option<&str>, cx: &RunContext) -> Result<ureq::tls::TlsConfig, StageError> {
    use ureq::tls::{PemItem, RootCerts, TlsConfig, parse_pem};
    let Some(ca_file) = ca_file else {
        return Ok(TlsConfig::default());
    };
    let path = cx.resolve(ca_file);
    let shown = path.display().to_string();
    let pem = std::fs::read(&path).map_err(|e| StageError::io(&shown, "read the CA file", e))?;
    let mut certificates = Vec::new();
    for item in parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(certificate)) => certificates.push(certificate),
            Ok(_) => {}
            Err(e) => {
                return Err(StageError::Refused(format!("{shown}: not a PEM file: {e}")));
            }
        }
    }
    if certificates.is_empty() {
        return Err(StageError::Refused(format!(
            "{shown}: the CA file holds no certificate"
        )));
    }
    Ok(TlsConfig::builder()
        .root_certs(RootCerts::new_with_certs(&certificates))
        .build())
}

/// How the URL of a list (the whole pull, or one time window) is made.
struct ListRequest {
    url: String,
    query: BTreeMap<String, serde_json::Value>,
    /// `incremental.param`.
    cursor_param: Option<String>,
}

impl ListRequest {
    /// The URL for the records from `cursor` until `until` (of export job `job`).
    fn url(
        &self,
        cursor: Option<&str>,
        until: Option<&str>,
        job: Option<&str>,
    ) -> Result<Url, StageError> {
        let url = match job {
            Some(id) => self.url.replace("{id}", &encoded(id)),
            None => self.url.clone(),
        };
        let mut url = Url::parse(&url)
            .map_err(|e| StageError::Refused(format!("`url` is not a valid URL: {e}")))?;
        {
            let mut query = url.query_pairs_mut();
            for (name, value) in &self.query {
                if let Some(value) = query_value(value, cursor, until) {
                    query.append_pair(name, &value);
                }
            }
            if let (Some(param), Some(cursor)) = (&self.cursor_param, cursor) {
                query.append_pair(param, cursor);
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        Ok(url)
    }
}

/// A path segment or query value percent-encoded.
fn encoded(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// A `query` value as sent: text as it is, a table or array as compact JSON, with `{cursor}`
/// and `{until}` replaced; `None` when it uses one of them and there is none.
fn query_value(
    value: &serde_json::Value,
    cursor: Option<&str>,
    until: Option<&str>,
) -> Option<String> {
    Some(match fill(value, cursor, until)? {
        serde_json::Value::String(text) => text,
        other => other.to_string(),
    })
}

/// `value` with `{cursor}` and `{until}` replaced in its strings; `None` when it uses one of
/// them and there is none.
fn fill(
    value: &serde_json::Value,
    cursor: Option<&str>,
    until: Option<&str>,
) -> Option<serde_json::Value> {
    use serde_json::Value as J;
    fn substitute(value: &J, cursor: Option<&str>, until: Option<&str>) -> Option<J> {
        Some(match value {
            J::String(text) => {
                let mut text = text.clone();
                if text.contains("{cursor}") {
                    text = text.replace("{cursor}", cursor?);
                }
                if text.contains("{until}") {
                    text = text.replace("{until}", until?);
                }
                J::String(text)
            }
            J::Array(items) => J::Array(
                items
                    .iter()
                    .map(|item| substitute(item, cursor, until))
                    .collect::<Option<_>>()?,
            ),
            J::Object(fields) => J::Object(
                fields
                    .iter()
                    .map(|(k, v)| Some((k.clone(), substitute(v, cursor, until)?)))
                    .collect::<Option<_>>()?,
            ),
            other => other.clone(),
        })
    }
    substitute(value, cursor, until)
}

impl From<HttpError> for StageError {
    fn from(error: HttpError) -> Self {
        StageError::Failed(Box::new(error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_templated_and_json_built_from_tables() {
        let filter = serde_json::json!({"modifiedOn": {"operator": ">", "value": "{cursor}"}});
        assert_eq!(
            query_value(&filter, Some("2024-08-01T00:00:00"), None).as_deref(),
            Some(r#"{"modifiedOn":{"operator":">","value":"2024-08-01T00:00:00"}}"#)
        );
        assert_eq!(query_value(&filter, None, None), None);
        let text = serde_json::json!("updated_at");
        assert_eq!(
            query_value(&text, None, None).as_deref(),
            Some("updated_at")
        );
        let number = serde_json::json!(50);
        assert_eq!(query_value(&number, None, None).as_deref(), Some("50"));
        let range = serde_json::json!("{cursor}..{until}");
        assert_eq!(
            query_value(&range, Some("a"), Some("b")).as_deref(),
            Some("a..b")
        );
        assert_eq!(query_value(&range, Some("a"), None), None);
    }
}
