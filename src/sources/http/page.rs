//! A page of the list: asked for (or its answer taken, when it was asked for ahead), its body
//! read into a decoder (with the values paging reads and the `error` check), the pages after it
//! asked for while it is decoded, its records decoded, and, once it is decoded, where paging
//! goes next.

use std::io::Read;
use std::sync::Arc;

use url::Url;

use super::body::{
    EXCERPT_BYTES, check_single_object, ends_a_list, explain_missing_records, page_values,
    reads_whole_document,
};
use super::list::pages;
use super::paging::{PageFacts, Step};
use super::{HttpError, HttpSource};
use crate::error::{CodecError, StageError};
use crate::net::client::{self, Answer, Body, Reading, Request, Sent};
use crate::record::{Batch, Origin, Reject};
use crate::stage::Decoder;

/// The page being decoded.
pub(super) struct Page {
    decoder: Box<dyn Decoder>,
    url: Url,
    /// Its number, from 1.
    pub(super) number: u64,
    facts: PageFacts,
    /// Its records decoded so far.
    pub(super) records: u64,
    /// The SHA-256 of a page of a list (to catch the same page served twice); `None` for a
    /// single answer, which streams.
    sha256: Option<String>,
    origin: Arc<Origin>,
    /// The start of the body, filled as it is read: shown when its records cannot be found.
    beginning: Arc<std::sync::Mutex<Vec<u8>>>,
}

/// Reads through `inner`, adding the bytes read to a counter (the progress display's) and
/// keeping the first ones (for messages).
struct Counting<R> {
    inner: R,
    counter: Arc<std::sync::atomic::AtomicU64>,
    beginning: Arc<std::sync::Mutex<Vec<u8>>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.counter
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        let mut beginning = client::lock(&self.beginning);
        let room = EXCERPT_BYTES.saturating_sub(beginning.len()).min(n);
        beginning.extend_from_slice(&buf[..room]);
        Ok(n)
    }
}

impl HttpSource {
    /// Requests the next page and starts decoding it; false when paging has ended.
    pub(super) fn open_next(&mut self) -> Result<bool, StageError> {
        if let Some((cursor, until)) = self.paging.job_for.take() {
            match self.run_job(cursor.as_deref(), until.as_deref())? {
                Some(file) => self.paging.next = Some(file),
                None => return Ok(false),
            }
        }
        let Some(url) = self.paging.next.take() else {
            return Ok(false);
        };
        if self
            .settings
            .max_pages
            .is_some_and(|max| self.paging.pages >= max)
        {
            self.stop_at_limit(format!("`max_pages` = {}", self.paging.pages));
            return Ok(false);
        }
        if self.cx.past_deadline() {
            self.stop_early(format!("stopped after {}", pages(self.paging.pages)));
            return Ok(false);
        }
        let reading = self.reading();
        self.send(&url, reading);
        let answer = match self.requests.fetcher.answer() {
            Ok(Sent::Answered(answer)) => answer,
            Ok(Sent::OutOfTime(reason)) => {
                self.stop_early(format!(
                    "stopped after {}: {reason}",
                    pages(self.paging.pages)
                ));
                return Ok(false);
            }
            Err(HttpError::Request {
                status: Some(status),
                ..
            }) if self.paging.paginator.confirming && ends_a_list(status) => {
                tracing::info!(
                    "the page after a short one was answered HTTP {status}: the list ended there"
                );
                let origin = Arc::new(Origin {
                    path: self.shown(&url),
                });
                self.end_list(&origin)?;
                return self.open_next();
            }
            Err(e) => return Err(e.into()),
        };
        self.paging.page = Some(self.open(answer, reading)?);
        Ok(true)
    }

    /// How a page's body is taken. Pages of a list are read whole, so that a connection that
    /// breaks off mid-page is retried; a single answer (an export) streams into the decoder
    /// whatever its size, unless a value must be read from its body (a total).
    fn reading(&self) -> Reading {
        if self.settings.pagination.is_paged() || !self.body_pointers().is_empty() {
            Reading::Whole(self.settings.max_page_bytes)
        } else {
            Reading::Stream
        }
    }

