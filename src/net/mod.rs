//! What every HTTP caller shares: the `http` source and the `http` sink send through one
//! [`client::Client`] (one agent, authentication from `auth.rs`, the retry loop, the rate-limit
//! governor, `Retry-After`), configured by the same tables (`config.rs`), with their secrets
//! resolved into one [`Secrets`] and kept out of every message by the [`Redactor`]. Also here,
//! for webhooks too: which failures are worth another try, and how a URL is shown in messages
//! without the secrets that travel in it.

pub mod auth;
pub mod client;
pub mod config;
mod resolver;

use std::collections::BTreeMap;

pub use self::auth::Auth;
pub use self::client::Client;
use self::config::AuthConfig;
use crate::config::{Secret, SecretValue};
use crate::error::StageError;
use crate::redact::{Redactor, names_a_secret};
use crate::stage::RunContext;

/// A request that failed.
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

impl From<HttpError> for StageError {
    fn from(error: HttpError) -> Self {
        StageError::Failed(Box::new(error))
    }
}

/// The configured headers with their secrets resolved, the authentication, and the redactor
/// that hides those secrets (and query parameters whose names say they hold one) in messages.
pub struct Secrets {
    pub headers: Vec<(String, SecretValue)>,
    pub auth: Auth,
    pub redactor: Redactor,
}

impl Secrets {
    /// Resolves the secrets of `headers` and `auth`.
    pub fn resolve(
        headers: &BTreeMap<String, Secret>,
        auth: Option<&AuthConfig>,
        cx: &RunContext,
    ) -> Result<Secrets, StageError> {
        let mut redactor = Redactor::default();
        let mut resolved = Vec::new();
        for (name, secret) in headers {
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
            resolved.push((name.clone(), value));
        }
        let auth = Auth::new(auth, cx, &mut redactor)
            .map_err(|(field, e)| StageError::Refused(format!("`{field}`: {e}")))?;
        Ok(Secrets {
            headers: resolved,
            auth,
            redactor,
        })
    }
}

/// TLS as configured: the public roots, or the CA certificates of `ca_file` instead.
pub fn tls_config(
    ca_file: Option<&str>,
    cx: &RunContext,
) -> Result<ureq::tls::TlsConfig, StageError> {
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

/// Whether a request that failed without an answer may succeed when tried again: it could
/// not connect, timed out, or the connection broke. A certificate that does not verify
/// (rustls reports it as invalid data) will not verify on the next try either.
pub fn is_transient(error: &ureq::Error) -> bool {
    match error {
        ureq::Error::Io(e) => e.kind() != std::io::ErrorKind::InvalidData,
        ureq::Error::Timeout(_)
        | ureq::Error::ConnectionFailed
        | ureq::Error::HostNotFound
        | ureq::Error::Protocol(_) => true,
        _ => false,
    }
}
