//! The `http` source against in-process models of the APIs vendors publish: each paging style,
//! failures mid-pull, rate limits, authentication and delta pulls. Every test checks the exact
//! records delivered (no loss, no duplicates) or the exact error.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::support::api::{ApiServer, Reply, Request};
use crate::support::{Sandbox, repo_path};

/// Order `id` (1-based) as the model APIs hold it.
pub(crate) fn order(id: u64) -> Value {
    json!({"id": id, "name": format!("order {id}"), "updated_at": format!("2024-08-01T00:{:02}:{:02}Z", id / 60 % 60, id % 60)})
}

pub(crate) fn orders(range: std::ops::RangeInclusive<u64>) -> Vec<Value> {
    range.map(order).collect()
}

/// Runs pipeline `p` (an `http` source with `source` lines, a new NDJSON file per run) with a
/// report; returns the outcome and the report.
pub(crate) fn run(sandbox: &Sandbox, source: &str) -> (crate::support::Outcome, Value) {
    run_with_env(sandbox, source, &[])
}

/// The records of every NDJSON file written so far, run after run, in order.
pub(crate) fn delivered_records(sandbox: &Sandbox) -> Vec<Value> {
    let mut files: Vec<String> = sandbox
        .files("out")
        .into_iter()
        .filter(|f| f.ends_with(".ndjson"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|file| {
            sandbox
                .read(file)
                .lines()
                .map(|line| serde_json::from_str::<Value>(line).expect("an NDJSON line"))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The ids delivered so far, run after run, in order.
pub(crate) fn delivered(sandbox: &Sandbox) -> Vec<u64> {
    delivered_records(sandbox)
        .iter()
        .map(|record| {
            let id = &record["id"];
            // CSV bodies give text.
            id.as_u64()
                .or_else(|| id.as_str()?.parse().ok())
                .expect("an id")
        })
        .collect()
}

/// The source table of `pipelines/examples/<example>`, pointed at `server`: the examples are
/// run as they are written (with the tests' own sink).
pub(crate) fn example_source(example: &str, server: &ApiServer) -> String {
    let text = std::fs::read_to_string(repo_path(&format!("pipelines/examples/{example}")))
        .expect("the example exists");
    let before_sinks = text.split("[[sinks]]").next().unwrap();
    let (_, source) = before_sinks
        .split_once("[source]\ntype = \"http\"\n")
        .expect("an http source");
    source
        .replace("https://api.example.com", &server.url(""))
        .replace("https://auth.example.com", &server.url(""))
}

/// An `http` source reading `/api/orders/` of `server` by offset, `limit` a page, with the
/// total at `/count`, and the extra lines `extra`.
pub(crate) fn offset_source(server: &ApiServer, limit: u64, extra: &str) -> String {
    format!(
        "url = \"{}\"\nformat = {{ type = \"json\", records = \"/results\" }}\npagination = {{ type = \"offset\", limit = {limit}, total = \"/count\" }}\n{extra}",
        server.url("/api/orders/")
    )
}

pub(crate) fn ids(range: std::ops::RangeInclusive<u64>) -> Vec<u64> {
    range.collect()
}

/// `GET /api/orders/?limit=&offset=` -> `{"count", "next", "previous", "results"}` over `all`,
/// 10 a page unless asked.
pub(crate) fn offset_envelope_api(all: Vec<Value>) -> impl FnMut(&Request) -> Reply + Send {
    move |request| {
        let limit = request.number("limit", 10);
        let offset = request.number("offset", 0);
        let page: Vec<Value> = all
            .iter()
            .skip(offset as usize)
            .take(limit as usize)
            .cloned()
            .collect();
        let host = request.header("host").unwrap_or_default().to_string();
        let next = (offset + limit < all.len() as u64).then(|| {
            format!(
                "http://{host}/api/orders/?limit={limit}&offset={}",
                offset + limit
            )
        });
        Reply::json(
            200,
            &json!({"count": all.len(), "next": next, "previous": null, "results": page}),
        )
    }
}

#[test]
fn offset_pages_with_an_envelope_follow_next_and_match_the_count() {
    let sandbox = Sandbox::new();
    let server = ApiServer::start(offset_envelope_api(orders(1..=250)));
    let source = example_source("offset-envelope.toml", &server);
    let (outcome, report) = run_with_env(&sandbox, &source, &[("ORDERS_API_TOKEN", "t-1")]);
    outcome.assert_success();
    assert_eq!(delivered(&sandbox), ids(1..=250));
    let first = &server.requests()[0];
    assert_eq!(first.header("authorization"), Some("Bearer t-1"));
    assert_eq!(first.param("fields"), Some("id,status,total,updated_at"));
    let requests = server.requests();
    let asked: Vec<(String, String)> = requests
        .iter()
        .map(|r| {
            (
                r.param("limit").unwrap_or_default().to_string(),
                r.param("offset").unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        asked,
        [0, 50, 100, 150, 200].map(|o| ("50".to_string(), o.to_string()))
    );
    assert_eq!(report["requests"]["requests"], 5);
    assert_eq!(report["requests"]["retries"], 0);
}

#[test]
fn page_numbers_start_at_the_configured_base() {
    let sandbox = Sandbox::new();
    let all = orders(1..=35);
    let server = ApiServer::start(move |request| {
        let limit = request.number("limit", 10);
        let page = request.number("page", 1);
        let items: Vec<Value> = all
            .iter()
            .skip(((page - 1) * limit) as usize)
            .take(limit as usize)
            .cloned()
            .collect();
        Reply::json(
            200,
            &json!({"count": all.len(), "prev": null, "results": items}),
        )
    });
    let source = example_source("page-number.toml", &server);
    let (outcome, _) = run_with_env(&sandbox, &source, &[("ITEMS_API_KEY", "k-7")]);
    outcome.assert_success();
    assert_eq!(delivered(&sandbox), ids(1..=35));
    assert_eq!(server.requests()[0].header("x-api-key"), Some("k-7"));
    let pages: Vec<String> = server
        .requests()
        .iter()
        .map(|r| r.param("page").unwrap().to_string())
        .collect();
    assert_eq!(pages, ["1", "2", "3", "4"]);
}

/// `?action=list&start=&limit=&filters={json}` -> `{"totalRecords", "records"}`, filtering by
/// `modifiedOn` as the filter document says.
fn start_limit_api(all: Arc<Mutex<Vec<Value>>>) -> impl FnMut(&Request) -> Reply + Send {
    move |request| {
        assert_eq!(request.param("action"), Some("list"));
        let all = all.lock().unwrap();
        let matching: Vec<&Value> = match request.param("filters") {
            None => all.iter().collect(),
            Some(filters) => {
                let filters: Value = serde_json::from_str(filters).expect("filters are JSON");
                let condition = &filters["modifiedOn"];
                let value = condition["value"].as_str().unwrap();
                assert_eq!(condition["operator"], ">=");
                all.iter()
                    .filter(|r| r["modifiedOn"].as_str().unwrap() >= value)
                    .collect()
            }
        };
        let start = request.number("start", 0) as usize;
        let limit = request.number("limit", 100) as usize;
        let records: Vec<&Value> = matching.iter().skip(start).take(limit).copied().collect();
        Reply::json(
            200,
            &json!({"totalRecords": matching.len(), "records": records}),
        )
    }
}

fn modified(id: u64, on: &str) -> Value {
    json!({"id": id, "modifiedOn": on})
}

/// Contacts 1 to `n`, contact `i` modified on the `i`th of August (`n` at most 9).
fn one_a_day(n: u64) -> Arc<Mutex<Vec<Value>>> {
    Arc::new(Mutex::new(
        (1..=n)
            .map(|id| modified(id, &format!("2024-08-0{id}T00:00:00")))
            .collect(),
    ))
}

#[test]
fn delta_pulls_deliver_exactly_the_changed_records_run_after_run() {
    let sandbox = Sandbox::new();
    let all = Arc::new(Mutex::new(vec![
        modified(1, "2024-07-01T00:00:00"),
        modified(2, "2024-08-02T10:00:00"),
        modified(3, "2024-08-03T10:00:00"),
        modified(4, "2024-08-03T10:00:00"),
    ]));
    let server = ApiServer::start(start_limit_api(all.clone()));
    // Pages of 2, so that records at the cursor straddle pages.
    let source =
        example_source("start-limit-delta.toml", &server).replace("limit = 100", "limit = 2");
    sandbox.write("secrets/contacts-api-key", "ck-1\n");

    // Run 1: everything modified since the initial value; 1 is older.
    let (outcome, report) = run(&sandbox, &source);
    outcome.assert_success();
    assert_eq!(delivered(&sandbox), [2, 3, 4]);
    assert_eq!(report["cursor_after"]["modifiedOn"], "2024-08-03T10:00:00");
    let first = &server.requests()[0];
    // The initial value, looked back `lag_secs = 300`.
    assert_eq!(
        first.param("filters"),
        Some(r#"{"modifiedOn":{"operator":">=","value":"2024-07-31T23:55:00"}}"#)
    );
    assert_eq!(first.param("api_key"), Some("ck-1"));

    // Run 2: 3 changes, 5 is new; 4 (within the look-back, delivered) comes again and is
    // skipped.
    {
        let mut all = all.lock().unwrap();
        all[2] = modified(3, "2024-08-04T09:00:00");
        all.push(modified(5, "2024-08-04T09:30:00"));
    }
    let (outcome, _) = run(&sandbox, &source);
    outcome.assert_success();
    assert_eq!(delivered(&sandbox), [2, 3, 4, 3, 5]);

    // Run 3: nothing changed: nothing new is delivered, no empty file either, and the run
    // says so.
    let (outcome, report) = run(&sandbox, &source);
    outcome.assert_success();
    assert_eq!(report["outcome"], "nothing_new");
    assert_eq!(sandbox.files("out").len(), 2, "an empty file was published");
    assert_eq!(delivered(&sandbox), [2, 3, 4, 3, 5]);
    assert_eq!(report["cursor_after"]["modifiedOn"], "2024-08-04T09:30:00");
    let last = server.requests().last().unwrap().clone();
    assert_eq!(
        last.param("filters"),
        Some(r#"{"modifiedOn":{"operator":">=","value":"2024-08-04T09:25:00"}}"#)
    );
}

/// An offset-paged API with nothing to give answers one empty page: no file, `nothing_new`.
#[test]
fn an_empty_page_publishes_nothing_and_says_nothing_new() {
    let sandbox = Sandbox::new();
    let server = ApiServer::start(offset_envelope_api(Vec::new()));
    let (outcome, report) = run(&sandbox, &offset_source(&server, 10, ""));
    outcome.assert_success().assert_stderr("");
    assert_eq!(report["outcome"], "nothing_new");
    assert_eq!(report["records_read"], 0);
    assert_eq!(report["files_written"], json!([]));
    assert_eq!(report["requests"]["requests"], 1);
    assert!(!sandbox.exists("out"), "an empty file was published");
}

#[test]
fn header_totals_page_a_bare_array() {
    let sandbox = Sandbox::new();
    let all = orders(1..=45);
    let server = ApiServer::start(move |request| {
        let limit = request.number("limit", 10);
        let offset = request.number("offset", 0);
        let page: Vec<Value> = all
            .iter()
            .skip(offset as usize)
            .take(limit as usize)
            .cloned()
            .collect();
        Reply::json(200, &json!(page))
            .header("X-Total-Count", &all.len().to_string())
            .header("X-Limit", &limit.to_string())
            .header("X-Offset", &offset.to_string())
    });
    let source = example_source("header-totals.toml", &server);
    let (outcome, report) = run_with_env(&sandbox, &source, &[("ORDERS_API_PASSWORD", "pw")]);
    outcome.assert_success();
    assert_eq!(delivered(&sandbox), ids(1..=45));
    assert_eq!(server.requests().len(), 3, "the total ends paging");
    // longshore:pw
    assert_eq!(
        server.requests()[0].header("authorization"),
        Some("Basic bG9uZ3Nob3JlOnB3")
    );
    // 600 requests a minute: a tenth of a second between requests, waited twice.
    assert_eq!(report["requests"]["waits"], 2);
}

#[test]
fn link_headers_cursors_and_single_responses() {
    let sandbox = Sandbox::new();
    let all = orders(1..=7);
    let server = ApiServer::start(move |request| match request.path.as_str() {
        "/repos/acme/shop/issues" => {
            assert_eq!(request.param("per_page"), Some("100"));
            let page = request.number("page", 1) as usize;
            let items: Vec<Value> = all.iter().skip((page - 1) * 3).take(3).cloned().collect();
            let reply = Reply::json(200, &json!(items));
            if page * 3 < all.len() {
                let host = request.header("host").unwrap().to_string();
                let link = |page| {
                    format!(
                        "http://{host}/repos/acme/shop/issues?state=all&per_page=100&page={page}"
                    )
                };
                reply.header(
                    "Link",
                    &format!(
                        "<{}>; rel=\"next\", <{}>; rel=\"last\"",
                        link(page + 1),
                        link(3)
                    ),
                )
            } else {
                reply
            }
        }
        "/oauth/token" => Reply::json(200, &json!({"access_token": "tok", "expires_in": 60})),
        "/v2/events" => {
            assert_eq!(request.header("authorization"), Some("Bearer tok"));
            assert_eq!(request.param("limit"), Some("200"));
            let from: usize = request
                .param("cursor")
                .map_or(0, |c| c.strip_prefix("opaque-").unwrap().parse().unwrap());
            let items: Vec<Value> = all.iter().skip(from).take(4).cloned().collect();
            let next = (from + 4 < all.len()).then(|| format!("opaque-{}", from + 4));
            Reply::json(200, &json!({"data": items, "next_cursor": next}))
        }
        _ => Reply::json(200, &json!(all)),
    });
    let source = example_source("link-header.toml", &server);
    let (outcome, _) = run_with_env(&sandbox, &source, &[("GITHUB_TOKEN", "gh")]);
    outcome.assert_success();
    assert_eq!(delivered(&sandbox), ids(1..=7));

    let sandbox = Sandbox::new();
    let source = example_source("cursor.toml", &server);
    let (outcome, _) = run_with_env(&sandbox, &source, &[("EVENTS_CLIENT_SECRET", "s")]);
    outcome.assert_success();
    assert_eq!(delivered(&sandbox), ids(1..=7));

    let sandbox = Sandbox::new();
    let (outcome, _) = run(&sandbox, &format!("url = \"{}\"", server.url("/all")));
    outcome.assert_success();
    assert_eq!(delivered(&sandbox), ids(1..=7));
    let paths: Vec<String> = server.requests().iter().map(|r| r.path.clone()).collect();
    let issues = "/repos/acme/shop/issues";
    assert_eq!(
        paths,
        [
            issues,
            issues,
            issues,
            "/oauth/token",
            "/v2/events",
            "/v2/events",
            "/all"
        ]
    );
}

/// `GET /orders/123/` answers one order, pretty-printed: with the default format, it is one
/// record.
#[test]
fn a_single_object_answer_is_one_record() {
    let sandbox = Sandbox::new();
    let server = ApiServer::start(|request| {
        assert_eq!(request.path, "/orders/123/");
        Reply::Answer {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: serde_json::to_vec_pretty(&order(123)).unwrap(),
        }
    });
    let (outcome, _) = run(
        &sandbox,
        &format!("url = \"{}\"", server.url("/orders/123/")),
    );
    outcome.assert_success();
    assert_eq!(
        sandbox.read("out/orders-01.ndjson"),
        "{\"id\":123,\"name\":\"order 123\",\"updated_at\":\"2024-08-01T00:02:03Z\"}\n"
    );
}

#[test]
fn server_errors_and_dropped_connections_mid_pull_are_retried_without_loss() {
    let sandbox = Sandbox::new();
    let mut api = offset_envelope_api(orders(1..=100));
    let mut calls = 0;
    let server = ApiServer::start(move |request| {
        calls += 1;
        match calls {
            2 => Reply::text(503, "maintenance"),
            3 => Reply::HangUp {
                body: serde_json::to_vec(&json!({"results": orders(1..=25)})).unwrap(),
            },
            5 => Reply::text(500, "oops"),
            _ => api(request),
        }
    });
    let (outcome, report) = run(
        &sandbox,
        &offset_source(&server, 25, "retry = { base_delay_ms = 1 }"),
    );
    outcome.assert_success();
    assert_eq!(delivered(&sandbox), ids(1..=100));
    assert_eq!(report["requests"]["retries"], 3);
    assert_eq!(report["requests"]["requests"], 7);
}

#[test]
fn too_many_requests_waits_as_told_with_and_without_retry_after() {
    let sandbox = Sandbox::new();
    let mut api = offset_envelope_api(orders(1..=20));
    let mut calls = 0;
    let server = ApiServer::start(move |request| {
        calls += 1;
        match calls {
            2 => Reply::text(429, "slow down").header("Retry-After", "1"),
            3 => Reply::text(429, "slow down"),
            _ => api(request),
        }
    });
    let (outcome, report) = run(
        &sandbox,
        &offset_source(&server, 10, "retry = { base_delay_ms = 1 }"),
    );
    outcome.assert_success();
    assert_eq!(delivered(&sandbox), ids(1..=20));
    assert_eq!(report["requests"]["rate_limited"], 2);
    assert_eq!(report["requests"]["waits"], 2);
    let waited = report["requests"]["waited_ms"].as_u64().unwrap();
    assert!(
        (1000..1100).contains(&waited),
        "Retry-After: 1 is a second, backoff a millisecond or so: {waited} ms"
    );
}

#[test]
fn no_requests_left_waits_for_the_reset_read_either_way() {
    for reset in ["seconds", "epoch"] {
        let sandbox = Sandbox::new();
        let mut api = offset_envelope_api(orders(1..=20));
        let mut calls = 0;
        let server = ApiServer::start(move |request| {
            calls += 1;
            let reply = api(request);
            if calls == 1 {
                let value = if reset == "epoch" {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_secs();
                    (now + 2).to_string()
                } else {
                    "1".to_string()
                };
                reply
                    .header("X-RateLimit-Limit", "2")
                    .header("X-RateLimit-Remaining", "0")
                    .header("X-RateLimit-Reset", &value)
            } else {
                reply
            }
        });
        let (outcome, report) = run(
            &sandbox,
            &offset_source(
                &server,
                10,
                &format!("rate_limit = {{ reset = \"{reset}\" }}"),
            ),
        );
        outcome.assert_success();
        assert_eq!(delivered(&sandbox), ids(1..=20), "{reset}");
        assert_eq!(
            report["requests"]["rate_limited"], 0,
            "{reset}: no 429 burnt"
        );
        assert_eq!(report["requests"]["waits"], 1, "{reset}");
        let waited = report["requests"]["waited_ms"].as_u64().unwrap();
        assert!((500..=2100).contains(&waited), "{reset}: {waited} ms");
    }
}

#[test]
fn a_pagination_loop_fails_instead_of_spinning() {
    let sandbox = Sandbox::new();
    let server = ApiServer::start(move |request| {
        let host = request.header("host").unwrap().to_string();
        let page = request.number("page", 1);
        // Page 3 links back to page 2.
        let next = if page == 3 { 2 } else { page + 1 };
        Reply::json(
            200,
            &json!({"results": [order(page)], "next": format!("http://{host}/loop?page={next}")}),
        )
    });
    let (outcome, _) = run(
        &sandbox,
        &format!(
            "url = \"{}\"\nformat = {{ type = \"json\", records = \"/results\" }}\npagination = {{ type = \"next\", next = \"/next\" }}",
            server.url("/loop")
        ),
    );
    outcome.assert_code(1);
    let url = server.url("/loop?page=3");
    assert_eq!(
        outcome.stderr,
        format!(
            "error: pipeline `p`: source (http) failed\n  caused by: {url} (page 3): the API gave the same next link twice: paging would go round in a loop\n"
        )
    );
    assert!(delivered(&sandbox).is_empty(), "nothing published");
    sandbox.assert_no_temp_files();
}

#[test]
fn a_total_that_does_not_match_fails_or_warns() {
    let sandbox = Sandbox::new();
    // The count says 30, but only 25 records come (rows deleted while paging).
    let all = orders(1..=25);
    let server = ApiServer::start(move |request| {
        let offset = request.number("offset", 0) as usize;
        let page: Vec<Value> = all.iter().skip(offset).take(10).cloned().collect();
        Reply::json(200, &json!({"count": 30, "results": page}))
    });
    let source = offset_source(&server, 10, "");
    let (outcome, _) = run(&sandbox, &source);
    outcome.assert_code(1);
    let url = server.url("/api/orders/");
    assert_eq!(
        outcome.stderr,
        format!(
            "error: pipeline `p`: source (http) failed\n  caused by: {url}: received 25 records, but the API advertised 30: records may have been added or removed while paging, or the server caps the page size below `limit` (`on_total_mismatch = \"warn\"` delivers them anyway)\n"
        )
    );
    assert!(delivered(&sandbox).is_empty());

    let (outcome, report) = run(&sandbox, &format!("{source}\non_total_mismatch = \"warn\""));
    outcome.assert_success();
    assert_eq!(delivered(&sandbox), ids(1..=25));
    assert_eq!(
        report["warnings"],
        json!([
            "received 25 records, but the API advertised 30: records may have been added or removed while paging, or the server caps the page size below `limit`"
        ])
    );
}

#[test]
fn an_oauth_token_expiring_mid_run_is_fetched_again() {
    let sandbox = Sandbox::new();
    let mut api = offset_envelope_api(orders(1..=40));
    let mut tokens_issued = 0;
    let mut token_calls = 0;
    let mut served_with_current = 0;
    let server = ApiServer::start(move |request| {
        if request.path == "/oauth/token" {
            assert_eq!(request.method, "POST");
            token_calls += 1;
            if token_calls == 1 {
                // The token endpoint is down for a moment.
                return Reply::text(503, "busy");
            }
            let form: Vec<(String, String)> = url::form_urlencoded::parse(&request.body)
                .into_owned()
                .collect();
            assert!(form.contains(&("grant_type".into(), "client_credentials".into())));
            assert!(form.contains(&("client_secret".into(), "cs-42".into())));
            tokens_issued += 1;
            served_with_current = 0;
            return Reply::json(
                200,
                &json!({"access_token": format!("tok-{tokens_issued}"), "token_type": "Bearer", "expires_in": 3600}),
            );
        }
        let expected = format!("Bearer tok-{tokens_issued}");
        if request.header("authorization") != Some(expected.as_str()) || served_with_current == 2 {
            // The server revokes each token after two pages.
            return Reply::json(401, &json!({"detail": "Token expired."}));
        }
        served_with_current += 1;
        api(request)
    });
    let (outcome, _) = run_with_env(
        &sandbox,
        &offset_source(
            &server,
            10,
            &format!(
                r#"auth = {{ type = "oauth2", token_url = "{}", client_id = "longshore", client_secret = "${{env:TEST_CLIENT_SECRET}}" }}"#,
                server.url("/oauth/token")
            ),
        ),
        &[("TEST_CLIENT_SECRET", "cs-42")],
    );
    outcome.assert_success();
    assert_eq!(delivered(&sandbox), ids(1..=40));
    let token_requests = server
        .requests()
        .iter()
        .filter(|r| r.path == "/oauth/token")
        .count();
    assert_eq!(
        token_requests, 3,
        "one answered 503 and retried, then one per token"
    );
}

/// [`run`] with environment variables for the child.
pub(crate) fn run_with_env(
    sandbox: &Sandbox,
    source: &str,
    env: &[(&str, &str)],
) -> (crate::support::Outcome, Value) {
    // Runs may start within a second of each other: the files are numbered.
    let number = if sandbox.exists("out") {
        sandbox.files("out").len() + 1
    } else {
        1
    };
    sandbox.write(
        "p.toml",
        format!(
            "name = \"p\"\n\n[source]\ntype = \"http\"\n{source}\n\n[[sinks]]\ntype = \"file\"\npath = \"out/orders-{number:02}.ndjson\"\nif_exists = \"fail\"\n"
        ),
    );
    let _ = std::fs::remove_file(sandbox.join("report.json"));
    let mut command = sandbox.command(["-q", "run", "p.toml", "--report", "report.json"]);
    command.envs(env.iter().copied());
    let outcome = crate::support::run(command);
    let report = serde_json::from_str(&sandbox.read("report.json")).expect("a JSON report");
    (outcome, report)
}

#[test]
fn a_malformed_page_names_the_url_page_and_position() {
    let sandbox = Sandbox::new();
    let mut api = offset_envelope_api(orders(1..=30));
    let server = ApiServer::start(move |request| {
        if request.number("offset", 0) == 10 {
            return Reply::Answer {
                status: 200,
                headers: vec![("content-type".into(), "application/json".into())],
                body: b"{\"count\": 30,\n \"results\": [{\"id\": 11,}]}".to_vec(),
            };
        }
        api(request)
    });
    let (outcome, _) = run(&sandbox, &offset_source(&server, 10, ""));
    outcome.assert_code(1);
    let url = server.url("/api/orders/?limit=10&offset=10");
    assert_eq!(
        outcome.stderr,
        format!(
            "error: pipeline `p`: source (http) failed\n  caused by: {url} (page 2): line 2, column 24: invalid JSON: trailing comma\n"
        )
    );
    assert!(delivered(&sandbox).is_empty());
}

#[test]
fn error_bodies_of_every_shape_are_in_the_message_and_secrets_are_not() {
    let bodies = [
        (
            json!({"errors": ["Unknown property 'badprop'", "Unknown property 'x'"]}),
            "Unknown property 'badprop'; Unknown property 'x'",
        ),
        (
            json!({"error": {"code": "INVALID_PARAMETER", "message": "bad limit", "details": "max 100"}}),
            "INVALID_PARAMETER: bad limit: max 100",
        ),
        (
            json!({"detail": "Authentication credentials were not provided."}),
            "Authentication credentials were not provided.",
        ),
    ];
    for (body, shown) in bodies {
        let sandbox = Sandbox::new();
        let body_sent = body.clone();
        let server = ApiServer::start(move |_| Reply::json(401, &body_sent));
        let (outcome, _) = run_with_env(
            &sandbox,
            &format!(
                "url = \"{}\"\nauth = {{ type = \"api-key\", query = \"api_key\", key = \"${{env:TEST_API_KEY}}\" }}",
                server.url("/v2/orders?fields=id")
            ),
            &[("TEST_API_KEY", "k-secret-99")],
        );
        outcome.assert_code(1);
        // The key is added to each request, never to the URL shown.
        let url = server.url("/v2/orders?fields=id");
        assert_eq!(
            outcome.stderr,
            format!(
                "error: pipeline `p`: source (http) failed\n  caused by: GET {url}: HTTP 401: {shown}\n"
            )
        );
        assert_eq!(server.requests().len(), 1, "a 401 is not retried");
        assert_eq!(server.requests()[0].param("api_key"), Some("k-secret-99"));
    }
    // Plain text.
    let sandbox = Sandbox::new();
    let server = ApiServer::start(|_| Reply::text(404, "no such\n  endpoint"));
    let (outcome, _) = run(&sandbox, &format!("url = \"{}\"", server.url("/nope")));
    outcome.assert_code(1);
    assert_eq!(
        outcome.stderr,
        format!(
            "error: pipeline `p`: source (http) failed\n  caused by: GET {}: HTTP 404: no such endpoint\n",
            server.url("/nope")
        )
    );
}

#[test]
fn a_wait_past_the_time_limit_stops_cleanly_and_the_next_run_resumes() {
    let sandbox = Sandbox::new();
    let mut api = start_limit_api(one_a_day(6));
    let limited = Arc::new(Mutex::new(true));
    let limiting = limited.clone();
    let server = ApiServer::start(move |request| {
        if request.number("start", 0) == 2 && *limiting.lock().unwrap() {
            return Reply::text(429, "hourly quota used up").header("Retry-After", "3600");
        }
        api(request)
    });
    let source =
        example_source("start-limit-delta.toml", &server).replace("limit = 100", "limit = 2");
    sandbox.write("secrets/contacts-api-key", "ck-1");
    let write = |run: u32| {
        sandbox.write(
            "p.toml",
            format!(
                "name = \"p\"\nmax_runtime_secs = 20\n\n[source]\ntype = \"http\"\n{source}\n\n[[sinks]]\ntype = \"file\"\npath = \"out/orders-{run}.ndjson\"\n"
            ),
        )
    };
    write(1);
    let first = sandbox.run(["-q", "run", "p.toml"]);
    first.assert_code(1);
    assert_eq!(
        first.stderr,
        "error: pipeline `p`: run failed\n  caused by: max_runtime_secs = 20 reached: stopped after 1 page: the answer's Retry-After asked to wait 3600 s, more than the run has left; what was read completely was published, and the next run goes on with the rest\n"
    );
    assert_eq!(delivered(&sandbox), [1, 2], "the first page is published");

    *limited.lock().unwrap() = false;
    write(2);
    sandbox.run(["-q", "run", "p.toml"]).assert_success();
    assert_eq!(delivered(&sandbox), ids(1..=6), "the rest, nothing twice");
}

#[test]
fn every_example_pipeline_is_valid() {
    // Copied, with what their references name: the variables set, the secret files written.
    let sandbox = Sandbox::new();
    let mut examples = Vec::new();
    let mut command = sandbox.command(["validate"]);
    for entry in std::fs::read_dir(repo_path("pipelines/examples")).expect("pipelines/examples") {
        let path = entry.unwrap().path();
        // `examples/polars/` needs the `polars` feature: tests/it/polars.rs validates it.
        if path.is_dir() {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        for reference in text.split("${").skip(1) {
            let reference = &reference[..reference.find('}').expect("a closed reference")];
            match reference.split_once(':') {
                Some(("env", name)) if !name.contains(":-") => {
                    let value = match name.ends_with("_URL") {
                        true => "https://hooks.example.com/from-the-environment",
                        false => "from-the-environment",
                    };
                    command.env(name, value);
                }
                Some(("var", name)) if !name.contains(":-") => {
                    command
                        .arg("--var")
                        .arg(format!("{name}=from-the-command-line"));
                }
                Some(("file", file)) => {
                    sandbox.write(&format!("examples/{file}"), "from-a-file\n");
                }
                _ => {}
            }
        }
        sandbox.write(&format!("examples/{name}"), text);
        examples.push(format!("examples/{name}"));
    }
    examples.sort();
    assert_eq!(examples.len(), 17);
    command.args(&examples);
    crate::support::run(command).assert_success();
}

/// An export endpoint: `GET /export.csv?from=&to=` -> a CSV file of the records with `from <=
/// updated_at < to`, at most `cap` of them (the oldest), as vendors cap exports.
fn export_api(all: Vec<(u64, String)>, cap: usize) -> impl FnMut(&Request) -> Reply + Send {
    move |request| {
        let from = request.param("from").expect("from").to_string();
        let to = request.param("to").expect("to").to_string();
        let mut body = String::from("id,updated_at\n");
        for (id, at) in all
            .iter()
            .filter(|(_, at)| at.as_str() >= from.as_str() && at.as_str() < to.as_str())
            .take(cap)
        {
            body.push_str(&format!("{id},{at}\n"));
        }
        Reply::Answer {
            status: 200,
            headers: vec![("content-type".into(), "text/csv".into())],
            body: body.into_bytes(),
        }
    }
}

#[test]
fn an_export_that_hits_its_cap_is_split_until_nothing_is_cut_off() {
    let sandbox = Sandbox::new();
    let at = |day: u32, hour: u32| format!("2024-08-{day:02}T{hour:02}:00:00");
    let mut all = vec![(1, at(1, 3)), (2, at(1, 9)), (3, at(1, 20))];
    // Eight on the 2nd: more than the cap of 5, four in each half of the day.
    for (i, hour) in [1, 4, 7, 10, 13, 16, 19, 22].into_iter().enumerate() {
        all.push((10 + i as u64, at(2, hour)));
    }
    all.push((30, at(3, 12)));
    let server = ApiServer::start(export_api(all, 5));
    let source = format!(
        r#"url = "{}"
format = {{ type = "csv" }}
query = {{ from = "{{cursor}}", to = "{{until}}" }}
cap = 5
incremental = {{ field = "updated_at", initial = "2024-08-01T00:00:00", window = "1d", end = "2024-08-04T00:00:00" }}"#,
        server.url("/export.csv")
    );
    let (outcome, report) = run(&sandbox, &source);
    outcome.assert_success();
    assert_eq!(
        delivered(&sandbox),
        [1, 2, 3, 10, 11, 12, 13, 14, 15, 16, 17, 30]
    );
    let windows: Vec<(String, String)> = server
        .requests()
        .iter()
        .map(|r| {
            (
                r.param("from").unwrap().to_string(),
                r.param("to").unwrap().to_string(),
            )
        })
        .collect();
    let window = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(
        windows,
        [
            window("2024-08-01T00:00:00", "2024-08-02T00:00:00"),
            window("2024-08-02T00:00:00", "2024-08-03T00:00:00"),
            window("2024-08-02T00:00:00", "2024-08-02T12:00:00"),
            window("2024-08-02T12:00:00", "2024-08-03T00:00:00"),
            window("2024-08-03T00:00:00", "2024-08-04T00:00:00"),
        ]
    );
    assert_eq!(report["requests"]["window_splits"], 1);
    assert_eq!(report["cursor_after"]["updated_at"], "2024-08-04T00:00:00");
}

/// An asynchronous export API: `POST /v1/exports` creates a job (the first try is answered
/// 503), `GET /v1/exports/{id}` reports `running` once, then `ready_status`; the file is at
/// `/files/{id}.csv`.
fn export_job_api(ready_status: &'static str) -> impl FnMut(&Request) -> Reply + Send {
    let mut creates = 0;
    let mut polls = 0;
    move |request| match (request.method.as_str(), request.path.as_str()) {
        ("POST", "/v1/exports") => {
            creates += 1;
            if creates == 1 {
                return Reply::text(503, "busy");
            }
            Reply::json(201, &json!({"id": "job-7", "status": "queued"}))
        }
        ("GET", "/v1/exports/job-7") => {
            polls += 1;
            if polls == 1 {
                return Reply::json(200, &json!({"id": "job-7", "status": "running"}));
            }
            Reply::json(
                200,
                &json!({"id": "job-7", "status": ready_status, "download_url": "/files/job-7.csv",
                        "error": {"code": "EXPORT_TOO_LARGE", "message": "narrow the filter"}}),
            )
        }
        ("GET", "/files/job-7.csv") => Reply::text(
            200,
            "id,updated_at\n1,2024-08-02T10:00:00\n2,2024-08-03T11:00:00\n",
        ),
        other => panic!("unexpected request {other:?}"),
    }
}

const EXPORT_JOB_SOURCE: &str = r#"format = { type = "csv" }
incremental = { field = "updated_at", initial = "2024-08-01T00:00:00" }
retry = { base_delay_ms = 1 }
job = { create_url = "BASE/v1/exports", body = { format = "csv", modified_since = "{cursor}" }, status_url = "BASE/v1/exports/{id}", download = "/download_url", poll_secs = 1 }"#;

#[test]
fn an_asynchronous_export_is_created_once_polled_and_downloaded() {
    let sandbox = Sandbox::new();
    let server = ApiServer::start(export_job_api("completed"));
    let source = format!(
        "url = \"{}\"\n{}",
        server.url("/unused"),
        EXPORT_JOB_SOURCE.replace("BASE", &server.url(""))
    );
    let (outcome, report) = run(&sandbox, &source);
    outcome.assert_success();
    assert_eq!(delivered(&sandbox), [1, 2]);
    assert_eq!(report["cursor_after"]["updated_at"], "2024-08-03T11:00:00");
    let requests = server.requests();
    let creates: Vec<&Request> = requests.iter().filter(|r| r.method == "POST").collect();
    assert_eq!(creates.len(), 2, "the 503 is retried");
    let key = creates[0]
        .header("idempotency-key")
        .expect("an idempotency key");
    assert_eq!(
        creates[1].header("idempotency-key"),
        Some(key),
        "the same key on the retry"
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&creates[1].body).unwrap(),
        json!({"format": "csv", "modified_since": "2024-08-01T00:00:00"})
    );
    let paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/v1/exports",
            "/v1/exports",
            "/v1/exports/job-7",
            "/v1/exports/job-7",
            "/files/job-7.csv"
        ]
    );
}

#[test]
fn a_failed_export_job_fails_the_run_with_its_reason() {
    let sandbox = Sandbox::new();
    let server = ApiServer::start(export_job_api("failed"));
    let source = format!(
        "url = \"{}\"\n{}",
        server.url("/unused"),
        EXPORT_JOB_SOURCE.replace("BASE", &server.url(""))
    );
    let (outcome, _) = run(&sandbox, &source);
    outcome.assert_code(1);
    assert_eq!(
        outcome.stderr,
        format!(
            "error: pipeline `p`: source (http) failed\n  caused by: {}: export job job-7 failed with status `failed`: EXPORT_TOO_LARGE: narrow the filter\n",
            server.url("/v1/exports/job-7")
        )
    );
    assert!(delivered(&sandbox).is_empty());
}

#[test]
fn concurrent_pages_come_back_in_order() {
    let sandbox = Sandbox::new();
    let mut api = offset_envelope_api(orders(1..=100));
    let server = ApiServer::start(move |request| {
        // Earlier pages answer more slowly, so answers arrive out of order.
        let offset = request.number("offset", 0);
        let wait = std::time::Duration::from_millis(if offset == 0 { 0 } else { 100 - offset });
        Reply::After(wait, Box::new(api(request)))
    });
    let (outcome, report) = run(&sandbox, &offset_source(&server, 10, "concurrency = 4"));
    outcome.assert_success();
    assert_eq!(delivered(&sandbox), ids(1..=100));
    assert_eq!(
        report["requests"]["requests"], 10,
        "no page asked for twice"
    );
    let requests = server.requests();
    let connections: std::collections::BTreeSet<u64> =
        requests.iter().map(|r| r.connection).collect();
    assert!(
        connections.len() > 1,
        "pages fetched in parallel: {connections:?}"
    );
    assert!(
        connections.len() <= 4,
        "at most `concurrency` connections: {connections:?}"
    );
}

/// `bytes` compressed as `encoding` (`gzip` or `deflate`).
fn compressed(bytes: &[u8], encoding: &str) -> Vec<u8> {
    use std::io::Write;
    let level = flate2::Compression::default();
    match encoding {
        "gzip" => {
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), level);
            encoder.write_all(bytes).unwrap();
            encoder.finish().unwrap()
        }
        _ => {
            let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), level);
            encoder.write_all(bytes).unwrap();
            encoder.finish().unwrap()
        }
    }
}

#[test]
fn compressed_xml_and_json_array_pages_are_decoded() {
    // XML pages, gzip; the total in a header.
    let sandbox = Sandbox::new();
    let server = ApiServer::start(move |request| {
        assert!(
            request
                .header("accept-encoding")
                .is_some_and(|a| a.contains("gzip") && a.contains("deflate")),
            "gzip and deflate are accepted"
        );
        let page = request.number("page", 1);
        let records: String = ((page - 1) * 2 + 1..=(page * 2).min(5))
            .map(|id| format!("<order id=\"{id}\"><name>order {id}</name></order>"))
            .collect();
        let xml = format!("<?xml version=\"1.0\"?><orders>{records}</orders>");
        let encoding = if request.path == "/xml" {
            "gzip"
        } else {
            "deflate"
        };
        if request.path == "/xml" {
            Reply::Answer {
                status: 200,
                headers: vec![
                    ("content-type".into(), "application/xml".into()),
                    ("content-encoding".into(), encoding.into()),
                    ("x-total".into(), "5".into()),
                ],
                body: compressed(xml.as_bytes(), encoding),
            }
        } else {
            // JSON-array rows under a header row, deflated.
            let rows: Vec<Value> = std::iter::once(json!(["id", "name"]))
                .chain(
                    ((page - 1) * 2 + 1..=(page * 2).min(5))
                        .map(|id| json!([id, format!("order {id}")])),
                )
                .collect();
            Reply::Answer {
                status: 200,
                headers: vec![
                    ("content-type".into(), "application/json".into()),
                    ("content-encoding".into(), encoding.into()),
                    ("x-total".into(), "5".into()),
                ],
                body: compressed(json!(rows).to_string().as_bytes(), encoding),
            }
        }
    });
    let paging = r#"pagination = { type = "page", limit = 2, total = "header:X-Total", stop_on_short_page = false }"#;
    let (outcome, _) = run(
        &sandbox,
        &format!(
            "url = \"{}\"\nformat = {{ type = \"xml\", record_path = \"orders/order\" }}\n{paging}",
            server.url("/xml")
        ),
    );
    outcome.assert_success();
    assert_eq!(
        sandbox.read("out/orders-01.ndjson"),
        (1..=5)
            .map(|id| format!("{{\"@id\":\"{id}\",\"name\":\"order {id}\"}}\n"))
            .collect::<String>()
    );

    let sandbox = Sandbox::new();
    let (outcome, _) = run(
        &sandbox,
        &format!(
            "url = \"{}\"\nformat = {{ type = \"json-array\" }}\n{paging}",
            server.url("/rows")
        ),
    );
    outcome.assert_success();
    assert_eq!(delivered(&sandbox), ids(1..=5));
}

#[test]
fn max_pages_and_max_records_stop_paging_without_a_total_check() {
    for (cap, expected) in [
        ("max_pages = 2", ids(1..=20)),
        ("max_records = 25", ids(1..=30)),
    ] {
        let sandbox = Sandbox::new();
        let server = ApiServer::start(offset_envelope_api(orders(1..=100)));
        let (outcome, _) = run(&sandbox, &offset_source(&server, 10, cap));
        outcome.assert_success();
        assert_eq!(
            delivered(&sandbox),
            expected,
            "{cap}: whole pages, then stop"
        );
    }
}

#[test]
fn a_cursor_seen_twice_or_a_page_served_twice_is_a_loop() {
    // The cursor API hands back the same cursor forever.
    let sandbox = Sandbox::new();
    let server = ApiServer::start(|request| {
        let page = if request.param("cursor").is_some() {
            2
        } else {
            1
        };
        Reply::json(200, &json!({"data": [order(page)], "next_cursor": "again"}))
    });
    let (outcome, _) = run(
        &sandbox,
        &format!(
            "url = \"{}\"\nformat = {{ type = \"json\", records = \"/data\" }}\npagination = {{ type = \"cursor\", cursor = \"/next_cursor\" }}",
            server.url("/events")
        ),
    );
    outcome.assert_code(1);
    assert_eq!(
        outcome.stderr,
        format!(
            "error: pipeline `p`: source (http) failed\n  caused by: {} (page 2): the API gave the same cursor twice: paging would go round in a loop\n",
            server.url("/events?cursor=again")
        )
    );

    // An API that ignores `page` serves page 1 again.
    let sandbox = Sandbox::new();
    let server = ApiServer::start(|_| Reply::json(200, &json!(orders(1..=10))));
    let (outcome, _) = run(
        &sandbox,
        &format!(
            "url = \"{}\"\npagination = {{ type = \"page\", limit = 10 }}",
            server.url("/items")
        ),
    );
    outcome.assert_code(1);
    assert_eq!(
        outcome.stderr,
        format!(
            "error: pipeline `p`: source (http) failed\n  caused by: {} (page 2): this page is the same as the one before: the API ignores the paging parameters, or pages in a loop\n",
            server.url("/items?limit=10&page=2")
        )
    );
    assert!(delivered(&sandbox).is_empty());
}

#[test]
fn an_export_capped_at_50000_records_is_split_until_complete() {
    let sandbox = Sandbox::new();
    // 60,000 changes on the 2nd of August, one every 1.44 s; one on the 1st and the 3rd.
    let mut all = vec![(1, "2024-08-01T12:00:00".to_string())];
    for i in 0..60_000u64 {
        let second = i * 144 / 100;
        let at = format!(
            "2024-08-02T{:02}:{:02}:{:02}",
            second / 3600,
            second / 60 % 60,
            second % 60
        );
        all.push((100 + i, at));
    }
    all.push((2, "2024-08-03T12:00:00".to_string()));
    let server = ApiServer::start(export_api(all, 50_000));
    let source = format!(
        r#"url = "{}"
format = {{ type = "csv" }}
query = {{ from = "{{cursor}}", to = "{{until}}" }}
cap = 50000
incremental = {{ field = "updated_at", initial = "2024-08-01T00:00:00", window = "1d", end = "2024-08-04T00:00:00" }}"#,
        server.url("/export.csv")
    );
    let (outcome, report) = run(&sandbox, &source);
    outcome.assert_success();
    let got = delivered(&sandbox);
    let expected: Vec<u64> = std::iter::once(1)
        .chain(100..60_100)
        .chain(std::iter::once(2))
        .collect();
    assert_eq!(got.len(), expected.len(), "nothing lost, nothing twice");
    assert!(got == expected, "every record, in window order");
    // The 2nd: capped, then its two halves (30,000 each); the 1st and the 3rd.
    assert_eq!(report["requests"]["requests"], 5);
    assert_eq!(report["requests"]["window_splits"], 1);
}

#[test]
fn a_numeric_cursor_pulls_what_is_newer_run_after_run() {
    let sandbox = Sandbox::new();
    let all = Arc::new(Mutex::new(orders(1..=5)));
    let serving = all.clone();
    let server = ApiServer::start(move |request| {
        let since: u64 = request.number("since_id", 0);
        let newer: Vec<Value> = serving
            .lock()
            .unwrap()
            .iter()
            .filter(|o| o["id"].as_u64().unwrap() > since)
            .cloned()
            .collect();
        Reply::json(200, &json!(newer))
    });
    let source = format!(
        "url = \"{}\"\nincremental = {{ field = \"id\", param = \"since_id\" }}",
        server.url("/orders")
    );
    let (outcome, report) = run(&sandbox, &source);
    outcome.assert_success();
    assert_eq!(delivered(&sandbox), ids(1..=5));
    assert_eq!(report["cursor_after"]["id"], "5");
    assert_eq!(
        server.requests()[0].param("since_id"),
        None,
        "no cursor yet"
    );
    all.lock().unwrap().extend(orders(6..=7));
    run(&sandbox, &source).0.assert_success();
    assert_eq!(delivered(&sandbox), ids(1..=7));
    assert_eq!(server.requests()[1].param("since_id"), Some("5"));
}

#[test]
fn secrets_never_reach_the_log_even_at_trace_level() {
    let sandbox = Sandbox::new();
    let mut api = offset_envelope_api(orders(1..=20));
    let mut failed_once = false;
    let server = ApiServer::start(move |request| {
        if request.path == "/oauth/token" {
            return Reply::json(
                200,
                &json!({"access_token": "tok-SECRET-3", "expires_in": 3600}),
            );
        }
        if request.number("offset", 0) == 10 && !failed_once {
            // One failure, so the retry path logs too.
            failed_once = true;
            return Reply::text(500, "try again");
        }
        api(request)
    });
    let source = offset_source(
        &server,
        10,
        &format!(
            r#"headers = {{ X-Tenant-Key = "${{env:TEST_TENANT_KEY}}" }}
retry = {{ base_delay_ms = 1 }}
auth = {{ type = "oauth2", token_url = "{}", client_id = "longshore", client_secret = "${{env:TEST_CLIENT_SECRET}}" }}"#,
            server.url("/oauth/token")
        ),
    );
    sandbox.write(
        "p.toml",
        format!("name = \"p\"\n\n[source]\ntype = \"http\"\n{source}\n\n[[sinks]]\ntype = \"file\"\npath = \"out/o.ndjson\"\n"),
    );
    let mut command = sandbox.command(["-vv", "run", "p.toml"]);
    command.envs([
        ("TEST_CLIENT_SECRET", "cs-SECRET-1"),
        ("TEST_TENANT_KEY", "tk-SECRET-2"),
    ]);
    // Every crate's log too (ureq's, rustls's), not only longshore's.
    command.env("RUST_LOG", "trace");
    let outcome = crate::support::run(command);
    outcome.assert_success();
    assert!(
        outcome.stderr.contains("retrying"),
        "the retry was logged:\n{}",
        outcome.stderr
    );
    for secret in ["cs-SECRET-1", "tk-SECRET-2", "tok-SECRET-3"] {
        assert!(
            !outcome.stderr.contains(secret) && !outcome.stdout().contains(secret),
            "{secret} was logged:\n{}",
            outcome.stderr
        );
    }
}

/// `openssl s_server -WWW` on 127.0.0.1 serving the files of a directory over HTTPS, with a
/// certificate of its own that no public CA signed.
struct TlsServer {
    child: std::process::Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl TlsServer {
    fn start(files: &[(&str, &str)]) -> TlsServer {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        let dir = tempfile::tempdir().expect("a temporary directory");
        super::support::certs::self_signed(dir.path(), "cert", "longshore test API");
        for (name, content) in files {
            std::fs::write(dir.path().join(name), content).expect("write a served file");
        }
        let mut child = Command::new("openssl")
            .args([
                "s_server",
                "-accept",
                "127.0.0.1:0",
                "-cert",
                "cert.pem",
                "-key",
                "cert.key",
            ])
            .arg("-WWW")
            .current_dir(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start openssl s_server");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if let Some(port) = line.strip_prefix("ACCEPT 127.0.0.1:") {
                    let _ = tx.send(port.trim().parse::<u16>().ok());
                }
            }
        });
        let port = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .ok()
            .flatten()
            .expect("openssl s_server listening within 10 s");
        TlsServer { child, dir, port }
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    fn cert(&self) -> std::path::PathBuf {
        self.dir.path().join("cert.pem")
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn certificates_are_verified_unless_their_ca_is_given() {
    let server = TlsServer::start(&[("orders.json", r#"[{"id": 1}, {"id": 2}]"#)]);
    let sandbox = Sandbox::new();
    let (outcome, _) = run(
        &sandbox,
        &format!("url = \"{}\"", server.url("/orders.json")),
    );
    outcome.assert_code(1);
    assert!(
        outcome.stderr.starts_with(&format!(
            "error: pipeline `p`: source (http) failed\n  caused by: GET {}: ",
            server.url("/orders.json")
        )) && outcome
            .stderr
            .ends_with("invalid peer certificate: UnknownIssuer\n"),
        "an untrusted certificate is refused, and not tried again:\n{}",
        outcome.stderr
    );
    assert!(delivered(&sandbox).is_empty());

    let sandbox = Sandbox::new();
    std::fs::copy(server.cert(), sandbox.join("api-ca.pem")).expect("copy the certificate");
    let (outcome, _) = run(
        &sandbox,
        &format!(
            "url = \"{}\"\nca_file = \"api-ca.pem\"",
            server.url("/orders.json")
        ),
    );
    outcome.assert_success();
    assert_eq!(delivered(&sandbox), [1, 2]);
}

#[test]
fn a_pull_that_fails_midway_publishes_nothing_and_the_rerun_delivers_everything_once() {
    let sandbox = Sandbox::new();
    let mut api = start_limit_api(one_a_day(6));
    let broken = Arc::new(Mutex::new(true));
    let breaking = broken.clone();
    let server = ApiServer::start(move |request| {
        if request.number("start", 0) == 4 && *breaking.lock().unwrap() {
            return Reply::json(400, &json!({"detail": "start out of range"}));
        }
        api(request)
    });
    let source =
        example_source("start-limit-delta.toml", &server).replace("limit = 100", "limit = 2");
    sandbox.write("secrets/contacts-api-key", "ck-1");
    let (outcome, report) = run(&sandbox, &source);
    outcome.assert_code(1);
    assert!(delivered(&sandbox).is_empty(), "nothing published");
    sandbox.assert_no_temp_files();
    assert_eq!(report["cursor_after"], json!({}), "the cursor did not move");

    *broken.lock().unwrap() = false;
    let (outcome, report) = run(&sandbox, &source);
    outcome.assert_success();
    assert_eq!(delivered(&sandbox), ids(1..=6), "everything, once");
    assert_eq!(report["cursor_after"]["modifiedOn"], "2024-08-06T00:00:00");
}

#[test]
fn the_local_api_example_runs_on_the_sample_pages() {
    let server = ApiServer::start(|request| {
        let name = request.path.trim_start_matches('/');
        match std::fs::read_to_string(repo_path(&format!("samples/api/{name}"))) {
            Ok(page) => Reply::Answer {
                status: 200,
                headers: vec![("content-type".into(), "application/json".into())],
                body: page.into_bytes(),
            },
            Err(_) => Reply::text(404, "no such file"),
        }
    });
    let sandbox = Sandbox::new();
    let example = std::fs::read_to_string(repo_path("pipelines/examples/local-api.toml"))
        .expect("the example")
        .replace("http://127.0.0.1:8000", &server.url(""));
    sandbox.write("pipelines/examples/local-api.toml", example);
    let outcome = sandbox.run(["run", "pipelines/examples/local-api.toml"]);
    outcome.assert_success();
    assert!(
        outcome
            .stderr
            .contains("done, 5 records read from 2 requests"),
        "{}",
        outcome.stderr
    );
    let delivered: Vec<u64> = sandbox
        .read("out/api-orders.ndjson")
        .lines()
        .map(|line| {
            serde_json::from_str::<Value>(line).unwrap()["id"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(delivered, ids(1..=5));
}

/// The number of lines of order `id`: 1 to 3, so that some take two pages of 2.
fn line_count(id: u64) -> u64 {
    id % 3 + 1
}

fn line(order: u64, number: u64) -> Value {
    json!({"line": number, "sku": format!("sku-{order}-{number}"), "qty": number})
}

/// The lines of `orders` as the fan-out delivers them: in order, each with its order's `id` and
/// `name` as `order_id` and `customer`.
fn order_lines(orders: impl IntoIterator<Item = u64>) -> Vec<Value> {
    orders
        .into_iter()
        .flat_map(|id| {
            (1..=line_count(id)).map(move |number| {
                let mut line = line(id, number);
                line["order_id"] = json!(id);
                line["customer"] = json!(format!("order {id}"));
                line
            })
        })
        .collect()
}

/// `GET /api/orders/?updated_since=&limit=&offset=` -> `{"count", "results"}` (the orders in
/// `all` changed after `updated_since`), and `GET /api/orders/{id}/lines?limit=&offset=` ->
/// `{"count", "lines"}`, or 404 for an order not in `all`.
fn orders_with_lines_api(all: Arc<Mutex<Vec<Value>>>) -> impl FnMut(&Request) -> Reply + Send {
    move |request| {
        let limit = request.number("limit", 10) as usize;
        let offset = request.number("offset", 0) as usize;
        let all = all.lock().unwrap();
        if request.path == "/api/orders/" {
            let since = request.param("updated_since").unwrap_or_default();
            let changed: Vec<&Value> = all
                .iter()
                .filter(|order| order["updated_at"].as_str().unwrap() > since)
                .collect();
            let page: Vec<&Value> = changed.iter().skip(offset).take(limit).copied().collect();
            return Reply::json(200, &json!({"count": changed.len(), "results": page}));
        }
        let id: u64 = request
            .path
            .strip_prefix("/api/orders/")
            .and_then(|rest| rest.strip_suffix("/lines"))
            .and_then(|id| id.parse().ok())
            .expect("/api/orders/{id}/lines");
        if !all.iter().any(|order| order["id"] == id) {
            return Reply::json(404, &json!({"detail": "Not found."}));
        }
        let lines: Vec<Value> = (1..=line_count(id)).map(|n| line(id, n)).collect();
        let page: Vec<&Value> = lines.iter().skip(offset).take(limit).collect();
        Reply::json(200, &json!({"count": lines.len(), "lines": page}))
    }
}

/// The fan-out example against `server`, with lists of 3 orders a page and 2 lines a page, and
/// `retry` waits of a millisecond.
fn fan_out_source(server: &ApiServer) -> String {
    example_source("fan-out.toml", server)
        .replace("limit = 50", "limit = 3")
        .replace("limit = 100", "limit = 2")
        .replace(
            "[source.children]",
            "retry = { base_delay_ms = 1 }\n\n[source.children]",
        )
}

/// Runs pipeline `p` with the fan-out `source`, given the example's token.
fn run_fan_out(sandbox: &Sandbox, source: &str) -> (crate::support::Outcome, Value) {
    run_with_env(sandbox, source, &[("SHOP_API_TOKEN", "t-9")])
}

/// The requests for lines, in the order the server answered them.
fn line_requests(server: &ApiServer) -> Vec<Request> {
    server
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/lines"))
        .collect()
}

#[test]
fn children_are_delivered_in_the_parents_order_with_parent_fields() {
    let sandbox = Sandbox::new();
    let server = ApiServer::start(orders_with_lines_api(Arc::new(Mutex::new(orders(1..=7)))));
    let (outcome, report) = run_fan_out(&sandbox, &fan_out_source(&server));
    outcome.assert_success();
    assert_eq!(delivered_records(&sandbox), order_lines(1..=7));
    // Orders 2 and 5 have 3 lines: two pages.
    let mut asked: Vec<String> = line_requests(&server)
        .iter()
        .map(|r| format!("{}?offset={}", r.path, r.param("offset").unwrap()))
        .collect();
    asked.sort();
    let mut expected: Vec<String> = (1..=7)
        .flat_map(|id| {
            let pages = line_count(id).div_ceil(2);
            (0..pages).map(move |page| format!("/api/orders/{id}/lines?offset={}", page * 2))
        })
        .collect();
    expected.sort();
    assert_eq!(asked, expected, "every page of lines, once");
    assert_eq!(
        report["requests"]["requests"],
        3 + 9,
        "3 pages of orders, 9 of lines"
    );
    assert_eq!(report["records_read"], 14);
    assert_eq!(report["cursor_after"]["updated_at"], "2024-08-01T00:00:07Z");
}

#[test]
fn children_are_fetched_side_by_side_and_come_back_in_order() {
    let sandbox = Sandbox::new();
    let mut api = orders_with_lines_api(Arc::new(Mutex::new(orders(1..=12))));
    let server = ApiServer::start(move |request| {
        // Earlier orders' lines answer more slowly, so answers arrive out of order.
        let reply = api(request);
        match request
            .path
            .split('/')
            .nth(3)
            .and_then(|id| id.parse::<u64>().ok())
        {
            Some(id) if request.path.ends_with("/lines") => Reply::After(
                std::time::Duration::from_millis(10 * (13 - id)),
                Box::new(reply),
            ),
            _ => reply,
        }
    });
    let (outcome, _) = run_fan_out(&sandbox, &fan_out_source(&server));
    outcome.assert_success();
    assert_eq!(delivered_records(&sandbox), order_lines(1..=12));
    let children: std::collections::BTreeSet<u64> = line_requests(&server)
        .iter()
        .map(|r| r.connection)
        .collect();
    let all: std::collections::BTreeSet<u64> =
        server.requests().iter().map(|r| r.connection).collect();
    assert!(
        children.len() > 1,
        "lines fetched in parallel: {children:?}"
    );
    assert!(
        all.len() <= 5,
        "one connection for the list, at most `concurrency` = 4 more: {all:?}"
    );
}

#[test]
fn a_child_that_is_gone_is_a_reject_or_fails_the_run_without_rejects() {
    let mut api = orders_with_lines_api(Arc::new(Mutex::new(orders(1..=5))));
    // Order 4 was deleted after the list was read.
    let server = ApiServer::start(move |request| {
        if request.path == "/api/orders/4/lines" {
            return Reply::json(404, &json!({"detail": "Not found."}));
        }
        api(request)
    });
    let sandbox = Sandbox::new();
    let source = fan_out_source(&server);
    let (outcome, report) = run_fan_out(&sandbox, &source);
    outcome.assert_success();
    assert_eq!(delivered_records(&sandbox), order_lines([1, 2, 3, 5]));
    assert_eq!(report["rejects"]["total"], 1);
    let rejects = sandbox.files("rejects");
    assert_eq!(rejects.len(), 1, "{rejects:?}");
    let reject: Value = serde_json::from_str(sandbox.read(&rejects[0]).trim()).unwrap();
    let url = server.url("/api/orders/4/lines?limit=2&offset=0");
    assert_eq!(
        reject,
        json!({
            "file": url,
            "line": null,
            "column": null,
            "record": null,
            "field": null,
            "reason": "HTTP 404: Not found.",
            "raw": order(4).to_string(),
        })
    );

    let sandbox = Sandbox::new();
    let without_rejects = source.split("[rejects]").next().unwrap();
    let (outcome, _) = run_fan_out(&sandbox, without_rejects);
    outcome.assert_code(1);
    assert_eq!(
        outcome.stderr,
        format!(
            "error: pipeline `p`: source (http) failed\n  caused by: GET {url}: HTTP 404: Not found.; the parent record's child is gone (deleted after the list was read?): a `[rejects]` table sets such records aside and lets the run go on\n"
        )
    );
    assert!(delivered_records(&sandbox).is_empty(), "nothing published");
}

#[test]
fn children_are_authenticated_and_retried_like_the_list() {
    let sandbox = Sandbox::new();
    let mut api = orders_with_lines_api(Arc::new(Mutex::new(orders(1..=4))));
    let mut failed = false;
    let server = ApiServer::start(move |request| {
        if request.path == "/api/orders/3/lines" && !failed {
            failed = true;
            return Reply::text(503, "maintenance");
        }
        api(request)
    });
    let (outcome, report) = run_fan_out(&sandbox, &fan_out_source(&server));
    outcome.assert_success();
    assert_eq!(delivered_records(&sandbox), order_lines(1..=4));
    for request in server.requests() {
        assert_eq!(
            request.header("authorization"),
            Some("Bearer t-9"),
            "{}",
            request.path
        );
    }
    let order_3: Vec<Request> = line_requests(&server)
        .into_iter()
        .filter(|r| r.path == "/api/orders/3/lines")
        .collect();
    assert_eq!(order_3.len(), 2, "answered 503, then retried");
    assert_eq!(report["requests"]["retries"], 1);
    // 2 pages of orders, 5 of lines (order 2 has two), 1 retry.
    assert_eq!(report["requests"]["requests"], 2 + 5 + 1);
}

#[test]
fn a_delta_fan_out_asks_for_the_children_of_changed_parents_only() {
    let sandbox = Sandbox::new();
    let all = Arc::new(Mutex::new(orders(1..=4)));
    let server = ApiServer::start(orders_with_lines_api(all.clone()));
    let source = fan_out_source(&server);
    let token = [("SHOP_API_TOKEN", "t-9")];

    let (outcome, report) = run_with_env(&sandbox, &source, &token);
    outcome.assert_success();
    assert_eq!(delivered_records(&sandbox), order_lines(1..=4));
    assert_eq!(report["cursor_after"]["updated_at"], "2024-08-01T00:00:04Z");
    let after_first = line_requests(&server).len();

    // Nothing changed: the list is empty, and no lines are asked for.
    let (outcome, _) = run_with_env(&sandbox, &source, &token);
    outcome.assert_success();
    assert_eq!(line_requests(&server).len(), after_first);
    assert_eq!(
        server.requests().last().unwrap().param("updated_since"),
        Some("2024-08-01T00:00:04Z")
    );

    // Order 5 is new: only its lines are asked for.
    all.lock().unwrap().push(order(5));
    let (outcome, report) = run_with_env(&sandbox, &source, &token);
    outcome.assert_success();
    assert_eq!(delivered_records(&sandbox), order_lines(1..=5));
    let asked: Vec<String> = line_requests(&server)[after_first..]
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(asked, ["/api/orders/5/lines", "/api/orders/5/lines"]);
    assert_eq!(report["cursor_after"]["updated_at"], "2024-08-01T00:00:05Z");
}

#[test]
fn a_fan_out_stopped_by_the_time_limit_moves_the_cursor_by_the_parents_delivered() {
    let sandbox = Sandbox::new();
    let mut api = orders_with_lines_api(Arc::new(Mutex::new(orders(1..=6))));
    let limited = Arc::new(Mutex::new(true));
    let limiting = limited.clone();
    let server = ApiServer::start(move |request| {
        if request.path == "/api/orders/4/lines" && *limiting.lock().unwrap() {
            return Reply::text(429, "hourly quota used up").header("Retry-After", "3600");
        }
        api(request)
    });
    let source = fan_out_source(&server);
    let write = |run: u32| {
        sandbox.write(
            "p.toml",
            format!(
                "name = \"p\"\nmax_runtime_secs = 20\n\n[source]\ntype = \"http\"\n{source}\n\n[[sinks]]\ntype = \"file\"\npath = \"out/lines-{run}.ndjson\"\n"
            ),
        )
    };
    write(1);
    let run = || {
        let mut command = sandbox.command(["-q", "run", "p.toml"]);
        command.env("SHOP_API_TOKEN", "t-9");
        crate::support::run(command)
    };
    let first = run();
    first.assert_code(1);
    assert_eq!(
        first.stderr,
        "error: pipeline `p`: run failed\n  caused by: max_runtime_secs = 20 reached: stopped after the children of 3 records: the answer's Retry-After asked to wait 3600 s, more than the run has left; what was read completely was published, and the next run goes on with the rest\n"
    );
    assert_eq!(delivered_records(&sandbox), order_lines(1..=3));

    *limited.lock().unwrap() = false;
    write(2);
    run().assert_success();
    assert_eq!(
        delivered_records(&sandbox),
        order_lines(1..=6),
        "the rest, nothing twice"
    );
}

#[test]
fn a_parent_without_the_field_of_the_child_url_is_a_bad_record() {
    let mut all = orders(1..=3);
    all[1]["id"] = Value::Null;
    let server = ApiServer::start(orders_with_lines_api(Arc::new(Mutex::new(all.clone()))));
    let sandbox = Sandbox::new();
    let source = fan_out_source(&server);
    let (outcome, _) = run_fan_out(&sandbox, &source);
    outcome.assert_success();
    assert_eq!(delivered_records(&sandbox), order_lines([1, 3]));
    let rejects = sandbox.files("rejects");
    let reject: Value = serde_json::from_str(sandbox.read(&rejects[0]).trim()).unwrap();
    let page = format!("{} (page 1)", server.url("/api/orders/?limit=3&offset=0"));
    assert_eq!(reject["file"], page);
    assert_eq!(reject["record"], 2);
    assert_eq!(reject["reason"], "no `id` for `{id}` in the child URL");
    assert_eq!(reject["raw"], all[1].to_string());

    let sandbox = Sandbox::new();
    let without_rejects = source.split("[rejects]").next().unwrap();
    let (outcome, _) = run_fan_out(&sandbox, without_rejects);
    outcome.assert_code(1);
    assert_eq!(
        outcome.stderr,
        format!(
            "error: pipeline `p`: source (http) failed\n  caused by: {page}: record 2: no `id` for `{{id}}` in the child URL\n"
        )
    );
}

#[test]
fn a_parent_that_comes_twice_in_one_pull_has_its_children_fetched_once() {
    let sandbox = Sandbox::new();
    // Newest first; order 7 arrives while the list is paged, which shifts order 4 from the
    // end of page 1 to the start of page 2.
    let all = Arc::new(Mutex::new(
        orders(1..=6).into_iter().rev().collect::<Vec<_>>(),
    ));
    let mut api = orders_with_lines_api(all.clone());
    let server = ApiServer::start(move |request| {
        if request.path == "/api/orders/" && request.number("offset", 0) == 3 {
            let mut all = all.lock().unwrap();
            if all.len() == 6 {
                all.insert(0, order(7));
            }
        }
        api(request)
    });
    let source = fan_out_source(&server).replace(
        "param = \"updated_since\" }",
        "param = \"updated_since\", key = \"id\" }",
    );
    let (outcome, report) = run_fan_out(&sandbox, &source);
    outcome.assert_success();
    assert_eq!(delivered_records(&sandbox), order_lines([6, 5, 4, 3, 2, 1]));
    let line_paths: Vec<String> = line_requests(&server)
        .iter()
        .filter(|r| r.number("offset", 0) == 0)
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(
        line_paths
            .iter()
            .filter(|p| *p == "/api/orders/4/lines")
            .count(),
        1
    );
    assert_eq!(
        report["warnings"],
        json!([
            "the advertised total changed from 6 to 7 while paging: records were added or removed during the pull, or a filter fell off the later pages",
            "1 records came twice in this pull and were delivered once: the list changed while it was paged"
        ])
    );
}
