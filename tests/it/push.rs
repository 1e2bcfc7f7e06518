//! The `http` sink against an in-process model receiver that records every request and its
//! idempotency key, stores each key's records once (as an API honouring the key does), and
//! fails as receivers fail: a connection reset after it stored the body, 500 then 200, 429
//! with `Retry-After`, 422 for chosen records, 401. Every test checks the exact records
//! received, that no record arrived under two keys, and the exit code.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::support::Sandbox;
use crate::support::api::{ApiServer, Reply, Request};

/// What the receiver saw and kept.
#[derive(Default)]
struct Received {
    /// Every request's key, in order (retries included).
    keys: Vec<String>,
    /// The ids stored under each key (a key seen again is answered as before, not stored twice).
    stored: BTreeMap<String, Vec<u64>>,
    /// Requests answered so far.
    requests: usize,
    content_types: BTreeSet<String>,
}

impl Received {
    /// Every id stored, sorted, after checking that none is stored under two keys.
    fn ids(&self) -> Vec<u64> {
        let mut owners: BTreeMap<u64, &str> = BTreeMap::new();
        for (key, ids) in &self.stored {
            for id in ids {
                if let Some(other) = owners.insert(*id, key) {
                    panic!("record {id} arrived under two keys: {other} and {key}");
                }
            }
        }
        owners.into_keys().collect()
    }
}

/// How the receiver fails a request, by its number (1-based) and records.
enum Fault {
    /// Stores the records, then hangs up halfway through its answer: the ack is lost.
    StoreAndHangUp,
    Answer(Reply),
}

type Faults = Box<dyn FnMut(usize, &[u64]) -> Option<Fault> + Send>;

/// A receiver of `POST /bulk` with the records at `/records`.
fn receiver(mut faults: Faults) -> (ApiServer, Arc<Mutex<Received>>) {
    let received = Arc::new(Mutex::new(Received::default()));
    let seen = received.clone();
    let server = ApiServer::start(move |request: &Request| {
        let mut received = seen.lock().unwrap();
        received.requests += 1;
        let number = received.requests;
        let key = request
            .header("idempotency-key")
            .expect("every push has a key")
            .to_string();
        assert_eq!(key.len(), 64, "a SHA-256 in hex: {key}");
        received.keys.push(key.clone());
        if let Some(content_type) = request.header("content-type") {
            received.content_types.insert(content_type.to_string());
        }
        let body: Value = serde_json::from_slice(&request.body).expect("a JSON body");
        let ids: Vec<u64> = body["records"]
            .as_array()
            .expect("records in the envelope")
            .iter()
            .map(|r| r["id"].as_u64().expect("an id"))
            .collect();
        match faults(number, &ids) {
            Some(Fault::Answer(reply)) => return reply,
            Some(Fault::StoreAndHangUp) => {
                received.stored.entry(key).or_insert(ids);
                return Reply::HangUp {
                    body: br#"{"status": "stored", "padding": "................"}"#.to_vec(),
                };
            }
            None => {}
        }
        let replayed = received.stored.contains_key(&key);
        received.stored.entry(key).or_insert(ids);
        Reply::json(201, &json!({"status": "stored"})).header(
            "idempotent-replayed",
            if replayed { "true" } else { "false" },
        )
    });
    (server, received)
}

const TOKEN: &str = "s3cret-push-token";

/// Ids 1-15 in `in/a.ndjson`, 16-25 in `in/b.ndjson`; pipeline `p` pushes them to `server`
/// `batch` records a request, with `extra` lines in the sink table and `after` after it.
fn sandbox(server: &ApiServer, batch: usize, extra: &str, after: &str) -> Sandbox {
    let sandbox = Sandbox::new();
    let lines = |ids: std::ops::RangeInclusive<u64>| -> String {
        ids.map(|id| format!("{{\"id\": {id}, \"total\": {}}}\n", id * 10))
            .collect()
    };
    sandbox.write("in/a.ndjson", lines(1..=15));
    sandbox.write("in/b.ndjson", lines(16..=25));
    sandbox.write(
        "p.toml",
        format!(
            r#"name = "p"

[source]
type = "file"
path = "in/*.ndjson"

[[sinks]]
type = "http"
url = "{}"
batch_size = {batch}
envelope = "/records"
auth = {{ type = "bearer", token = "${{env:PUSH_TOKEN}}" }}
retry = {{ base_delay_ms = 10, max_delay_secs = 1 }}
{extra}
{after}"#,
            server.url("/bulk")
        ),
    );
    sandbox
}

