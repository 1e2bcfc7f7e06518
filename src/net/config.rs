//! What the HTTP callers' pipeline-file tables share (the `http` source and sink): how
//! requests authenticate, are retried and are rate-limited. Documented here once: the docs
//! become the JSON Schema and the README reference of every table that uses them.

use schemars::JsonSchema;
use serde::Deserialize;

use crate::config::{Invalid, Secret};

/// How requests authenticate, chosen by `type`. Secrets are `${env:NAME}` or `${file:PATH}`
/// references and never appear in logs or messages.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum AuthConfig {
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// The token. Required.
        token: Secret,
    },
    /// An API key in a header (default `X-API-Key`) or a query parameter.
    ApiKey {
        /// The key. Required.
        key: Secret,
        /// The header it is sent in. Default `"X-API-Key"` (unless `query` is set).
        header: Option<String>,
        /// The query parameter it is sent in, instead of a header. Default: none.
        query: Option<String>,
    },
    /// HTTP basic authentication.
    Basic {
        /// Required.
        username: String,
        /// Required.
        password: Secret,
    },
    /// OAuth 2.0 client credentials: a token is fetched from `token_url`, reused until it
    /// expires, and fetched again before then or when a request is answered 401.
    Oauth2 {
        /// The token endpoint. Required.
        token_url: String,
        /// Required.
        client_id: String,
        /// Required.
        client_secret: Secret,
        /// The `scope` asked for. Default: none.
        scope: Option<String>,
    },
}

/// Retries of requests that fail for a reason that may pass.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Tries per request in all, when it cannot connect, times out, breaks off, or is answered
    /// with one of `statuses`. Default 5.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// Milliseconds before the first retry, when the answer does not say (`Retry-After`).
    /// Default 500.
    #[serde(default = "default_base_delay_ms")]
    pub base_delay_ms: u64,
    /// What each later wait is multiplied by (with up to 25% random jitter). Default 2.
    #[serde(default = "default_factor")]
    pub factor: f64,
    /// The longest wait between tries, in seconds, whatever the factor gives. Default 60.
    #[serde(default = "default_max_delay_secs")]
    pub max_delay_secs: u64,
    /// Status codes that are retried. Other 4xx are never retried. Default `[429, 500, 502,
    /// 503, 504]`.
    #[serde(default = "default_retry_statuses")]
    pub statuses: Vec<u16>,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            attempts: default_attempts(),
            base_delay_ms: default_base_delay_ms(),
            factor: default_factor(),
            max_delay_secs: default_max_delay_secs(),
            statuses: default_retry_statuses(),
        }
    }
}

fn default_attempts() -> u32 {
    5
}

fn default_base_delay_ms() -> u64 {
    500
}

fn default_factor() -> f64 {
    2.0
}

fn default_max_delay_secs() -> u64 {
    60
}

fn default_retry_statuses() -> Vec<u16> {
    vec![429, 500, 502, 503, 504]
}

/// Rate limits: the API's own headers are always honoured (`X-RateLimit-Remaining: 0` waits
/// for the reset instead of burning a 429, and an IETF `RateLimit-Policy` such as `100;w=60`
/// spaces requests evenly); these add a budget of one's own.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Requests per hour at most, spread evenly (one every 3600/N seconds), across pages and
    /// retries. Default: no budget.
    pub requests_per_hour: Option<u32>,
    /// Requests per minute at most, spread evenly. Default: no budget.
    pub requests_per_minute: Option<u32>,
    /// How `X-RateLimit-Reset` is read: `"epoch"` (Unix seconds of the reset), `"seconds"`
    /// (seconds until it), or `"auto"`: values above 1,000,000,000 are epoch seconds, others
    /// seconds from now. The IETF `RateLimit` headers always count seconds. Default `"auto"`.
    #[serde(default)]
    pub reset: ResetReading,
}

/// How an `X-RateLimit-Reset` value is read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ResetReading {
    #[default]
    Auto,
    Epoch,
    Seconds,
}

/// What is wrong with `auth` that its types cannot say.
pub fn auth_problems(auth: Option<&AuthConfig>) -> Vec<Invalid> {
    let mut problems = Vec::new();
    match auth {
        Some(AuthConfig::ApiKey {
            header: Some(_),
            query: Some(_),
            ..
        }) => problems.push(Invalid::new("auth", "set `header` or `query`, not both")),
        Some(AuthConfig::Oauth2 { token_url, .. }) => {
            if let Some(problem) = url_problem(token_url) {
                problems.push(Invalid::new("auth.token_url", problem));
            }
        }
        _ => {}
    }
    problems
}

/// What is wrong with the authentication, retries and rate limits of a table, if anything.
pub fn request_problems(
    auth: Option<&AuthConfig>,
    retry: &RetryConfig,
    rate_limit: &RateLimitConfig,
) -> Vec<Invalid> {
    let mut problems = auth_problems(auth);
    if !(1..=20).contains(&retry.attempts) {
        problems.push(Invalid::new("retry.attempts", "must be between 1 and 20"));
    }
    if !(retry.factor >= 1.0 && retry.factor <= 10.0) {
        problems.push(Invalid::new("retry.factor", "must be between 1 and 10"));
    }
    if let Some(status) = retry.statuses.iter().find(|s| !(400..=599).contains(*s)) {
        problems.push(Invalid::new(
            "retry.statuses",
            format!("{status} is not an error status (400-599)"),
        ));
    }
    if rate_limit.requests_per_hour == Some(0) || rate_limit.requests_per_minute == Some(0) {
        problems.push(Invalid::new("rate_limit", "a budget must be at least 1"));
    }
    problems
}

/// What is wrong with `url` as the URL of a request, if anything.
pub fn url_problem(url: &str) -> Option<String> {
    match url::Url::parse(url) {
        Ok(parsed) if !matches!(parsed.scheme(), "http" | "https") => {
            Some("must start with `http://` or `https://`".into())
        }
        Ok(parsed) if parsed.host_str().is_none_or(str::is_empty) => Some("has no host".into()),
        Ok(_) => None,
        Err(e) => Some(format!(
            "`{}` is not a valid URL: {e}",
            crate::redact::redact_url(url)
        )),
    }
}
