//! Authentication of the source's requests. Every secret, fetched tokens included, is handed
//! to the [`Redactor`] the moment it is known, so no message can show it.

use std::time::{Duration, Instant};

use base64::Engine;
use url::Url;

use super::HttpError;
use super::config::AuthConfig;
use crate::backoff::Backoff;
use crate::config::SecretValue;
use crate::config::secret::SecretError;
use crate::redact::Redactor;
use crate::stage::RunContext;

/// Tries of a token request, and the wait before the second (doubling after).
const TOKEN_ATTEMPTS: u32 = 3;
const TOKEN_RETRY_DELAY: Duration = Duration::from_millis(500);

/// Authentication, with its secrets resolved.
pub enum Auth {
    None,
    /// A header with a fixed value: a bearer token, basic credentials, an API key.
    Header(String, SecretValue),
    /// An API key in a query parameter.
    Query(String, SecretValue),
    OAuth(OAuth),
}

/// OAuth 2.0 client credentials, and the token while it is good.
pub struct OAuth {
    token_url: Url,
    client_id: String,
    client_secret: SecretValue,
    scope: Option<String>,
    token: Option<Token>,
}

struct Token {
    value: SecretValue,
    /// When to fetch a new one: a little before it expires.
    renew_at: Option<Instant>,
}

impl Auth {
    pub fn new(
        config: Option<&AuthConfig>,
        cx: &RunContext,
        redactor: &mut Redactor,
    ) -> Result<Self, (&'static str, SecretError)> {
        let mut resolve = |field, secret: &crate::config::Secret| {
            let (value, referenced) = secret
                .resolve_all(&cx.references())
                .map_err(|e| (field, e))?;
            redactor.add(value.expose());
            for referenced in &referenced {
                redactor.add_part(referenced);
            }
            Ok(value)
        };
        Ok(match config {
            None => Auth::None,
            Some(AuthConfig::Bearer { token }) => {
                let token = resolve("auth.token", token)?;
                let header = SecretValue::new(format!("Bearer {}", token.expose()));
                Auth::Header("authorization".into(), header)
            }
            Some(AuthConfig::ApiKey { key, header, query }) => {
                let key = resolve("auth.key", key)?;
                match query {
                    Some(parameter) => {
                        redactor.add_query_parameter(parameter);
                        Auth::Query(parameter.clone(), key)
                    }
                    None => Auth::Header(header.clone().unwrap_or_else(|| "X-API-Key".into()), key),
                }
            }
            Some(AuthConfig::Basic { username, password }) => {
                let password = resolve("auth.password", password)?;
                let credentials = base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{}", password.expose()));
                redactor.add(&credentials);
                let header = SecretValue::new(format!("Basic {credentials}"));
                Auth::Header("authorization".into(), header)
            }
            Some(AuthConfig::Oauth2 {
                token_url,
                client_id,
                client_secret,
                scope,
            }) => Auth::OAuth(OAuth {
                token_url: Url::parse(token_url).expect("checked when the pipeline was loaded"),
                client_id: client_id.clone(),
                client_secret: resolve("auth.client_secret", client_secret)?,
                scope: scope.clone(),
                token: None,
            }),
        })
    }

    /// Adds what a request to `url` needs: a query parameter to `url`, or the header returned.
    pub fn apply(
        &mut self,
        agent: &ureq::Agent,
        url: &mut Url,
        redactor: &mut Redactor,
    ) -> Result<Option<(String, SecretValue)>, HttpError> {
        Ok(match self {
            Auth::None => None,
            Auth::Header(name, value) => Some((name.clone(), value.clone())),
            Auth::Query(name, value) => {
                // Set, not added twice: a redirect's `Location` may carry it already. Only
                // then is the query rewritten (which re-encodes it).
                if url.query_pairs().any(|(other, _)| other == name.as_str()) {
                    let others: Vec<(String, String)> = url
                        .query_pairs()
                        .filter(|(other, _)| other != name.as_str())
                        .map(|(n, v)| (n.into_owned(), v.into_owned()))
                        .collect();
                    url.query_pairs_mut().clear().extend_pairs(others);
                }
                url.query_pairs_mut().append_pair(name, value.expose());
                None
            }
            Auth::OAuth(oauth) => {
                let token = oauth.token(agent, redactor)?;
                Some((
                    "authorization".into(),
                    SecretValue::new(format!("Bearer {}", token.expose())),
                ))
            }
        })
    }

    /// Whether a 401 may be cured by a fresh token.
    pub fn can_refresh(&self) -> bool {
        matches!(self, Auth::OAuth(_))
    }

    pub fn forget_token(&mut self) {
        if let Auth::OAuth(oauth) = self {
            oauth.token = None;
        }
    }
}

impl OAuth {
    /// The current token, fetched anew when there is none or it is about to expire.
    fn token(
        &mut self,
        agent: &ureq::Agent,
        redactor: &mut Redactor,
    ) -> Result<&SecretValue, HttpError> {
        let expired = self
            .token
            .as_ref()
            .is_some_and(|token| token.renew_at.is_some_and(|at| Instant::now() >= at));
        if self.token.is_none() || expired {
            self.token = Some(self.fetch(agent, redactor)?);
        }
        Ok(&self.token.as_ref().expect("fetched above").value)
    }

    fn fetch(&self, agent: &ureq::Agent, redactor: &mut Redactor) -> Result<Token, HttpError> {
        let failed = |message: String| HttpError::Request {
            method: "POST",
            url: redactor.url(&self.token_url),
            status: None,
            message: format!("cannot get an OAuth token: {}", redactor.text(&message)),
        };
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose()),
        ];
        if let Some(scope) = &self.scope {
            form.push(("scope", scope));
        }
        // The token endpoint fails like any other: connection errors, 5xx and 429 are tried
        // again a few times.
        let mut backoff = Backoff::doubling(TOKEN_RETRY_DELAY, TOKEN_RETRY_DELAY * 4);
        let mut attempt = 1;
        let mut response = loop {
            let sent = agent.post(self.token_url.as_str()).send_form(form.clone());
            let again = match &sent {
                Ok(response) => {
                    response.status().is_server_error() || response.status().as_u16() == 429
                }
                Err(e) => crate::net::is_transient(e),
            };
            if !again || attempt == TOKEN_ATTEMPTS {
                break sent.map_err(|e| failed(e.to_string()))?;
            }
            std::thread::sleep(backoff.next_wait());
            attempt += 1;
        };
        let status = response.status();
        let body = response
            .body_mut()
            .with_config()
            .limit(1024 * 1024)
            .read_to_vec()
            .map_err(|e| failed(e.to_string()))?;
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        if !status.is_success() {
            let detail = super::client::json_error_detail(&json)
                .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_string());
            return Err(failed(format!("HTTP {}: {detail}", status.as_u16())));
        }
        let Some(token) = json.get("access_token").and_then(|t| t.as_str()) else {
            return Err(failed("the answer has no `access_token`".into()));
        };
        redactor.add(token);
        // Renewed a tenth of its life (at most a minute) before it expires.
        let renew_at = json.get("expires_in").and_then(|e| e.as_u64()).map(|secs| {
            let life = Duration::from_secs(secs);
            Instant::now() + life - (life / 10).min(Duration::from_secs(60))
        });
        tracing::debug!(token_url = %redactor.url(&self.token_url), "fetched an OAuth token");
        Ok(Token {
            value: SecretValue::new(token.to_string()),
            renew_at,
        })
    }
}