fn run(sandbox: &Sandbox) -> crate::support::Outcome {
    crate::support::run({
        let mut command = sandbox.command(["run", "p.toml"]);
        command.env("PUSH_TOKEN", TOKEN);
        command
    })
}

fn all_ids() -> Vec<u64> {
    (1..=25).collect()
}

#[test]
fn push_sends_batches_in_an_envelope_once_with_a_key_each() {
    let (server, received) = receiver(Box::new(|_, _| None));
    let sandbox = sandbox(&server, 10, "", "");
    run(&sandbox).assert_success();
    {
        let received = received.lock().unwrap();
        assert_eq!(received.ids(), all_ids());
        // a.ndjson: 10 + 5, b.ndjson: 10; a unit's requests never mix files.
        assert_eq!(received.keys.len(), 3);
        assert_eq!(received.stored.len(), 3);
        let sizes: BTreeSet<usize> = received.stored.values().map(Vec::len).collect();
        assert_eq!(sizes, BTreeSet::from([5, 10]));
        assert_eq!(
            received.content_types,
            BTreeSet::from(["application/json".to_string()])
        );
    }
    let requests = server.requests();
    assert!(requests.iter().all(
        |r| r.method == "POST" && r.header("authorization") == Some(&format!("Bearer {TOKEN}"))
    ));
    // Nothing new: nothing sent.
    run(&sandbox).assert_success();
    assert_eq!(received.lock().unwrap().keys.len(), 3);
}

#[test]
fn push_retries_a_lost_ack_a_500_and_a_429_under_the_same_key() {
    let faults: Faults = Box::new(|number, _| match number {
        1 => Some(Fault::StoreAndHangUp),
        2 => Some(Fault::Answer(Reply::text(500, "Internal Server Error"))),
        3 => Some(Fault::Answer(
            Reply::json(429, &json!({"detail": "slow down"})).header("retry-after", "1"),
        )),
        _ => None,
    });
    let (server, received) = receiver(faults);
    let sandbox = sandbox(&server, 10, "", "");
    let started = std::time::Instant::now();
    let outcome = run(&sandbox);
    outcome.assert_success();
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "Retry-After was waited"
    );
    let received = received.lock().unwrap();
    assert_eq!(received.ids(), all_ids());
    // The first request was tried four times, with one key; two more requests after it.
    let keys = &received.keys;
    assert_eq!(keys.len(), 6, "{keys:?}");
    assert!(keys[..4].iter().all(|k| *k == keys[0]), "{keys:?}");
    assert_eq!(received.stored.len(), 3);
    assert!(
        outcome
            .stderr
            .contains("retrying in 1.0 s (the answer's Retry-After)"),
        "{}",
        outcome.stderr
    );
    assert!(!outcome.stderr.contains(TOKEN));
}

