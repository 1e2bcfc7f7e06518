//! Sending requests: one agent (keep-alive connections), authentication, and one governor for
//! everything that makes a request wait: the configured budget, the API's rate-limit headers,
//! `Retry-After`, and backoff between retries; every wait is logged with its real length and
//! its reason. A wait longer than the run has left is not waited: the source stops cleanly
//! instead, and the next run goes on from there.
//!
//! Redirects are followed here, not by ureq: within the same origin (a DRF list URL missing
//! its trailing slash answers 301) with the credentials, elsewhere (an export file on a
//! storage host) without any configured header or credential, as curl and browsers do. A
//! request with a body follows 303 as a GET (it was taken; the answer is elsewhere) and 307
//! and 308 with its body; a 301 or 302 to it fails: it was not taken, and resent as a GET
//! (what browsers do) it would be answered 200 with nothing delivered.

use std::io::Read;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use ureq::http::{HeaderMap, Response, StatusCode};
use url::Url;

use super::HttpError;
use super::auth::Auth;
use super::config::{RateLimitConfig, ResetReading, RetryConfig};
use super::resolver::CachingResolver;
use crate::backoff::{Backoff, jittered};
use crate::config::SecretValue;
use crate::redact::Redactor;
use crate::state::report::RequestCounts;

/// How one request ended.
pub enum Sent {
    Answered(Answer),
    /// A wait the request needed would pass the run's time limit: why.
    OutOfTime(String),
}

/// A successful answer.
pub struct Answer {
    /// Where it came from: the request's URL, or where redirects led.
    pub url: Url,
    /// The final answer's status (a 2xx, or one of the request's `final_statuses`).
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Body,
}

pub enum Body {
    /// Read whole (a connection that broke off while reading it was retried).
    Whole(Vec<u8>),
    /// Streaming, as it arrives.
    Stream(Box<dyn Read + Send>),
}

/// One logical request, retried as a whole.
pub struct Request {
    pub url: Url,
    /// A body to send (POST or PUT); `None` for a GET.
    pub post: Option<Post>,
    pub reading: Reading,
    /// Whether the headers and credentials go along: for the pipeline file's own URLs and
    /// the links to their origin, never for a link to elsewhere an answer gave (and never
    /// after a redirect to elsewhere).
    pub credentials: bool,
}

pub struct Post {
    /// `POST`, `PUT`, `PATCH` or `DELETE`.
    pub method: Method,
    /// Sent as it is; a `DELETE` sends none (and no `Content-Type`).
    pub body: Vec<u8>,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// The header the idempotency key is sent in (`Idempotency-Key`).
    pub idempotency_header: String,
    /// Sent in `idempotency_header`, the same on every try: a retried POST whose first try did
    /// reach the API (the answer was lost) does not create a second job or a second record.
    pub idempotency_key: String,
    /// More headers of this request alone (a signature over its body), after the configured
    /// ones.
    pub headers: Vec<(String, String)>,
    /// Statuses that are this request's answer even though `retry.statuses` names them: an
    /// upsert's create answered 409 (the record exists) is not retried but followed up.
    pub final_statuses: Vec<u16>,
}

impl Post {
    /// A JSON body to POST with `Idempotency-Key: key`.
    pub fn json(body: Vec<u8>, key: String) -> Self {
        Post {
            method: Method::Post,
            body,
            content_type: "application/json",
            idempotency_header: "idempotency-key".into(),
            idempotency_key: key,
            headers: Vec::new(),
            final_statuses: Vec::new(),
        }
    }
}

/// The method of a request that changes something (a body, or a `DELETE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

impl Request {
    /// A GET of a URL the pipeline file names (or builds, like a job's status URL).
    pub fn get(url: Url, reading: Reading) -> Self {
        Request {
            url,
            post: None,
            reading,
            credentials: true,
        }
    }

    /// A GET of a page of the list whose first page is `list`: with the credentials when it
    /// is on the list's origin (an answer's next link may point elsewhere).
    pub fn page_of(list: &Url, url: Url, reading: Reading) -> Self {
        let credentials = url.origin() == list.origin();
        Request {
            credentials,
            ..Request::get(url, reading)
        }
    }
}

