//! Fan-out to child resources: each record of the list (a parent) is fetched in detail
//! (`GET /products/{id}`) or has a list of its own fetched (`GET /orders/{id}/lines`, paged like
//! any list), and the child records are what the source delivers, with the parent fields asked
//! for. dlt calls this resolving a parent resource; Airbyte, a substream.
//!
//! Child requests go through the list's client (auth, headers, retries, rate limits, the
//! report's counts) on `concurrency` threads of their own: while one parent's children are
//! decoded, the next parents' are on their way. Answers come back in the order asked, so child
//! records keep the parents' order; a bounded number of parents and answers is held.
//!
//! The incremental cursor moves by the parents, and a parent counts as delivered only once all
//! its children are: a run stopped by the time limit moves the cursor no further than the
//! children it delivered. A child answering 404 or 410 was deleted after the list was read: it
//! is a reject, not a crash.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;
use url::Url;

use super::body::{
    check_single_object, ends_a_list, is_json_document, page_values, reads_whole_document,
};
use super::config::{HttpSourceConfig, OnMismatch, Pagination, default_concurrency, url_problem};
use super::delta::{Delivery, Delta};
use super::fetch::Fetcher;
use super::list_url::encoded;
use super::paging::{Paginator, Step};
use super::{HttpError, HttpSource, add_delta_progress};
use crate::codecs::json::JsonOptions;
use crate::codecs::{FormatConfig, TextEncoding};
use crate::config::Invalid;
use crate::error::{CodecError, Malformed, Position, StageError};
use crate::net::client::{Answer, Body, Reading, Request, Sent};
use crate::record::json::KeyCache;
use crate::record::{Batch, FieldName, Origin, Record, Reject, Value};
use crate::stage::{Source, SourceProgress};

/// `children`: fan-out. Each record of the list (the parent) leads to requests for its
/// children, one record in detail (`/products/{id}`) or a list of its own (`/orders/{id}/lines`),
/// and the child records are what the source delivers, in the parents' order, with the parent
/// fields asked for. Child requests use the source's headers, auth, retries, rate limits,
/// `timeout_secs`, `max_page_bytes` and `encoding`; `incremental` applies to the parents (the
/// cursor moves by the parents whose children were all delivered), as do `max_pages` and
/// `max_records`. A child answered 404 or 410 (deleted after the list was read) is a reject
/// with `[rejects]`, else it fails the run; a 404 to the page after a short first page of a
/// child list only ends that list.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChildrenConfig {
    /// The URL of a parent's children, with `{field}` for the value of a field of the parent
    /// record, e.g. `"https://api.example.com/orders/{id}/lines"` or
    /// `"https://api.example.com/products/{sku}?expand=prices"`. Values are percent-encoded
    /// (a `/` or `?` in a value stays inside its path segment or query value); a parent without
    /// the field, or with null there, is a bad record (a reject with `[rejects]`). Required.
    pub url: String,
    /// The child answers' format, e.g. `{ type = "json", records = "/lines" }`. Default
    /// `{ type = "json" }`: an array of records, or one object that is one record.
    pub format: Option<FormatConfig>,
    /// How a child list is paged, as `pagination` pages the list; a child's pages are
    /// requested one after the other. Default `{ type = "none" }`: one request per parent.
    #[serde(default)]
    pub pagination: Pagination,
    /// Parent fields copied into every child record: child field name = parent field name,
    /// e.g. `{ order_id = "id", customer = "customer_name" }`. They come after the child's own
    /// fields and replace a child field of the same name; a parent without the field gives
    /// null. Default: none.
    #[serde(default)]
    pub parent_fields: BTreeMap<String, String>,
    /// Child requests in flight at once, each on its own connection: the next parents'
    /// children are fetched while one parent's are decoded. Records keep the parents' order.
    /// Leave it at 1 unless the API allows parallel requests. Between 1 and 16; default 1.
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
}

