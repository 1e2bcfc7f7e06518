//! Requests run on threads of their own, so that the next pages can be on their way while the
//! source decodes this one: against a fast API, decoding a page takes as long as fetching it,
//! and the two overlap. With `concurrency = N`, N threads take requests from one queue (each
//! keeps its own keep-alive connection); answers are handed back in the order asked, so
//! records keep their order.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::HttpError;
use crate::net::client::{Client, Request, Sent, lock};
use crate::state::report::RequestCounts;

type Answer = Result<Sent, HttpError>;

pub(super) struct Fetcher {
    client: Arc<Client>,
    requests: mpsc::Sender<(u64, Request)>,
    answers: mpsc::Receiver<(u64, Answer)>,
    /// Answers that came before an older one.
    early: BTreeMap<u64, Answer>,
    /// The number of the next request, and of the next answer to hand back.
    next_request: u64,
    next_answer: u64,
}

impl Fetcher {
    /// `threads` threads sending requests through `client`, which other fetchers may share.
    pub(super) fn start(client: Arc<Client>, threads: usize) -> std::io::Result<Self> {
        let (requests, queue) = mpsc::channel::<(u64, Request)>();
        let queue = Arc::new(Mutex::new(queue));
        let (reply, answers) = mpsc::channel();
        for _ in 0..threads.max(1) {
            let (client, queue, reply) = (client.clone(), queue.clone(), reply.clone());
            std::thread::Builder::new()
                .name("http-fetch".into())
                .spawn(move || {
                    // Ends when the source is dropped: the queue closes, or no one takes answers.
                    loop {
                        let asked_at = Instant::now();
                        let next = lock(&queue).recv();
                        let Ok((number, request)) = next else { return };
                        if number > 0 {
                            client.add_wait_for_decoder(asked_at.elapsed());
                        }
                        if reply.send((number, client.send(&request))).is_err() {
                            return;
                        }
                    }
                })?;
        }
        Ok(Fetcher {
            client,
            requests,
            answers,
            early: BTreeMap::new(),
            next_request: 0,
            next_answer: 0,
        })
    }

    /// Sends a request; its answer comes from [`Fetcher::answer`], in the order asked.
    pub(super) fn request(&mut self, request: Request) {
        // A closed queue (the threads are gone) shows as a missing answer.
        let _ = self.requests.send((self.next_request, request));
        self.next_request += 1;
    }

    /// The answer to the oldest request not yet answered.
    pub(super) fn answer(&mut self) -> Answer {
        let wanted = self.next_answer;
        self.next_answer += 1;
        loop {
            if let Some(answer) = self.early.remove(&wanted) {
                return answer;
            }
            match self.answers.recv() {
                Ok((number, answer)) if number == wanted => return answer,
                Ok((number, answer)) => {
                    self.early.insert(number, answer);
                }
                Err(_) => {
                    return Err(HttpError::Paging {
                        url: String::new(),
                        message: "the HTTP threads stopped".into(),
                    });
                }
            }
        }
    }

    pub(super) fn counts(&self) -> RequestCounts {
        self.client.counts()
    }

    /// The client the requests go through, to share with another fetcher.
    pub(super) fn client(&self) -> Arc<Client> {
        self.client.clone()
    }
}
