//! API pulls that used to lose or repeat records with exit 0 and no warning, each against a
//! model API that behaves as real ones do: a `next` link that is only a query string, a server
//! that clamps the page size, a delta filter the API ignores, a mistyped cursor field, `>=`
//! deltas without a key, an export capped below its advertised total, errors inside HTTP 200
//! answers, and redirects. Every test checks the exact records delivered or the exact error.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::http::{delivered, ids, order, orders, run};
use crate::support::Sandbox;
use crate::support::api::{ApiServer, Reply, Request};

/// Products 1..=27; every third is `active`. `GET /v1/products/?status=&limit=&page=` filters by
/// `status` when given and answers `next` as only the "argument to attach to the url", as
/// Cratejoy documents it (`?limit=4&page=1`): the filter is not in it.
fn bare_query_next_api(request: &Request) -> Reply {
    let all: Vec<Value> = (1..=27u64)
        .map(|id| json!({"id": id, "status": if id % 3 == 0 { "active" } else { "draft" }}))
        .filter(|p| request.param("status").is_none_or(|s| p["status"] == s))
        .collect();
    let limit = request.number("limit", 10);
    let page = request.number("page", 0);
    let results: Vec<Value> = all
        .iter()
        .skip((page * limit) as usize)
        .take(limit as usize)
        .cloned()
        .collect();
    let next = ((page + 1) * limit < all.len() as u64)
        .then(|| format!("?limit={limit}&page={}", page + 1));
    Reply::json(
        200,
        &json!({"count": all.len(), "next": next, "results": results}),
    )
}

#[test]
fn a_next_link_that_is_only_a_query_string_keeps_the_pipelines_query() {
    let sandbox = Sandbox::new();
    let server = ApiServer::start(bare_query_next_api);
    let source = format!(
        "url = \"{}\"\nquery = {{ status = \"active\", limit = 4 }}\nformat = {{ type = \"json\", records = \"/results\" }}\npagination = {{ type = \"next\", next = \"/next\", total = \"/count\" }}",
        server.url("/v1/products/")
    );
    let (outcome, report) = run(&sandbox, &source);
    outcome.assert_success();
    assert_eq!(delivered(&sandbox), [3, 6, 9, 12, 15, 18, 21, 24, 27]);
    assert_eq!(report["warnings"], json!([]));
    let statuses: Vec<Option<String>> = server
        .requests()
        .iter()
        .map(|r| r.param("status").map(str::to_string))
        .collect();
    assert_eq!(statuses, vec![Some("active".to_string()); 3]);
}

#[test]
fn an_advertised_total_that_changes_between_pages_is_a_warning() {
    let sandbox = Sandbox::new();
    // Records are added while the pull pages: the count grows by one a page (the fourth
    // request, at offset 30, finds the end).
    let mut pages = 0;
    let mut api = crate::http::offset_envelope_api(orders(1..=30));
    let server = ApiServer::start(move |request| {
        pages += 1;
        let Reply::Answer {
            status,
            headers,
            body,
        } = api(request)
        else {
            unreachable!()
        };
        let mut json: Value = serde_json::from_slice(&body).unwrap();
        json["count"] = json!(30 + pages - 1);
        let _ = (status, headers);
        Reply::json(200, &json)
    });
    let source = format!(
        "url = \"{}\"\nformat = {{ type = \"json\", records = \"/results\" }}\npagination = {{ type = \"offset\", limit = 10, total = \"/count\" }}\non_total_mismatch = \"warn\"",
        server.url("/api/orders/")
    );
    let (outcome, report) = run(&sandbox, &source);
    outcome.assert_success();
    assert_eq!(delivered(&sandbox), ids(1..=30));
    assert_eq!(
        report["warnings"],
        json!([
            "the advertised total changed from 30 to 31 while paging: records were added or removed during the pull, or a filter fell off the later pages",
            "the advertised total changed from 31 to 32 while paging: records were added or removed during the pull, or a filter fell off the later pages",
            "the advertised total changed from 32 to 33 while paging: records were added or removed during the pull, or a filter fell off the later pages",
            "received 30 records, but the API advertised 33: records may have been added or removed while paging, or the server caps the page size below `limit`"
        ])
    );
}