impl ChildrenConfig {
    /// What is wrong with the table, also together with the rest of `source`.
    pub(super) fn problems_with(&self, source: &HttpSourceConfig) -> Vec<Invalid> {
        let mut problems = Vec::new();
        match UrlTemplate::parse(&self.url) {
            Ok(template) => {
                if let Some(problem) = url_problem(&template.example()) {
                    problems.push(Invalid::new("children.url", problem));
                }
            }
            Err(problem) => problems.push(Invalid::new("children.url", problem)),
        }
        if let Some(format) = &self.format {
            problems.extend(format.problems().into_iter().map(|p| Invalid {
                key: format!("children.{}", p.key),
                ..p
            }));
        }
        if pagination_limit(&self.pagination) == Some(0) {
            problems.push(Invalid::new(
                "children.pagination.limit",
                "must be at least 1",
            ));
        }
        if !(1..=16).contains(&self.concurrency) {
            problems.push(Invalid::new(
                "children.concurrency",
                "must be between 1 and 16",
            ));
        }
        if let Some((name, _)) = self
            .parent_fields
            .iter()
            .find(|(n, f)| n.is_empty() || f.is_empty())
        {
            problems.push(Invalid::new(
                "children.parent_fields",
                format!("`{name}` = ...: names must not be empty"),
            ));
        }
        if source
            .incremental
            .as_ref()
            .is_some_and(|incremental| incremental.window.is_some())
        {
            problems.push(Invalid::new(
                "children",
                "a fan-out cannot be pulled in time windows yet: leave out `incremental.window`",
            ));
        }
        problems
    }
}

/// The page size a paging asks for, if any.
fn pagination_limit(pagination: &Pagination) -> Option<u64> {
    match pagination {
        Pagination::Offset(paging) => Some(paging.limit),
        Pagination::Page(paging) => Some(paging.limit),
        Pagination::Cursor(paging) => paging.limit,
        Pagination::None(_) | Pagination::Next(_) => None,
    }
}

/// A child URL: text with `{field}` placeholders.
#[derive(Debug)]
struct UrlTemplate {
    parts: Vec<Part>,
}

#[derive(Debug)]
enum Part {
    Text(String),
    Field(String),
}

impl UrlTemplate {
    fn parse(template: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let Some(close) = rest[open..].find('}') else {
                return Err(format!("`{}` is not closed", &rest[open..]));
            };
            let field = &rest[open + 1..open + close];
            if field.is_empty() || field.contains('{') {
                return Err(format!(
                    "`{}` is not a placeholder: write `{{field}}` with the parent field's name",
                    &rest[open..=open + close]
                ));
            }
            parts.push(Part::Field(field.to_string()));
            rest = &rest[open + close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        if !parts.iter().any(|part| matches!(part, Part::Field(_))) {
            return Err(
                "must hold a `{field}` of the parent record, e.g. `https://api.example.com/orders/{id}/lines`"
                    .into(),
            );
        }
        Ok(UrlTemplate { parts })
    }

    /// The URL with every placeholder filled with a sample value, for checking.
    fn example(&self) -> String {
        self.filled(|_| Some("1".into()))
            .expect("every field has a value")
    }

    /// The URL for `parent`; `Err` names the field it lacks (absent or null).
    fn fill(&self, parent: &Record) -> Result<Url, String> {
        let mut missing = None;
        let url = self.filled(|field| {
            let value = parent.get(field).and_then(Value::to_text);
            if value.is_none() {
                missing = Some(field.to_string());
            }
            value.map(|text| {
                // Encoded for a path segment as well as a query value: a space is `%20`, not
                // `+`, and every reserved character, `/` and `?` too, is escaped.
                encoded(&text).replace('+', "%20")
            })
        });
        match (url, missing) {
            (Some(url), _) => Url::parse(&url).map_err(|e| format!("the child URL `{url}`: {e}")),
            (None, missing) => Err(format!(
                "no `{0}` for `{{{0}}}` in the child URL",
                missing.expect("a field was missing")
            )),
        }
    }

    fn filled(&self, mut value: impl FnMut(&str) -> Option<String>) -> Option<String> {
        let mut url = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => url.push_str(text),
                Part::Field(field) => url.push_str(&value(field)?),
            }
        }
        Some(url)
    }
}

