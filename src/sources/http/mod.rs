//! The `http` source: records from a REST API, one request or every page of a list, decoded
//! by the codec layer like any file. Paging (`paging.rs`) decides what comes next and checks
//! itself; the client it shares with the `http` sink (`net/client.rs`) retries, waits for
//! rate limits and authenticates (`net/auth.rs`), on fetch threads (`fetch.rs`) that get the
//! next pages while this one is decoded; delta pulls (`delta.rs`) remember where the last run got to, in time windows
//! (`window.rs`) when asked; export jobs (`job.rs`) are created, awaited and downloaded; with
//! `children` (`children.rs`), each record of the list leads to requests for its children,
//! which are delivered instead.
//!
//! This file holds the source's state and builds it; a page is opened, decoded and finished in
//! `page.rs`, what its body says besides its records is read in `body.rs`, a list (the whole
//! pull, or one time window) is started and ended in `list.rs`, and its URL made in
//! `list_url.rs`.
//!
//! The pages of a list are read whole (a page that breaks off is retried); a single answer (an
//! export) streams into its decoder whatever its size.

mod body;
mod children;
pub mod config;
mod delta;
mod fetch;
mod job;
mod list;
mod list_url;
mod page;
mod paging;
mod sparse;
mod window;

use std::collections::VecDeque;
use std::sync::Arc;

use url::Url;

use crate::net::Secrets;
use crate::net::client::{self, Client, ClientSettings};
pub(crate) use crate::redact::{Redactor, names_a_secret};

use self::body::with_error_pointers;
use self::children::FanOut;
pub use self::config::HttpSourceConfig;
use self::config::{BodyError, JobConfig, OnMismatch, Pagination};
use self::delta::Delta;
use self::fetch::Fetcher;
use self::list_url::ListRequest;
use self::page::Page;
use self::paging::Paginator;
use self::window::{Windows, window_seconds};
use crate::codecs::json::JsonOptions;
use crate::codecs::types::Typing;
use crate::codecs::{FormatConfig, TextEncoding};
use crate::error::StageError;
use crate::record::{Batch, Origin, Record};
use crate::stage::{RunContext, Source, SourceProgress};
use crate::state::StateStore;

pub use crate::net::HttpError;