/// How to take the body of a successful answer.
#[derive(Clone, Copy)]
pub enum Reading {
    /// Whole, at most this many bytes.
    Whole(u64),
    Stream,
}

/// How a [`Client`] sends: what the pipeline file configures for its requests.
pub struct ClientSettings {
    /// Seconds one request may take in all.
    pub timeout_secs: u64,
    /// Idle connections kept: one per thread that sends, and one for an OAuth token endpoint.
    pub connections: usize,
    pub retry: RetryConfig,
    pub rate_limit: RateLimitConfig,
}

/// Shared by the fetch threads: what changes as requests go (the governor, a fetched token,
/// the counts) is behind locks, taken briefly and never across a request.
pub struct Client {
    agent: ureq::Agent,
    headers: Vec<(String, SecretValue)>,
    auth: Mutex<Auth>,
    retry: RetryConfig,
    governor: Mutex<Governor>,
    redactor: Arc<Mutex<Redactor>>,
    counts: Mutex<RequestCounts>,
    deadline: Option<Instant>,
}

/// `mutex` locked; a thread that panicked holding it left nothing half-done that matters here.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Client {
    /// A client for requests as `settings` say, with its secrets resolved.
    pub fn new(
        settings: ClientSettings,
        tls: ureq::tls::TlsConfig,
        headers: Vec<(String, SecretValue)>,
        auth: Auth,
        redactor: Arc<Mutex<Redactor>>,
        deadline: Option<Instant>,
    ) -> Self {
        let connections = settings.connections;
        let agent_config = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(settings.timeout_secs)))
            .tls_config(tls)
            .max_idle_connections_per_host(connections)
            .max_idle_connections(connections * 2)
            .http_status_as_error(false)
            .max_redirects(0)
            // gzip is decoded by ureq, deflate by the source.
            .accept_encoding("gzip, deflate")
            .user_agent(concat!("longshore/", env!("CARGO_PKG_VERSION")))
            .build();
        let agent = ureq::Agent::with_parts(
            agent_config,
            ureq::unversioned::transport::DefaultConnector::default(),
            CachingResolver::default(),
        );
        Client {
            agent,
            headers,
            auth: Mutex::new(auth),
            retry: settings.retry,
            governor: Mutex::new(Governor::new(&settings.rate_limit)),
            redactor,
            counts: Mutex::new(RequestCounts::default()),
            deadline,
        }
    }

    /// Counts time a fetch thread had no request to send (see
    /// [`RequestCounts::waiting_for_decoder_us`]).
    pub fn add_wait_for_decoder(&self, waited: Duration) {
        lock(&self.counts).waiting_for_decoder_us += waited.as_micros() as u64;
    }

    /// What the requests cost so far.
    pub fn counts(&self) -> RequestCounts {
        lock(&self.counts).clone()
    }

    /// Sends `request`, retrying what may pass, and waiting what the API and the budget ask.
    pub fn send(&self, request: &Request) -> Result<Sent, HttpError> {
        let (url, reading) = (&request.url, request.reading);
        let mut attempt = 1;
        let mut backoff = Backoff::new(
            Duration::from_millis(self.retry.base_delay_ms),
            self.retry.factor,
            Duration::from_secs(self.retry.max_delay_secs),
        );
        let mut refreshed_token = false;
        // Where redirects led, and whether the POST became a GET (303, or 301/302).
        let mut target = url.clone();
        let mut post = request.post.as_ref();
        let mut redirects = 0;
        loop {
            let (wait, reason) = lock(&self.governor).reserve(Instant::now());
            if !wait.is_zero() {
                self.log_wait(url, wait, &reason);
                if let Some(reason) = self.wait_or_stop(wait, &reason) {
                    return Ok(Sent::OutOfTime(reason));
                }
            }
            // Credentials go only where the pipeline file sends requests (its URLs' origins),
            // never where an answer points (a redirect, or a next link elsewhere).
            let trusted = request.credentials && target.origin() == url.origin();
            let mut request_url = target.clone();
            let mut headers: Vec<(&str, &str)> = Vec::new();
            let auth = match trusted {
                true => lock(&self.auth).apply(
                    &self.agent,
                    &mut request_url,
                    &mut lock(&self.redactor),
                )?,
                false => None,
            };
            if trusted {
                headers.extend(
                    self.headers
                        .iter()
                        .map(|(name, value)| (name.as_str(), value.expose())),
                );
            }
            if let Some((name, value)) = &auth {
                headers.push((name.as_str(), value.expose()));
            }
            let sent_at = Instant::now();
            lock(&self.counts).requests += 1;
            let answered = match post {
                None => with_headers(self.agent.get(request_url.as_str()), &headers).call(),
                Some(post) => {
                    headers.push((
                        post.idempotency_header.as_str(),
                        post.idempotency_key.as_str(),
                    ));
                    headers.extend(post.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
                    let url = request_url.as_str();
                    let with_body = |builder| {
                        with_headers(builder, &headers)
                            .header("content-type", post.content_type)
                            .send(&post.body[..])
                    };
                    match post.method {
                        Method::Post => with_body(self.agent.post(url)),
                        Method::Put => with_body(self.agent.put(url)),
                        Method::Patch => with_body(self.agent.patch(url)),
                        Method::Delete => with_headers(self.agent.delete(url), &headers).call(),
                    }
                }
            };
            let final_statuses = post.map_or(&[][..], |post| &post.final_statuses[..]);
            let judged = answered.map(|response| {
                self.judge(
                    response,
                    reading,
                    &target,
                    &mut refreshed_token,
                    final_statuses,
                )
            });
            lock(&self.counts).round_trip_us += sent_at.elapsed().as_micros() as u64;
            let failure = match judged {
                Ok(judged) => match judged? {
                    Judged::Answer(answer) => return Ok(Sent::Answered(answer)),
                    Judged::TokenRefreshed => continue,
                    Judged::Redirect { status, location } => {
                        redirects += 1;
                        let next = target
                            .join(&location)
                            .ok()
                            .filter(|_| redirects <= MAX_REDIRECTS);
                        let Some(next) = next else {
                            let redactor = lock(&self.redactor);
                            return Err(HttpError::Request {
                                method: post.map_or("GET", |post| post.method.as_str()),
                                url: redactor.url(url),
                                status: Some(status),
                                message: redactor.text(&format!(
                                    "HTTP {status} redirects to `{location}`, which cannot be followed (not a URL, or more than {MAX_REDIRECTS} redirects)"
                                )),
                            });
                        };
                        if let Some(post) = post
                            && matches!(status, 301 | 302)
                        {
                            // Browsers resend a moved POST as a GET, which a receiver answers
                            // 200 without having taken anything: nothing was delivered.
                            let redactor = lock(&self.redactor);
                            return Err(HttpError::Request {
                                method: post.method.as_str(),
                                url: redactor.url(url),
                                status: Some(status),
                                message: format!(
                                    "HTTP {status}: moved to {}; a {} is not sent again as a GET (that delivers nothing): set the URL to where it moved",
                                    redactor.url(&next),
                                    post.method.as_str()
                                ),
                            });
                        }
                        // 303: done, the answer is elsewhere (a GET); 307 and 308: the same
                        // request again, there.
                        if status == 303 {
                            post = None;
                        }
                        {
                            let redactor = lock(&self.redactor);
                            tracing::debug!(
                                url = %redactor.url(&target),
                                "HTTP {status}: redirected to {}",
                                redactor.url(&next)
                            );
                        }
                        target = next;
                        continue;
                    }
                    Judged::Failed(failure) => failure,
                },
                Err(error) => Failure {
                    retry: crate::net::is_transient(&error),
                    message: error.to_string(),
                    status: None,
                    retry_after: None,
                },
            };
            if !failure.retry || attempt >= self.retry.attempts {
                let tries = if attempt > 1 {
                    format!(" (after {attempt} attempts)")
                } else {
                    String::new()
                };
                let redactor = lock(&self.redactor);
                let redirected = if target == *url {
                    String::new()
                } else {
                    let credentials = if request.credentials && target.origin() == url.origin() {
                        "with"
                    } else {
                        "without"
                    };
                    format!(
                        " (after a redirect to {}, followed {credentials} the credentials)",
                        redactor.url(&target)
                    )
                };
                return Err(HttpError::Request {
                    method: post.map_or("GET", |post| post.method.as_str()),
                    url: redactor.url(url),
                    status: failure.status,
                    message: redactor.text(&format!("{}{tries}{redirected}", failure.message)),
                });
            }
            // The wait before the next try is the longest of what the answer asked
            // (`Retry-After`), the backoff, and the rate limit the answer's headers set: it
            // is waited here, once, and logged as it is.
            // The backoff grows with every retry, whatever decides this wait.
            let backoff_wait = backoff.next_wait();
            let (wait, reason) = match failure.retry_after {
                Some(asked) => (asked, "the answer's Retry-After".to_string()),
                None => (
                    jittered(backoff_wait).min(Duration::from_secs(self.retry.max_delay_secs)),
                    "backoff".to_string(),
                ),
            };
            let (limited, limit_reason) = lock(&self.governor).wait(Instant::now());
            let (wait, reason) = if limited > wait {
                (limited, limit_reason)
            } else {
                (wait, reason)
            };
            {
                let redactor = lock(&self.redactor);
                tracing::info!(
                    url = %redactor.url(&target),
                    "request failed ({}), attempt {attempt} of {}; retrying in {:.1} s ({reason})",
                    redactor.text(&failure.message),
                    self.retry.attempts,
                    wait.as_secs_f64()
                );
            }
            lock(&self.counts).retries += 1;
            if let Some(reason) = self.wait_or_stop(wait, &reason) {
                return Ok(Sent::OutOfTime(reason));
            }
            attempt += 1;
        }
    }

    /// What an answer means: its body, a fresh token to try, or a failure.
    fn judge(
        &self,
        response: Response<ureq::Body>,
        reading: Reading,
        url: &Url,
        refreshed_token: &mut bool,
        final_statuses: &[u16],
    ) -> Result<Judged, HttpError> {
        lock(&self.governor).observe(response.headers(), Instant::now());
        let status = response.status();
        if status.is_redirection()
            && let Some(location) = response
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
        {
            return Ok(Judged::Redirect {
                status: status.as_u16(),
                location: location.to_string(),
            });
        }
        if status.is_success() {
            return match take_body(response, reading, url) {
                Ok(answer) => Ok(Judged::Answer(answer)),
                Err(BodyFailure::TooLarge(limit)) => Err(HttpError::Paging {
                    url: lock(&self.redactor).url(url),
                    message: format!("the answer is larger than `max_page_bytes` = {limit}"),
                }),
                Err(BodyFailure::Broken(e)) => Ok(Judged::Failed(Failure {
                    message: format!("the answer broke off: {e}"),
                    status: None,
                    retry: true,
                    retry_after: None,
                })),
            };
        }
        if status == StatusCode::UNAUTHORIZED && !*refreshed_token {
            let mut auth = lock(&self.auth);
            if auth.can_refresh() {
                // The token expired early or was revoked: one fresh token per request.
                *refreshed_token = true;
                auth.forget_token();
                return Ok(Judged::TokenRefreshed);
            }
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            lock(&self.counts).rate_limited += 1;
        }
        let retry_after = retry_after(response.headers(), SystemTime::now());
        let retry = self.retry.statuses.contains(&status.as_u16())
            && !final_statuses.contains(&status.as_u16());
        let detail = error_detail(response);
        Ok(Judged::Failed(Failure {
            message: format!("HTTP {}{detail}", status.as_u16()),
            status: Some(status.as_u16()),
            retry,
            retry_after,
        }))
    }

    /// Logs a wait before a request: at info when the API asked for it or it is long, so that
    /// a run that seems to hang says why.
    fn log_wait(&self, url: &Url, wait: Duration, reason: &str) {
        let shown = lock(&self.redactor).url(url);
        if wait >= Duration::from_secs(1) || reason == BLOCKED_BY_THE_API {
            tracing::info!(url = %shown, "waiting {:.1} s for {reason}", wait.as_secs_f64());
        } else {
            tracing::debug!(url = %shown, "waiting {:.1} s for {reason}", wait.as_secs_f64());
        }
    }

    /// Sleeps `wait`, unless that would pass the deadline: then the reason to stop.
    fn wait_or_stop(&self, wait: Duration, what: &str) -> Option<String> {
        if let Some(deadline) = self.deadline
            && Instant::now() + wait > deadline
        {
            return Some(format!(
                "{what} asked to wait {:.0} s, more than the run has left",
                wait.as_secs_f64().ceil()
            ));
        }
        {
            let mut counts = lock(&self.counts);
            counts.waits += 1;
            counts.waited_ms += wait.as_millis() as u64;
        }
        std::thread::sleep(wait);
        None
    }
}

