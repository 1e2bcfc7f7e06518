//! The `http` source's pipeline-file table. Every field is documented here once: the docs become
//! the JSON Schema and the README reference.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

pub use super::children::ChildrenConfig;
use crate::codecs::types::FieldType;
use crate::codecs::{FormatConfig, TextEncoding};
use crate::config::{Invalid, Secret, Validate};
pub(super) use crate::net::config::url_problem;
pub use crate::net::config::{AuthConfig, RateLimitConfig, ResetReading, RetryConfig};

/// Pulls records from a REST API: one request, or every page of a paginated list; with
/// `incremental`, only what changed since the last run.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpSourceConfig {
    /// The URL of the first request, e.g. `"https://api.example.com/v2/orders/"`; fixed
    /// parameters may be written in its query string. `http://` or `https://`; HTTPS
    /// certificates are verified. Required.
    pub url: String,
    /// Query parameters added to every request, e.g. `{ ordering = "updated_at", search =
    /// "paid", fields = "id,total,updated_at" }`. In a value, `{cursor}` is the incremental
    /// cursor (a parameter that uses it is left out while there is no cursor yet). A table or
    /// array is sent as compact JSON built from the TOML, so a filter document needs no
    /// escaping: `filters = { modifiedOn = { operator = ">", value = "{cursor}" } }`.
    /// Values are percent-encoded. Default: none.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, serde_json::Value>")]
    pub query: BTreeMap<String, serde_json::Value>,
    /// A PEM file of the CA certificates to trust instead of the public ones, for an API
    /// whose certificate a private CA signed; relative paths are resolved against the pipeline
    /// file's directory. Certificates are always verified. Default: Mozilla's root
    /// certificates.
    pub ca_file: Option<String>,
    /// Extra request headers, e.g. `{ Accept = "application/json", X-Api-Key =
    /// "${env:VENDOR_KEY}" }`. A value given as a reference (`${env:NAME}`, `${file:PATH}`), or
    /// in a header named like a secret (`Authorization`, `*key*`, `*token*`, `*secret*`,
    /// `Cookie`, ...), is never shown in a message or log. Default: none.
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    /// How requests authenticate. Default: none.
    pub auth: Option<AuthConfig>,
    /// The response body's format, e.g. `{ type = "json", records = "/results" }` for records
    /// in an envelope, or `{ type = "csv" }`, `{ type = "xml", record_path = "orders/order" }`,
    /// `{ type = "json-array" }`. Default `{ type = "json" }`: the body is an array of records,
    /// or one object that is one record (`GET /orders/123/`).
    pub format: Option<FormatConfig>,
    /// The text encoding of bodies without a byte-order mark (any WHATWG label). Default
    /// UTF-8.
    pub encoding: Option<TextEncoding>,
    /// Give text values the type they read as: integers (`42`; not `007`, a code), exact
    /// decimals (`1.50`), `true`/`false`, ISO 8601 dates and timestamps. For formats without
    /// types (CSV, XML); each value on its own, on every page. Fields in `schema` are typed by
    /// it instead. Not with `children` (type their records with a `cast` transform). Default
    /// `false`: text stays text.
    #[serde(default)]
    pub infer_types: bool,
    /// The type of named fields, e.g. `{ amount = "decimal", created = { type = "timestamp",
    /// format = "%d/%m/%Y %H:%M", timezone = "Europe/Berlin" } }`: `string`, `integer`,
    /// `float`, `decimal`, `bool`, `timestamp`, `datetime`, `date`, on every page. A value
    /// that does not fit makes its record a reject (with `[rejects]`, numbered within its
    /// page) or fails the run. Not with `children` (type their records with a `cast`
    /// transform). Default: none.
    pub schema: Option<BTreeMap<String, FieldType>>,
    /// How the list is paged. Default `{ type = "none" }`: one request.
    #[serde(default)]
    pub pagination: Pagination,
    /// An error the API reports inside a successful answer (HTTP 200 with `{"success": false,
    /// "message": "Unknown filter field 'nope'"}`): such an answer fails the run with the API's
    /// message instead of being read as records. E.g. `{ at = "/success", is = false, message
    /// = "/message" }`, or `{ at = "/errors" }` for a GraphQL-style list. Checks the
    /// children's answers too, when they are JSON. Needs a JSON format. Default: none (an
    /// answer without its records still fails, showing the start of the answer, and one object
    /// read as one record that has only an error report's fields fails).
    pub error: Option<BodyError>,
    /// What happens when the records received differ from the total the API advertised
    /// (records added or removed while paging by offset are lost or read twice without a
    /// sound): `"fail"` or `"warn"`. Default `"fail"`.
    #[serde(default)]
    pub on_total_mismatch: OnMismatch,
    /// The most pages one run requests; the run then stops as if the list had ended (no total
    /// check). Default: no limit.
    pub max_pages: Option<u64>,
    /// The most records one run reads; the run stops after the page that reaches it (no total
    /// check). Default: no limit.
    pub max_records: Option<u64>,
    /// Requests in flight at once, each on its own connection, when the pages are known ahead:
    /// offsets or page numbers with a total, after the first page. Records keep their order.
    /// Leave it at 1 unless the API allows parallel requests. Default 1.
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
    /// Retries of failed requests.
    #[serde(default)]
    pub retry: RetryConfig,
    /// Rate limits to respect beyond what the API's headers say.
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
    /// Pull only what changed since the last run, by a field such as `updated_at`.
    /// Default: everything, every run.
    pub incremental: Option<IncrementalConfig>,
    /// The most records the API returns for one request or window (an export endpoint that
    /// stops at 50,000). With `incremental.window`, a window whose answer has this many (or
    /// fewer than an advertised total) is split in half and each half asked for again, until
    /// no answer reaches it, so nothing is cut off unnoticed; the run report counts the splits.
    /// Without windows, an answer that reaches it is a warning: it was probably cut off.
    /// Default: none.
    pub cap: Option<u64>,
    /// An asynchronous export: a job is created, its status polled until it is ready, and its
    /// file downloaded and decoded like any answer (streamed). Once per time window when the
    /// pull is windowed. `url` is then where the file is, with `{id}` for the job's id, unless
    /// the status answer gives the download link (`job.download`). Default: none.
    pub job: Option<JobConfig>,
    /// Seconds one request may take in all (connecting, sending, the whole answer); a request
    /// that times out is retried. Default 60.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// The largest body read into memory, in bytes: every page of a list, and a single answer
    /// when a value is read from its body (a total, the `error` check); other single answers
    /// stream into the decoder whatever their size. Default 268435456 (256 MiB).
    #[serde(default = "default_max_page_bytes")]
    pub max_page_bytes: u64,
    /// The most bytes one record may take in an answer (an NDJSON line, a CSV row, a JSON array
    /// element or object, an XML record element), a guard against one huge record taking all
    /// memory; a larger record fails the run. JSON pages read whole into memory are bound by
    /// `max_page_bytes` instead. Default 67108864 (64 MiB).
    #[serde(default = "default_max_record_bytes")]
    pub max_record_bytes: u64,
    /// Fan-out: each record of the list (the parent) leads to requests for its children, e.g.
    /// `{ url = "https://api.example.com/orders/{id}/lines", format = { type = "json", records
    /// = "/lines" }, parent_fields = { order_id = "id" }, concurrency = 4 }` (and
    /// `pagination`); the child records are delivered instead, in the parents' order. A child
    /// answered 404 is a reject. See `pipelines/examples/fan-out.toml`. Default: none (the
    /// list's records are delivered).
    pub children: Option<ChildrenConfig>,
}