/// Parents read from the list at once, at most: the memory a fan-out holds ahead.
const PARENTS_AT_ONCE: usize = 64;

/// A parent record whose children are not all delivered yet.
struct Parent {
    record: Record,
    /// What the delta counts for the cursor once the children are delivered.
    delivery: Option<Delivery>,
    paginator: Paginator,
    state: State,
    /// Child records received, rejects included, for the advertised total.
    received: u64,
}

/// Where a parent's next child page is.
enum State {
    /// To be requested.
    ToRequest(Url),
    /// Requested; the answer is on its way.
    Sent,
    /// Answered, waiting for the parents before it.
    Answered(Box<Result<Sent, HttpError>>),
    /// The answer is being decoded.
    Decoding,
}

impl State {
    /// Whether a request of this parent's is in flight or answered and held.
    fn busy(&self) -> bool {
        matches!(self, State::Sent | State::Answered(_))
    }
}

/// The `http` source with `children`: the list's records are the parents, and their children
/// are delivered instead.
pub(super) struct FanOut {
    /// The list of parents, read as without `children`, but its delta taken (see `delta`).
    list: HttpSource,
    /// Child requests, on `concurrency` threads of their own, through the list's client.
    fetcher: Fetcher,
    url: UrlTemplate,
    pagination: Pagination,
    format: FormatConfig,
    encoding: Option<TextEncoding>,
    max_page_bytes: u64,
    max_record_bytes: u64,
    on_total_mismatch: OnMismatch,
    parent_fields: Vec<(FieldName, String)>,
    concurrency: usize,
    /// Parents read and not yet delivered, in order: the front one's children come next.
    parents: VecDeque<Parent>,
    /// How many parents at the front have had their first request sent.
    started: usize,
    /// The parents of the requests in flight, by number, oldest first: the order of the answers.
    in_flight: VecDeque<u64>,
    /// The number of the front parent; parents are numbered as they are read.
    front_number: u64,
    list_ended: bool,
    /// Parents whose children were all delivered (or rejected).
    delivered_parents: u64,
    /// Child pages decoded.
    pages: u64,
    /// The cursor: parents the last run delivered are skipped as they are read, and a parent
    /// moves the cursor once its children are delivered.
    delta: Option<Delta>,
    warnings: Vec<String>,
    /// Whether a child answer read as one record that looks like an envelope was warned of.
    envelope_warned: bool,
    stopped_early: Option<String>,
    finished: bool,
}

impl FanOut {
    pub(super) fn new(
        mut list: HttpSource,
        children: &ChildrenConfig,
        source: &HttpSourceConfig,
    ) -> Result<Self, StageError> {
        let url = UrlTemplate::parse(&children.url)
            .map_err(|problem| StageError::Refused(format!("`children.url` {problem}")))?;
        let fetcher = Fetcher::start(
            list.requests.fetcher.client(),
            children.concurrency as usize,
        )
        .map_err(|e| StageError::io("the HTTP source", "start its thread", e))?;
        Ok(FanOut {
            delta: list.delivery.delta.take(),
            fetcher,
            url,
            pagination: children.pagination.clone(),
            format: children
                .format
                .clone()
                .unwrap_or(FormatConfig::Json(JsonOptions::default())),
            encoding: source.encoding,
            max_page_bytes: source.max_page_bytes,
            max_record_bytes: source.max_record_bytes,
            on_total_mismatch: source.on_total_mismatch,
            parent_fields: children
                .parent_fields
                .iter()
                .map(|(child, parent)| (FieldName::from(child.as_str()), parent.clone()))
                .collect(),
            concurrency: children.concurrency as usize,
            list,
            parents: VecDeque::new(),
            started: 0,
            in_flight: VecDeque::new(),
            front_number: 0,
            list_ended: false,
            delivered_parents: 0,
            pages: 0,
            warnings: Vec::new(),
            envelope_warned: false,
            stopped_early: None,
            finished: false,
        })
    }