/// Orders 1..=`count` by offset, at most `clamp` a page whatever `limit` asks (as DRF's
/// `max_limit` and most APIs do), and no total or next link.
fn clamping_api(count: u64, clamp: u64) -> impl FnMut(&Request) -> Reply + Send {
    move |request| {
        let limit = request.number("limit", 10).min(clamp);
        let offset = request.number("offset", 0);
        let page: Vec<Value> = (offset + 1..=count)
            .take(limit as usize)
            .map(order)
            .collect();
        Reply::json(200, &json!(page))
    }
}

#[test]
fn a_server_that_clamps_the_page_size_is_paged_to_the_end() {
    let sandbox = Sandbox::new();
    let server = ApiServer::start(clamping_api(2500, 1000));
    let source = format!(
        "url = \"{}\"\npagination = {{ type = \"offset\", limit = 5000 }}",
        server.url("/api/orders")
    );
    let (outcome, report) = run(&sandbox, &source);
    outcome.assert_success();
    assert_eq!(delivered(&sandbox), ids(1..=2500));
    let offsets: Vec<u64> = server
        .requests()
        .iter()
        .map(|r| r.number("offset", 0))
        .collect();
    // The third page (500) is shorter than the server's own page size: the end.
    assert_eq!(offsets, [0, 1000, 2000]);
    assert_eq!(report["requests"]["requests"], 3);
}

#[test]
fn a_short_first_page_is_confirmed_by_an_empty_one() {
    let sandbox = Sandbox::new();
    let server = ApiServer::start(clamping_api(3, 1000));
    let source = format!(
        "url = \"{}\"\npagination = {{ type = \"offset\", limit = 100 }}",
        server.url("/api/orders")
    );
    let (outcome, _) = run(&sandbox, &source);
    outcome.assert_success();
    assert_eq!(delivered(&sandbox), ids(1..=3));
    let offsets: Vec<u64> = server
        .requests()
        .iter()
        .map(|r| r.number("offset", 0))
        .collect();
    assert_eq!(offsets, [0, 3]);
}

/// Contacts as a DRF API serves them: `GET /api/contacts/?updated_at__gte=` filters, any other
/// parameter is ignored (DRF's default), ordered by `updated_at`.
#[derive(Clone)]
struct Contacts(Arc<Mutex<Vec<Value>>>);

impl Contacts {
    fn new(count: u64) -> Self {
        Contacts(Arc::new(Mutex::new((1..=count).map(contact).collect())))
    }

    fn add(&self, id: u64) {
        self.0.lock().unwrap().push(contact(id));
    }

    fn api(&self) -> impl FnMut(&Request) -> Reply + Send + 'static {
        let all = self.0.clone();
        move |request| {
            let from = request.param("updated_at__gte").map(str::to_string);
            let page: Vec<Value> = all
                .lock()
                .unwrap()
                .iter()
                .filter(|c| {
                    from.as_deref()
                        .is_none_or(|from| c["updated_at"].as_str().unwrap() >= from)
                })
                .cloned()
                .collect();
            Reply::json(200, &json!(page))
        }
    }
}

fn contact(id: u64) -> Value {
    json!({"id": id, "updated_at": format!("2024-08-01T10:{id:02}:00Z")})
}

#[test]
fn a_delta_parameter_the_api_ignores_delivers_nothing_twice_and_says_so() {
    let sandbox = Sandbox::new();
    let contacts = Contacts::new(5);
    let server = ApiServer::start(contacts.api());
    let source = format!(
        "url = \"{}\"\nincremental = {{ field = \"updated_at\", param = \"updated_since\" }}",
        server.url("/api/contacts/")
    );
    let (outcome, _) = run(&sandbox, &source);
    outcome.assert_success();
    assert_eq!(delivered(&sandbox), ids(1..=5));
    contacts.add(6);
    contacts.add(7);
    let (outcome, report) = run(&sandbox, &source);
    outcome.assert_success();
    assert_eq!(delivered(&sandbox), ids(1..=7), "only 6 and 7 again");
    assert_eq!(
        server.requests()[1].param("updated_since"),
        Some("2024-08-01T10:05:00Z")
    );
    assert_eq!(
        report["warnings"],
        json!([
            "4 records older than asked for came back (the first with `updated_at` = 2024-08-01T10:01:00Z, asked from 2024-08-01T10:05:00Z) and were not delivered again: the API seems to ignore the parameter `updated_since`; check its name in the API's documentation"
        ])
    );
}

