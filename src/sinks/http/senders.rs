//! Requests sent `concurrency` at a time. The sink prepares every request (its key, body and
//! signature) and settles every answer itself, on its own thread, so the outbox, the counts
//! and the rejects need no locks: these threads only send, through the one shared
//! [`Client`] (and so within its rate budget). With `concurrency = 1` no thread is started:
//! each request is sent as it is handed over. Requests handed over with the same lane go to
//! the same thread, so they are sent, and answered, in the order they came (`ordered`).

use std::collections::VecDeque;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use url::Url;

use crate::net::HttpError;
use crate::net::client::{Body, Client, Method, Post, Reading, Request, Sent, lock};

/// The largest answer read: enough for any acknowledgement.
const ANSWER_BYTES: u64 = 16 * 1024 * 1024;

/// One request, ready to go.
pub struct Outgoing {
    pub method: Method,
    pub url: Url,
    pub key: String,
    pub body: Vec<u8>,
    pub content_type: &'static str,
    pub idempotency_header: String,
    /// Headers of this request alone (its signature).
    pub headers: Vec<(String, String)>,
    /// Answers that are not retried: with a follow-up, the ones that send it.
    pub final_statuses: Vec<u16>,
}

/// A request and, when its answer is one of its `final_statuses`, the follow-up sent instead
/// (an upsert's PATCH after the create's 409); `ticket` comes back with the answers.
pub struct Job<T> {
    pub ticket: T,
    pub first: Outgoing,
    pub follow_up: Option<Outgoing>,
}

/// A job's requests as they went, in the order they were sent: none when it was not sent
/// (the sink stopped first).
pub struct Done<T> {
    pub ticket: T,
    pub steps: Vec<Step>,
}

/// One request's end.
pub struct Step {
    pub method: Method,
    pub url: Url,
    pub key: String,
    pub outcome: Outcome,
}

pub enum Outcome {
    /// A 2xx, with its body.
    Answered { status: u16, body: Vec<u8> },
    /// One of the request's final statuses or another 4xx, after the retries.
    Refused { status: u16, error: HttpError },
    /// A wait the request needed would pass the run's time limit: why. Not sent.
    OutOfTime(String),
    /// Failed for good: the run fails.
    Failed(HttpError),
}

/// Whether an answer with `status` (after the retries) refuses the request's records, which
/// then go to the rejects: a 4xx other than 401 and 403 (the credentials, which fail the run
/// at once), 409 (a key still in flight after every retry) and 429 (the rate limit).
pub fn refused_records(status: u16) -> bool {
    (400..500).contains(&status) && !matches!(status, 401 | 403 | 409 | 429)
}

/// Sends `outgoing` with every retry its client allows.
fn send(client: &Client, outgoing: Outgoing) -> Step {
    let Outgoing {
        method,
        url,
        key,
        body,
        content_type,
        idempotency_header,
        headers,
        final_statuses,
    } = outgoing;
    let request = Request {
        url,
        post: Some(Post {
            method,
            body,
            content_type,
            idempotency_header,
            idempotency_key: key,
            headers,
            final_statuses,
        }),
        reading: Reading::Whole(ANSWER_BYTES),
        credentials: true,
    };
    let sent = client.send(&request);
    let Request { url, post, .. } = request;
    let post = post.expect("built with a body above");
    let outcome = match sent {
        Ok(Sent::Answered(answer)) => Outcome::Answered {
            status: answer.status,
            body: match answer.body {
                Body::Whole(bytes) => bytes,
                Body::Stream(_) => Vec::new(),
            },
        },
        Ok(Sent::OutOfTime(reason)) => Outcome::OutOfTime(reason),
        Err(
            error @ HttpError::Request {
                status: Some(status),
                ..
            },
        ) if post.final_statuses.contains(&status) || refused_records(status) => {
            Outcome::Refused { status, error }
        }
        Err(error) => Outcome::Failed(error),
    };
    Step {
        method,
        url,
        key: post.idempotency_key,
        outcome,
    }
}

/// Sends a job's request, then its follow-up if the answer calls for it.
fn run<T>(client: &Client, job: Job<T>) -> Done<T> {
    let Job {
        ticket,
        first,
        follow_up,
    } = job;
    // An answer the request names as final: the record exists, the follow-up goes instead.
    let exists_on = first.final_statuses.clone();
    let first = send(client, first);
    let exists =
        matches!(first.outcome, Outcome::Refused { status, .. } if exists_on.contains(&status));
    let mut steps = vec![first];
    if exists && let Some(follow_up) = follow_up {
        steps.push(send(client, follow_up));
    }
    Done { ticket, steps }
}