fn with_headers<B>(
    mut request: ureq::RequestBuilder<B>,
    headers: &[(&str, &str)],
) -> ureq::RequestBuilder<B> {
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request
}

/// Why a successful answer's body could not be taken.
enum BodyFailure {
    TooLarge(u64),
    Broken(std::io::Error),
}

/// The body of a successful answer as `reading` asks, a deflated one inflated (ureq inflates
/// gzip itself).
fn take_body(
    response: Response<ureq::Body>,
    reading: Reading,
    url: &Url,
) -> Result<Answer, BodyFailure> {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let deflated = headers
        .get("content-encoding")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"deflate"));
    let raw: Box<dyn Read + Send> = Box::new(response.into_body().into_reader());
    let stream: Box<dyn Read + Send> = if deflated {
        Box::new(flate2::read::ZlibDecoder::new(raw))
    } else {
        raw
    };
    let body = match reading {
        Reading::Stream => Body::Stream(stream),
        Reading::Whole(limit) => {
            let announced = headers
                .get("content-length")
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                .unwrap_or(0);
            let mut bytes = Vec::with_capacity(announced.min(limit) as usize + 1);
            stream
                .take(limit + 1)
                .read_to_end(&mut bytes)
                .map_err(BodyFailure::Broken)?;
            if bytes.len() as u64 > limit {
                return Err(BodyFailure::TooLarge(limit));
            }
            Body::Whole(bytes)
        }
    };
    Ok(Answer {
        url: url.clone(),
        status,
        headers,
        body,
    })
}