pub(super) fn default_concurrency() -> u32 {
    1
}

fn default_timeout_secs() -> u64 {
    60
}

fn default_max_page_bytes() -> u64 {
    256 * 1024 * 1024
}

fn default_max_record_bytes() -> u64 {
    crate::codecs::limit::DEFAULT_MAX_RECORD_BYTES
}

/// How a list API is paged, chosen by `type`.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Pagination {
    /// One request, one response (an export, a single object).
    None(SingleAnswer),
    /// A limit and an offset (`?limit=50&offset=100`); start/limit APIs are the same with
    /// `offset_param = "start"`. The offset steps by the records received, or follows `next`
    /// when the response has one.
    Offset(OffsetPaging),
    /// A page number and size (`?page=3&limit=10`).
    Page(PagePaging),
    /// An opaque cursor from each response sent back as a parameter
    /// (`?cursor=<next_cursor>`); the list ends when a response has none.
    Cursor(CursorPaging),
    /// A link to the next page in each response (`"next": "https://…"` or a `Link: <…>;
    /// rel="next"` header); the list ends when a response has none.
    Next(NextPaging),
}

impl Default for Pagination {
    fn default() -> Self {
        Pagination::None(SingleAnswer::default())
    }
}

impl Pagination {
    /// Whether the records come in pages (else in one answer).
    pub fn is_paged(&self) -> bool {
        !matches!(self, Pagination::None(_))
    }
}