#[test]
fn a_mistyped_cursor_field_fails_naming_the_field_that_exists() {
    let sandbox = Sandbox::new();
    let server = ApiServer::start(Contacts::new(3).api());
    let source = format!(
        "url = \"{}\"\nincremental = {{ field = \"updatedAt\", param = \"updated_at__gte\" }}",
        server.url("/api/contacts/")
    );
    let (outcome, _) = run(&sandbox, &source);
    outcome.assert_code(1);
    assert!(
        outcome.stderr.contains(&format!(
            "{} (page 1): record 1 has no field `updatedAt` (`incremental.field`): did you mean `updated_at`?",
            server.url("/api/contacts/")
        )),
        "{}",
        outcome.stderr
    );
    sandbox.assert_not_published("out/orders-01.ndjson");
}

#[test]
fn a_greater_or_equal_delta_without_a_key_does_not_deliver_the_boundary_record_again() {
    let sandbox = Sandbox::new();
    let contacts = Contacts::new(5);
    let server = ApiServer::start(contacts.api());
    let source = format!(
        "url = \"{}\"\nincremental = {{ field = \"updated_at\", param = \"updated_at__gte\" }}",
        server.url("/api/contacts/")
    );
    run(&sandbox, &source).0.assert_success();
    assert_eq!(delivered(&sandbox), ids(1..=5));
    // `>=` gives contact 5 again: the same record, not delivered twice; nothing new.
    let (outcome, report) = run(&sandbox, &source);
    outcome.assert_success();
    assert_eq!(report["outcome"], "nothing_new");
    assert_eq!(delivered(&sandbox), ids(1..=5));
    contacts.add(6);
    run(&sandbox, &source).0.assert_success();
    assert_eq!(delivered(&sandbox), ids(1..=6));
}

/// An export endpoint: `GET /export?from=&to=` -> the records with `from <= updated_at < to`
/// (all without `from`), at most 50 of them, with the count in range in `X-Total-Records` and
/// in the body's `totalRecords`.
fn capped_export_api(request: &Request) -> Reply {
    let all: Vec<Value> = (1..=57u64)
        .map(|id| json!({"id": id, "updated_at": format!("2024-08-{:02}T12:00:00Z", id % 28 + 1)}))
        .collect();
    let in_range: Vec<&Value> = all
        .iter()
        .filter(|r| {
            let at = r["updated_at"].as_str().unwrap();
            request.param("from").is_none_or(|from| at >= from)
                && request.param("to").is_none_or(|to| at < to)
        })
        .collect();
    let page: Vec<&Value> = in_range.iter().copied().take(50).collect();
    Reply::json(
        200,
        &json!({"totalRecords": in_range.len(), "records": page}),
    )
    .header("X-Total-Records", &in_range.len().to_string())
}

#[test]
fn an_export_capped_below_its_advertised_total_fails_the_run() {
    for total in ["header:X-Total-Records", "/totalRecords"] {
        let sandbox = Sandbox::new();
        let server = ApiServer::start(capped_export_api);
        let source = format!(
            "url = \"{}\"\nformat = {{ type = \"json\", records = \"/records\" }}\npagination = {{ type = \"none\", total = \"{total}\" }}",
            server.url("/export")
        );
        let (outcome, _) = run(&sandbox, &source);
        outcome.assert_code(1);
        assert!(
            outcome.stderr.contains(&format!(
                "{}: the answer holds 50 records, but the API advertised 57: the export was cut off (pull it in time windows with `incremental.window` and `cap`) (`on_total_mismatch = \"warn\"` delivers them anyway)",
                server.url("/export")
            )),
            "{total}: {}",
            outcome.stderr
        );
        sandbox.assert_not_published("out/orders-01.ndjson");
    }
}

#[test]
fn a_capped_export_in_windows_is_split_until_every_record_arrived() {
    let sandbox = Sandbox::new();
    let server = ApiServer::start(capped_export_api);
    let source = format!(
        "url = \"{}\"\nquery = {{ from = \"{{cursor}}\", to = \"{{until}}\" }}\nformat = {{ type = \"json\", records = \"/records\" }}\npagination = {{ type = \"none\", total = \"header:X-Total-Records\" }}\ncap = 50\nincremental = {{ field = \"updated_at\", initial = \"2024-08-01T00:00:00Z\", end = \"2024-09-01T00:00:00Z\", window = \"31d\" }}",
        server.url("/export")
    );
    let (outcome, report) = run(&sandbox, &source);
    outcome.assert_success();
    let mut got = delivered(&sandbox);
    got.sort();
    assert_eq!(got, ids(1..=57));
    assert_eq!(report["requests"]["window_splits"], 1);
}