enum Judged {
    Answer(Answer),
    TokenRefreshed,
    /// A 3xx with a `Location`.
    Redirect {
        status: u16,
        location: String,
    },
    Failed(Failure),
}

/// A request that did not succeed.
struct Failure {
    message: String,
    status: Option<u16>,
    retry: bool,
    retry_after: Option<Duration>,
}

/// Redirects one request follows at most.
const MAX_REDIRECTS: u32 = 10;

/// The longest `Retry-After` honoured: a server asking for more is answered by the run's time
/// limit, not by a day-long sleep.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// `Retry-After` as a wait: seconds, or an HTTP date.
fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get("retry-after")?.to_str().ok()?.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => httpdate::parse_http_date(value)
            .ok()?
            .duration_since(now)
            .unwrap_or_default(),
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// What an error answer says about itself, as `: message` (empty when it says nothing),
/// whatever shape it has: `{"errors": [...]}`, `{"error": {"code", "message", "details"}}`,
/// `{"error": "...", "error_description": "..."}`, `{"detail": "..."}`, `{"message": "..."}`, or
/// plain text.
fn error_detail(mut response: Response<ureq::Body>) -> String {
    let mut body = Vec::new();
    // Best effort: the status alone is still a message.
    let _ = response
        .body_mut()
        .as_reader()
        .take(64 * 1024)
        .read_to_end(&mut body);
    let text = String::from_utf8_lossy(&body);
    let detail = match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(json) => json_error_detail(&json).unwrap_or_else(|| one_line(&text)),
        Err(_) => one_line(&text),
    };
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

