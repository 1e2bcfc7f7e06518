//! What every HTTP caller shares (the http source, webhooks, and the push sinks to come):
//! which failures are worth another try, and how a URL is shown in messages without the
//! secrets that travel in it.

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
}
