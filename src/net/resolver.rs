//! Host names resolved once a minute, not once a request. ureq's own resolver, given a
//! timeout (and every request here has one), starts a thread for each lookup, even when the
//! request then goes out on a kept-alive connection: against a fast API that thread cost
//! more than the round trip. Addresses are kept for [`KEEP_FOR`], so a host that moves is
//! still followed during a long pull.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

use super::client::lock;

/// How long a host's addresses are used before they are looked up again.
const KEEP_FOR: Duration = Duration::from_secs(60);

/// ureq's resolver behind a cache of what it answered, by host and port.
#[derive(Debug, Default)]
pub struct CachingResolver {
    lookup: DefaultResolver,
    /// The addresses by scheme and authority, with when they expire (never, for an address
    /// written as one).
    known: Mutex<HashMap<String, (Option<Instant>, ResolvedSocketAddrs)>>,
}

impl Resolver for CachingResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let key = uri
            .authority()
            .map(|authority| format!("{}|{authority}", uri.scheme_str().unwrap_or("")));
        let Some(key) = key else {
            return self.lookup.resolve(uri, config, timeout);
        };
        if let Some((expires, addresses)) = lock(&self.known).get(&key)
            && expires.is_none_or(|expires| Instant::now() < expires)
        {
            return Ok(addresses.clone());
        }
        let addresses = self.lookup.resolve(uri, config, timeout)?;
        let is_literal = uri
            .host()
            .map(|host| host.trim_start_matches('[').trim_end_matches(']'))
            .is_some_and(|host| host.parse::<IpAddr>().is_ok());
        let expires = (!is_literal).then(|| Instant::now() + KEEP_FOR);
        lock(&self.known).insert(key, (expires, addresses.clone()));
        Ok(addresses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(resolver: &CachingResolver, url: &str) -> Vec<std::net::SocketAddr> {
        let uri: Uri = url.parse().expect("a URI");
        let config = Config::default();
        let addresses = resolver
            .resolve(
                &uri,
                &config,
                NextTimeout {
                    after: Duration::from_secs(5).into(),
                    reason: ureq::Timeout::Resolve,
                    ..NextTimeout::default()
                },
            )
            .expect("resolved");
        addresses.iter().copied().collect()
    }

    #[test]
    fn addresses_are_kept_for_names_a_minute_and_for_literals_for_good() {
        let resolver = CachingResolver::default();
        let literal = resolve(&resolver, "http://127.0.0.1:8080/api");
        assert_eq!(literal, ["127.0.0.1:8080".parse().unwrap()]);
        let name = resolve(&resolver, "https://localhost/api");
        assert!(
            name.iter()
                .all(|address| address.port() == 443 && address.ip().is_loopback())
        );
        // Asked again: the same answers, from the cache.
        assert_eq!(resolve(&resolver, "http://127.0.0.1:8080/other"), literal);
        assert_eq!(resolve(&resolver, "https://localhost/other"), name);
        let known = lock(&resolver.known);
        assert_eq!(known.len(), 2);
        assert!(known["http|127.0.0.1:8080"].0.is_none());
        let expires = known["https|localhost"].0.expect("names expire");
        assert!(expires > Instant::now() && expires <= Instant::now() + KEEP_FOR);
    }
}