    /// Reads parents from the list when every one held has been started and there is room:
    /// the parents the last run delivered are skipped, and a parent that cannot make its child
    /// URL is a bad record. The list's own rejects go to `out`.
    fn read_parents(&mut self, out: &mut Batch) -> Result<(), StageError> {
        let busy = self.parents.iter().filter(|p| p.state.busy()).count();
        let room = self.parents.is_empty()
            || (self.started == self.parents.len() && busy < self.concurrency);
        if self.list_ended || !room {
            return Ok(());
        }
        let mut batch = Batch::default();
        if !self.list.next_batch(&mut batch, PARENTS_AT_ONCE)? {
            self.list_ended = true;
            return Ok(());
        }
        out.rejects.append(&mut batch.rejects);
        // The records of a batch are the last of its page read so far (bad records come
        // before them): their numbers in the page, for messages.
        let (page, read) = self
            .list
            .paging
            .page
            .as_ref()
            .map_or((0, 0), |page| (page.number, page.records));
        let first_number = (read + 1).saturating_sub(batch.records.len() as u64);
        let label = match &batch.origin {
            Some(origin) => format!("{} (page {page})", origin.path),
            None => String::new(),
        };
        let mut keys = KeyCache::default();
        if let Some(delta) = &mut self.delta {
            delta.look_for_field(&batch.records);
        }
        for (number, record) in (first_number..).zip(batch.records) {
            let delivery = match &mut self.delta {
                None => None,
                Some(delta) => match delta.judge(&record, number, &mut keys) {
                    // A parent that came again while its first's children are still to come
                    // (offset paging over a list that changed).
                    Ok(Some(delivery))
                        if self.parents.iter().any(|parent| {
                            parent
                                .delivery
                                .as_ref()
                                .is_some_and(|d| d.repeats(&delivery))
                        }) =>
                    {
                        delta.note_repeated();
                        continue;
                    }
                    Ok(Some(delivery)) => Some(delivery),
                    // Delivered by the last run, or outside what was asked for.
                    Ok(None) => continue,
                    Err(message) => {
                        return Err(HttpError::Paging {
                            url: label.clone(),
                            message,
                        }
                        .into());
                    }
                },
            };
            match self.url.fill(&record) {
                Ok(url) => {
                    let paginator = Paginator::new(&self.pagination, url);
                    self.parents.push_back(Parent {
                        state: State::ToRequest(paginator.first()),
                        paginator,
                        record,
                        delivery,
                        received: 0,
                    });
                }
                Err(message) => {
                    let malformed = Box::new(Malformed {
                        file: label.clone(),
                        position: Position {
                            record: Some(number),
                            ..Position::default()
                        },
                        message,
                        hint: None,
                    });
                    let raw = Some(json_text(&record));
                    if !self.list.cx.quarantine {
                        return Err(CodecError::BadRecord { malformed, raw }.into());
                    }
                    out.rejects.push(Reject::of_bad_record(*malformed, raw));
                }
            }
        }
        Ok(())
    }

    /// Sends the front parent's next page, then the first pages of the parents after it while
    /// fewer than `concurrency` are in flight or held.
    fn send_requests(&mut self) {
        let reading = Reading::Whole(self.max_page_bytes);
        let mut busy = self.parents.iter().filter(|p| p.state.busy()).count();
        for (index, parent) in self.parents.iter_mut().enumerate() {
            let State::ToRequest(url) = &parent.state else {
                continue;
            };
            // The front parent's records are waited for: its page goes whatever is in flight.
            if index > 0 && (busy >= self.concurrency || self.list.cx.past_deadline()) {
                break;
            }
            let request = Request::page_of(parent.paginator.base(), url.clone(), reading);
            self.fetcher.request(request);
            self.in_flight.push_back(self.front_number + index as u64);
            parent.state = State::Sent;
            self.started = self.started.max(index + 1);
            busy += 1;
        }
    }

