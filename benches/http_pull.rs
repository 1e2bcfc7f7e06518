//! The `http` source against a local API whose pages are rendered beforehand: 50,000 records
//! in pages of 100, offset paging with a `count`, as in issue 5's benchmark. It answers
//! instantly, then after 1 ms and 5 ms a page (fast APIs on the same network). Reports records/s, the
//! CPU time per page, the share of wall time with no request in flight, how much of that the
//! fetch thread waited for the decoder (it had fetched its pages ahead), what is left (the
//! fetching's own work, outside any round trip), and the connections opened (one is the aim).
//! The last rows pull the same list as a delta (`incremental` on `updated_at`), with and without
//! a `key`: without one, each record's content is hashed to recognize it at the cursor.
//! Run with `cargo bench --bench http_pull`.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use longshore::record::Batch;
use longshore::sources::http::{HttpSource, HttpSourceConfig};
use longshore::stage::{RunContext, Source};
use longshore::state::SqliteStore;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const RECORDS: usize = 50_000;
const PAGE: usize = 100;
const ROUNDS: usize = 5;

/// The pages, as whole HTTP answers, by offset / PAGE.
fn render_pages() -> Vec<Vec<u8>> {
    let statuses = ["paid", "shipped", "cancelled"];
    (0..RECORDS / PAGE)
        .map(|page| {
            let results: Vec<serde_json::Value> = (page * PAGE..(page + 1) * PAGE)
                .map(|i| {
                    serde_json::json!({
                        "id": i + 1,
                        "customer": {"id": 1000 + i % 777, "name": format!("Customer {}", i % 777)},
                        "status": statuses[i % 3],
                        "total": format!("{}.{:02}", 10 + i % 900, i % 100),
                        "currency": "EUR",
                        "lines": i % 7 + 1,
                        "created_at": format!("2024-08-01T{:02}:{:02}:{:02}Z", i / 3600 % 24, i / 60 % 60, i % 60),
                        "updated_at": format!("2024-08-02T{:02}:{:02}:{:02}Z", i / 3600 % 24, i / 60 % 60, i % 60),
                        "note": if i % 5 == 0 { "Leave at door" } else { "" },
                    })
                })
                .collect();
            let body = serde_json::json!({"count": RECORDS, "results": results}).to_string();
            let mut answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            answer.extend_from_slice(body.as_bytes());
            answer
        })
        .collect()
}

/// Serves the pages on 127.0.0.1 until the process ends, each after `delay`; counts
/// connections.
fn serve(pages: Arc<Vec<Vec<u8>>>, connections: Arc<AtomicU64>, delay: Duration) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            connections.fetch_add(1, Ordering::Relaxed);
            let pages = pages.clone();
            std::thread::spawn(move || answer(stream, &pages, delay));
        }
    });
    port
}

fn answer(stream: TcpStream, pages: &[Vec<u8>], delay: Duration) {
    let _ = stream.set_nodelay(true);
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let offset: usize = line
            .split_once("offset=")
            .and_then(|(_, rest)| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        // The headers, up to the blank line (GET: no body).
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
        }
        std::thread::sleep(delay);
        let page = &pages[(offset / PAGE).min(pages.len() - 1)];
        if writer.write_all(page).is_err() {
            return;
        }
    }
}

/// CPU time (user + system) of the process so far.
fn cpu_time() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

fn main() {
    let pages = Arc::new(render_pages());
    let bytes: usize = pages.iter().map(Vec::len).sum();
    println!(
        "http_pull: {RECORDS} records in pages of {PAGE} ({:.1} MB of JSON) from 127.0.0.1, {ROUNDS} rounds each",
        bytes as f64 / 1e6
    );
    println!(
        "| answer after | concurrency | delta | round | wall [ms] | records/s | CPU per page [µs] | requests in flight [ms] | no request in flight | waiting for the decoder [ms] | neither (the fetching's own work) | connections |"
    );
    println!("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (delay, concurrency, delta) in [
        (0, 1, Delta::None),
        (1, 1, Delta::None),
        (5, 1, Delta::None),
        (5, 4, Delta::None),
        (0, 1, Delta::ByKey),
        (0, 1, Delta::ByContent),
    ] {
        let delay = Duration::from_millis(delay);
        let connections = Arc::new(AtomicU64::new(0));
        let port = serve(pages.clone(), connections.clone(), delay);
        pull(port, delay, concurrency, delta, &connections);
    }
    println!("(CPU per page counts the whole process, the bench server's threads included.)");
}

/// How the pull remembers what it delivered.
#[derive(Clone, Copy)]
enum Delta {
    /// Not a delta pull.
    None,
    /// `incremental` with `key = "id"`.
    ByKey,
    /// `incremental` without a key: records are known by a hash of their content.
    ByContent,
}

fn pull(port: u16, delay: Duration, concurrency: u32, delta: Delta, connections: &AtomicU64) {
    let (incremental, shown) = match delta {
        Delta::None => ("", "-"),
        Delta::ByKey => (
            r#"incremental = { field = "updated_at", param = "since", key = "id" }"#,
            "by key",
        ),
        Delta::ByContent => (
            r#"incremental = { field = "updated_at", param = "since" }"#,
            "by content",
        ),
    };
    let config: HttpSourceConfig = toml::from_str(&format!(
        r#"url = "http://127.0.0.1:{port}/api/orders/"
format = {{ type = "json", records = "/results" }}
pagination = {{ type = "offset", limit = {PAGE}, total = "/count" }}
concurrency = {concurrency}
{incremental}"#
    ))
    .expect("the source config");
    let dir = tempfile::tempdir().expect("a temporary directory");
    for round in 1..=ROUNDS {
        let before = connections.load(Ordering::Relaxed);
        let cx = RunContext::new("bench", dir.path());
        let mut store = SqliteStore::in_memory();
        let mut source = HttpSource::new(&config, &cx, &mut store).expect("the source");
        let mut batch = Batch::default();
        let mut records = 0;
        let cpu = cpu_time();
        let start = Instant::now();
        while source.next_batch(&mut batch, 1024).expect("a batch") {
            records += batch.records.len();
        }
        let wall = start.elapsed();
        let cpu = cpu_time() - cpu;
        assert_eq!(records, RECORDS);
        let counts = source.progress().requests.expect("request counts");
        // With one request at a time, round trips do not overlap one another (with more,
        // their sum exceeds the wall time, and no idle share is shown).
        let in_flight = Duration::from_micros(counts.round_trip_us);
        let held_back = Duration::from_micros(counts.waiting_for_decoder_us);
        let share = |part: Duration| match concurrency {
            1 => format!("{:.1}%", 100.0 * part.as_secs_f64() / wall.as_secs_f64()),
            _ => "-".to_string(),
        };
        let idle = share(wall.saturating_sub(in_flight));
        let fetching = share(wall.saturating_sub(in_flight).saturating_sub(held_back));
        println!(
            "| {} ms | {concurrency} | {shown} | {round} | {:.0} | {:.0} | {:.0} | {:.0} | {idle} | {:.0} | {fetching} | {} |",
            delay.as_millis(),
            wall.as_secs_f64() * 1e3,
            records as f64 / wall.as_secs_f64(),
            cpu.as_secs_f64() * 1e6 / counts.requests as f64,
            in_flight.as_secs_f64() * 1e3,
            held_back.as_secs_f64() * 1e3,
            connections.load(Ordering::Relaxed) - before,
        );
    }
}
