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
        let ids = batch_ids(request);
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

/// The ids a batch request carries, read as its `Content-Type` says: JSON records at
/// `/records`, NDJSON lines, or CSV rows under a header.
fn batch_ids(request: &Request) -> Vec<u64> {
    let text = std::str::from_utf8(&request.body).expect("a UTF-8 body");
    match request.header("content-type").expect("a content type") {
        "application/json" => serde_json::from_str::<Value>(text).expect("a JSON body")["records"]
            .as_array()
            .expect("records in the envelope")
            .iter()
            .map(|r| r["id"].as_u64().expect("an id"))
            .collect(),
        "application/x-ndjson" => text
            .lines()
            .map(|line| {
                serde_json::from_str::<Value>(line).expect("a JSON line")["id"]
                    .as_u64()
                    .expect("an id")
            })
            .collect(),
        "text/csv" => {
            let mut lines = text.lines();
            let header: Vec<&str> = lines.next().expect("a header").split(',').collect();
            assert_eq!(header, ["id", "total"], "{text}");
            lines
                .map(|line| line.split(',').next().unwrap().parse().expect("an id"))
                .collect()
        }
        other => panic!("unexpected content type {other}"),
    }
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
        // Three requests' worth of records, stored once each: nothing was sent under a new
        // key. A kill in the middle of the input loses the acknowledgements of the outbox's
        // last unwritten group (see `OUTBOX_GROUP`), which are sent again under the same keys;
        // once the input has ended, every acknowledgement is written and none is sent again.
        assert_eq!(received.stored.len(), 3, "{point}");
        let distinct: std::collections::HashSet<&String> = received.keys.iter().collect();
        assert_eq!(distinct.len(), 3, "{point}: {:?}", received.keys);
        if point != "after-first-batch" {
            assert_eq!(received.keys.len(), 3, "{point}: {:?}", received.keys);
        }
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

#[test]
fn push_ndjson_and_csv_bodies_arrive_with_their_content_type() {
    for (format, content_type) in [("ndjson", "application/x-ndjson"), ("csv", "text/csv")] {
        let (server, received) = receiver(Box::new(|_, _| None));
        let sandbox = sandbox(&server, 10, "", "");
        let text = sandbox.read("p.toml").replace(
            "envelope = \"/records\"",
            &format!("format = {{ type = \"{format}\" }}"),
        );
        sandbox.write("p.toml", text);
        run(&sandbox).assert_success();
        let received = received.lock().unwrap();
        assert_eq!(received.ids(), all_ids(), "{format}");
        assert_eq!(received.stored.len(), 3, "{format}");
        assert_eq!(
            received.content_types,
            BTreeSet::from([content_type.to_string()]),
            "{format}"
        );
    }
}

/// A resource API in the style of Stripe's: `POST /orders/` creates (409 when the id exists),
/// `PUT`, `PATCH` and `DELETE /orders/{id}/` replace, change and remove. Its idempotency layer
/// keeps each key's request and answer: a known key with the same body is answered as before
/// with `Idempotent-Replayed: true`, with another body 422 (counted: the sink must never cause
/// one). Optional: the HMAC-SHA256 secret every body's `X-Signature` is checked against.
#[derive(Default)]
struct Api {
    /// Every request: method, path, key, body.
    requests: Vec<(String, String, String, String)>,
    orders: BTreeMap<String, Value>,
    /// Each key's body and answer.
    answers: BTreeMap<String, (Vec<u8>, u16, Value)>,
    replayed: usize,
    key_conflicts: usize,
    bad_signatures: usize,
    signed: usize,
}

type ApiFaults = Box<dyn FnMut(usize, &Request) -> Option<Fault> + Send>;

fn order_id(path: &str) -> Option<String> {
    let segment = path.strip_prefix("/orders/")?.strip_suffix('/')?;
    (!segment.is_empty()).then(|| {
        url::form_urlencoded::parse(format!("x={segment}").as_bytes())
            .next()
            .unwrap()
            .1
            .into_owned()
    })
}

fn id_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// HMAC-SHA256 as RFC 2104 defines it, over SHA-256 (not the sink's code).
fn hmac_sha256(key: &[u8], message: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let mut block = [0u8; 64];
    block[..key.len()].copy_from_slice(key);
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    let outer = Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize();
    outer.iter().map(|b| format!("{b:02x}")).collect()
}

fn api(secret: Option<&'static str>, mut faults: ApiFaults) -> (ApiServer, Arc<Mutex<Api>>) {
    let state = Arc::new(Mutex::new(Api::default()));
    let seen = state.clone();
    let server = ApiServer::start(move |request: &Request| {
        let mut api = seen.lock().unwrap();
        let key = request
            .header("idempotency-key")
            .expect("every push has a key")
            .to_string();
        let body = String::from_utf8(request.body.clone()).unwrap();
        api.requests.push((
            request.method.clone(),
            request.path.clone(),
            key.clone(),
            body,
        ));
        if let Some(secret) = secret {
            api.signed += 1;
            let expected = format!("sha256={}", hmac_sha256(secret.as_bytes(), &request.body));
            if request.header("x-signature") != Some(expected.as_str()) {
                api.bad_signatures += 1;
                return Reply::json(401, &json!({"detail": "bad signature"}));
            }
        }
        let number = api.requests.len();
        let fault = faults(number, request);
        if let Some(Fault::Answer(reply)) = fault {
            return reply;
        }
        if let Some((body, status, answer)) = api.answers.get(&key).cloned() {
            if body != request.body {
                api.key_conflicts += 1;
                return Reply::json(
                    422,
                    &json!({"detail": "this key was used with another body"}),
                );
            }
            api.replayed += 1;
            return Reply::json(status, &answer).header("idempotent-replayed", "true");
        }
        let (status, answer) = api.apply(request);
        api.answers
            .insert(key, (request.body.clone(), status, answer.clone()));
        match fault {
            Some(Fault::StoreAndHangUp) => Reply::HangUp {
                body: answer.to_string().into_bytes(),
            },
            _ => Reply::json(status, &answer).header("idempotent-replayed", "false"),
        }
    });
    (server, state)
}

impl Api {
    fn apply(&mut self, request: &Request) -> (u16, Value) {
        let body = || -> Value { serde_json::from_slice(&request.body).expect("a JSON object") };
        match (request.method.as_str(), order_id(&request.path)) {
            ("POST", None) if request.path == "/orders/" => {
                let order = body();
                let id = id_text(&order["id"]);
                if self.orders.contains_key(&id) {
                    return (409, json!({"detail": format!("order {id} exists")}));
                }
                self.orders.insert(id, order.clone());
                (201, order)
            }
            ("PUT", Some(id)) => {
                self.orders.insert(id, body());
                (200, json!({"status": "replaced"}))
            }
            ("PATCH", Some(id)) => match self.orders.get_mut(&id) {
                Some(order) => {
                    for (name, value) in body().as_object().unwrap() {
                        order[name] = value.clone();
                    }
                    (200, order.clone())
                }
                None => (404, json!({"detail": "no such order"})),
            },
            ("DELETE", Some(id)) => match self.orders.remove(&id) {
                Some(_) => (204, json!({})),
                None => (404, json!({"detail": "no such order"})),
            },
            _ => (404, json!({"detail": "no such route"})),
        }
    }

    /// Every request as (method, path, body), in order.
    fn seen(&self) -> Vec<(&str, &str, &str)> {
        self.requests
            .iter()
            .map(|(m, p, _, b)| (m.as_str(), p.as_str(), b.as_str()))
            .collect()
    }

    /// Every key sent, after checking that none went with two bodies.
    fn distinct_keys(&self) -> BTreeSet<&str> {
        assert_eq!(self.key_conflicts, 0, "a key was sent with two bodies");
        self.requests.iter().map(|r| r.2.as_str()).collect()
    }
}

/// A pipeline `p` pushing `in/a.ndjson` (`lines`) to `server` per record, with `sink` lines.
fn record_sandbox(server: &ApiServer, lines: &str, sink: &str, after: &str) -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.write("in/a.ndjson", lines);
    let sink = sink.replace("{base}", &server.url(""));
    sandbox.write(
        "p.toml",
        format!(
            r#"name = "p"

[source]
type = "file"
path = "in/*.ndjson"

[[sinks]]
type = "http"
mode = "record"
retry = {{ base_delay_ms = 10, max_delay_secs = 1 }}
{sink}
{after}"#
        ),
    );
    sandbox
}