/// `error`: where an answer says it failed although its status is a success.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BodyError {
    /// Where the answer says whether it failed, as a JSON pointer, e.g. `"/success"`,
    /// `"/status"`, `"/errors"`. Required.
    pub at: String,
    /// The value there that means failure, e.g. `false` or `"error"`. Default: any value but
    /// null, `false`, `""`, `[]` and `{}` (an `errors` list that is present).
    #[schemars(with = "Option<serde_json::Value>")]
    pub is: Option<serde_json::Value>,
    /// Where the error's message is, as a JSON pointer, e.g. `"/message"`. Default: found in
    /// the usual places (`message`, `error`, `errors`, `detail`).
    pub message: Option<String>,
}

impl BodyError {
    /// Whether `value`, found at `at`, says the answer failed.
    pub(super) fn failed(&self, value: Option<&serde_json::Value>) -> bool {
        use serde_json::Value as J;
        match (&self.is, value) {
            (Some(failure), Some(value)) => value == failure,
            (Some(_), None) | (None, None) => false,
            (None, Some(value)) => {
                !matches!(value, J::Null | J::Bool(false))
                    && value.as_str() != Some("")
                    && value.as_array().is_none_or(|a| !a.is_empty())
                    && value.as_object().is_none_or(|o| !o.is_empty())
            }
        }
    }
}

/// `type = "none"`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SingleAnswer {
    /// Where the answer gives the total number of records, e.g. `"header:X-Total-Records"` or
    /// `"/totalRecords"`: an export that stops short of it (capped at 50,000 of 57,321) fails
    /// the run (`on_total_mismatch`), or, in time windows with `cap`, splits the window.
    /// Default: none.
    pub total: Option<Locator>,
}

/// `type = "offset"`.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OffsetPaging {
    /// Records asked for per page (APIs default to small pages: always set it). Required.
    pub limit: u64,
    /// The limit's parameter. Default `"limit"`.
    #[serde(default = "default_limit_param")]
    pub limit_param: String,
    /// The offset's parameter. Default `"offset"`.
    #[serde(default = "default_offset_param")]
    pub offset_param: String,
    /// The first page's offset. Default 0.
    #[serde(default)]
    pub first_offset: u64,
    /// Where a response gives the next page's URL, if it does: followed when present.
    /// Default: none (the offset is stepped).
    pub next: Option<Locator>,
    /// Where a response gives the total number of records, e.g. `"/count"`,
    /// `"/totalRecords"`, `"header:X-Total-Count"`. Paging stops when it is reached, and the
    /// records received are checked against it. Default: none.
    pub total: Option<Locator>,
    /// Whether a page with fewer records than `limit` is the last. Default `true`.
    #[serde(default = "yes")]
    pub stop_on_short_page: bool,
}

/// `type = "page"`.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PagePaging {
    /// Records asked for per page. Required.
    pub limit: u64,
    /// The page size's parameter. Default `"limit"`.
    #[serde(default = "default_limit_param")]
    pub limit_param: String,
    /// The page number's parameter. Default `"page"`.
    #[serde(default = "default_page_param")]
    pub page_param: String,
    /// The number of the first page: 1 on most servers, 0 on some. Default 1.
    #[serde(default = "default_first_page")]
    pub first_page: u64,
    /// Where a response gives the next page's URL, if it does: followed when present.
    /// Default: none (the page number is stepped).
    pub next: Option<Locator>,
    /// Where a response gives the total number of records (see `offset`). Default: none.
    pub total: Option<Locator>,
    /// Whether a page with fewer records than `limit` is the last. Default `true`.
    #[serde(default = "yes")]
    pub stop_on_short_page: bool,
}

/// `type = "cursor"`.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CursorPaging {
    /// Where a response gives the next cursor, e.g. `"/next_cursor"`,
    /// `"/meta/next"`, `"header:X-Next-Cursor"`. Required.
    pub cursor: Locator,
    /// The parameter the cursor is sent back in. Default `"cursor"`.
    #[serde(default = "default_cursor_param")]
    pub cursor_param: String,
    /// Records asked for per page, if the API takes a size. Default: the API's.
    pub limit: Option<u64>,
    /// The page size's parameter. Default `"limit"`.
    #[serde(default = "default_limit_param")]
    pub limit_param: String,
}