    /// Asks for the page at `url`, unless it was asked for ahead.
    fn send(&mut self, url: &Url, reading: Reading) {
        if self.requests.prefetched.front() == Some(url) {
            self.requests.prefetched.pop_front();
        } else {
            self.discard_prefetched();
            let request = Request::page_of(self.paging.paginator.base(), url.clone(), reading);
            self.requests.fetcher.request(request);
        }
    }

    /// The page `answer` is, counted; the pages after it, when they are known already, are
    /// asked for now: they arrive while this one is decoded.
    fn open(&mut self, answer: Answer, reading: Reading) -> Result<Page, StageError> {
        self.paging.pages += 1;
        let page = self.page_of(answer)?;
        if !self.cx.past_deadline() {
            self.ask_ahead(&page.url, &page.facts, reading);
        }
        Ok(page)
    }

    /// The page `answer` is, with its body read into its decoder (whole, hashed and with the
    /// values paging reads, or streamed) and what paging reads in its headers and body.
    fn page_of(&self, answer: Answer) -> Result<Page, StageError> {
        // Where redirects led: relative next links start there.
        let url = answer.url.clone();
        let shown = self.shown(&url);
        let label = format!("{shown} (page {})", self.paging.pages);
        let paging_error = |message: String| HttpError::Paging {
            url: label.clone(),
            message,
        };
        let beginning = Arc::default();
        let (decoder, sha256, facts) = match answer.body {
            Body::Whole(bytes) => {
                self.cx
                    .bytes_read
                    .fetch_add(bytes.len() as u64, std::sync::atomic::Ordering::Relaxed);
                let sha256 = crate::digest::sha256_hex(&bytes);
                let json = page_values(
                    &bytes,
                    self.paging.paginator.body_pointers(),
                    self.settings.body_error.as_ref(),
                    &label,
                    &self.requests.redactor,
                )?;
                let facts = self
                    .paging
                    .paginator
                    .facts(&answer.headers, json.as_ref())
                    .map_err(paging_error)?;
                *client::lock(&beginning) = bytes[..bytes.len().min(EXCERPT_BYTES)].to_vec();
                let decoder = self.settings.format.decoder_of_bytes(
                    bytes,
                    &label,
                    self.settings.encoding,
                    self.settings.max_record_bytes,
                )?;
                (decoder, Some(sha256), facts)
            }
            Body::Stream(stream) => {
                let facts = self
                    .paging
                    .paginator
                    .facts(&answer.headers, None)
                    .map_err(paging_error)?;
                let stream = Counting {
                    inner: stream,
                    counter: self.cx.bytes_read.clone(),
                    beginning: beginning.clone(),
                };
                let decoder = self.settings.format.decoder(
                    Box::new(stream),
                    &label,
                    self.settings.encoding,
                    self.settings.max_record_bytes,
                )?;
                (decoder, None, facts)
            }
        };
        Ok(Page {
            decoder,
            origin: Arc::new(Origin { path: shown }),
            url,
            number: self.paging.pages,
            facts,
            records: 0,
            sha256,
            beginning,
        })
    }

    /// Asks for the pages after the one at `url`, as far as paging can tell them from `facts`:
    /// `ahead` of them in all, not past `max_pages`.
    fn ask_ahead(&mut self, url: &Url, facts: &PageFacts, reading: Reading) {
        let room = self
            .settings
            .max_pages
            .map_or(u64::MAX, |max| max.saturating_sub(self.paging.pages));
        let ahead = self.requests.ahead.min(room);
        for k in self.requests.prefetched.len() as u64 + 1..=ahead {
            let Some(next) = self.paging.paginator.predict(url, facts, k) else {
                break;
            };
            let request = Request::page_of(self.paging.paginator.base(), next.clone(), reading);
            self.requests.fetcher.request(request);
            self.requests.prefetched.push_back(next);
        }
    }

    /// Pages asked for ahead that paging did not go to (the last page was not full after all,
    /// or the list ended): their answers, whatever they are, are not wanted.
    pub(super) fn discard_prefetched(&mut self) {
        for _ in self.requests.prefetched.drain(..) {
            let _ = self.requests.fetcher.answer();
        }
    }