fn orders(ids: impl IntoIterator<Item = u64>) -> String {
    ids.into_iter()
        .map(|id| {
            format!(
                "{{\"id\": {id}, \"status\": \"open\", \"total\": {}}}\n",
                id * 10
            )
        })
        .collect()
}

#[test]
fn push_per_record_patch_goes_to_the_url_the_record_names() {
    let (server, api) = api(None, Box::new(|_, _| None));
    {
        let mut api = api.lock().unwrap();
        for id in ["1", "A/7 b?", "3"] {
            api.orders
                .insert(id.into(), json!({"id": id, "status": "new", "total": 0}));
        }
    }
    let lines = "{\"id\": 1, \"status\": \"open\", \"total\": 10}\n\
                 {\"status\": \"open\", \"total\": 20}\n\
                 {\"id\": \"A/7 b?\", \"status\": \"paid\", \"total\": 30}\n\
                 {\"id\": 3, \"status\": \"void\", \"total\": 40, \"note\": \"x\"}\n";
    let sink =
        "url = \"{base}/orders/{id}/\"\nmethod = \"PATCH\"\nfields = [\"total\", \"status\"]";
    let rejects = "\n[rejects]\npath = \"rejects/r.ndjson\"\n";
    let sandbox = record_sandbox(&server, lines, sink, rejects);
    run(&sandbox).assert_success();
    {
        let api = api.lock().unwrap();
        let seen = api.seen();
        assert_eq!(
            seen,
            [
                ("PATCH", "/orders/1/", r#"{"total":10,"status":"open"}"#),
                (
                    "PATCH",
                    "/orders/A%2F7%20b%3F/",
                    r#"{"total":30,"status":"paid"}"#
                ),
                ("PATCH", "/orders/3/", r#"{"total":40,"status":"void"}"#),
            ]
        );
        assert_eq!(api.distinct_keys().len(), 3);
        assert_eq!(api.orders["A/7 b?"]["status"], "paid");
    }
    let lines: Vec<Value> = sandbox
        .read("rejects/r.ndjson")
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["record"], 2);
    let reason = lines[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("the record has no `id` for the URL"),
        "{reason}"
    );
    // Nothing new: nothing sent.
    run(&sandbox).assert_success();
    assert_eq!(api.lock().unwrap().requests.len(), 3);

    // Without `[rejects]` the record without an id fails the run, naming the field.
    let (server, _) = self::api(None, Box::new(|_, _| None));
    let sandbox = record_sandbox(&server, lines_without_id(), sink, "");
    let outcome = run(&sandbox);
    outcome.assert_code(1);
    assert!(
        outcome
            .stderr
            .contains("the record has no `id` for the URL"),
        "{}",
        outcome.stderr
    );
}

fn lines_without_id() -> &'static str {
    "{\"status\": \"open\"}\n"
}

