//! Requests run on a thread of their own, one after the other on the client's keep-alive
//! connection, so that the next page can be on its way while the source decodes this one:
//! against a fast API, decoding a page takes as long as fetching it, and the two now overlap.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use super::client::{Client, Request, Sent};
use super::{HttpError, RequestCounts};

pub(super) struct Fetcher {
    requests: mpsc::Sender<Request>,
    answers: mpsc::Receiver<Result<Sent, HttpError>>,
    counts: Arc<Mutex<RequestCounts>>,
}

impl Fetcher {
    pub(super) fn start(mut client: Client) -> std::io::Result<Self> {
        let (requests, queue) = mpsc::channel::<Request>();
        let (reply, answers) = mpsc::channel();
        let counts = Arc::new(Mutex::new(RequestCounts::default()));
        let shared = counts.clone();
        std::thread::Builder::new()
            .name("http-fetch".into())
            .spawn(move || {
                // Ends when the source is dropped (the queue closes or the answer has no taker).
                for request in queue {
                    let answer = client.send(&request);
                    *shared.lock().unwrap_or_else(|e| e.into_inner()) = client.counts.clone();
                    if reply.send(answer).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Fetcher {
            requests,
            answers,
            counts,
        })
    }

    /// Sends a request; its answer comes from [`Fetcher::answer`], in the order asked.
    pub(super) fn request(&mut self, request: Request) {
        // A closed queue (the thread is gone) shows as a missing answer.
        let _ = self.requests.send(request);
    }

    /// The answer to the oldest request not yet answered.
    pub(super) fn answer(&mut self) -> Result<Sent, HttpError> {
        self.answers.recv().unwrap_or_else(|_| {
            Err(HttpError::Paging {
                url: String::new(),
                message: "the HTTP thread stopped".into(),
            })
        })
    }

    pub(super) fn counts(&self) -> RequestCounts {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