pub fn json_error_detail(json: &serde_json::Value) -> Option<String> {
    use serde_json::Value as J;
    let text = |value: &J| match value {
        J::String(text) => Some(text.clone()),
        J::Null => None,
        J::Object(object) => ["message", "detail", "description", "msg"]
            .iter()
            .find_map(|key| object.get(*key)?.as_str().map(str::to_string))
            .or_else(|| Some(value.to_string())),
        other => Some(other.to_string()),
    };
    match (json.get("error"), json.get("errors")) {
        (Some(J::Object(error)), _) => {
            let mut parts = Vec::new();
            if let Some(code) = error.get("code").and_then(text) {
                parts.push(code);
            }
            if let Some(message) = error.get("message").and_then(text) {
                parts.push(message);
            }
            if let Some(details) = error.get("details").and_then(text) {
                parts.push(details);
            }
            (!parts.is_empty()).then(|| parts.join(": "))
        }
        (Some(J::String(error)), _) => Some(match json.get("error_description").and_then(text) {
            Some(description) => format!("{error}: {description}"),
            None => error.clone(),
        }),
        (_, Some(J::Array(errors))) => {
            let all: Vec<String> = errors.iter().filter_map(text).collect();
            (!all.is_empty()).then(|| all.join("; "))
        }
        (_, Some(errors)) => text(errors),
        _ => ["detail", "message", "title", "error_description"]
            .iter()
            .find_map(|key| json.get(*key).and_then(text)),
    }
}

