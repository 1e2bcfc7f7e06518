//! Keeping secrets out of messages. Whatever a stage sends that is secret (tokens, passwords,
//! keys, and the parts of a template such as `Token ${env:T}`) is added to a [`Redactor`], and
//! every message built from what a server answered goes through it: servers echo credentials
//! in their error bodies.

use url::Url;

/// A percent-encoded form of `text` (as it appears in a query string).
fn encoded(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Keeps secrets out of messages: every secret value a stage knows, and the query parameters
/// that carry one.
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
    parameters: Vec<String>,
}

impl Redactor {
    /// Adds a secret: it and its percent-encoded form are shown as `***`.
    pub fn add(&mut self, secret: &str) {
        if !secret.is_empty() {
            self.secrets.push(secret.to_string());
            let encoded = encoded(secret);
            if encoded != secret {
                self.secrets.push(encoded);
            }
        }
    }

    /// Adds the value of one reference of a secret written as a template (`Token
    /// ${env:T}`): it may show up on its own. Short values (`v1`) are left out, or every `1` in
    /// a message would be shown as `***`.
    pub fn add_part(&mut self, part: &str) {
        if part.chars().count() >= 6 {
            self.add(part);
        }
    }

    /// Adds a query parameter whose value is a secret, for [`Redactor::url`].
    pub fn add_query_parameter(&mut self, name: &str) {
        self.parameters.push(name.to_string());
    }

    /// `text` with every secret shown as `***`.
    pub fn text(&self, text: &str) -> String {
        let mut shown = text.to_string();
        for secret in &self.secrets {
            shown = shown.replace(secret.as_str(), "***");
        }
        shown
    }

    /// `url` with its user information and secret parameters shown as `***`.
    pub fn url(&self, url: &Url) -> String {
        let mut shown = url.clone();
        if !shown.username().is_empty() || shown.password().is_some() {
            let _ = shown.set_username("***");
            let _ = shown.set_password(None);
        }
        if !self.parameters.is_empty() && shown.query().is_some() {
            let pairs: Vec<(String, String)> = shown
                .query_pairs()
                .map(|(name, value)| {
                    let value = if self.parameters.iter().any(|p| **p == *name) {
                        "***".to_string()
                    } else {
                        value.into_owned()
                    };
                    (name.into_owned(), value)
                })
                .collect();
            shown.query_pairs_mut().clear().extend_pairs(pairs);
        }
        self.text(shown.as_str())
    }
}

/// Whether a header's or query parameter's name says its value is a secret (`Authorization`,
/// `X-Api-Key`, `X-Auth-Token`, `Cookie`, `api_key`, ...).
pub fn names_a_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "auth",
        "key",
        "token",
        "secret",
        "cookie",
        "password",
        "signature",
    ]
    .iter()
    .any(|word| name.contains(word))
}

/// A URL as messages show it: the value of every query parameter and any user info replaced
/// with `***` (tokens often travel there), the fragment dropped.
pub fn redact_url(url: &str) -> String {
    let url = url.split('#').next().unwrap_or_default();
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut shown = match base.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            match rest[..authority_end].rfind('@') {
                Some(at) => format!("{scheme}://***{}", &rest[at..]),
                None => base.to_string(),
            }
        }
        None => base.to_string(),
    };
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) => format!("{name}=***"),
                None => pair.to_string(),
            })
            .collect();
        shown.push('?');
        shown.push_str(&pairs.join("&"));
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_secrets() {
        assert_eq!(
            redact_url("https://hooks.example.com/T0/B1?token=abc&x=1&flag#frag"),
            "https://hooks.example.com/T0/B1?token=***&x=***&flag"
        );
        assert_eq!(
            redact_url("https://user:pw@example.com/a@b"),
            "https://***@example.com/a@b"
        );
        assert_eq!(
            redact_url("http://127.0.0.1:8080/hook"),
            "http://127.0.0.1:8080/hook"
        );
    }

    #[test]
    fn headers_and_parameters_named_like_secrets_are_secret() {
        for name in [
            "Authorization",
            "X-API-Key",
            "x-auth-token",
            "Cookie",
            "X-Client-Secret",
            "api_key",
            "access_token",
        ] {
            assert!(names_a_secret(name), "{name}");
        }
        for name in [
            "Accept",
            "X-Tenant",
            "User-Agent",
            "updated_at__gte",
            "page",
        ] {
            assert!(!names_a_secret(name), "{name}");
        }
    }

    #[test]
    fn secrets_never_show_in_urls_or_text() {
        let mut redactor = Redactor::default();
        redactor.add("s3cr et");
        redactor.add_query_parameter("api_key");
        let url = Url::parse("https://user:pw@api.example.com/v1/x?api_key=k1&offset=50").unwrap();
        assert_eq!(
            redactor.url(&url),
            "https://***@api.example.com/v1/x?api_key=***&offset=50"
        );
        assert_eq!(
            redactor.text("token s3cr et or s3cr+et"),
            "token *** or ***"
        );
    }
}
