//! Paging through a list API: which URL comes next, when the list has ended, and the checks
//! that keep paging honest: a link or cursor seen twice, or the same page twice, is a loop (an
//! error, not an endless run), and the records received are compared with the total the API
//! advertised, and a total that changes between pages is a warning. A short page ends the
//! list only when it is shorter than pages the server gave before: servers clamp `limit` to a
//! page size of their own without saying so, and a first page of that size is not the last.
//! A next link that is only a query string keeps the list's other parameters.

use std::collections::HashSet;

use ureq::http::HeaderMap;
use url::Url;

use super::config::{Locator, Pagination};

/// What paging reads from one response.
#[derive(Debug, Default)]
pub(super) struct PageFacts {
    pub(super) next: Option<String>,
    pub(super) total: Option<u64>,
    pub(super) cursor: Option<String>,
}

/// Why paging stopped, or where it goes next.
pub(super) enum Step {
    Fetch(Url),
    /// The list ended: the reason, for the log.
    End(&'static str),
}

pub(super) struct Paginator {
    paging: Pagination,
    /// The first page's URL without paging parameters.
    base: Url,
    /// The offset or page number of the page being read.
    position: u64,
    /// Links and cursors followed, to catch a loop.
    followed: HashSet<String>,
    /// The SHA-256 of the last page's body.
    last_page: Option<String>,
    /// The total the API advertised, last seen.
    pub(super) total: Option<u64>,
    /// The most records a page of this list had: the server's real page size, when it clamps
    /// `limit`.
    largest_page: u64,
    /// What an operator should know (a total that changed while paging), for the run report.
    pub(super) warnings: Vec<String>,
    /// The page asked for next only confirms that the short first page before it was the
    /// last: an API that refuses a page past the end (400, 404) ends the list with that
    /// refusal.
    pub(super) confirming: bool,
    /// Whether the server's own page size was noted in the log (once a list).
    clamp_noted: bool,
    /// Whether a next link that leaves out the list's parameters was warned of (once a list).
    link_warned: bool,
}

impl Paginator {
    pub(super) fn new(paging: &Pagination, base: Url) -> Self {
        let position = match paging {
            Pagination::Offset(offset) => offset.first_offset,
            Pagination::Page(page) => page.first_page,
            _ => 0,
        };
        Paginator {
            paging: paging.clone(),
            base,
            position,
            followed: HashSet::new(),
            last_page: None,
            total: None,
            largest_page: 0,
            warnings: Vec::new(),
            confirming: false,
            clamp_noted: false,
            link_warned: false,
        }
    }

    /// The list's URL, without paging parameters.
    pub(super) fn base(&self) -> &Url {
        &self.base
    }

    /// The URL of the first page.
    pub(super) fn first(&self) -> Url {
        self.stepped(self.position, None)
    }

