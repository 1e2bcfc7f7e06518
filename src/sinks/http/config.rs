//! The `http` sink's table: what a pipeline file may say, and the checks run before anything
//! is sent.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use super::UrlTemplate;
use crate::codecs::FormatConfig;
use crate::codecs::json::JsonOptions;
use crate::config::{Invalid, Secret, Validate};
use crate::net::client::Method;
use crate::net::config::{AuthConfig, RateLimitConfig, RetryConfig, request_problems};

/// Pushes records to an HTTP endpoint: in batches (an API's bulk import, a callback URL),
/// `batch_size` records a request as a JSON array, in an envelope, or as NDJSON, CSV or XML;
/// or one request per record (`mode = "record"`), the method and the URL's `{field}`
/// placeholders taken from the record, with an optional upsert. Every request carries an
/// idempotency key, the same on retries and on the rerun after a failure, and the state
/// store's outbox keeps a rerun from sending again what the receiver acknowledged. See
/// `pipelines/examples/push-batch.toml`, `push-upsert.toml` and `callback-hmac.toml`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpSinkConfig {
    /// Where the records go, e.g. `"https://api.example.com/v1/orders/bulk"`. `http://` or
    /// `https://`; HTTPS certificates are verified. With `mode = "record"` it may hold
    /// `{field}` placeholders after the host (`"https://api.example.com/orders/{id}/"`),
    /// replaced with the record's values, percent-encoded; a record without the field (or
    /// with it null or empty) goes to the rejects naming it. `{{` and `}}` are literal braces.
    /// Required.
    pub url: String,
    /// `"batch"`: `batch_size` records a request, the same `url` for all. `"record"`: one
    /// request per record, `url` templated from it, the body the record as a JSON object (or
    /// its `fields`). Default `"batch"`.
    #[serde(default)]
    pub mode: PushMode,
    /// The request method: `"POST"` or `"PUT"`; with `mode = "record"` also `"PATCH"` and
    /// `"DELETE"` (which sends no body). Default `"POST"`.
    #[serde(default)]
    pub method: PushMethod,
    /// The most records one request carries (`mode = "batch"` only); the last request of
    /// each source unit (a file, a page) may carry fewer. Between 1 and 100000. Default 100.
    pub batch_size: Option<usize>,
    /// The request body's format (`mode = "batch"` only): `{ type = "json" }` (an array of
    /// records, `Content-Type: application/json`), `{ type = "ndjson" }`
    /// (`application/x-ndjson`), `{ type = "csv" }` (`text/csv`), `{ type = "xml", ... }`
    /// (`application/xml`) or `{ type = "json-array" }`. Spreadsheets are refused. Default
    /// `{ type = "json" }`. With `mode = "record"` the body is always one JSON object.
    pub format: Option<FormatConfig>,
    /// The JSON pointer the records' array is put at in a JSON body (`mode = "batch"` only),
    /// e.g. `"/records"` for `{"records": [...]}` or `"/data/items"` for
    /// `{"data": {"items": [...]}}`. Only with the JSON format. Default: none (the body is the
    /// array).
    pub envelope: Option<String>,
    /// With `mode = "record"`: the fields the body holds, in this order, e.g.
    /// `["status", "total"]` for a `PATCH` of changed properties; a field the record lacks is
    /// left out. Not with `DELETE`. Default: the whole record.
    pub fields: Option<Vec<String>>,
    /// With `mode = "record"`: when the request's answer is one of `on` (the record exists
    /// already), send a follow-up request instead, e.g. `upsert = { on = [409], method =
    /// "PATCH", url = "https://api.example.com/orders/{id}/" }`: POST to create, PATCH when
    /// it exists. The follow-up has its own idempotency key and the same body. Default: none.
    pub upsert: Option<UpsertConfig>,
    /// Signs every request's body with HMAC-SHA256, as callback receivers verify, e.g.
    /// `signature = { secret = "${env:CALLBACK_SECRET}" }` sends `X-Signature:
    /// sha256=<hex>`. Default: none.
    pub signature: Option<SignatureConfig>,
    /// The header the idempotency key is sent in. The key is the SHA-256 (64 hex digits) of
    /// the pipeline's name, its last successful run, the source unit (file or page) the
    /// records came from, the request's number within it, its method and URL, and the body:
    /// the same on every retry and on the rerun after a failed or killed run, different for
    /// the next delivery. Default `"Idempotency-Key"`.
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
    /// the same key) is always retried, except where `upsert.on` names it. Default: 5 tries,
    /// 429 and 5xx.
    #[serde(default)]
    pub retry: RetryConfig,
    /// Rate limits to respect beyond what the receiver's headers say, as for the `http`
    /// source.
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
    /// Requests in flight at once (sent by as many threads), within the rate limits, which
    /// all requests share. Answers are settled as they come, so the rejects and the
    /// `responses` file follow the answers' order, not the input's. Between 1 and 64.
    /// Default 1.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// With `concurrency`: requests for the same resource are sent one after another, in the
    /// input's order (an update never overtakes the create before it). The resource is the
    /// request's URL, or with `upsert` the follow-up's (`/orders/{id}/`); in `mode =
    /// "batch"` all requests go to one URL, so it sends one at a time. Default false.
    #[serde(default)]
    pub ordered: bool,
    /// Seconds one request may take in all (connecting, sending, the answer); a request that
    /// times out is retried with the same key. Default 60.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// A file of the receiver's answers, for reconciliation, e.g. `responses = { path =
    /// "responses/{pipeline}-{run_ts}.ndjson", fields = ["/id"] }`: one NDJSON line per
    /// answered request with `status`, `idempotency_key`, `method` and `url` (secrets as
    /// `***`), then each of `fields` read from the answer's JSON body. Written atomically and
    /// published with the run's other outputs; only when there are answers. Default: none.
    pub responses: Option<ResponsesConfig>,
}