#[test]
fn an_answer_that_reaches_cap_without_windows_is_a_warning() {
    let sandbox = Sandbox::new();
    let server = ApiServer::start(capped_export_api);
    let source = format!(
        "url = \"{}\"\nformat = {{ type = \"json\", records = \"/records\" }}\ncap = 50",
        server.url("/export")
    );
    let (outcome, report) = run(&sandbox, &source);
    outcome.assert_success();
    assert_eq!(delivered(&sandbox).len(), 50);
    assert_eq!(
        report["warnings"],
        json!([
            "the answer holds 50 records, `cap` = 50: it was probably cut off there; pull in time windows (`incremental.window`) to get the rest"
        ])
    );
}

/// An `.ashx`-style list API that answers HTTP 200 whatever happens, with `success` saying
/// whether it worked.
fn success_flag_api(request: &Request) -> Reply {
    match request.param("filter") {
        Some("nope") => Reply::json(
            200,
            &json!({"success": false, "message": "Unknown filter field 'nope'"}),
        ),
        _ => Reply::json(200, &json!({"success": true, "results": [order(1)]})),
    }
}

#[test]
fn an_error_inside_a_successful_answer_shows_the_apis_message() {
    let sandbox = Sandbox::new();
    let server = ApiServer::start(success_flag_api);
    let url = server.url("/list.ashx");
    let base = format!(
        "url = \"{url}\"\nquery = {{ filter = \"nope\" }}\nformat = {{ type = \"json\", records = \"/results\" }}"
    );
    let (outcome, _) = run(&sandbox, &base);
    outcome.assert_code(1);
    assert!(
        outcome.stderr.contains(&format!(
            "{url}?filter=nope (page 1): the document has no value at `/results`; the API says: Unknown filter field 'nope'. if the API reports errors in successful answers, set `error` (e.g. `error = {{ at = \"/success\", is = false }}`) so that they fail with its message"
        )),
        "{}",
        outcome.stderr
    );
    let (outcome, _) = run(
        &sandbox,
        &format!("{base}\nerror = {{ at = \"/success\", is = false, message = \"/message\" }}"),
    );
    outcome.assert_code(1);
    assert!(
        outcome.stderr.contains(&format!(
            "GET {url}?filter=nope (page 1): the API answered with an error (`/success` = false): Unknown filter field 'nope'"
        )),
        "{}",
        outcome.stderr
    );
    // A good answer passes the check.
    let good = base.replace("nope", "ok");
    let (outcome, _) = run(
        &sandbox,
        &format!("{good}\nerror = {{ at = \"/success\", is = false }}"),
    );
    outcome.assert_success();
    assert_eq!(delivered(&sandbox), [1]);
}

/// A DRF list that wants its trailing slash (`/api/orders` answers 301) and a token.
fn trailing_slash_api(request: &Request) -> Reply {
    if request.path == "/api/orders" {
        return Reply::text(301, "").header("location", "/api/orders/");
    }
    if request.header("authorization") != Some("Token t-1") {
        return Reply::json(
            401,
            &json!({"detail": "Authentication credentials were not provided."}),
        );
    }
    Reply::json(200, &json!([order(1), order(2)]))
}

#[test]
fn a_redirect_within_the_api_keeps_the_credentials_and_one_elsewhere_drops_them() {
    let sandbox = Sandbox::new();
    let api = ApiServer::start(trailing_slash_api);
    let source = format!(
        "url = \"{}\"\nheaders = {{ Authorization = \"Token t-1\" }}",
        api.url("/api/orders")
    );
    let (outcome, _) = run(&sandbox, &source);
    outcome.assert_success();
    assert_eq!(delivered(&sandbox), [1, 2]);
    let requests = api.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].path, "/api/orders/");
    assert_eq!(requests[1].header("authorization"), Some("Token t-1"));

    // Another origin (a storage host) gets no credential, and the error says so.
    let storage = ApiServer::start(trailing_slash_api);
    let elsewhere = storage.url("/api/orders/");
    let moved = ApiServer::start(move |_| Reply::text(302, "").header("location", &elsewhere));
    let source = format!(
        "url = \"{}\"\nheaders = {{ Authorization = \"Token t-1\" }}",
        moved.url("/export")
    );
    let (outcome, _) = run(&sandbox, &source);
    outcome.assert_code(1);
    assert_eq!(storage.requests()[0].header("authorization"), None);
    assert!(
        outcome.stderr.contains(&format!(
            "GET {}: HTTP 401: Authentication credentials were not provided. (after a redirect to {}, followed without the credentials)",
            moved.url("/export"),
            storage.url("/api/orders/")
        )),
        "{}",
        outcome.stderr
    );
}