    /// The JSON pointers of the body values paging needs.
    pub(super) fn body_pointers(&self) -> Vec<&str> {
        self.locators()
            .into_iter()
            .flatten()
            .filter_map(|locator| match locator {
                Locator::Body(pointer) => Some(pointer.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Where the next link, the total and the cursor are, for this kind of paging.
    fn locators(&self) -> [Option<&Locator>; 3] {
        match &self.paging {
            Pagination::None(p) => [None, p.total.as_ref(), None],
            Pagination::Offset(p) => [p.next.as_ref(), p.total.as_ref(), None],
            Pagination::Page(p) => [p.next.as_ref(), p.total.as_ref(), None],
            Pagination::Cursor(p) => [None, None, Some(&p.cursor)],
            Pagination::Next(p) => [Some(&p.next), p.total.as_ref(), None],
        }
    }

    /// Reads what paging needs from a response. `body` holds the body's values at
    /// [`Paginator::body_pointers`].
    pub(super) fn facts(
        &self,
        headers: &HeaderMap,
        body: Option<&serde_json::Value>,
    ) -> Result<PageFacts, String> {
        let read = |locator: &Locator| read_value(locator, headers, body);
        let [next, total, cursor] = self.locators();
        let total =
            match total.map(read).transpose()?.flatten() {
                None => None,
                Some(text) => Some(text.parse::<u64>().map_err(|_| {
                    format!("the total `{text}` (at {}) is not a count", shown(total))
                })?),
            };
        Ok(PageFacts {
            next: next.map(read).transpose()?.flatten(),
            total,
            cursor: cursor.map(read).transpose()?.flatten(),
        })
    }

    /// Where paging goes after a page of `records` records whose body had SHA-256 `hash`
    /// (`None` for a single answer, which has no page before it).
    pub(super) fn after(
        &mut self,
        current: &Url,
        facts: PageFacts,
        records: u64,
        hash: Option<String>,
    ) -> Result<Step, String> {
        if let (Some(before), Some(now)) = (self.total, facts.total)
            && before != now
        {
            self.warnings.push(format!(
                "the advertised total changed from {before} to {now} while paging: records were added or removed during the pull, or a filter fell off the later pages"
            ));
        }
        if facts.total.is_some() {
            self.total = facts.total;
        }
        self.confirming = false;
        if records > 0 && hash.is_some() && self.last_page == hash {
            return Err(
                "this page is the same as the one before: the API ignores the paging parameters, or pages in a loop"
                    .into(),
            );
        }
        self.last_page = hash;
        if records == 0 {
            return Ok(Step::End("an empty page"));
        }
        let (limit, stop_on_short_page, next_locator) = match &self.paging {
            Pagination::None(_) => return Ok(Step::End("one request")),
            Pagination::Offset(p) => (p.limit, p.stop_on_short_page, p.next.is_some()),
            Pagination::Page(p) => (p.limit, p.stop_on_short_page, p.next.is_some()),
            Pagination::Cursor(_) => {
                let Some(cursor) = facts.cursor.filter(|c| !c.is_empty()) else {
                    return Ok(Step::End("no next cursor"));
                };
                self.check_new(&cursor, "cursor")?;
                return Ok(Step::Fetch(self.stepped(self.position, Some(&cursor))));
            }
            Pagination::Next(_) => {
                let Some(next) = facts.next.filter(|n| !n.is_empty()) else {
                    return Ok(Step::End("no next link"));
                };
                return self.follow(current, &next);
            }
        };
        // Offset and page numbers: a next link is followed when the API gives one.
        if let Some(next) = facts.next.filter(|n| !n.is_empty()) {
            self.advance(records);
            return self.follow(current, &next);
        }
        if next_locator {
            return Ok(Step::End("no next link"));
        }
        let received_before = self.received_before();
        if self
            .total
            .is_some_and(|total| received_before + records >= total)
        {
            return Ok(Step::End("the advertised total reached"));
        }
        // Shorter than `limit` proves the end only when the server gave more before: a server
        // that clamps the page size gives pages shorter than `limit` all along. A short first
        // page is confirmed by asking for the next one (empty, it ends the list).
        let largest_before = self.largest_page;
        self.largest_page = self.largest_page.max(records);
        if stop_on_short_page && records < limit && records < largest_before {
            return Ok(Step::End("a short page"));
        }
        if records < limit && records == largest_before && !self.clamp_noted {
            self.clamp_noted = true;
            tracing::info!(
                "the server gives at most {records} records a page, fewer than `limit` = {limit}: paging goes on by its page size"
            );
        }
        // Only a short *first* page is confirmed: once pages of the server's size came, a
        // refusal is an error (a search API refusing results past its first 1,000).
        self.confirming = stop_on_short_page && records < limit && largest_before == 0;
        self.advance(records);
        Ok(Step::Fetch(self.stepped(self.position, None)))
    }

    /// The page `ahead` pages after the current one, when it is known before the current one
    /// is decoded: the next link or cursor (one ahead), or, with a total, the offset or number
    /// if the pages before are full (which [`Paginator::after`] confirms). `None` where paging
    /// may end before it.
    pub(super) fn predict(&self, current: &Url, facts: &PageFacts, ahead: u64) -> Option<Url> {
        if ahead > 1 && !matches!(self.paging, Pagination::Offset(_) | Pagination::Page(_)) {
            return None;
        }
        let next = facts.next.as_deref().filter(|n| !n.is_empty());
        let (limit, next_locator) = match &self.paging {
            Pagination::None(_) => return None,
            Pagination::Next(_) => return self.link_target(current, next?).ok(),
            Pagination::Cursor(_) => {
                let cursor = facts.cursor.as_deref().filter(|c| !c.is_empty())?;
                return Some(self.stepped(self.position, Some(cursor)));
            }
            Pagination::Offset(p) => (p.limit, p.next.is_some()),
            Pagination::Page(p) => (p.limit, p.next.is_some()),
        };
        if let Some(next) = next {
            return (ahead == 1)
                .then(|| self.link_target(current, next).ok())
                .flatten();
        }
        let total = facts.total.or(self.total)?;
        let size = self.page_size(limit);
        if next_locator || self.received_before() + ahead * size >= total {
            return None;
        }
        let position = match &self.paging {
            Pagination::Offset(_) => self.position + ahead * size,
            _ => self.position + ahead,
        };
        Some(self.stepped(position, None))
    }

    /// Records before the current page, by its position (offset paging knows it exactly).
    fn received_before(&self) -> u64 {
        match &self.paging {
            Pagination::Offset(p) => self.position - p.first_offset,
            Pagination::Page(p) => (self.position - p.first_page) * self.page_size(p.limit),
            _ => 0,
        }
    }

    /// Records a full page has: `limit`, or less when the server clamps it.
    fn page_size(&self, limit: u64) -> u64 {
        match self.largest_page {
            0 => limit,
            largest => largest.min(limit),
        }
    }

    fn advance(&mut self, records: u64) {
        match &self.paging {
            Pagination::Offset(_) => self.position += records,
            Pagination::Page(_) => self.position += 1,
            _ => {}
        }
    }

    fn follow(&mut self, current: &Url, next: &str) -> Result<Step, String> {
        let url = self
            .link_target(current, next)
            .map_err(|e| format!("the next link `{next}` is not a URL: {e}"))?;
        if !self.link_warned && url.origin() == self.base.origin() && url.path() == self.base.path()
        {
            let present: HashSet<String> = url.query_pairs().map(|(n, _)| n.into_owned()).collect();
            let missing: Vec<String> = self
                .base
                .query_pairs()
                .filter(|(name, _)| !present.contains(name.as_ref()))
                .map(|(name, _)| format!("`{name}`"))
                .collect();
            if !missing.is_empty() {
                self.link_warned = true;
                self.warnings.push(format!(
                    "the next link leaves out the list's parameters {}: it is followed as the API gave it, so check that the later pages are still filtered (APIs such as Shopify keep the filter in their page cursor)",
                    missing.join(", ")
                ));
            }
        }
        self.check_new(url.as_str(), "next link")?;
        Ok(Step::Fetch(url))
    }

    /// Where a next link leads from the page at `current`. A link that is only a query string
    /// (`?limit=4&page=1`: "the argument to attach to the url", as some APIs document it) is
    /// read as the list's own URL with those parameters: the list's other parameters (`query`,
    /// the cursor) stay, the link's own values win. Any other link is taken as it is: APIs
    /// such as Shopify refuse a cursor link with other parameters added.
    fn link_target(&self, current: &Url, next: &str) -> Result<Url, url::ParseError> {
        let mut url = current.join(next)?;
        if !next.starts_with('?') {
            return Ok(url);
        }
        let present: HashSet<String> = url
            .query_pairs()
            .map(|(name, _)| name.into_owned())
            .collect();
        let missing: Vec<(String, String)> = self
            .base
            .query_pairs()
            .filter(|(name, _)| !present.contains(name.as_ref()))
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect();
        if !missing.is_empty() {
            url.query_pairs_mut().extend_pairs(missing);
        }
        Ok(url)
    }

    fn check_new(&mut self, link: &str, what: &str) -> Result<(), String> {
        if self.followed.insert(link.to_string()) {
            Ok(())
        } else {
            Err(format!(
                "the API gave the same {what} twice: paging would go round in a loop"
            ))
        }
    }

    /// The base URL with the paging parameters of `position` (or `cursor`).
    fn stepped(&self, position: u64, cursor: Option<&str>) -> Url {
        let mut url = self.base.clone();
        {
            let mut query = url.query_pairs_mut();
            match &self.paging {
                Pagination::None(_) | Pagination::Next(_) => {}
                Pagination::Offset(p) => {
                    query.append_pair(&p.limit_param, &p.limit.to_string());
                    query.append_pair(&p.offset_param, &position.to_string());
                }
                Pagination::Page(p) => {
                    query.append_pair(&p.limit_param, &p.limit.to_string());
                    query.append_pair(&p.page_param, &position.to_string());
                }
                Pagination::Cursor(p) => {
                    if let Some(limit) = p.limit {
                        query.append_pair(&p.limit_param, &limit.to_string());
                    }
                    if let Some(cursor) = cursor {
                        query.append_pair(&p.cursor_param, cursor);
                    }
                }
            }
        }
        // `query_pairs_mut` leaves an empty `?` behind when nothing was added.
        if url.query() == Some("") {
            url.set_query(None);
        }
        url
    }

    /// The records the advertised total says to expect from the first page on.
    pub(super) fn expected(&self) -> Option<u64> {
        let total = self.total?;
        Some(match &self.paging {
            Pagination::Offset(p) => total.saturating_sub(p.first_offset),
            _ => total,
        })
    }
}

/// A value at `locator`: a body value as text (a string as it is, a number as written), a
/// header, or a `Link` relation's URL; `None` when absent or null.
fn read_value(
    locator: &Locator,
    headers: &HeaderMap,
    body: Option<&serde_json::Value>,
) -> Result<Option<String>, String> {
    Ok(match locator {
        Locator::Body(pointer) => match body.and_then(|b| b.pointer(pointer)) {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(text)) => Some(text.clone()),
            Some(value @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => {
                Some(value.to_string())
            }
            Some(_) => {
                return Err(format!("the value at `{pointer}` is not text or a number"));
            }
        },
        Locator::Header(name) => headers
            .get(name.as_str())
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_string()),
        Locator::Link(relation) => headers
            .get_all("link")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| link_relation(v, relation)),
    })
}

/// The URL of relation `relation` in a `Link` header: `<https://…?page=3>; rel="next", <…>;
/// rel="last"`.
fn link_relation(header: &str, relation: &str) -> Option<String> {
    header.split(',').find_map(|link| {
        let (target, params) = link.trim().split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        let found = params.split(';').any(|param| {
            param
                .trim()
                .strip_prefix("rel=")
                .map(|rel| rel.trim_matches('"'))
                .is_some_and(|rels| {
                    rels.split_whitespace()
                        .any(|r| r.eq_ignore_ascii_case(relation))
                })
        });
        found.then(|| target.to_string())
    })
}

fn shown(locator: Option<&Locator>) -> String {
    match locator {
        Some(Locator::Body(pointer)) => pointer.clone(),
        Some(Locator::Header(name)) => format!("header {name}"),
        Some(Locator::Link(relation)) => format!("link rel={relation}"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_headers_give_the_relation_asked_for() {
        let header = r#"<https://api.example.com/items?page=2>; rel="next", <https://api.example.com/items?page=9>; rel="last""#;
        assert_eq!(
            link_relation(header, "next").as_deref(),
            Some("https://api.example.com/items?page=2")
        );
        assert_eq!(
            link_relation(header, "last").as_deref(),
            Some("https://api.example.com/items?page=9")
        );
        assert_eq!(link_relation(header, "prev"), None);
        assert_eq!(
            link_relation("</x?c=1>; rel=\"next prefetch\"", "next").as_deref(),
            Some("/x?c=1")
        );
    }
}