    /// The front parent's answer, holding the answers of the parents after it that come first.
    fn front_answer(&mut self) -> Result<Sent, HttpError> {
        loop {
            let front = self.parents.front_mut().expect("a parent is held");
            if let State::Answered(_) = front.state {
                let State::Answered(answer) = std::mem::replace(&mut front.state, State::Decoding)
                else {
                    unreachable!("matched above")
                };
                return *answer;
            }
            let number = self
                .in_flight
                .pop_front()
                .expect("the front parent's request was sent");
            let answer = self.fetcher.answer();
            let parent = &mut self.parents[(number - self.front_number) as usize];
            let State::Sent = std::mem::replace(&mut parent.state, State::Decoding) else {
                unreachable!("a parent in flight was sent")
            };
            parent.state = State::Answered(Box::new(answer));
        }
    }

    /// Decodes a page of the front parent's children into `out`, with the parent fields, and
    /// decides where its paging goes.
    fn decode_page(
        &mut self,
        answer: Answer,
        out: &mut Batch,
        max: usize,
    ) -> Result<(), StageError> {
        let Body::Whole(bytes) = answer.body else {
            unreachable!("child pages are read whole")
        };
        self.pages += 1;
        self.list
            .cx
            .bytes_read
            .fetch_add(bytes.len() as u64, std::sync::atomic::Ordering::Relaxed);
        // Where redirects led: relative next links start there.
        let url = answer.url;
        let label = self.list.shown(&url);
        let parent = self.parents.front_mut().expect("a parent is held");
        let sha256 = crate::digest::sha256_hex(&bytes);
        let json = page_values(
            &bytes,
            parent.paginator.body_pointers(),
            // The list's `error` check, when the children's answers are JSON too.
            self.list
                .settings
                .body_error
                .as_ref()
                .filter(|_| is_json_document(&self.format)),
            &label,
            &self.list.requests.redactor,
        )?;
        let paging_error = |message: String| HttpError::Paging {
            url: label.clone(),
            message,
        };
        let facts = parent
            .paginator
            .facts(&answer.headers, json.as_ref())
            .map_err(paging_error)?;
        let beginning = std::sync::Mutex::new(bytes[..bytes.len().min(64)].to_vec());
        let mut decoder =
            self.format
                .decoder_of_bytes(bytes, &label, self.encoding, self.max_record_bytes)?;
        let start = out.records.len();
        let mut rejected = 0;
        loop {
            match decoder.next_batch(&mut out.records, max) {
                Ok(true) => {}
                Ok(false) => {
                    for warning in decoder.take_warnings() {
                        tracing::warn!("{warning}");
                        self.warnings.push(warning);
                    }
                    break;
                }
                Err(CodecError::BadRecord { malformed, raw }) if self.list.cx.quarantine => {
                    rejected += 1;
                    out.rejects.push(Reject::of_bad_record(*malformed, raw));
                }
                Err(e) => return Err(e.into()),
            }
        }
        if out.records.len() == start + 1 && reads_whole_document(&self.format) {
            let checked = check_single_object(
                &out.records[start..],
                &beginning,
                self.pagination.is_paged(),
                self.list.settings.body_error.is_some(),
            )
            .map_err(|message| HttpError::Paging {
                url: label.clone(),
                message: crate::net::client::lock(&self.list.requests.redactor).text(&message),
            })?;
            if let Some(warning) = checked.filter(|_| !self.envelope_warned) {
                // Once: every child would say the same.
                self.envelope_warned = true;
                tracing::warn!("{label}: {warning}");
                self.warnings.push(format!("{label}: {warning}"));
            }
        }
        for record in &mut out.records[start..] {
            for (name, field) in &self.parent_fields {
                let value = parent.record.get(field).cloned().unwrap_or(Value::Null);
                record.insert(name.clone(), value);
            }
        }
        let records = (out.records.len() - start) as u64 + rejected;
        parent.received += records;
        if out.records.len() > start {
            out.origin = Some(Arc::new(Origin {
                path: label.clone(),
            }));
        }
        let step = parent
            .paginator
            .after(&url, facts, records, Some(sha256))
            .map_err(paging_error)?;
        for warning in parent.paginator.warnings.drain(..) {
            tracing::warn!("{label}: {warning}");
            self.warnings.push(format!("{label}: {warning}"));
        }
        match step {
            Step::Fetch(next) => parent.state = State::ToRequest(next),
            Step::End(_) => self.front_list_ended(&label)?,
        }
        Ok(())
    }