#[test]
fn push_refused_records_go_to_the_rejects_with_the_answer() {
    let faults: Faults = Box::new(|_, ids| {
        let bad: Vec<u64> = ids
            .iter()
            .copied()
            .filter(|id| [3, 17].contains(id))
            .collect();
        (!bad.is_empty()).then(|| {
            Fault::Answer(Reply::json(
                422,
                &json!({"errors": [format!("record {}: total is not allowed ({TOKEN})", bad[0])]}),
            ))
        })
    });
    let (server, received) = receiver(faults);
    let rejects = "\n[rejects]\npath = \"rejects/r.ndjson\"\n";
    let sandbox = sandbox(&server, 1, "", rejects);
    run(&sandbox).assert_success();
    let expected: Vec<u64> = all_ids()
        .into_iter()
        .filter(|id| ![3, 17].contains(id))
        .collect();
    assert_eq!(received.lock().unwrap().ids(), expected);
    let lines: Vec<Value> = sandbox
        .read("rejects/r.ndjson")
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    for (line, (id, file, position)) in lines.iter().zip([(3, "a.ndjson", 3), (17, "b.ndjson", 2)])
    {
        let raw: Value = serde_json::from_str(line["raw"].as_str().unwrap()).unwrap();
        assert_eq!(raw, json!({"id": id, "total": id * 10}));
        assert!(line["file"].as_str().unwrap().ends_with(file), "{line}");
        assert_eq!(line["record"], position);
        let reason = line["reason"].as_str().unwrap();
        assert!(
            reason.contains(&format!(
                "HTTP 422: record {id}: total is not allowed (***)"
            )),
            "{reason}"
        );
        assert!(reason.starts_with("POST http://127.0.0.1:"), "{reason}");
    }

    // Without `[rejects]`, the refusal fails the run.
    let (server, _) = receiver(Box::new(|_, ids| {
        ids.contains(&3)
            .then(|| Fault::Answer(Reply::json(422, &json!({"detail": "bad record"}))))
    }));
    let sandbox = self::sandbox(&server, 1, "", "");
    let outcome = run(&sandbox);
    outcome.assert_code(1);
    assert!(
        outcome.stderr.contains("HTTP 422: bad record"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn push_unauthorized_fails_the_run_at_once_with_the_answers_message() {
    let (server, received) = receiver(Box::new(|_, _| {
        Some(Fault::Answer(Reply::json(
            401,
            &json!({"detail": "Invalid token."}),
        )))
    }));
    let sandbox = sandbox(
        &server,
        10,
        "",
        "\n[rejects]\npath = \"rejects/r.ndjson\"\n",
    );
    let outcome = run(&sandbox);
    outcome.assert_code(1);
    assert!(
        outcome.stderr.contains("HTTP 401: Invalid token."),
        "{}",
        outcome.stderr
    );
    assert!(!outcome.stderr.contains(TOKEN));
    assert_eq!(received.lock().unwrap().requests, 1, "not retried");
    assert!(!sandbox.exists("rejects/r.ndjson"));
}

#[test]
fn push_crash_then_rerun_delivers_each_record_once_by_key() {
    for point in ["after-first-batch", "after-prepare", "after-intent"] {
        let (server, received) = receiver(Box::new(|_, _| None));
        let sandbox = sandbox(&server, 10, "", "");
        let crashed = {
            let mut command = sandbox.command(["run", "p.toml"]);
            command
                .env("PUSH_TOKEN", TOKEN)
                .env("LONGSHORE_CRASH_AT", point);
            command.output().expect("start the binary")
        };
        assert_eq!(crashed.status.signal(), Some(libc::SIGABRT), "{point}");
        run(&sandbox).assert_success();
        let received = received.lock().unwrap();
        assert_eq!(received.ids(), all_ids(), "{point}");
        // Three requests' worth of records, each acknowledged once: nothing was sent again
        // under a new key, and an acknowledged key was not sent again.
        assert_eq!(received.stored.len(), 3, "{point}");
        assert_eq!(received.keys.len(), 3, "{point}: {:?}", received.keys);
    }
}

#[test]
fn push_failed_run_resends_its_unacknowledged_request_with_the_same_key() {
    // The receiver stores the first request and the connection breaks; with one try the run
    // fails, and the rerun sends the same body under the same key: stored once.
    let (server, received) = receiver(Box::new(|number, _| {
        (number == 1).then_some(Fault::StoreAndHangUp)
    }));
    let sandbox = sandbox(&server, 10, "retry.attempts = 1\n", "");
    let sandbox_text = sandbox.read("p.toml").replace(
        "retry = { base_delay_ms = 10, max_delay_secs = 1 }\nretry.attempts = 1\n",
        "retry = { base_delay_ms = 10, max_delay_secs = 1, attempts = 1 }\n",
    );
    sandbox.write("p.toml", sandbox_text);
    run(&sandbox).assert_code(1);
    run(&sandbox).assert_success();
    let received = received.lock().unwrap();
    assert_eq!(received.ids(), all_ids());
    assert_eq!(received.keys[0], received.keys[1], "{:?}", received.keys);
    assert_eq!(received.stored.len(), 3);
}