#[test]
fn push_upsert_creates_or_patches_each_record_once_with_a_key_per_request() {
    let (server, api) = api(None, Box::new(|_, _| None));
    {
        let mut api = api.lock().unwrap();
        for id in [2u64, 5] {
            api.orders.insert(
                id.to_string(),
                json!({"id": id, "status": "new", "total": 0}),
            );
        }
    }
    let sink = "url = \"{base}/orders/\"\nupsert = { on = [409], method = \"PATCH\", url = \"{base}/orders/{id}/\" }";
    let sandbox = record_sandbox(&server, &orders(1..=6), sink, "");
    run(&sandbox).assert_success();
    {
        let api = api.lock().unwrap();
        let seen: Vec<(&str, &str)> = api
            .requests
            .iter()
            .map(|(m, p, _, _)| (m.as_str(), p.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                ("POST", "/orders/"),
                ("POST", "/orders/"),
                ("PATCH", "/orders/2/"),
                ("POST", "/orders/"),
                ("POST", "/orders/"),
                ("POST", "/orders/"),
                ("PATCH", "/orders/5/"),
                ("POST", "/orders/"),
            ]
        );
        // Every request its own key, the follow-up's too.
        assert_eq!(api.distinct_keys().len(), 8);
        let expected: BTreeMap<String, Value> = (1..=6u64)
            .map(|id| {
                (
                    id.to_string(),
                    json!({"id": id, "status": "open", "total": id * 10}),
                )
            })
            .collect();
        assert_eq!(api.orders, expected);
    }
    run(&sandbox).assert_success();
    assert_eq!(api.lock().unwrap().requests.len(), 8, "nothing sent again");
}

#[test]
fn push_upsert_rerun_after_a_crash_sends_each_follow_up_once() {
    // The first run dies after the sink sent everything; the rerun finds every create and
    // follow-up acknowledged in the outbox and sends nothing.
    let (server, api) = api(None, Box::new(|_, _| None));
    api.lock()
        .unwrap()
        .orders
        .insert("2".into(), json!({"id": 2, "status": "new", "total": 0}));
    let sink = "url = \"{base}/orders/\"\nupsert = { url = \"{base}/orders/{id}/\" }";
    let sandbox = record_sandbox(&server, &orders(1..=3), sink, "");
    let mut command = sandbox.command(["run", "p.toml"]);
    command.env("LONGSHORE_CRASH_AT", "after-prepare");
    let crashed = command.output().expect("start the binary");
    assert_eq!(crashed.status.signal(), Some(libc::SIGABRT));
    run(&sandbox).assert_success();
    let api = api.lock().unwrap();
    assert_eq!(api.requests.len(), 4, "{:?}", api.requests);
    assert_eq!(api.distinct_keys().len(), 4);
}

