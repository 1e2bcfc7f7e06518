//! The receiver `scripts/bench-push` pushes to: an HTTP/1.1 server on 127.0.0.1 that reads each
//! request whole (headers, then the body by `Content-Length` or chunks) and answers
//! `200 OK` with an empty body at once, a thread per connection, keep-alive. It parses no JSON:
//! it stands for an API that costs nothing, so what is measured is the sender.
//!
//! `GET /stats` answers (uncounted) `{"requests":…,"connections":…,"body_bytes":…,"keyed":…}`
//! since the start: requests answered, connections accepted, body bytes read, requests that
//! carried an `Idempotency-Key`. The script reads it before and after each run.
//!
//! usage: push_receiver --serve [PORT [DELAY_MS]]   (PORT 0 or none: any free port; prints
//! `port N` and serves until killed; DELAY_MS: each answer waits that long first, as a real
//! API's work does, other connections served meanwhile). Built by the script with `rustc -O` (std only); without `--serve` (as
//! `cargo bench` runs it) it does nothing.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    connections: AtomicU64,
    body_bytes: AtomicU64,
    keyed: AtomicU64,
}

const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";

fn main() {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() != Some("--serve") {
        println!("push_receiver: run by scripts/bench-push (`--serve [PORT]`); nothing to do");
        return;
    }
    let port: u16 = args.next().map_or(0, |p| p.parse().expect("a port number"));
    let delay = std::time::Duration::from_millis(
        args.next().map_or(0, |d| d.parse().expect("a delay in ms")),
    );
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
    println!("port {}", listener.local_addr().expect("address").port());
    std::io::stdout().flush().expect("stdout");
    let counts = Arc::new(Counts::default());
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        counts.connections.fetch_add(1, Ordering::Relaxed);
        let counts = counts.clone();
        std::thread::spawn(move || {
            let _ = serve(stream, &counts, delay);
        });
    }
}

fn serve(stream: TcpStream, counts: &Counts, delay: std::time::Duration) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::with_capacity(256 * 1024, stream);
    let mut line = String::new();
    let mut body = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let stats = line.starts_with("GET /stats");
        let mut length = 0usize;
        let mut chunked = false;
        let mut keyed = false;
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            if line == "\r\n" || line == "\n" {
                break;
            }
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse().unwrap_or(0);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            } else if name.eq_ignore_ascii_case("idempotency-key") {
                keyed = true;
            }
        }
        let read = if chunked {
            read_chunks(&mut reader, &mut line)?
        } else {
            body.resize(length, 0);
            reader.read_exact(&mut body)?;
            length
        };
        if stats {
            let json = format!(
                "{{\"requests\":{},\"connections\":{},\"body_bytes\":{},\"keyed\":{}}}",
                counts.requests.load(Ordering::Relaxed),
                counts.connections.load(Ordering::Relaxed),
                counts.body_bytes.load(Ordering::Relaxed),
                counts.keyed.load(Ordering::Relaxed),
            );
            write!(
                writer,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{json}",
                json.len()
            )?;
            continue;
        }
        counts.requests.fetch_add(1, Ordering::Relaxed);
        counts.body_bytes.fetch_add(read as u64, Ordering::Relaxed);
        if keyed {
            counts.keyed.fetch_add(1, Ordering::Relaxed);
        }
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        writer.write_all(OK)?;
    }
}

/// Reads a chunked body (discarding it) and its trailer; returns its length.
fn read_chunks(reader: &mut BufReader<TcpStream>, line: &mut String) -> std::io::Result<usize> {
    let mut total = 0;
    loop {
        line.clear();
        reader.read_line(line)?;
        let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
            .map_err(|_| std::io::Error::other("a bad chunk size"))?;
        if size == 0 {
            // Trailer lines up to the blank one.
            loop {
                line.clear();
                if reader.read_line(line)? == 0 || line == "\r\n" {
                    return Ok(total);
                }
            }
        }
        std::io::copy(&mut reader.by_ref().take(size as u64), &mut std::io::sink())?;
        total += size;
        line.clear();
        reader.read_line(line)?; // the CRLF after the chunk
    }
}
