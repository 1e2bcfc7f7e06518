//! Asynchronous exports (`job`): for APIs that prepare a large file in the background, a job
//! is created (POST, with an `Idempotency-Key` that stays the same across retries, so a retried
//! request creates one job), its status polled with doubling waits, and the file downloaded
//! and decoded like any answer.

use std::time::{Duration, Instant};

use url::Url;

use super::body::parse_json;
use super::list_url::{encoded, fill};
use super::{HttpError, HttpSource};
use crate::backoff::Backoff;
use crate::error::StageError;
use crate::net::client::{self, Answer, Body, Post, Reading, Request, Sent};

/// The most bytes an export job's create or status answer may have.
const JOB_ANSWER_BYTES: u64 = 1024 * 1024;

/// The longest wait between two polls of an export job.
const MAX_POLL_WAIT: Duration = Duration::from_secs(60);

/// The value at `pointer` as text (a string as it is, a number as written).
fn json_text(json: &serde_json::Value, pointer: &str) -> Option<String> {
    match json.pointer(pointer)? {
        serde_json::Value::String(text) => Some(text.clone()),
        serde_json::Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

impl HttpSource {
    /// Creates an export job for the records from `cursor` until `until`, waits until it is
    /// ready, and gives the URL of its file; `None` when the run's time runs out first.
    pub(super) fn run_job(
        &mut self,
        cursor: Option<&str>,
        until: Option<&str>,
    ) -> Result<Option<Url>, StageError> {
        let job = self
            .settings
            .job
            .clone()
            .expect("called with a job configured");
        let empty = serde_json::json!({});
        let body = fill(job.body.as_ref().unwrap_or(&empty), cursor, until).ok_or_else(|| {
            StageError::Refused(
                "`job.body` uses `{cursor}` or `{until}`, and this run has no value for it: set `incremental.initial`"
                    .into(),
            )
        })?;
        let create_url = Url::parse(&job.create_url)
            .map_err(|e| StageError::Refused(format!("`job.create_url`: {e}")))?;
        self.paging.jobs += 1;
        let create = Request {
            url: create_url.clone(),
            post: Some(Post::json(
                body.to_string().into_bytes(),
                format!("{}-export-{}", self.cx.run_id, self.paging.jobs),
            )),
            reading: Reading::Whole(JOB_ANSWER_BYTES),
            credentials: true,
        };
        let Some(created) = self.call(create)? else {
            return Ok(None);
        };
        let id = json_text(&created, &job.id).ok_or_else(|| {
            self.job_error(
                &create_url,
                format!("the answer has no job id at `{}`", job.id),
            )
        })?;
        let status_url = Url::parse(&job.status_url.replace("{id}", &encoded(&id)))
            .map_err(|e| StageError::Refused(format!("`job.status_url`: {e}")))?;
        tracing::info!(job = %id, "export job created; waiting for it");
        let started = Instant::now();
        let mut waits = Backoff::doubling(Duration::from_secs(job.poll_secs), MAX_POLL_WAIT);
        let mut wait = waits.next_wait();
        let mut status = String::from("not polled yet");
        loop {
            if started.elapsed() + wait > Duration::from_secs(job.max_wait_secs) {
                let message = format!(
                    "export job {id} was not ready within `job.max_wait_secs` = {} (last status `{status}`)",
                    job.max_wait_secs
                );
                return Err(self.job_error(&status_url, message).into());
            }
            if self
                .cx
                .deadline
                .is_some_and(|deadline| Instant::now() + wait > deadline)
            {
                self.stop_early(format!(
                    "export job {id} was not ready (status `{status}`) when the run's time ran out"
                ));
                return Ok(None);
            }
            std::thread::sleep(wait);
            wait = waits.next_wait();
            let poll = Request::get(status_url.clone(), Reading::Whole(JOB_ANSWER_BYTES));
            let Some(answer) = self.call(poll)? else {
                return Ok(None);
            };
            status = json_text(&answer, &job.status).unwrap_or_default();
            if job.ready.contains(&status) {
                let Some(pointer) = &job.download else {
                    return self.settings.list.url(cursor, until, Some(&id)).map(Some);
                };
                let link = json_text(&answer, pointer).ok_or_else(|| {
                    let message = format!("the ready job has no download link at `{pointer}`");
                    self.job_error(&status_url, message)
                })?;
                let file = status_url.join(&link).map_err(|e| {
                    self.job_error(&status_url, format!("the download link is not a URL: {e}"))
                })?;
                return Ok(Some(file));
            }
            if job.failed.contains(&status) {
                let detail = client::json_error_detail(&answer)
                    .map_or_else(String::new, |detail| format!(": {detail}"));
                let message = format!("export job {id} failed with status `{status}`{detail}");
                return Err(self.job_error(&status_url, message).into());
            }
        }
    }

    /// Sends one request on the fetch thread and parses its answer as JSON; `None` when the
    /// run's time ran out.
    fn call(&mut self, request: Request) -> Result<Option<serde_json::Value>, StageError> {
        self.discard_prefetched();
        let label = self.shown(&request.url);
        self.requests.fetcher.request(request);
        match self.requests.fetcher.answer()? {
            Sent::OutOfTime(reason) => {
                self.stop_early(reason);
                Ok(None)
            }
            Sent::Answered(Answer {
                body: Body::Whole(bytes),
                ..
            }) => Ok(Some(parse_json(&bytes, &label)?)),
            Sent::Answered(_) => unreachable!("a whole answer was asked for"),
        }
    }

    fn job_error(&self, url: &Url, message: String) -> HttpError {
        HttpError::Paging {
            url: self.shown(url),
            message,
        }
    }
}