/// `type = "next"`.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NextPaging {
    /// Where a response gives the next page's URL: `"/next"` (a body value), `"link:next"`
    /// (the `Link` header's `rel="next"`), or `"header:X-Next-Page"`. Required.
    pub next: Locator,
    /// Where a response gives the total number of records, if it does. Default: none.
    pub total: Option<Locator>,
}

/// `job`: an export made by a job, for APIs that prepare large files in the background.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobConfig {
    /// Where the job is created (POSTed, with `Idempotency-Key` set so that a retried request
    /// creates one job), e.g. `"https://api.example.com/v1/exports"`. Required.
    pub create_url: String,
    /// The JSON body of the create request, built from the TOML; `{cursor}` and `{until}` are
    /// replaced in its strings, e.g. `{ format = "csv", modified_since = "{cursor}" }`.
    /// Default: `{}`.
    #[schemars(with = "Option<serde_json::Value>")]
    pub body: Option<serde_json::Value>,
    /// Where the new job's id is in the create answer. Default `"/id"`.
    #[serde(default = "default_job_id")]
    pub id: String,
    /// The job's status URL, with `{id}`, e.g. `"https://api.example.com/v1/exports/{id}"`.
    /// Required.
    pub status_url: String,
    /// Where the status is in the status answer. Default `"/status"`.
    #[serde(default = "default_job_status")]
    pub status: String,
    /// Statuses that mean the file is ready. Default `["completed", "complete", "done",
    /// "ready", "succeeded", "success", "finished"]`.
    #[serde(default = "default_ready")]
    pub ready: Vec<String>,
    /// Statuses that mean the job failed (the run fails, showing the status answer). Default
    /// `["failed", "error", "cancelled", "canceled", "expired"]`.
    #[serde(default = "default_failed")]
    pub failed: Vec<String>,
    /// Where the download link is in the status answer once ready, e.g. `"/download_url"`.
    /// Default: none (the file is at `url`, `{id}` replaced).
    pub download: Option<String>,
    /// Seconds before the first status poll (at least 1); each later wait doubles, up to a
    /// minute. Default 2.
    #[serde(default = "default_poll_secs")]
    pub poll_secs: u64,
    /// The longest the job may take, in seconds, before the run fails. Default 3600.
    #[serde(default = "default_max_wait_secs")]
    pub max_wait_secs: u64,
}

fn default_job_id() -> String {
    "/id".into()
}

fn default_job_status() -> String {
    "/status".into()
}

fn default_ready() -> Vec<String> {
    [
        "completed",
        "complete",
        "done",
        "ready",
        "succeeded",
        "success",
        "finished",
    ]
    .map(String::from)
    .to_vec()
}

fn default_failed() -> Vec<String> {
    ["failed", "error", "cancelled", "canceled", "expired"]
        .map(String::from)
        .to_vec()
}

fn default_poll_secs() -> u64 {
    2
}

fn default_max_wait_secs() -> u64 {
    3600
}

fn default_limit_param() -> String {
    "limit".into()
}

fn default_offset_param() -> String {
    "offset".into()
}

fn default_page_param() -> String {
    "page".into()
}

fn default_cursor_param() -> String {
    "cursor".into()
}

fn default_first_page() -> u64 {
    1
}

fn yes() -> bool {
    true
}

/// Where a value is in a response: a JSON pointer into the body (`"/count"`), a header
/// (`"header:X-Total-Count"`), or a `Link` header relation (`"link:next"`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(try_from = "String")]
#[schemars(with = "String")]
pub enum Locator {
    Body(String),
    Header(String),
    Link(String),
}

impl TryFrom<String> for Locator {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        if text.starts_with('/') {
            return Ok(Locator::Body(text));
        }
        if let Some(name) = text.strip_prefix("header:")
            && name.parse::<ureq::http::HeaderName>().is_ok()
        {
            return Ok(Locator::Header(name.to_string()));
        }
        if let Some(relation) = text.strip_prefix("link:")
            && !relation.is_empty()
        {
            return Ok(Locator::Link(relation.to_string()));
        }
        Err(format!(
            "`{text}` is not a place in a response: write a JSON pointer (`/count`), `header:NAME` or `link:next`"
        ))
    }
}

/// What happens when the records received differ from the advertised total.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnMismatch {
    #[default]
    Fail,
    Warn,
}