    /// The front parent's list of children ended: its advertised total is checked, and the
    /// parent is delivered.
    fn front_list_ended(&mut self, label: &str) -> Result<(), StageError> {
        let parent = self.parents.front().expect("a parent is held");
        if let Some(expected) = parent.paginator.expected()
            && expected != parent.received
        {
            let message = format!(
                "received {} child records, but the API advertised {expected}",
                parent.received
            );
            match self.on_total_mismatch {
                OnMismatch::Fail => {
                    return Err(HttpError::Paging {
                        url: label.to_string(),
                        message: format!(
                            "{message} (`on_total_mismatch = \"warn\"` delivers them anyway)"
                        ),
                    }
                    .into());
                }
                OnMismatch::Warn => {
                    tracing::warn!("{label}: {message}");
                    self.warnings.push(format!("{label}: {message}"));
                }
            }
        }
        self.front_delivered();
        Ok(())
    }

    /// The front parent's children are all delivered (or rejected): it may move the cursor.
    fn front_delivered(&mut self) {
        let parent = self.parents.pop_front().expect("a parent is held");
        self.front_number += 1;
        self.started = self.started.saturating_sub(1);
        self.delivered_parents += 1;
        if let (Some(delta), Some(delivery)) = (&mut self.delta, parent.delivery) {
            delta.note_delivered(delivery);
        }
        // Parents are the units of a fan-out: past the run's time, no other one starts.
        let more = !self.parents.is_empty() || !self.list_ended;
        if more && self.list.cx.past_deadline() {
            self.stop_early("the run's time is up".into());
        }
    }

    /// Stops before the next parent: the time is up.
    fn stop_early(&mut self, reason: String) {
        self.stopped_early = Some(format!(
            "stopped after the children of {} records: {reason}",
            self.delivered_parents
        ));
        self.finished = true;
    }
}

impl Source for FanOut {
    fn next_batch(&mut self, out: &mut Batch, max: usize) -> Result<bool, StageError> {
        out.clear();
        loop {
            if self.finished {
                return Ok(!out.rejects.is_empty());
            }
            self.read_parents(out)?;
            self.send_requests();
            if self.parents.is_empty() {
                self.finished = self.list_ended;
                if !out.rejects.is_empty() {
                    return Ok(true);
                }
                continue;
            }
            let answer = self.front_answer();
            // Its slot is free: the next parent's request goes while this page is decoded.
            self.send_requests();
            let confirming = self
                .parents
                .front()
                .is_some_and(|parent| parent.paginator.confirming);
            match answer {
                Ok(Sent::Answered(answer)) => self.decode_page(answer, out, max)?,
                Ok(Sent::OutOfTime(reason)) => self.stop_early(reason),
                // The page after a short one only confirms the end: refused, it is the end.
                Err(HttpError::Request {
                    url,
                    status: Some(status),
                    ..
                }) if confirming && ends_a_list(status) => self.front_list_ended(&url)?,
                Err(HttpError::Request {
                    method,
                    url,
                    status: Some(status @ (404 | 410)),
                    message,
                }) => {
                    if !self.list.cx.quarantine {
                        let gone = HttpError::Request {
                            method,
                            url,
                            status: Some(status),
                            message,
                        };
                        return Err(HttpError::ChildGone(Box::new(gone)).into());
                    }
                    let parent = &self.parents.front().expect("a parent is held").record;
                    out.rejects.push(Reject {
                        file: url,
                        position: Position::default(),
                        reason: message,
                        raw: Some(json_text(parent)),
                    });
                    self.front_delivered();
                }
                Err(e) => return Err(e.into()),
            }
            if !out.records.is_empty() || !out.rejects.is_empty() {
                return Ok(true);
            }
        }
    }

