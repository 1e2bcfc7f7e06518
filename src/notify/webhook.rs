//! `webhook`: POSTs the run report as JSON to a URL (chat integrations, incident tools, a
//! team's own endpoint). Receivers restart and rate-limit, so connection errors, timeouts, 5xx
//! and 429 answers are retried with exponential backoff; other answers are final. Redirects are
//! not followed: following one would turn the POST into a GET or resend headers elsewhere.
//! Receivers echo credentials in their error answers: every header value and query value sent
//! is removed from the message that reports a failure.

use std::collections::BTreeMap;
use std::io::Read;
use std::time::Duration;

use crate::backoff::Backoff;
use crate::config::{Invalid, Secret, Validate};
use crate::redact::Redactor;
use crate::stage::RunContext;

use super::{Notice, NotifySpec, Triggered};
use crate::net::redact_url;

notify_config! {
    /// POSTs the run report (the same JSON as `--report`) to a URL.
    pub struct WebhookConfig {
        /// Where to POST: an `http://` or `https://` URL. Query values are shown as `***` in
        /// messages, so a token may travel there. HTTPS certificates are verified. Required.
        pub url: String,
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
const MAX_RETRY_DELAY: Duration = Duration::from_secs(300);

impl Validate for WebhookConfig {
    fn problems(&self) -> Vec<Invalid> {
        let mut problems = self.trigger().problems();
        match self.url.parse::<ureq::http::Uri>() {
            Ok(uri) if !matches!(uri.scheme_str(), Some("http" | "https")) => problems.push(
                Invalid::new("url", "`url` must start with `http://` or `https://`"),
            ),
            Ok(uri) if uri.host().is_none_or(str::is_empty) => {
                problems.push(Invalid::new("url", "`url` has no host"))
            }
            Ok(_) => {}
            Err(_) => problems.push(Invalid::new(
                "url",
                format!("`{}` is not a valid URL", redact_url(&self.url)),
            )),
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
        problems
    }
}

/// How one attempt ended, when it did not succeed.
struct Failed {
    message: String,
    retry: bool,
}

impl NotifySpec for WebhookConfig {
    fn target(&self) -> String {
        format!("webhook {}", redact_url(&self.url))
    }

    fn send(&self, notice: &Notice, cx: &RunContext) -> Result<(), String> {
        send(self, notice, cx)
    }
}

fn send(config: &WebhookConfig, notice: &Notice, cx: &RunContext) -> Result<(), String> {
    let mut headers = Vec::with_capacity(config.headers.len());
    let mut redactor = Redactor::default();
    for (name, secret) in &config.headers {
        let (value, referenced) = secret
            .resolve_all(&cx.references())
            .map_err(|e| format!("header `{name}`: {e}"))?;
        redactor.add(value.expose());
        for part in &referenced {
            redactor.add_part(part);
        }
        headers.push((name.as_str(), value));
    }
    // Query values are shown as `***` in messages (`redact_url`): an echo of one is too.
    if let Ok(url) = url::Url::parse(&config.url) {
        for (_, value) in url.query_pairs() {
            redactor.add_part(&value);
        }
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(config.timeout_secs)))
        .http_status_as_error(false)
        .max_redirects(0)
        .max_redirects_will_error(false)
        .user_agent(concat!("longshore/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let attempts = config.attempts.max(1);
    let mut backoff = Backoff::doubling(
        Duration::from_millis(config.retry_delay_ms),
        MAX_RETRY_DELAY,
    );
    let mut attempt = 1;
    loop {
        let mut request = agent
            .post(&config.url)
            .header("content-type", "application/json")
            .header("x-longshore-event", notice.event.as_str());
        for (name, value) in &headers {
            request = request.header(*name, value.expose());
        }
        let failed = match request.send(notice.json) {
            Ok(response) if response.status().is_success() => return Ok(()),
            Ok(response) => answered(response),
            Err(error) => Failed {
                retry: crate::net::is_transient(&error),
                // ureq's messages may quote the URL: show it redacted.
                message: crate::error::error_chain_text(&error)
                    .replace(&config.url, &redact_url(&config.url)),
            },
        };
        if !failed.retry || attempt >= attempts {
            let tries = if attempt == 1 {
                String::new()
            } else {
                format!(" (after {attempt} attempts)")
            };
            let shown = cut(&redactor.text(&failed.message));
            return Err(format!("{shown}{tries}"));
        }
        let delay = backoff.next_wait();
        tracing::debug!(
            "webhook attempt {attempt} failed ({}), retrying in {delay:?}",
            cut(&redactor.text(&failed.message))
        );
        std::thread::sleep(delay);
        attempt += 1;
    }
}

/// A non-2xx answer: its status and the start of its body (receivers explain themselves there).
fn answered(mut response: ureq::http::Response<ureq::Body>) -> Failed {
    let status = response.status();
    let mut body = String::new();
    // Best effort: the status alone is still a useful message.
    let _ = response
        .body_mut()
        .as_reader()
        .take(4096)
        .read_to_string(&mut body);
    // The whole first line: it is cut only once redacted (`EXCERPT_CHARS`), so that no
    // secret is cut into a prefix the redactor does not know.
    let first_line = body.lines().next().unwrap_or_default().trim();
    let mut message = format!("answered HTTP {}", status.as_u16());
    if !first_line.is_empty() {
        message.push_str(&format!(": {first_line}"));
    }
    Failed {
        message,
        retry: status.is_server_error() || status.as_u16() == 429,
    }
}