/// Text on one line, at most 300 characters.
pub fn one_line(text: &str) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match joined.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &joined[..cut]),
        None => joined,
    }
}

/// Why a request waits when the API said none is left until its reset.
const BLOCKED_BY_THE_API: &str = "the API's rate limit (no requests left until its reset)";

/// When requests may go: a budget spread evenly, and the API's own word (remaining requests
/// and their reset).
struct Governor {
    /// The time between two requests the configured budget allows.
    spacing: Option<Duration>,
    /// The same, by the API's own `RateLimit-Policy`.
    policy_spacing: Option<Duration>,
    next_slot: Option<Instant>,
    /// The API said no request is left until then.
    blocked_until: Option<Instant>,
    reset: ResetReading,
}

impl Governor {
    fn new(config: &RateLimitConfig) -> Self {
        let per_hour = config
            .requests_per_hour
            .map(|n| Duration::from_secs(3600) / n.max(1));
        let per_minute = config
            .requests_per_minute
            .map(|n| Duration::from_secs(60) / n.max(1));
        Governor {
            spacing: per_hour.max(per_minute),
            policy_spacing: None,
            next_slot: None,
            blocked_until: None,
            reset: config.reset,
        }
    }

    /// How long the next request must wait, and why.
    fn wait(&self, now: Instant) -> (Duration, String) {
        let slot = self
            .next_slot
            .map(|at| at.saturating_duration_since(now))
            .unwrap_or_default();
        let blocked = self
            .blocked_until
            .map(|at| at.saturating_duration_since(now))
            .unwrap_or_default();
        if blocked > slot {
            (blocked, BLOCKED_BY_THE_API.into())
        } else if self.policy_spacing > self.spacing {
            (slot, "the API's RateLimit-Policy".into())
        } else {
            (slot, "`rate_limit`".into())
        }
    }

    /// The wait before a request that goes now, and why, booking its slot: the next request
    /// (from any thread) goes one spacing after it.
    fn reserve(&mut self, now: Instant) -> (Duration, String) {
        let (wait, reason) = self.wait(now);
        if let Some(spacing) = self.spacing.max(self.policy_spacing) {
            self.next_slot = Some(now + wait + spacing);
        }
        (wait, reason)
    }

    /// Reads the rate-limit headers of an answer: when none are left, requests wait for the
    /// reset instead of being answered 429. A block holds until its time: with requests in
    /// flight on several threads, an answer that says requests are left may be older than
    /// the one that said none are.
    fn observe(&mut self, headers: &HeaderMap, now: Instant) {
        if let Some(reset) = rate_limit_exhausted(headers, self.reset, SystemTime::now()) {
            self.block(now + reset.min(MAX_RETRY_AFTER));
        }
        if let Some(policy) = headers
            .get("ratelimit-policy")
            .and_then(|v| v.to_str().ok())
        {
            self.policy_spacing = policy_spacing(policy);
        }
    }

    /// No request goes before `until` (or a later time already set), from any thread.
    fn block(&mut self, until: Instant) {
        self.blocked_until = self.blocked_until.max(Some(until));
    }
}