/// Delta pulls: the largest value of `field` among the records delivered is remembered (only
/// once the sinks have published them), and the next run asks for records from there.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IncrementalConfig {
    /// The record field that grows when a record changes, e.g. `"updated_at"`,
    /// `"modifiedOn"`: RFC 3339 or ISO 8601 timestamps, or numbers. Required.
    pub field: String,
    /// The query parameter the cursor is sent in (`updated_since` sends
    /// `?updated_since=<cursor>`). `{cursor}` in `query` values does the same inside filter
    /// documents. Default: none (then `query` must use `{cursor}`).
    pub param: Option<String>,
    /// The cursor of the first run (and after `longshore state reset`), e.g.
    /// `"2024-08-01T00:00:00"`. Default: none: the first run pulls everything, leaving out
    /// parameters that use the cursor.
    pub initial: Option<String>,
    /// Seconds subtracted from a timestamp cursor before it is sent, to catch records written
    /// late with an earlier timestamp (eventually consistent APIs). Records already delivered
    /// are recognized by `key` and skipped. Default 0.
    #[serde(default)]
    pub lag_secs: u64,
    /// The field that identifies a record, e.g. `"id"`. Records the last run delivered with
    /// the same key and the same cursor value are skipped, so asking for `>=` the cursor (or
    /// looking back `lag_secs`) delivers nothing twice. Default: none (ask for `>` the
    /// cursor then).
    pub key: Option<String>,
    /// Slices the pull into time windows of this length (`"1d"`, `"6h"`, `"15m"`, `"30s"`),
    /// asked for one after the other, oldest first, with `{cursor}` the start of a window and
    /// `{until}` its end (`>= {cursor}` and `< {until}` in the API's terms); the cursor then
    /// moves to the end of each window delivered. For back-fills, and for exports capped at a
    /// number of records (`cap`). Default: one pull from the cursor on.
    pub window: Option<String>,
    /// Where a windowed pull ends, e.g. `"2024-09-01T00:00:00"` for a back-fill; also the
    /// value of `{until}`. Default: now (when the run starts).
    pub end: Option<String>,
}