#[test]
fn waits_are_logged_with_their_real_length_and_reason() {
    let sandbox = Sandbox::new();
    let mut requests = 0;
    let server = ApiServer::start(move |request| {
        requests += 1;
        match requests {
            // Too many requests, and the limit resets in a second (no Retry-After).
            1 => Reply::json(429, &json!({"detail": "slow down"}))
                .header("x-ratelimit-remaining", "0")
                .header("x-ratelimit-reset", "1"),
            // The last request of the window: the next waits for the reset.
            2 => Reply::json(200, &json!({"count": 2, "results": [order(1)]}))
                .header("x-ratelimit-remaining", "0")
                .header("x-ratelimit-reset", "1"),
            _ => {
                assert_eq!(request.number("offset", 0), 1);
                Reply::json(200, &json!({"count": 2, "results": [order(2)]}))
            }
        }
    });
    sandbox.write(
        "p.toml",
        format!(
            "[source]\ntype = \"http\"\nurl = \"{}\"\nformat = {{ type = \"json\", records = \"/results\" }}\npagination = {{ type = \"offset\", limit = 1, total = \"/count\" }}\n[[sinks]]\ntype = \"file\"\npath = \"out/orders.ndjson\"\n",
            server.url("/api/orders/")
        ),
    );
    let outcome = sandbox.run(["run", "p.toml"]);
    outcome.assert_success();
    assert_eq!(delivered(&sandbox), [1, 2]);
    let retry = outcome
        .stderr
        .lines()
        .find(|line| line.contains("retrying in"))
        .expect("the retry is logged");
    assert!(
        retry.contains("request failed (HTTP 429: slow down), attempt 1 of 5; retrying in 1.0 s (the API's rate limit (no requests left until its reset))"),
        "{retry}"
    );
    let wait = outcome
        .stderr
        .lines()
        .find(|line| line.contains("waiting"))
        .expect("the wait for the reset is logged");
    assert!(
        wait.contains(" s for the API's rate limit (no requests left until its reset)"),
        "{wait}"
    );
}

#[test]
fn the_single_object_example_reads_one_object_configured_by_env_and_var() {
    let sandbox = Sandbox::new();
    let server = ApiServer::start(|request| match request.path.as_str() {
        "/api/orders/123/" if request.header("authorization") == Some("Token t-9") => {
            Reply::Answer {
                status: 200,
                headers: vec![("content-type".into(), "application/json".into())],
                body: serde_json::to_vec_pretty(&order(123)).unwrap(),
            }
        }
        _ => Reply::json(404, &json!({"detail": "Not found."})),
    });
    let example = std::fs::read_to_string(crate::support::repo_path(
        "pipelines/examples/single-object.toml",
    ))
    .unwrap();
    sandbox.write("single-object.toml", example);
    let mut command = sandbox.command(["-q", "run", "single-object.toml", "--var", "order=123"]);
    command
        .env("ORDERS_API", server.url(""))
        .env("ORDERS_API_TOKEN", "t-9");
    crate::support::run(command).assert_success();
    let written: Value = serde_json::from_str(&sandbox.read("out/order-123.json")).unwrap();
    assert_eq!(written, json!([order(123)]));
}