/// Where the receiver's answers are kept.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResponsesConfig {
    /// The file, a path template like a file sink's (`{pipeline}`, `{run_date}`, `{run_ts}`),
    /// e.g. `"responses/{pipeline}-{run_ts}.ndjson"`. Required.
    pub path: String,
    /// JSON pointers into each answer's body, e.g. `["/id"]` for the id of what a POST
    /// created; each becomes a field named as the pointer (`"/id": 7`), null when the answer
    /// has no JSON body or nothing there (a 204, a refused request). Default: none.
    #[serde(default)]
    pub fields: Vec<String>,
}

/// How records are grouped into requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PushMode {
    #[default]
    Batch,
    Record,
}

/// The method of a push.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum PushMethod {
    #[default]
    Post,
    Put,
    Patch,
    Delete,
}

impl PushMethod {
    pub(super) fn method(self) -> Method {
        match self {
            PushMethod::Post => Method::Post,
            PushMethod::Put => Method::Put,
            PushMethod::Patch => Method::Patch,
            PushMethod::Delete => Method::Delete,
        }
    }
}

/// The follow-up of a per-record request the receiver answers "exists".
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpsertConfig {
    /// The statuses that mean the record exists, 4xx. Default `[409]`.
    #[serde(default = "default_upsert_on")]
    pub on: Vec<u16>,
    /// The follow-up's method: `"PATCH"`, `"PUT"` or `"POST"`. Default `"PATCH"`.
    #[serde(default = "default_upsert_method")]
    pub method: PushMethod,
    /// The follow-up's URL, with `{field}` placeholders as `url`, e.g.
    /// `"https://api.example.com/orders/{id}/"`. Required.
    pub url: String,
}

fn default_upsert_on() -> Vec<u16> {
    vec![409]
}

fn default_upsert_method() -> PushMethod {
    PushMethod::Patch
}