/// Sends jobs, `concurrency` at a time, and hands back what became of them.
pub struct Senders<T> {
    client: Arc<Client>,
    /// `None` with `concurrency = 1`: jobs are sent as they are handed over.
    threads: Option<Threads<T>>,
    /// Jobs sent inline, not yet taken back.
    done: VecDeque<Done<T>>,
}

struct Threads<T> {
    /// One queue all threads take from; with `ordered`, one a thread.
    queues: Vec<Sender<Job<T>>>,
    results: Receiver<Done<T>>,
    handles: Vec<JoinHandle<()>>,
    /// Set when the run fails: queued jobs come back unsent.
    stop: Arc<AtomicBool>,
    /// Jobs handed over and not taken back.
    in_flight: usize,
    /// The most jobs in flight before [`Senders::submit`] waits for one to end: enough to
    /// keep every thread busy, few enough to bound the memory they hold.
    window: usize,
}

impl<T: Send + 'static> Senders<T> {
    /// `concurrency` threads sending through `client`; with `ordered`, each its own queue.
    pub fn new(client: Arc<Client>, concurrency: usize, ordered: bool) -> Self {
        if concurrency <= 1 {
            return Senders {
                client,
                threads: None,
                done: VecDeque::new(),
            };
        }
        let (results_tx, results) = channel();
        let stop = Arc::new(AtomicBool::new(false));
        let mut queues = Vec::new();
        let mut receivers = Vec::new();
        for _ in 0..if ordered { concurrency } else { 1 } {
            let (queue, receiver) = channel::<Job<T>>();
            queues.push(queue);
            receivers.push(Arc::new(Mutex::new(receiver)));
        }
        let handles = (0..concurrency)
            .map(|index| {
                let jobs = receivers[index % receivers.len()].clone();
                let (client, results, stop) = (client.clone(), results_tx.clone(), stop.clone());
                std::thread::Builder::new()
                    .name(format!("push-{index}"))
                    .spawn(move || {
                        loop {
                            // The lock is held while waiting: the others wait for it instead.
                            let Ok(job) = lock(&jobs).recv() else { return };
                            let done = if stop.load(Ordering::Relaxed) {
                                Done {
                                    ticket: job.ticket,
                                    steps: Vec::new(),
                                }
                            } else {
                                run(&client, job)
                            };
                            if results.send(done).is_err() {
                                return;
                            }
                        }
                    })
                    .expect("a thread starts")
            })
            .collect();
        Senders {
            client,
            threads: Some(Threads {
                queues,
                results,
                handles,
                stop,
                in_flight: 0,
                window: concurrency * 2,
            }),
            done: VecDeque::new(),
        }
    }

    /// Whether a job handed over now waits for another to end first.
    pub fn full(&self) -> bool {
        self.threads
            .as_ref()
            .is_some_and(|threads| threads.in_flight >= threads.window)
    }

    /// Hands `job` over; jobs with the same `lane` are sent in the order they come.
    pub fn submit(&mut self, lane: Option<&str>, job: Job<T>) {
        let Some(threads) = &mut self.threads else {
            self.done.push_back(run(&self.client, job));
            return;
        };
        let queue = match lane {
            Some(lane) if threads.queues.len() > 1 => {
                let mut hasher = DefaultHasher::new();
                lane.hash(&mut hasher);
                (hasher.finish() % threads.queues.len() as u64) as usize
            }
            _ => 0,
        };
        threads.in_flight += 1;
        threads.queues[queue]
            .send(job)
            .expect("the sending threads live as long as the queues");
    }

    /// A job that ended: with `wait`, the next one to end (`None` when none is in flight);
    /// else one that ended already, if any.
    pub fn next_done(&mut self, wait: bool) -> Option<Done<T>> {
        let Some(threads) = &mut self.threads else {
            return self.done.pop_front();
        };
        if threads.in_flight == 0 {
            return None;
        }
        let done = match wait {
            true => threads.results.recv().ok(),
            false => threads.results.try_recv().ok(),
        };
        if done.is_some() {
            threads.in_flight -= 1;
        }
        done
    }

    /// Sends nothing more: jobs not started yet come back with no steps.
    pub fn stop(&self) {
        if let Some(threads) = &self.threads {
            threads.stop.store(true, Ordering::Relaxed);
        }
    }
}

impl<T> Drop for Senders<T> {
    fn drop(&mut self) {
        if let Some(threads) = &mut self.threads {
            threads.stop.store(true, Ordering::Relaxed);
            // Closing the queues ends the threads once each finished its request.
            threads.queues.clear();
            for handle in threads.handles.drain(..) {
                let _ = handle.join();
            }
        }
    }
}