#[test]
fn records_that_come_twice_in_one_pull_are_delivered_once_and_said() {
    let sandbox = Sandbox::new();
    // Newest first, two a page; a contact is added between the two pages, which shifts the
    // last of page 1 onto page 2.
    let mut all: Vec<Value> = (1..=5).rev().map(contact).collect();
    let server = ApiServer::start(move |request| {
        let offset = request.number("offset", 0) as usize;
        if offset == 2 && all.len() == 5 {
            all.insert(0, contact(6));
        }
        let page: Vec<Value> = all.iter().skip(offset).take(2).cloned().collect();
        Reply::json(200, &json!(page))
    });
    let source = format!(
        "url = \"{}\"\npagination = {{ type = \"offset\", limit = 2 }}\nincremental = {{ field = \"updated_at\", param = \"since\", key = \"id\" }}",
        server.url("/api/contacts/")
    );
    let (outcome, report) = run(&sandbox, &source);
    outcome.assert_success();
    assert_eq!(delivered(&sandbox), [5, 4, 3, 2, 1]);
    assert_eq!(
        report["warnings"],
        json!([
            "1 records came twice in this pull and were delivered once: the list changed while it was paged"
        ])
    );
}

#[test]
fn credentials_never_follow_an_answer_to_another_origin() {
    let sandbox = Sandbox::new();
    // The storage host pages on its own: its relative next link stays on it.
    let storage = ApiServer::start(|request| {
        let page = request.number("page", 1);
        let next = (page == 1).then_some("/orders/?page=2");
        Reply::json(200, &json!({"next": next, "results": [order(page)]}))
    });
    let elsewhere = storage.url("/orders/");
    let api = ApiServer::start(move |_| Reply::text(302, "").header("location", &elsewhere));
    let source = format!(
        "url = \"{}\"\nheaders = {{ Authorization = \"Token t-1\", X-Api-Key = \"k-1\" }}\nformat = {{ type = \"json\", records = \"/results\" }}\npagination = {{ type = \"next\", next = \"/next\" }}",
        api.url("/orders/")
    );
    // Debug logging shows each redirect (and must not stop on it).
    sandbox.write(
        "p.toml",
        format!("[source]\ntype = \"http\"\n{source}\n[[sinks]]\ntype = \"file\"\npath = \"out/orders.ndjson\"\n"),
    );
    let outcome = sandbox.run(["-v", "run", "p.toml"]);
    outcome.assert_success();
    assert!(
        outcome.stderr.contains("HTTP 302: redirected to"),
        "{}",
        outcome.stderr
    );
    assert_eq!(delivered(&sandbox), [1, 2]);
    let requests = storage.requests();
    assert_eq!(requests.len(), 2);
    for request in &requests {
        assert_eq!(request.header("authorization"), None, "{}", request.path);
        assert_eq!(request.header("x-api-key"), None, "{}", request.path);
    }
    assert_eq!(api.requests()[0].header("authorization"), Some("Token t-1"));
}

#[test]
fn a_page_past_the_end_that_the_api_refuses_ends_the_list() {
    let sandbox = Sandbox::new();
    // WordPress answers 400 for a page past the last, DRF's page numbers 404.
    for refusal in [400, 404] {
        let server = ApiServer::start(move |request| match request.number("page", 1) {
            1 => Reply::json(200, &json!([order(1), order(2), order(3)])),
            _ => Reply::json(refusal, &json!({"detail": "Invalid page."})),
        });
        let source = format!(
            "url = \"{}\"\npagination = {{ type = \"page\", limit = 10 }}",
            server.url("/api/orders/")
        );
        let (outcome, _) = run(&sandbox, &source);
        outcome.assert_success();
        assert_eq!(server.requests().len(), 2, "HTTP {refusal}");
    }
    assert_eq!(delivered(&sandbox), [1, 2, 3, 1, 2, 3]);
}

#[test]
fn a_full_next_link_is_followed_as_it_is() {
    let sandbox = Sandbox::new();
    // Shopify: a `page_info` link refuses any parameter but `limit` beside it.
    let server = ApiServer::start(|request| {
        let host = request.header("host").unwrap_or_default().to_string();
        match request.param("page_info") {
            None => Reply::json(200, &json!([order(1)])).header(
                "link",
                &format!("<http://{host}/orders.json?limit=1&page_info=abc>; rel=\"next\""),
            ),
            Some(_) if request.query.len() > 2 => {
                Reply::json(400, &json!({"errors": {"page_info": "Invalid value."}}))
            }
            Some(_) => Reply::json(200, &json!([order(2)])),
        }
    });
    let source = format!(
        "url = \"{}\"\nquery = {{ status = \"open\", limit = 1 }}\npagination = {{ type = \"next\", next = \"link:next\" }}",
        server.url("/orders.json")
    );
    let (outcome, report) = run(&sandbox, &source);
    outcome.assert_success();
    assert_eq!(delivered(&sandbox), [1, 2]);
    assert_eq!(
        report["warnings"],
        json!([
            "the next link leaves out the list's parameters `status`: it is followed as the API gave it, so check that the later pages are still filtered (APIs such as Shopify keep the filter in their page cursor)"
        ])
    );
}