/// The spacing that keeps within an IETF `RateLimit-Policy` (`100;w=60`, or
/// `"default";q=100;w=60`; several policies comma-separated): the window over the quota of the
/// strictest.
fn policy_spacing(policy: &str) -> Option<Duration> {
    policy
        .split(',')
        .filter_map(|item| {
            let mut quota = None;
            let mut window = None;
            for (index, part) in item.split(';').map(str::trim).enumerate() {
                match part.split_once('=') {
                    Some(("q", value)) => quota = value.parse::<f64>().ok(),
                    Some(("w", value)) => window = value.parse::<f64>().ok(),
                    None if index == 0 => quota = part.parse::<f64>().ok(),
                    _ => {}
                }
            }
            let (quota, window) = (quota?, window?);
            (quota > 0.0 && window > 0.0).then(|| Duration::from_secs_f64(window / quota))
        })
        .max()
}

/// When the headers say no request is left: the wait until the limit resets.
fn rate_limit_exhausted(
    headers: &HeaderMap,
    reading: ResetReading,
    now: SystemTime,
) -> Option<Duration> {
    let header = |name: &str| headers.get(name)?.to_str().ok().map(str::trim);
    // X-RateLimit-* (GitHub, Twitter and most vendors), then the IETF drafts: separate
    // RateLimit-Remaining / RateLimit-Reset headers, or one `RateLimit` header.
    if let Some(remaining) = header("x-ratelimit-remaining") {
        if remaining.parse::<f64>().ok()? > 0.0 {
            return None;
        }
        let reset = header("x-ratelimit-reset")?.parse::<f64>().ok()?;
        return Some(reset_wait(reset, reading, now));
    }
    if let Some(remaining) = header("ratelimit-remaining") {
        if remaining.parse::<f64>().ok()? > 0.0 {
            return None;
        }
        let reset = header("ratelimit-reset")?.parse::<f64>().ok()?;
        return Some(Duration::from_secs_f64(reset.max(0.0)));
    }
    let combined = header("ratelimit")?;
    let value = |keys: &[&str]| {
        combined
            .split([',', ';'])
            .filter_map(|part| part.trim().split_once('='))
            .find(|(key, _)| keys.contains(&key.trim()))
            .and_then(|(_, value)| value.trim().parse::<f64>().ok())
    };
    if value(&["remaining", "r"])? > 0.0 {
        return None;
    }
    Some(Duration::from_secs_f64(value(&["reset", "t"])?.max(0.0)))
}

/// Epoch seconds (or milliseconds) above this are a point in time, not a number of seconds.
const EPOCH_THRESHOLD: f64 = 1_000_000_000.0;