#[test]
fn push_signs_every_body_with_hmac_sha256() {
    const SECRET: &str = "whsec-0123456789";
    let (server, api) = api(Some(SECRET), Box::new(|_, _| None));
    let sink = "url = \"{base}/orders/{id}/\"\nmethod = \"PUT\"\nsignature = { secret = \"${env:CALLBACK_SECRET}\" }";
    let sandbox = record_sandbox(&server, &orders(1..=4), sink, "");
    let outcome = crate::support::run({
        let mut command = sandbox.command(["run", "p.toml", "-v"]);
        command.env("CALLBACK_SECRET", SECRET);
        command
    });
    outcome.assert_success();
    assert!(!outcome.stderr.contains(SECRET));
    let api = api.lock().unwrap();
    assert_eq!((api.signed, api.bad_signatures), (4, 0));
    assert_eq!(api.orders.len(), 4);

    // A wrong secret: the receiver's 401 fails the run at once.
    let (server, _) = self::api(Some(SECRET), Box::new(|_, _| None));
    let sandbox = record_sandbox(&server, &orders(1..=4), sink, "");
    let outcome = crate::support::run({
        let mut command = sandbox.command(["run", "p.toml"]);
        command.env("CALLBACK_SECRET", "not-the-secret");
        command
    });
    outcome.assert_code(1);
    assert!(
        outcome.stderr.contains("HTTP 401: bad signature"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn push_a_409_for_a_key_in_flight_is_retried_later_under_the_same_key() {
    let (server, api) = api(
        None,
        Box::new(|number, _| {
            matches!(number, 2 | 3).then(|| {
                Fault::Answer(Reply::json(
                    409,
                    &json!({"detail": "a request with this key is in progress"}),
                ))
            })
        }),
    );
    let sink = "url = \"{base}/orders/{id}/\"\nmethod = \"PUT\"";
    let sandbox = record_sandbox(&server, &orders(1..=3), sink, "");
    run(&sandbox).assert_success();
    let api = api.lock().unwrap();
    let keys: Vec<&str> = api.requests.iter().map(|r| r.2.as_str()).collect();
    assert_eq!(keys.len(), 5, "{keys:?}");
    assert!(keys[1] == keys[2] && keys[2] == keys[3], "{keys:?}");
    assert_eq!(api.distinct_keys().len(), 3);
    assert_eq!(api.orders.len(), 3);
}

#[test]
fn push_an_idempotent_receiver_never_sees_a_key_with_another_body() {
    // Lost acks, a 500, a run that fails with the first try only, a crash: every retry and
    // rerun sends the same body under the same key, so the receiver replays its answers and
    // never answers 422.
    let (server, api) = api(
        None,
        Box::new(|number, _| match number {
            1 | 4 => Some(Fault::StoreAndHangUp),
            6 => Some(Fault::Answer(Reply::text(500, "Internal Server Error"))),
            _ => None,
        }),
    );
    let sink = "url = \"{base}/orders/\"\nupsert = { url = \"{base}/orders/{id}/\" }";
    api.lock()
        .unwrap()
        .orders
        .insert("3".into(), json!({"id": 3, "status": "new", "total": 0}));
    let sandbox = record_sandbox(&server, &orders(1..=6), sink, "");
    run(&sandbox).assert_success();
    {
        let api = api.lock().unwrap();
        assert_eq!(api.key_conflicts, 0);
        assert!(
            api.replayed >= 2,
            "the lost acks were replayed: {}",
            api.replayed
        );
        assert_eq!(api.orders.len(), 6);
    }

    // A failed run (one try), then a crash, then a clean rerun: one delivery, the same keys.
    let (server, api) = self::api(
        None,
        Box::new(|number, _| (number == 2).then_some(Fault::StoreAndHangUp)),
    );
    let sink = "url = \"{base}/orders/{id}/\"\nmethod = \"PUT\"\nretry = { attempts = 1 }";
    let sandbox = record_sandbox(&server, &orders(1..=5), sink, "");
    let text = sandbox
        .read("p.toml")
        .replace("retry = { base_delay_ms = 10, max_delay_secs = 1 }\n", "");
    sandbox.write("p.toml", text);
    run(&sandbox).assert_code(1);
    let mut command = sandbox.command(["run", "p.toml"]);
    command.env("LONGSHORE_CRASH_AT", "after-intent");
    assert_eq!(
        command.output().unwrap().status.signal(),
        Some(libc::SIGABRT)
    );
    run(&sandbox).assert_success();
    let api = api.lock().unwrap();
    assert_eq!(api.key_conflicts, 0);
    assert_eq!(api.distinct_keys().len(), 5);
    assert_eq!(api.orders.len(), 5);
}

/// `DELETE` per record: no body, the URL from the record; a record the API does not have
/// (404) is a reject with the answer, and a rerun sends nothing again.
#[test]
fn push_deletes_each_record_by_its_url() {
    let (server, api) = api(None, Box::new(|_, _| None));
    {
        let mut api = api.lock().unwrap();
        for id in ["1", "3"] {
            api.orders.insert(id.into(), json!({"id": id}));
        }
    }
    let lines = "{\"id\": 1}\n{\"id\": 2}\n{\"id\": 3}\n";
    let sink = "url = \"{base}/orders/{id}/\"\nmethod = \"DELETE\"";
    let rejects = "\n[rejects]\npath = \"rejects/r.ndjson\"\n";
    let sandbox = record_sandbox(&server, lines, sink, rejects);
    run(&sandbox).assert_success();
    {
        let api = api.lock().unwrap();
        let seen = api.seen();
        assert_eq!(
            seen,
            [
                ("DELETE", "/orders/1/", ""),
                ("DELETE", "/orders/2/", ""),
                ("DELETE", "/orders/3/", ""),
            ]
        );
        assert_eq!(api.distinct_keys().len(), 3);
        assert!(api.orders.is_empty());
    }
    let rejected: Vec<Value> = sandbox
        .read("rejects/r.ndjson")
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0]["record"], 2);
    let reason = rejected[0]["reason"].as_str().unwrap();
    assert!(reason.contains("no such order"), "{reason}");
    run(&sandbox).assert_success();
    assert_eq!(api.lock().unwrap().requests.len(), 3, "nothing sent again");
}

#[test]
fn push_dry_run_sends_nothing_and_prints_the_first_requests_with_their_keys() {
    let (server, received) = receiver(Box::new(|_, _| None));
    let headers = "headers = { X-Tenant = \"acme\", X-Api-Key = \"${env:PUSH_TOKEN}\" }";
    let sandbox = sandbox(&server, 10, headers, "");
    let mut command = sandbox.command(["run", "--dry-run", "p.toml", "--report", "r.json"]);
    command.env("PUSH_TOKEN", TOKEN);
    let dry = crate::support::run(command);
    dry.assert_success();
    assert!(server.requests().is_empty(), "a dry run sends nothing");
    assert_eq!(received.lock().unwrap().requests, 0);
    assert!(!dry.stdout().contains(TOKEN), "{}", dry.stdout());

    // The run sends what the dry run showed, under the keys it showed.
    run(&sandbox).assert_success();
    let keys = received.lock().unwrap().keys.clone();
    assert_eq!(keys.len(), 3);
    let mut shown = dry.stdout().replace(&server.url(""), "http://receiver");
    for (number, key) in keys.iter().enumerate() {
        shown = shown.replace(key, &format!("<key {}>", number + 1));
    }
    let first = r#"{"records":[{"id":1,"total":10},{"id":2,"total":20},{"id":3,"total":30},{"id":4,"total":40},{"id":5,"total":50},{"id":6,"total":60},{"id":7,"total":70},{"id":8,"total":80},{"id":9,"total":90},{"id":10…"#;
    let second = r#"{"records":[{"id":11,"total":110},{"id":12,"total":120},{"id":13,"total":130},{"id":14,"total":140},{"id":15,"total":150}]}"#;
    let third = r#"{"records":[{"id":16,"total":160},{"id":17,"total":170},{"id":18,"total":180},{"id":19,"total":190},{"id":20,"total":200},{"id":21,"total":210},{"id":22,"total":220},{"id":23,"total":230},{"id":24,"to…"#;
    let request = |n: usize, records: u64, bytes: usize, body: &str| {
        format!(
            "    request {n}: POST http://receiver/bulk ({records} records)\n      X-Api-Key: ***\n      X-Tenant: acme\n      authorization: ***\n      Content-Type: application/json\n      Idempotency-Key: <key {n}>\n      body ({bytes} bytes): {body}\n"
        )
    };
    let expected = format!(
        "dry run of pipeline `p`: 25 records read from 2 files (0 already delivered, skipped); nothing was written\n  sink 1 (http) would write 25 records to POST http://receiver/bulk\n{}{}{}",
        request(1, 10, 216, first),
        request(2, 5, 124, second),
        request(3, 10, 234, third),
    );
    assert_eq!(shown, expected);
    let report: Value = serde_json::from_str(&sandbox.read("r.json")).unwrap();
    let requests = &report["planned"][0]["requests"];
    assert_eq!(requests.as_array().unwrap().len(), 3);
    assert_eq!(requests[1]["method"], "POST");
    assert_eq!(requests[1]["records"], 5);
    assert_eq!(requests[1]["body"], second);
    assert_eq!(
        requests[1]["headers"][4],
        format!("Idempotency-Key: {}", keys[1])
    );
}

fn answers(sandbox: &Sandbox, path: &str) -> Vec<Value> {
    sandbox
        .read(path)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn push_responses_file_keeps_each_answer_with_the_created_id_and_a_rerun_only_its_own() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let failing = Arc::new(AtomicBool::new(true));
    let fail = failing.clone();
    // Order 3's create fails with 500 (every retry) while `failing`: the run fails.
    let (server, api) = api(
        None,
        Box::new(move |_, request: &Request| {
            let order: Value = serde_json::from_slice(&request.body).ok()?;
            (fail.load(Ordering::SeqCst) && order["id"] == 3)
                .then(|| Fault::Answer(Reply::text(500, "Internal Server Error")))
        }),
    );
    api.lock()
        .unwrap()
        .orders
        .insert("2".into(), json!({"id": 2, "status": "new", "total": 0}));
    let sink = "url = \"{base}/orders/\"\nupsert = { url = \"{base}/orders/{id}/\" }\nresponses = { path = \"responses/{pipeline}-{run_ts}.ndjson\", fields = [\"/id\", \"/missing\"] }";
    let sandbox = record_sandbox(&server, &orders(1..=3), sink, "");
    let failed = run(&sandbox);
    assert_ne!(failed.code, 0, "{}", failed.stderr);
    // A failed run publishes no answers file.
    assert!(sandbox.files("responses").is_empty());

    failing.store(false, Ordering::SeqCst);
    run(&sandbox).assert_success();
    let files = sandbox.files("responses");
    assert_eq!(files.len(), 1, "{files:?}");
    let lines = answers(&sandbox, &files[0]);
    // Orders 1 and 2 were acknowledged by the failed run: skipped, no line for them.
    let url = server.url("/orders/");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["status"], 201);
    assert_eq!(lines[0]["method"], "POST");
    assert_eq!(lines[0]["url"], url);
    assert_eq!(lines[0]["/id"], 3);
    assert_eq!(lines[0]["/missing"], Value::Null);
    let api = api.lock().unwrap();
    let key = &api.requests.last().unwrap().2;
    assert_eq!(lines[0]["idempotency_key"], key.as_str());
}