#[test]
fn one_object_is_one_record_unless_it_reads_as_an_error_or_an_envelope() {
    let sandbox = Sandbox::new();
    let server = ApiServer::start(|request| match request.path.as_str() {
        "/orders/7/" => Reply::json(200, &json!({"id": 7, "lines": [{"sku": "a"}]})),
        "/failing/" => Reply::json(200, &json!({"ok": false, "error": "invalid_auth"})),
        _ => Reply::json(200, &json!({"count": 2, "results": [order(1), order(2)]})),
    });
    // An order with lines is one record.
    let (outcome, report) = run(&sandbox, &format!("url = \"{}\"", server.url("/orders/7/")));
    outcome.assert_success();
    assert_eq!(delivered(&sandbox), [7]);
    assert_eq!(report["warnings"], json!([]));
    // An error report fails.
    let (outcome, _) = run(&sandbox, &format!("url = \"{}\"", server.url("/failing/")));
    outcome.assert_code(1);
    assert!(
        outcome.stderr.contains(&format!(
            "{} (page 1): the answer is an error report, not a record: invalid_auth. If the API reports errors in successful answers, set `error`",
            server.url("/failing/")
        )),
        "{}",
        outcome.stderr
    );
    // An envelope without `records`: one record, and a warning.
    let (outcome, report) = run(&sandbox, &format!("url = \"{}\"", server.url("/orders/")));
    outcome.assert_success();
    assert_eq!(
        report["warnings"],
        json!([
            "the answer is one JSON object, read as one record, and its `results` holds 2 objects: if those are the records, set the format's `records = \"/results\"`"
        ])
    );
    // A page of a list that is one object fails.
    let (outcome, _) = run(
        &sandbox,
        &format!(
            "url = \"{}\"\npagination = {{ type = \"offset\", limit = 2 }}",
            server.url("/orders/")
        ),
    );
    outcome.assert_code(1);
    assert!(
        outcome.stderr.contains("a page of the list is one JSON object, not an array of records: set the format's `records` to `\"/results\"`"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn an_error_that_echoes_a_secret_shows_it_as_stars() {
    let sandbox = Sandbox::new();
    let server = ApiServer::start(|request| {
        let key = request.header("x-api-key").unwrap_or_default();
        Reply::json(
            200,
            &json!({"success": false, "message": format!("invalid key {key}")}),
        )
    });
    let source = format!(
        "url = \"{}\"\nauth = {{ type = \"api-key\", key = \"${{env:LOGS_KEY}}\" }}\nerror = {{ at = \"/success\", is = false, message = \"/message\" }}",
        server.url("/logs")
    );
    let (outcome, _) = crate::http::run_with_env(&sandbox, &source, &[("LOGS_KEY", "k-secret-7")]);
    outcome.assert_code(1);
    assert!(!outcome.stderr.contains("k-secret-7"), "{}", outcome.stderr);
    assert!(
        outcome
            .stderr
            .contains("the API answered with an error (`/success` = false): invalid key ***"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn a_refused_page_after_full_pages_fails_the_run() {
    let sandbox = Sandbox::new();
    // A search API that clamps pages to 1,000 and refuses results past its first 2,000.
    let mut api = clamping_api(2500, 1000);
    let server = ApiServer::start(move |request| {
        if request.number("offset", 0) >= 2000 {
            return Reply::json(
                422,
                &json!({"message": "Only the first 2000 results are available."}),
            );
        }
        api(request)
    });
    let source = format!(
        "url = \"{}\"\npagination = {{ type = \"offset\", limit = 5000 }}",
        server.url("/search")
    );
    let (outcome, _) = run(&sandbox, &source);
    outcome.assert_code(1);
    assert!(
        outcome
            .stderr
            .contains("HTTP 422: Only the first 2000 results are available."),
        "{}",
        outcome.stderr
    );
    sandbox.assert_not_published("out/orders-01.ndjson");
}
