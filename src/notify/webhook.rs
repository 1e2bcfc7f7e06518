//! `webhook`: POSTs the run report, or a body shaped from it (Slack, Teams, a notification
//! API), as JSON to a URL. It sends through the client the `http` source and sink use
//! (`net::Client`): receivers restart and rate-limit, so connection errors, timeouts, 5xx and
//! 429 are retried with backoff and `Retry-After`; other answers are final. A POST moved by
//! 301 or 302 is not resent as a GET. Receivers echo credentials in their error answers: every
//! header value and query value sent is removed from the message that reports a failure.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use url::Url;

use super::{Notice, NotifySpec, Triggered, message};
use crate::config::{Invalid, Secret, SecretUrl, Validate};
use crate::net::client::{Client, ClientSettings, Method, Post, Reading, Request, Sent};
use crate::net::config::{AuthConfig, RateLimitConfig, RetryConfig, auth_problems, url_problem};
use crate::net::{HttpError, Secrets, tls_config};
use crate::stage::RunContext;

notify_config! {
    /// POSTs the run report (the same JSON as `--report`) to a URL.
    pub struct WebhookConfig {
        /// Where to POST: an `http://` or `https://` URL. Messages show it as written in the
        /// pipeline file, query values as `***`: a URL that holds a token in its path (Slack,
        /// Teams) is best given by reference, `url = "${env:SLACK_WEBHOOK_URL}"`, and is then
        /// shown as that. HTTPS certificates are verified. Required.
        pub url: SecretUrl,
        /// Extra request headers, e.g. `{ Authorization = "${env:HOOK_TOKEN}" }`. Values are
        /// secrets (`${env:NAME}`, `${file:PATH}`), never shown. Default: none.
        #[serde(default)]
        pub headers: BTreeMap<String, Secret>,
        /// How many times to try in all, when the receiver cannot be reached, times out, or
        /// answers 5xx or 429. Default 3.
        #[serde(default = "default_attempts")]
        pub attempts: u32,
        /// Milliseconds to wait before the second attempt; each later wait doubles. Default 1000.
        #[serde(default = "default_retry_delay_ms")]
        pub retry_delay_ms: u64,
        /// Seconds one attempt may take in all (connecting, sending, the answer). Default 30.
        #[serde(default = "default_timeout_secs")]
        pub timeout_secs: u64,
        /// The body, shaped for the receiver: a table whose strings may hold
        /// placeholders filled from the run: `{pipeline}`, `{event}`, `{outcome}`, `{run_id}`,
        /// `{started_at}`, `{duration_secs}`, `{records_read}`, `{rejects}`,
        /// `{files_written}`, `{error}`, `{warnings}`, `{summary}` (one line for people) and
        /// `{report}` (a string that is only `{report}` becomes the report object). E.g. Slack:
        /// `body = { text = ":red_circle: {summary}" }`; a notification API: `body = { channel =
        /// "ops", subject = "{pipeline}: {event}", details = "{report}" }`. Values are put into
        /// JSON as values, so quotes and line breaks in an error cannot break the body.
        /// Default: the run report itself (the same JSON as `--report`).
        pub body: Option<serde_json::Map<String, serde_json::Value>>,
        /// How the request authenticates, as for the `http` source (`{ type = "bearer", token
        /// = "${env:NOTIFY_TOKEN}" }`). Default: none.
        pub auth: Option<AuthConfig>,
        /// A PEM file of the CA certificates to trust instead of the public ones (an
        /// internal receiver); relative paths are resolved against the pipeline file's
        /// directory. Default: Mozilla's root certificates.
        pub ca_file: Option<String>,
    }
}

fn default_attempts() -> u32 {
    3
}

fn default_retry_delay_ms() -> u64 {
    1000
}

fn default_timeout_secs() -> u64 {
    30
}

/// The most characters of a receiver's answer a message shows.
const EXCERPT_CHARS: usize = 220;

/// `message` cut to [`EXCERPT_CHARS`].
fn cut(message: &str) -> String {
    message.chars().take(EXCERPT_CHARS).collect()
}

/// The longest wait between two attempts, whatever the doubling gives.
const MAX_RETRY_DELAY: std::time::Duration = std::time::Duration::from_secs(300);