    /// Decodes the open page's next records into `out` (held instead, in a window that may be
    /// capped; the last run's left out); at its end, finishes it. True when `out` is to be
    /// handed out.
    pub(super) fn decode(&mut self, out: &mut Batch, max: usize) -> Result<bool, StageError> {
        let page = self.paging.page.as_mut().expect("a page is open");
        match page.decoder.next_batch(&mut out.records, max) {
            Ok(true) => {
                let got = out.records.len() as u64;
                page.records += got;
                self.paging.received += got;
                out.origin = Some(page.origin.clone());
                if let Some(typing) = &self.settings.typing {
                    // Numbered within the page, named as the decoder names its bad records.
                    typing.apply_to_decoded(
                        &mut out.records,
                        &format!("{} (page {})", page.origin.path, page.number),
                        page.records - got,
                        self.cx.quarantine,
                        &mut out.rejects,
                    )?;
                }
                if page.records == 1 && reads_whole_document(&self.settings.format) {
                    let paged = self.settings.pagination.is_paged();
                    let checked = self.settings.body_error.is_some();
                    if let Some(warning) =
                        check_single_object(&out.records, &page.beginning, paged, checked).map_err(
                            |message| HttpError::Paging {
                                url: format!("{} (page {})", page.origin.path, page.number),
                                message: client::lock(&self.requests.redactor).text(&message),
                            },
                        )?
                    {
                        tracing::warn!("{warning}");
                        self.report.warnings.push(warning);
                    }
                }
                if let Some(held) = &mut self.delivery.held {
                    // Held until the window proves not capped.
                    held.append(&mut out.records);
                    return Ok(false);
                }
                if let Some(delta) = &mut self.delivery.delta {
                    let first = page.records - got + 1;
                    delta
                        .filter(&mut out.records, first)
                        .map_err(|message| HttpError::Paging {
                            url: format!("{} (page {})", page.origin.path, page.number),
                            message,
                        })?;
                }
                self.delivery.delivered += out.records.len() as u64;
                Ok(!out.records.is_empty())
            }
            Ok(false) => {
                let mut page = self.paging.page.take().expect("a page is open");
                for warning in page.decoder.take_warnings() {
                    tracing::warn!("{warning}");
                    self.report.warnings.push(warning);
                }
                self.finish_page(page)?;
                Ok(!out.rejects.is_empty())
            }
            Err(CodecError::BadRecord { malformed, raw }) if self.cx.quarantine => {
                page.records += 1;
                self.paging.received += 1;
                out.origin = Some(page.origin.clone());
                out.rejects.push(Reject::of_bad_record(*malformed, raw));
                Ok(out.rejects.len() >= max)
            }
            Err(CodecError::Malformed(mut malformed)) if malformed.position.line.is_none() => {
                explain_missing_records(&mut malformed, &page.beginning, &self.requests.redactor);
                Err(CodecError::Malformed(malformed).into())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The page is decoded: decides what comes next.
    fn finish_page(&mut self, page: Page) -> Result<(), StageError> {
        self.report.progress.units += 1;
        if self
            .settings
            .max_records
            .is_some_and(|max| self.delivery.delivered >= max)
        {
            self.stop_at_limit(format!("`max_records` = {}", self.delivery.delivered));
            return Ok(());
        }
        let step = self
            .paging
            .paginator
            .after(&page.url, page.facts, page.records, page.sha256)
            .map_err(|message| HttpError::Paging {
                url: format!("{} (page {})", page.origin.path, page.number),
                message,
            })?;
        for warning in self.paging.paginator.warnings.drain(..) {
            tracing::warn!("{warning}");
            self.report.warnings.push(warning);
        }
        match step {
            Step::Fetch(url) => self.paging.next = Some(url),
            Step::End(reason) => {
                tracing::debug!("paging ended after {} pages: {reason}", self.paging.pages);
                self.end_list(&page.origin)?;
            }
        }
        Ok(())
    }
}