/// The wait until an `X-RateLimit-Reset` value, read as `reading` says.
fn reset_wait(reset: f64, reading: ResetReading, now: SystemTime) -> Duration {
    let is_epoch = match reading {
        ResetReading::Epoch => true,
        ResetReading::Seconds => false,
        ResetReading::Auto => reset > EPOCH_THRESHOLD,
    };
    if !is_epoch {
        return Duration::from_secs_f64(reset.max(0.0));
    }
    // Some APIs give the epoch in milliseconds.
    let epoch_secs = if reset > EPOCH_THRESHOLD * 1000.0 {
        reset / 1000.0
    } else {
        reset
    };
    let now = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    Duration::from_secs_f64((epoch_secs - now).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn retry_after_is_seconds_or_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            retry_after(&headers(&[("retry-after", "7")]), now),
            Some(Duration::from_secs(7))
        );
        let date = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(
            retry_after(&headers(&[("retry-after", &date)]), now),
            Some(Duration::from_secs(90))
        );
        assert_eq!(retry_after(&headers(&[]), now), None);
        assert_eq!(
            retry_after(&headers(&[("retry-after", "999999")]), now),
            Some(MAX_RETRY_AFTER)
        );
    }

    #[test]
    fn reset_is_read_as_epoch_or_seconds() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let exhausted = |reset: &str, reading| {
            rate_limit_exhausted(
                &headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", reset)]),
                reading,
                now,
            )
        };
        let secs = |n| Some(Duration::from_secs(n));
        assert_eq!(exhausted("30", ResetReading::Auto), secs(30));
        assert_eq!(exhausted("1700000045", ResetReading::Auto), secs(45));
        assert_eq!(exhausted("1700000045000", ResetReading::Auto), secs(45));
        assert_eq!(exhausted("1700000045", ResetReading::Epoch), secs(45));
        assert_eq!(exhausted("45", ResetReading::Seconds), secs(45));
        // Epoch in the past: no wait.
        assert_eq!(exhausted("1600000000", ResetReading::Epoch), secs(0));
        let left = headers(&[("x-ratelimit-remaining", "3"), ("x-ratelimit-reset", "30")]);
        assert_eq!(rate_limit_exhausted(&left, ResetReading::Auto, now), None);
        let ietf = headers(&[("ratelimit", "limit=100, remaining=0, reset=12")]);
        assert_eq!(
            rate_limit_exhausted(&ietf, ResetReading::Auto, now),
            secs(12)
        );
        let structured = headers(&[("ratelimit", "\"default\";r=0;t=9")]);
        assert_eq!(
            rate_limit_exhausted(&structured, ResetReading::Auto, now),
            secs(9)
        );
        let split = headers(&[("ratelimit-remaining", "0"), ("ratelimit-reset", "5")]);
        assert_eq!(
            rate_limit_exhausted(&split, ResetReading::Auto, now),
            secs(5)
        );
    }

    #[test]
    fn a_block_holds_until_its_time_whatever_answers_come_after_it() {
        let mut governor = Governor::new(&RateLimitConfig::default());
        let now = Instant::now();
        governor.observe(
            &headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "30")]),
            now,
        );
        // Answers to requests sent before the block, arriving after it.
        governor.observe(&headers(&[]), now);
        governor.observe(
            &headers(&[("x-ratelimit-remaining", "5"), ("x-ratelimit-reset", "1")]),
            now,
        );
        let (wait, reason) = governor.wait(now);
        assert_eq!(
            (wait, reason.as_str()),
            (Duration::from_secs(30), BLOCKED_BY_THE_API)
        );
        // A shorter block does not shorten it; a longer one lengthens it.
        governor.block(now + Duration::from_secs(5));
        assert_eq!(governor.wait(now).0, Duration::from_secs(30));
        governor.block(now + Duration::from_secs(40));
        assert_eq!(governor.wait(now).0, Duration::from_secs(40));
        assert_eq!(
            governor.wait(now + Duration::from_secs(41)).0,
            Duration::ZERO
        );
    }

    #[test]
    fn rate_limit_policies_give_the_spacing_of_the_strictest() {
        let ms = |n| Some(Duration::from_millis(n));
        assert_eq!(policy_spacing("100;w=60"), ms(600));
        assert_eq!(policy_spacing("\"default\";q=100;w=60"), ms(600));
        assert_eq!(policy_spacing("10;w=1, 1000;w=3600"), ms(3600));
        assert_eq!(policy_spacing("nonsense"), None);
    }

    #[test]
    fn error_bodies_of_every_shape_become_a_message() {
        let detail = |body: &str| {
            let json = serde_json::from_str(body).unwrap();
            json_error_detail(&json)
        };
        assert_eq!(
            detail(r#"{"errors": ["Unknown property 'badprop'", "Unknown property 'x'"]}"#)
                .as_deref(),
            Some("Unknown property 'badprop'; Unknown property 'x'")
        );
        assert_eq!(
            detail(r#"{"error": {"code": "INVALID_PARAMETER", "message": "limit too large", "details": "max 100"}}"#).as_deref(),
            Some("INVALID_PARAMETER: limit too large: max 100")
        );
        assert_eq!(
            detail(r#"{"detail": "Authentication credentials were not provided."}"#).as_deref(),
            Some("Authentication credentials were not provided.")
        );
        assert_eq!(
            detail(r#"{"error": "invalid_client", "error_description": "bad secret"}"#).as_deref(),
            Some("invalid_client: bad secret")
        );
        assert_eq!(
            detail(r#"{"errors": [{"message": "a"}, {"message": "b"}]}"#).as_deref(),
            Some("a; b")
        );
        assert_eq!(detail(r#"{"count": 1}"#), None);
        assert_eq!(
            one_line("  Service\n  Unavailable \n"),
            "Service Unavailable"
        );
    }
}