#[test]
fn push_responses_file_holds_the_upserts_answers_in_order() {
    let (server, _api) = api(None, Box::new(|_, _| None));
    _api.lock()
        .unwrap()
        .orders
        .insert("2".into(), json!({"id": 2, "status": "new", "total": 0}));
    let sink = "url = \"{base}/orders/\"\nupsert = { url = \"{base}/orders/{id}/\" }\nresponses = { path = \"responses/r.ndjson\", fields = [\"/id\"] }";
    let sandbox = record_sandbox(&server, &orders(1..=3), sink, "");
    run(&sandbox).assert_success();
    let seen: Vec<(u64, String, Value)> = answers(&sandbox, "responses/r.ndjson")
        .into_iter()
        .map(|line| {
            let url = line["url"].as_str().unwrap().replace(&server.url(""), "");
            (
                line["status"].as_u64().unwrap(),
                format!("{} {url}", line["method"].as_str().unwrap()),
                line["/id"].clone(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (201, "POST /orders/".to_string(), json!(1)),
            (409, "POST /orders/".to_string(), Value::Null),
            (200, "PATCH /orders/2/".to_string(), json!(2)),
            (201, "POST /orders/".to_string(), json!(3)),
        ]
    );
    // Nothing new: no answers file is written again.
    std::fs::remove_file(sandbox.join("responses/r.ndjson")).unwrap();
    run(&sandbox).assert_success();
    assert!(!sandbox.exists("responses/r.ndjson"));
}

/// A request as a concurrent receiver saw it, in the order requests arrived.
#[derive(Debug, Clone)]
struct Arrival {
    path: String,
    key: String,
    body: String,
    connection: u64,
    status: u16,
}

type Arrivals = Arc<Mutex<Vec<Arrival>>>;

type Answers = Box<dyn FnMut(&[Arrival], &Request) -> Option<Reply> + Send>;

/// A receiver that answers every request `200 {"ok": true}` after `delay_ms` (other
/// connections are served meanwhile), unless `answers` has another answer for it (given the
/// requests before it).
fn slow_receiver(delay_ms: u64, mut answers: Answers) -> (ApiServer, Arrivals) {
    let arrivals: Arrivals = Arc::default();
    let log = arrivals.clone();
    let server = ApiServer::start(move |request: &Request| {
        let mut log = log.lock().unwrap();
        let answer = answers(&log, request);
        let status = match &answer {
            Some(Reply::Answer { status, .. }) => *status,
            _ => 200,
        };
        log.push(Arrival {
            path: request.path.clone(),
            key: request
                .header("idempotency-key")
                .expect("every push has a key")
                .into(),
            body: String::from_utf8(request.body.clone()).unwrap(),
            connection: request.connection,
            status,
        });
        answer.unwrap_or_else(|| {
            Reply::After(
                std::time::Duration::from_millis(delay_ms),
                Box::new(Reply::json(200, &json!({"ok": true}))),
            )
        })
    });
    (server, arrivals)
}

/// The paths the receiver answered 2xx, each with the keys it did so under.
fn delivered(arrivals: &[Arrival]) -> BTreeMap<String, BTreeSet<String>> {
    let mut delivered: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for arrival in arrivals.iter().filter(|a| (200..300).contains(&a.status)) {
        delivered
            .entry(arrival.path.clone())
            .or_default()
            .insert(arrival.key.clone());
    }
    delivered
}

fn order_paths(ids: impl IntoIterator<Item = u64>) -> Vec<String> {
    let mut paths: Vec<String> = ids.into_iter().map(|id| format!("/orders/{id}/")).collect();
    paths.sort();
    paths
}

#[test]
fn push_concurrent_requests_deliver_each_record_once_and_a_rerun_sends_only_the_rest() {
    // Run 1: eight at a time; the receiver refuses the credentials for order 25, which fails
    // the run while other requests are in flight.
    let refuse = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let refusing = refuse.clone();
    let (server, arrivals) = slow_receiver(
        20,
        Box::new(move |_, request| {
            (refusing.load(std::sync::atomic::Ordering::SeqCst) && request.path == "/orders/25/")
                .then(|| Reply::json(401, &json!({"detail": "Token expired."})))
        }),
    );
    let sink = "url = \"{base}/orders/{id}/\"\nmethod = \"PUT\"\nconcurrency = 8";
    let sandbox = record_sandbox(&server, &orders(1..=40), sink, "");
    let outcome = run(&sandbox);
    outcome.assert_code(1);
    assert!(
        outcome.stderr.contains("HTTP 401: Token expired."),
        "{}",
        outcome.stderr
    );
    let first_run = arrivals.lock().unwrap().clone();
    let connections: BTreeSet<u64> = first_run.iter().map(|a| a.connection).collect();
    assert!(
        (2..=8).contains(&connections.len()),
        "requests in flight at once, on up to 8 connections: {connections:?}"
    );
    let refused_key = first_run
        .iter()
        .find(|a| a.path == "/orders/25/")
        .expect("order 25 was sent")
        .key
        .clone();
    let acknowledged: BTreeSet<String> = delivered(&first_run).into_values().flatten().collect();
    assert!(!acknowledged.is_empty() && acknowledged.len() < 40);

    // Run 2, one at a time: only what run 1 did not deliver is sent, under the same keys.
    refuse.store(false, std::sync::atomic::Ordering::SeqCst);
    let toml = sandbox
        .read("p.toml")
        .replace("concurrency = 8", "concurrency = 1");
    sandbox.write("p.toml", toml);
    run(&sandbox).assert_success();
    let all = arrivals.lock().unwrap().clone();
    let second_run = &all[first_run.len()..];
    assert!(
        second_run.iter().all(|a| !acknowledged.contains(&a.key)),
        "a request run 1 delivered was sent again"
    );
    assert!(second_run.iter().any(|a| a.key == refused_key));
    let delivered = delivered(&all);
    assert_eq!(
        delivered.keys().cloned().collect::<Vec<_>>(),
        order_paths(1..=40)
    );
    assert!(
        delivered.values().all(|keys| keys.len() == 1),
        "an order delivered under two keys: {delivered:?}"
    );
    // Nothing new: nothing sent.
    run(&sandbox).assert_success();
    assert_eq!(arrivals.lock().unwrap().len(), all.len());
}

#[test]
fn push_concurrent_refusals_go_to_the_rejects_each_with_its_own_answer() {
    let (server, arrivals) = slow_receiver(
        5,
        Box::new(|_, request| {
            let id: u64 = request
                .path
                .trim_matches('/')
                .trim_start_matches("orders/")
                .parse()
                .ok()?;
            id.is_multiple_of(7).then(|| {
                Reply::json(
                    422,
                    &json!({"detail": format!("order {id}: total too high")}),
                )
            })
        }),
    );
    let sink = "url = \"{base}/orders/{id}/\"\nmethod = \"PUT\"\nconcurrency = 4";
    let rejects = "\n[rejects]\npath = \"rejects/r.ndjson\"\n";
    let sandbox = record_sandbox(&server, &orders(1..=30), sink, rejects);
    run(&sandbox).assert_success();
    let delivered = delivered(&arrivals.lock().unwrap());
    assert_eq!(
        delivered.keys().cloned().collect::<Vec<_>>(),
        order_paths((1..=30u64).filter(|id| !id.is_multiple_of(7)))
    );
    let mut lines: Vec<Value> = sandbox
        .read("rejects/r.ndjson")
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    lines.sort_by_key(|line| line["record"].as_u64());
    assert_eq!(
        lines
            .iter()
            .map(|l| l["record"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [7, 14, 21, 28]
    );
    for line in &lines {
        let id = line["record"].as_u64().unwrap();
        let raw: Value = serde_json::from_str(line["raw"].as_str().unwrap()).unwrap();
        assert_eq!(raw["id"], id);
        let reason = line["reason"].as_str().unwrap();
        assert!(
            reason.contains(&format!("HTTP 422: order {id}: total too high")),
            "{reason}"
        );
    }
}

/// Orders 1-5 created (`"v": 1`), then each changed (`"v": 2`), PUT with `ordered`; the
/// receiver answers order 1's first request 503 with `Retry-After: 1`.
fn retried_then_changed(ordered: bool) -> (Vec<Arrival>, BTreeMap<String, String>) {
    let (server, arrivals) = slow_receiver(
        5,
        Box::new(|before, request| {
            (request.path == "/orders/1/" && before.iter().all(|a| a.path != "/orders/1/")).then(
                || Reply::json(503, &json!({"detail": "try again"})).header("retry-after", "1"),
            )
        }),
    );
    let lines: String = [1, 2]
        .iter()
        .flat_map(|v| (1..=5).map(move |id| format!("{{\"id\": {id}, \"v\": {v}}}\n")))
        .collect();
    let sink = format!(
        "url = \"{{base}}/orders/{{id}}/\"\nmethod = \"PUT\"\nconcurrency = 4\nordered = {ordered}"
    );
    let sandbox = record_sandbox(&server, &lines, &sink, "");
    run(&sandbox).assert_success();
    let arrivals = arrivals.lock().unwrap().clone();
    // What the receiver holds: the last body stored under each path.
    let mut stored = BTreeMap::new();
    for arrival in arrivals.iter().filter(|a| a.status == 200) {
        stored.insert(arrival.path.clone(), arrival.body.clone());
    }
    (arrivals, stored)
}

#[test]
fn push_ordered_keeps_each_resources_requests_in_order_through_a_retry() {
    let (arrivals, stored) = retried_then_changed(true);
    let order_1: Vec<(&str, u16)> = arrivals
        .iter()
        .filter(|a| a.path == "/orders/1/")
        .map(|a| (a.body.as_str(), a.status))
        .collect();
    assert_eq!(
        order_1,
        [
            (r#"{"id":1,"v":1}"#, 503),
            (r#"{"id":1,"v":1}"#, 200),
            (r#"{"id":1,"v":2}"#, 200),
        ]
    );
    for id in 1..=5 {
        assert_eq!(
            stored[&format!("/orders/{id}/")],
            format!(r#"{{"id":{id},"v":2}}"#)
        );
    }
    // Without `ordered`, the change overtakes the create that waits for its retry: the
    // receiver ends with the old version. This is what `ordered` is for.
    let (_, stored) = retried_then_changed(false);
    assert_eq!(stored["/orders/1/"], r#"{"id":1,"v":1}"#);
}

#[test]
fn push_follows_a_308_with_its_body_and_refuses_a_301_that_would_resend_it_as_a_get() {
    let moved = |status: u16| -> Answers {
        Box::new(move |_, request| {
            let rest = request.path.strip_prefix("/old")?;
            Some(Reply::text(status, "").header("location", &format!("/orders{rest}")))
        })
    };
    let sink = "url = \"{base}/old/{id}/\"\nmethod = \"PUT\"";
    let (server, arrivals) = slow_receiver(0, moved(308));
    let sandbox = record_sandbox(&server, &orders(1..=2), sink, "");
    run(&sandbox).assert_success();
    let arrivals = arrivals.lock().unwrap().clone();
    let bodies: Vec<(&str, &str, u16)> = arrivals
        .iter()
        .map(|a| (a.path.as_str(), a.body.as_str(), a.status))
        .collect();
    let body = |id: u64| format!(r#"{{"id":{id},"status":"open","total":{}}}"#, id * 10);
    let (one, two) = (body(1), body(2));
    assert_eq!(
        bodies,
        [
            ("/old/1/", one.as_str(), 308),
            ("/orders/1/", one.as_str(), 200),
            ("/old/2/", two.as_str(), 308),
            ("/orders/2/", two.as_str(), 200),
        ]
    );

    let (server, arrivals) = slow_receiver(0, moved(301));
    let sandbox = record_sandbox(&server, &orders(1..=2), sink, "");
    let outcome = run(&sandbox);
    outcome.assert_code(1);
    assert!(
        outcome.stderr.contains(
            "HTTP 301: moved to http://127.0.0.1:"
        ) && outcome.stderr.contains(
            "/orders/1/; a PUT is not sent again as a GET (that delivers nothing): set the URL to where it moved"
        ),
        "{}",
        outcome.stderr
    );
    assert_eq!(
        arrivals.lock().unwrap().len(),
        1,
        "nothing followed the 301"
    );
}
