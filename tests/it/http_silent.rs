//! API pulls that used to lose or repeat records with exit 0 and no warning, each against a
//! model API that behaves as real ones do: a `next` link that is only a query string, a server
//! that clamps the page size, a delta filter the API ignores, a mistyped cursor field, `>=`
//! deltas without a key, an export capped below its advertised total, errors inside HTTP 200
//! answers, and redirects. Every test checks the exact records delivered or the exact error.

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