impl Validate for HttpSourceConfig {
    fn problems(&self) -> Vec<Invalid> {
        let mut problems = Vec::new();
        if let Some(problem) = url_problem(&self.url.replace("{id}", "id")) {
            problems.push(Invalid::new("url", problem));
        }
        if let Some(format) = &self.format {
            problems.extend(format.problems());
            if let Some(message) = format.encoding_problem(self.encoding) {
                problems.push(Invalid::new("encoding", message));
            }
        }
        for (field, field_type) in self.schema.iter().flatten() {
            if let Some(problem) = field_type.problem() {
                problems.push(Invalid::new(format!("schema.{field}"), problem));
            }
        }
        if self.children.is_some() && (self.infer_types || self.schema.is_some()) {
            problems.push(Invalid::new(
                if self.infer_types { "infer_types" } else { "schema" },
                "types the list's records, which `children` does not deliver: type the children's records with a `cast` transform instead",
            ));
        }
        for name in self.headers.keys() {
            if name.parse::<ureq::http::HeaderName>().is_err() {
                problems.push(Invalid::new(
                    "headers",
                    format!("`{name}` is not a valid header name"),
                ));
            }
        }
        let limit = match &self.pagination {
            Pagination::Offset(paging) => Some(paging.limit),
            Pagination::Page(paging) => Some(paging.limit),
            Pagination::Cursor(paging) => paging.limit,
            Pagination::None(_) | Pagination::Next(_) => None,
        };
        if limit == Some(0) {
            problems.push(Invalid::new("pagination.limit", "must be at least 1"));
        }
        problems.extend(crate::net::config::request_problems(
            self.auth.as_ref(),
            &self.retry,
            &self.rate_limit,
        ));
        if !(1..=16).contains(&self.concurrency) {
            problems.push(Invalid::new("concurrency", "must be between 1 and 16"));
        }
        if self.timeout_secs == 0 {
            problems.push(Invalid::new("timeout_secs", "must be at least 1"));
        }
        if let Some(incremental) = &self.incremental {
            let uses_cursor = self
                .query
                .values()
                .chain(self.job.iter().filter_map(|job| job.body.as_ref()))
                .any(|value| value.to_string().contains("{cursor}"));
            if incremental.param.is_none() && !uses_cursor {
                problems.push(Invalid::new(
                    "incremental",
                    "the cursor is sent nowhere: set `param`, or use `{cursor}` in a `query` value or `job.body`",
                ));
            }
            if incremental.field.is_empty() {
                problems.push(Invalid::new("incremental.field", "must not be empty"));
            }
            if let Some(window) = &incremental.window
                && super::window::window_seconds(window).is_none()
            {
                problems.push(Invalid::new(
                    "incremental.window",
                    format!(
                        "`{window}` is not a window length: write e.g. \"1d\", \"6h\", \"15m\""
                    ),
                ));
            }
        }
        if let Some(error) = &self.error {
            if self
                .format
                .as_ref()
                .is_some_and(|f| !super::body::is_json_document(f))
            {
                problems.push(Invalid::new(
                    "error",
                    "`error` looks into JSON answers: the format is not `json` or `json-array`",
                ));
            }
            for (key, pointer) in [
                ("error.at", Some(&error.at)),
                ("error.message", error.message.as_ref()),
            ] {
                if let Some(pointer) = pointer.filter(|p| !p.starts_with('/')) {
                    problems.push(Invalid::new(
                        key,
                        format!("`{pointer}` is not a JSON pointer: start it with `/`"),
                    ));
                }
            }
        }
        if let Some(job) = &self.job {
            for (key, url) in [
                ("job.create_url", &job.create_url),
                ("job.status_url", &job.status_url),
            ] {
                if let Some(problem) = url_problem(&url.replace("{id}", "id")) {
                    problems.push(Invalid::new(key, problem));
                }
            }
            if !job.status_url.contains("{id}") {
                problems.push(Invalid::new(
                    "job.status_url",
                    "must hold `{id}`, the job's id",
                ));
            }
            for (key, pointer) in [("job.id", &job.id), ("job.status", &job.status)]
                .into_iter()
                .chain(job.download.iter().map(|d| ("job.download", d)))
            {
                if !pointer.starts_with('/') {
                    problems.push(Invalid::new(
                        key,
                        format!("`{pointer}` is not a JSON pointer: start it with `/`"),
                    ));
                }
            }
            if self.pagination.is_paged() {
                problems.push(Invalid::new(
                    "job",
                    "an export job's file is one answer: leave `pagination` out",
                ));
            }
            if job.download.is_none() && !self.url.contains("{id}") {
                problems.push(Invalid::new(
                    "job",
                    "where is the job's file? Set `job.download` to where the status answer gives its link, or put `{id}` in `url`",
                ));
            }
            if job.poll_secs == 0 {
                problems.push(Invalid::new("job.poll_secs", "must be at least 1"));
            }
        }
        if self.cap == Some(0) {
            problems.push(Invalid::new("cap", "must be at least 1"));
        }
        if let Some(children) = &self.children {
            problems.extend(children.problems_with(self));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(toml: &str) -> Vec<String> {
        let config: HttpSourceConfig = toml::from_str(toml).expect("the table parses");
        config
            .problems()
            .into_iter()
            .map(|p| p.to_string())
            .collect()
    }

    #[test]
    fn types_are_checked_and_not_taken_with_children() {
        assert_eq!(
            problems(
                r#"url = "https://api.example.com/x"
schema = { id = "integer", at = { type = "integer", format = "%Y" } }
children = { url = "https://api.example.com/x/{id}/lines" }"#
            ),
            [
                "schema.at: `format` is for the timestamp, datetime and date types only",
                "schema: types the list's records, which `children` does not deliver: type the children's records with a `cast` transform instead",
            ]
        );
    }

    #[test]
    fn settings_that_cannot_work_together_are_problems() {
        assert_eq!(
            problems(
                r#"url = "https://api.example.com/x"
cap = 100
concurrency = 0
pagination = { type = "offset", limit = 0 }
incremental = { field = "updated_at", window = "1w" }"#
            ),
            [
                "pagination.limit: must be at least 1",
                "concurrency: must be between 1 and 16",
                "incremental: the cursor is sent nowhere: set `param`, or use `{cursor}` in a `query` value or `job.body`",
                "incremental.window: `1w` is not a window length: write e.g. \"1d\", \"6h\", \"15m\"",
            ]
        );
        assert_eq!(
            problems(
                r#"url = "ftp://api.example.com/x"
job = { create_url = "https://api.example.com/jobs", status_url = "https://api.example.com/jobs/1", id = "id" }"#
            ),
            [
                "url: must start with `http://` or `https://`",
                "job.status_url: must hold `{id}`, the job's id",
                "job.id: `id` is not a JSON pointer: start it with `/`",
                "job: where is the job's file? Set `job.download` to where the status answer gives its link, or put `{id}` in `url`",
            ]
        );
        assert!(problems(r#"url = "https://api.example.com/x""#).is_empty());
    }
}