    fn progress(&mut self) -> SourceProgress {
        let mut progress = self.list.progress();
        progress.units += self.pages;
        progress.warnings.append(&mut self.warnings);
        // What the fan-out delivered is what counts, when it stopped before the list.
        if let Some(reason) = self.stopped_early.take() {
            progress.stopped_early = Some(reason);
        }
        if let Some(delta) = &self.delta {
            let complete =
                self.finished && progress.stopped_early.is_none() && !self.list.paging.cut_short;
            add_delta_progress(delta, complete, &mut progress);
        }
        progress
    }
}

/// A record as compact JSON, for the rejects file and messages.
fn json_text(record: &Record) -> String {
    Value::Object(record.clone())
        .to_text()
        .map(|text| text.into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Validate;

    fn record(fields: &[(&str, Value)]) -> Record {
        fields
            .iter()
            .map(|(name, value)| (FieldName::from(*name), value.clone()))
            .collect()
    }

    #[test]
    fn placeholders_take_the_parents_values_encoded() {
        let template =
            UrlTemplate::parse("https://api.example.com/shops/{shop}/orders/{id}/lines?sku={sku}")
                .unwrap();
        let parent = record(&[
            ("id", Value::Integer(7)),
            ("shop", Value::String("a/b c".into())),
            ("sku", Value::String("x&y=1+2".into())),
        ]);
        assert_eq!(
            template.fill(&parent).unwrap().as_str(),
            "https://api.example.com/shops/a%2Fb%20c/orders/7/lines?sku=x%26y%3D1%2B2"
        );
        let without_sku = record(&[
            ("id", Value::Integer(7)),
            ("shop", Value::String("s".into())),
            ("sku", Value::Null),
        ]);
        assert_eq!(
            template.fill(&without_sku).unwrap_err(),
            "no `sku` for `{sku}` in the child URL"
        );
    }

    #[test]
    fn child_tables_that_cannot_work_are_problems() {
        let problems = |children: &str, extra: &str| -> Vec<String> {
            let config: HttpSourceConfig = toml::from_str(&format!(
                "url = \"https://api.example.com/orders\"\n{extra}\n[children]\n{children}"
            ))
            .expect("the table parses");
            config
                .problems()
                .into_iter()
                .map(|p| p.to_string())
                .collect()
        };
        assert_eq!(
            problems(
                "url = \"https://api.example.com/orders/lines\"\nconcurrency = 17\npagination = { type = \"page\", limit = 0 }",
                ""
            ),
            [
                "children.url: must hold a `{field}` of the parent record, e.g. `https://api.example.com/orders/{id}/lines`",
                "children.pagination.limit: must be at least 1",
                "children.concurrency: must be between 1 and 16",
            ]
        );
        assert_eq!(
            problems(
                "url = \"ftp://api.example.com/orders/{id\"\nparent_fields = { order_id = \"\" }",
                "incremental = { field = \"updated_at\", param = \"since\", window = \"1d\" }"
            ),
            [
                "children.url: `{id` is not closed",
                "children.parent_fields: `order_id` = ...: names must not be empty",
                "children: a fan-out cannot be pulled in time windows yet: leave out `incremental.window`",
            ]
        );
        assert_eq!(
            problems("url = \"ftp://api.example.com/orders/{id}/lines\"", ""),
            ["children.url: must start with `http://` or `https://`"]
        );
        assert!(problems("url = \"https://api.example.com/orders/{id}\"", "").is_empty());
    }
}