impl Validate for WebhookConfig {
    fn problems(&self) -> Vec<Invalid> {
        let mut problems = self.trigger().problems();
        if let Some(problem) = url_problem(self.url.expose()) {
            // The problem quotes the URL: show it as written.
            let problem = problem.replace(self.url.expose(), self.url.shown());
            problems.push(Invalid::new("url", problem));
        }
        for name in self.headers.keys() {
            if name.parse::<ureq::http::HeaderName>().is_err() {
                problems.push(Invalid::new(
                    "headers",
                    format!("`{name}` is not a valid header name"),
                ));
            } else if name.eq_ignore_ascii_case("content-type")
                || name.eq_ignore_ascii_case("content-length")
            {
                problems.push(Invalid::new(
                    "headers",
                    format!("`{name}` is set by longshore"),
                ));
            }
        }
        if !(1..=10).contains(&self.attempts) {
            problems.push(Invalid::new(
                "attempts",
                "`attempts` must be between 1 and 10",
            ));
        }
        if self.timeout_secs == 0 {
            problems.push(Invalid::new(
                "timeout_secs",
                "`timeout_secs` must be at least 1",
            ));
        }
        if let Some(body) = &self.body {
            problems.extend(message::body_problems("body", &body.clone().into()));
        }
        problems.extend(auth_problems(self.auth.as_ref()));
        problems
    }
}

impl WebhookConfig {
    /// `attempts` and `retry_delay_ms` as the client's retries: doubling waits, 429 and 5xx.
    fn retry(&self) -> RetryConfig {
        RetryConfig {
            attempts: self.attempts,
            base_delay_ms: self.retry_delay_ms,
            factor: 2.0,
            max_delay_secs: MAX_RETRY_DELAY.as_secs(),
            statuses: std::iter::once(429).chain(500..600).collect(),
        }
    }
}

impl NotifySpec for WebhookConfig {
    fn target(&self) -> String {
        format!("webhook {}", self.url.shown())
    }

    fn send(&self, notice: &Notice, cx: &RunContext) -> Result<(), String> {
        send(self, notice, cx)
    }
}

fn send(config: &WebhookConfig, notice: &Notice, cx: &RunContext) -> Result<(), String> {
    let Secrets {
        headers,
        auth,
        mut redactor,
    } = Secrets::resolve(&config.headers, config.auth.as_ref(), cx).map_err(|e| e.to_string())?;
    // Every header value of a webhook is taken for a secret: they are tokens more often than
    // not.
    for (_, value) in &headers {
        redactor.add(value.expose());
    }
    let url = Url::parse(config.url.expose()).map_err(|e| format!("`url`: {e}"))?;
    // Query values are shown as `***` in messages (`redact_url`): an echo of one is too.
    for (_, value) in url.query_pairs() {
        redactor.add_part(&value);
    }
    // A URL given by reference is a secret in full (Slack's token is its path).
    if config.url.shown() != crate::redact::redact_url(config.url.expose()) {
        redactor.add(config.url.expose());
        redactor.add_part(url.path().trim_matches('/'));
    }
    let tls = tls_config(config.ca_file.as_deref(), cx).map_err(|e| e.to_string())?;
    let settings = ClientSettings {
        timeout_secs: config.timeout_secs,
        connections: 1,
        retry: config.retry(),
        rate_limit: RateLimitConfig::default(),
    };
    let redactor = Arc::new(Mutex::new(redactor));
    let client = Client::new(settings, tls, headers, auth, redactor.clone(), None);
    let body = match &config.body {
        Some(shape) => message::shape(&shape.clone().into(), notice)
            .to_string()
            .into_bytes(),
        None => notice.json.as_bytes().to_vec(),
    };
    // The same on every retry: a notification API that honours the key shows one message.
    let key = crate::digest::sha256_hex(
        format!(
            "{}\0{}\0{}\0{}",
            notice.report.pipeline,
            notice.report.run_id,
            notice.event.as_str(),
            config.url.expose()
        )
        .as_bytes(),
    );
    let request = Request {
        url,
        post: Some(Post {
            method: Method::Post,
            body,
            content_type: "application/json",
            idempotency_header: "Idempotency-Key".into(),
            idempotency_key: key,
            headers: vec![("X-Longshore-Event".into(), notice.event.as_str().into())],
            final_statuses: Vec::new(),
        }),
        reading: Reading::Whole(ANSWER_BYTES),
        credentials: true,
    };
    let failure = match client.send(&request) {
        Ok(Sent::Answered(_)) => return Ok(()),
        Ok(Sent::OutOfTime(reason)) => reason,
        Err(HttpError::Request {
            status: Some(_),
            message,
            ..
        }) => format!("answered {message}"),
        Err(HttpError::Request { message, .. }) => message,
        Err(other) => other.to_string(),
    };
    let shown = crate::net::client::lock(&redactor).text(&failure);
    Err(cut(&shown))
}

/// The most of an answer read: acknowledgements are short.
const ANSWER_BYTES: u64 = 64 * 1024;