/// An HMAC-SHA256 signature of each request's body.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignatureConfig {
    /// The header it is sent in. Default `"X-Signature"`.
    #[serde(default = "default_signature_header")]
    pub header: String,
    /// The shared secret, best by reference: `"${env:CALLBACK_SECRET}"`. Never shown in a
    /// message or log. Required.
    pub secret: Secret,
    /// Put before the signature's lowercase hex digits. Default `"sha256="`.
    #[serde(default = "default_signature_prefix")]
    pub prefix: String,
}

fn default_signature_header() -> String {
    "X-Signature".into()
}

fn default_signature_prefix() -> String {
    "sha256=".into()
}

pub(super) fn default_batch_size() -> usize {
    100
}

fn default_idempotency_header() -> String {
    "Idempotency-Key".into()
}

fn default_concurrency() -> usize {
    1
}

fn default_timeout_secs() -> u64 {
    60
}

impl HttpSinkConfig {
    /// The body's format, the envelope applied.
    pub(super) fn body_format(&self) -> FormatConfig {
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
pub(super) fn content_type(format: &FormatConfig) -> Option<&'static str> {
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
        let record_mode = self.mode == PushMode::Record;
        match UrlTemplate::parse(&self.url) {
            Err(problem) => problems.push(Invalid::new("url", problem)),
            Ok(template) if !record_mode && !template.fields().is_empty() => {
                problems.push(Invalid::new(
                    "url",
                    "`{field}` placeholders need `mode = \"record\"` (`{{` and `}}` are literal braces)",
                ))
            }
            Ok(_) => {}
        }
        if !record_mode && !matches!(self.method, PushMethod::Post | PushMethod::Put) {
            problems.push(Invalid::new(
                "method",
                "a batch is sent with POST or PUT; PATCH and DELETE need `mode = \"record\"`",
            ));
        }
        if let Some(batch_size) = self.batch_size
            && !(1..=100_000).contains(&batch_size)
        {
            problems.push(Invalid::new("batch_size", "must be between 1 and 100000"));
        }
        if record_mode {
            for (key, set) in [
                ("batch_size", self.batch_size.is_some()),
                ("format", self.format.is_some()),
                ("envelope", self.envelope.is_some()),
            ] {
                if set {
                    problems.push(Invalid::new(
                        key,
                        "is for `mode = \"batch\"`: with `mode = \"record\"` the body is one JSON object",
                    ));
                }
            }
        } else {
            for (key, set) in [
                ("fields", self.fields.is_some()),
                ("upsert", self.upsert.is_some()),
            ] {
                if set {
                    problems.push(Invalid::new(key, "needs `mode = \"record\"`"));
                }
            }
        }
        if self.method == PushMethod::Delete && self.fields.is_some() {
            problems.push(Invalid::new("fields", "a DELETE sends no body"));
        }
        if let Some(upsert) = &self.upsert {
            if self.method == PushMethod::Delete || upsert.method == PushMethod::Delete {
                problems.push(Invalid::new(
                    "upsert",
                    "an upsert creates or changes a record: not with DELETE",
                ));
            }
            if let Err(problem) = UrlTemplate::parse(&upsert.url) {
                problems.push(Invalid::new("upsert.url", problem));
            }
            if upsert.method == self.method && upsert.url == self.url {
                problems.push(Invalid::new(
                    "upsert",
                    "the follow-up is the same request as the first: change its method or URL",
                ));
            }
            if upsert.on.is_empty() {
                problems.push(Invalid::new("upsert.on", "name at least one status"));
            }
            for status in &upsert.on {
                if !(400..500).contains(status) || matches!(status, 401 | 403 | 429) {
                    problems.push(Invalid::new(
                        "upsert.on",
                        format!(
                            "{status}: an \"exists\" answer is a 4xx other than 401, 403 and 429"
                        ),
                    ));
                }
            }
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
            .chain(self.signature.as_ref().map(|s| &s.header))
        {
            if name.parse::<ureq::http::HeaderName>().is_err() {
                problems.push(Invalid::new(
                    "headers",
                    format!("`{name}` is not a valid header name"),
                ));
            }
        }
        if let Some(signature) = &self.signature
            && signature.prefix.parse::<ureq::http::HeaderValue>().is_err()
        {
            problems.push(Invalid::new(
                "signature.prefix",
                "must be printable ASCII, as header values are",
            ));
        }
        problems.extend(request_problems(
            self.auth.as_ref(),
            &self.retry,
            &self.rate_limit,
        ));
        if !(1..=64).contains(&self.concurrency) {
            problems.push(Invalid::new("concurrency", "must be between 1 and 64"));
        }
        if self.ordered && !record_mode && self.concurrency > 1 {
            problems.push(Invalid::new(
                "ordered",
                "batches all go to one URL: in order they go one at a time; leave out `ordered` or `concurrency`",
            ));
        }
        if self.timeout_secs == 0 {
            problems.push(Invalid::new("timeout_secs", "must be at least 1"));
        }
        if let Some(responses) = &self.responses {
            if let Err(message) = crate::template::PathTemplate::parse(&responses.path) {
                problems.push(Invalid::new("responses.path", message));
            }
            for pointer in responses.fields.iter().filter(|p| !p.starts_with('/')) {
                problems.push(Invalid::new(
                    "responses.fields",
                    format!("`{pointer}` is not a JSON pointer: start it with `/`"),
                ));
            }
        }
        problems
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
            .map(|p| p.to_string())
            .collect()
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
        assert!(toml::from_str::<HttpSinkConfig>("url = \"http://x\"\nmethod = \"GET\"").is_err());
    }

    #[test]
    fn per_record_settings_are_checked() {
        assert_eq!(
            problems(
                "url = \"https://api.example.com/orders/{id}/\"\nmode = \"record\"\nmethod = \"PATCH\"\nfields = [\"status\"]\nsignature = { secret = \"${env:S}\" }"
            ),
            Vec::<String>::new()
        );
        assert_eq!(
            problems(
                "url = \"https://api.example.com/orders/\"\nmode = \"record\"\nupsert = { url = \"https://api.example.com/orders/{id}/\" }"
            ),
            Vec::<String>::new()
        );
        assert_eq!(
            problems(
                "url = \"https://api.example.com/orders/{id}\"\nmethod = \"DELETE\"\nfields = [\"a\"]\nupsert = { url = \"https://{host}/x\", on = [500] }"
            ),
            [
                "url: `{field}` placeholders need `mode = \"record\"` (`{{` and `}}` are literal braces)",
                "method: a batch is sent with POST or PUT; PATCH and DELETE need `mode = \"record\"`",
                "fields: needs `mode = \"record\"`",
                "upsert: needs `mode = \"record\"`",
                "fields: a DELETE sends no body",
                "upsert: an upsert creates or changes a record: not with DELETE",
                "upsert.url: `https://{host}/x`: placeholders go after the host (`https://api.example.com/orders/{id}`)",
                "upsert.on: 500: an \"exists\" answer is a 4xx other than 401, 403 and 429",
            ]
        );
        assert_eq!(
            problems(
                "url = \"https://api.example.com/o/{id\"\nmode = \"record\"\nbatch_size = 5\nenvelope = \"/r\"\nsignature = { secret = \"s\", header = \"X Sig\" }"
            ),
            [
                "url: `https://api.example.com/o/{id`: a placeholder is `{field}` (a literal brace is `{{` or `}}`)",
                "batch_size: is for `mode = \"batch\"`: with `mode = \"record\"` the body is one JSON object",
                "envelope: is for `mode = \"batch\"`: with `mode = \"record\"` the body is one JSON object",
                "headers: `X Sig` is not a valid header name",
            ]
        );
    }
}