/// The `http` source's list (with `children`, the parents' list, which `FanOut` reads).
pub struct HttpSource {
    /// As configured.
    settings: Settings,
    /// The fetch thread, and the pages asked for ahead.
    requests: Requests,
    /// The current list and page.
    paging: PagingState,
    /// Time windows, held records, the cursor.
    delivery: DeliveryState,
    /// Warnings and progress for the run's report.
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
    /// `infer_types` and `schema`; `None`: records stay as decoded.
    typing: Option<Typing>,
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

/// A time window: from, until.
type Window = (String, String);

/// What is delivered, and when: the time windows, the records held until their window is known
/// whole, and the cursor.
struct DeliveryState {
    /// The time windows still to pull, when the pull is windowed.
    windows: Option<Windows>,
    /// The window being pulled.
    window: Option<Window>,
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
#[derive(Default)]
struct Report {
    warnings: Vec<String>,
    progress: SourceProgress,
}

impl HttpSource {
    /// Resolves the secrets, reads the cursor, plans the time windows, starts the fetch thread
    /// and the first list (or window).
    pub fn new(
        config: &HttpSourceConfig,
        cx: &RunContext,
        store: &mut dyn StateStore,
    ) -> Result<Self, StageError> {
        let secrets = secrets(config, cx)?;
        let mut delta = delta(config, cx, store)?;
        let list = ListRequest::new(config);
        let cursor = delta.as_ref().and_then(Delta::sent_value);
        let until = until(config, delta.as_ref())?;
        let (windows, window) = plan_windows(config, &mut delta, &cursor, &until)?;
        // Replaced by the first list's own (`start_list`, below).
        let paginator = Paginator::new(&config.pagination, list.url(None, None, None)?);
        let requests = Requests::start(config, cx, secrets)?;
        let windowed = windows.is_some();
        let mut source = HttpSource {
            settings: Settings::new(config, list),
            requests,
            paging: PagingState::new(paginator),
            delivery: DeliveryState::new(windows, delta),
            report: Report::default(),
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
}

impl Settings {
    fn new(config: &HttpSourceConfig, list: ListRequest) -> Self {
        Settings {
            list,
            pagination: config.pagination.clone(),
            job: config.job.clone(),
            cap: config.cap,
            format: config
                .format
                .clone()
                .unwrap_or(FormatConfig::Json(JsonOptions::default())),
            encoding: config.encoding,
            typing: Typing::new(config.infer_types, config.schema.as_ref()),
            body_error: config.error.clone(),
            max_page_bytes: config.max_page_bytes,
            max_record_bytes: config.max_record_bytes,
            max_pages: config.max_pages,
            max_records: config.max_records,
            on_total_mismatch: config.on_total_mismatch,
        }
    }
}

impl Requests {
    /// The client, with TLS as configured, on its fetch threads.
    fn start(
        config: &HttpSourceConfig,
        cx: &RunContext,
        secrets: Secrets,
    ) -> Result<Self, StageError> {
        let Secrets {
            headers,
            auth,
            redactor,
        } = secrets;
        let tls = crate::net::tls_config(config.ca_file.as_deref(), cx)?;
        let redactor = Arc::new(std::sync::Mutex::new(redactor));
        // One idle connection kept per fetch thread, the children's too (and the OAuth
        // endpoint's).
        let children = config.children.as_ref().map_or(0, |c| c.concurrency);
        let settings = ClientSettings {
            timeout_secs: config.timeout_secs,
            connections: (config.concurrency + children) as usize + 1,
            retry: config.retry.clone(),
            rate_limit: config.rate_limit.clone(),
        };
        let client = Client::new(settings, tls, headers, auth, redactor.clone(), cx.deadline);
        let fetcher = Fetcher::start(Arc::new(client), config.concurrency as usize)
            .map_err(|e| StageError::io("the HTTP source", "start its thread", e))?;
        Ok(Requests {
            fetcher,
            redactor,
            prefetched: VecDeque::new(),
            // Four ahead even on one connection: the next request goes out as soon as one is
            // answered, not when the source has looked at it, and a slow page is made up for.
            ahead: u64::from(config.concurrency).max(4),
        })
    }
}

impl PagingState {
    fn new(paginator: Paginator) -> Self {
        PagingState {
            paginator,
            next: None,
            page: None,
            pages: 0,
            received: 0,
            job_for: None,
            jobs: 0,
            cut_short: false,
            finished: false,
        }
    }
}

impl DeliveryState {
    fn new(windows: Option<Windows>, delta: Option<Delta>) -> Self {
        DeliveryState {
            windows,
            window: None,
            held: None,
            ready: VecDeque::new(),
            ready_origin: None,
            delta,
            delivered: 0,
        }
    }
}

/// Resolves the secrets of the headers and the authentication; a key in a query parameter
/// (`api_key = "${env:LOGS_KEY}"`) is shown as `***` too.
fn secrets(config: &HttpSourceConfig, cx: &RunContext) -> Result<Secrets, StageError> {
    let mut secrets = Secrets::resolve(&config.headers, config.auth.as_ref(), cx)?;
    for name in config.query.keys().filter(|name| names_a_secret(name)) {
        secrets.redactor.add_query_parameter(name);
    }
    Ok(secrets)
}

/// The cursor of an incremental pull, from the pipeline's state.
fn delta(
    config: &HttpSourceConfig,
    cx: &RunContext,
    store: &mut dyn StateStore,
) -> Result<Option<Delta>, StageError> {
    let Some(incremental) = &config.incremental else {
        return Ok(None);
    };
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
    Ok(Some(
        Delta::new(incremental, sent_in, &cursors).map_err(StageError::Refused)?,
    ))
}

/// `{until}`: a windowed pull's end (`end`, else now); otherwise `end` if set.
fn until(config: &HttpSourceConfig, delta: Option<&Delta>) -> Result<Option<String>, StageError> {
    Ok(match (delta, &config.incremental) {
        (Some(delta), Some(incremental)) if incremental.window.is_some() => delta
            .end_value(incremental.end.as_deref())
            .map_err(StageError::Refused)?,
        (_, Some(incremental)) => incremental.end.clone(),
        _ => None,
    })
}

/// The time windows from `cursor` until `until`, and the first, when the pull is windowed;
/// otherwise the cursor is asked to end at `until`.
fn plan_windows(
    config: &HttpSourceConfig,
    delta: &mut Option<Delta>,
    cursor: &Option<String>,
    until: &Option<String>,
) -> Result<(Option<Windows>, Option<Window>), StageError> {
    let window_length = config
        .incremental
        .as_ref()
        .and_then(|i| i.window.as_deref())
        .and_then(window_seconds);
    Ok(match window_length {
        None => {
            if let (Some(delta), Some(until)) = (delta, until) {
                delta.ask_until(until);
            }
            (None, None)
        }
        Some(seconds) => {
            let (Some(from), Some(until)) = (cursor, until) else {
                return Err(StageError::Refused(
                    "a windowed pull needs a start: set `incremental.initial`".into(),
                ));
            };
            let mut windows = Windows::new(from, until, seconds).map_err(StageError::Refused)?;
            let first = windows.next();
            (Some(windows), first)
        }
    })
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
            if self.paging.page.is_none() {
                if !self.open_next()? {
                    self.paging.finished = true;
                }
                continue;
            }
            if self.decode(out, max)? {
                return Ok(true);
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
