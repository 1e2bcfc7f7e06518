//! A small HTTP/1.1 server on 127.0.0.1 for the `http` source's tests. Each request goes to a
//! handler, the test's model of a vendor API; connections are kept alive as real servers keep
//! them; and a reply can hang up halfway through its body, which library servers do not offer.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// A request as the handler sees it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The path without the query.
    pub path: String,
    /// The query parameters, decoded, in order.
    pub query: Vec<(String, String)>,
    /// Header names in lowercase.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
    /// Which connection it came on (numbered from 1 as they are accepted).
    pub connection: u64,
}

impl Request {
    /// The first value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A query parameter as a number, `default` when absent.
    pub fn number(&self, name: &str, default: u64) -> u64 {
        self.param(name)
            .map_or(default, |v| v.parse().expect("a number parameter"))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// How the server answers.
pub enum Reply {
    Answer {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Sends the status line, headers announcing `body` whole, half of it, and hangs up.
    HangUp { body: Vec<u8> },
    /// Another reply, after a wait (a slow API); other connections are answered meanwhile.
    After(Duration, Box<Reply>),
}

impl Reply {
    pub fn json(status: u16, body: &serde_json::Value) -> Reply {
        Reply::Answer {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
        }
    }

    pub fn text(status: u16, body: &str) -> Reply {
        Reply::Answer {
            status,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        if let Reply::Answer { headers, .. } = &mut self {
            headers.push((name.into(), value.into()));
        }
        self
    }
}

type Handler = Box<dyn FnMut(&Request) -> Reply + Send>;

pub struct ApiServer {
    port: u16,
    stopping: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Request>>>,
    accepting: Option<JoinHandle<()>>,
}

/// Connections a test may open at most (each gets a thread): bounds a runaway client.
const MAX_CONNECTIONS: usize = 200;

impl ApiServer {
    pub fn start(handler: impl FnMut(&Request) -> Reply + Send + 'static) -> ApiServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().expect("a local address").port();
        let stopping = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Mutex<Handler>> = Arc::new(Mutex::new(Box::new(handler)));
        let accepting = {
            let stopping = stopping.clone();
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut connections = Vec::new();
                for (number, stream) in (1..).zip(listener.incoming().take(MAX_CONNECTIONS)) {
                    if stopping.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let handler = handler.clone();
                    let seen = seen.clone();
                    connections.push(std::thread::spawn(move || {
                        serve(stream, number, &handler, &seen)
                    }));
                }
                for connection in connections {
                    let _ = connection.join();
                }
            })
        };
        ApiServer {
            port,
            stopping,
            seen,
            accepting: Some(accepting),
        }
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://127.0.0.1:{}{path_and_query}", self.port)
    }

    /// The requests answered so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.seen.lock().expect("the request log").clone()
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wakes the accepting thread; connections end on their read timeout or when the
        // client closes them.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(accepting) = self.accepting.take() {
            let _ = accepting.join();
        }
    }
}

/// Answers the requests of one connection until the client closes it (or a hang-up).
fn serve(stream: TcpStream, number: u64, handler: &Mutex<Handler>, seen: &Mutex<Vec<Request>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut writer = stream.try_clone().expect("clone the stream");
    let mut reader = BufReader::new(stream);
    while let Some(mut request) = read_request(&mut reader) {
        request.connection = number;
        let mut reply = (handler.lock().expect("the handler"))(&request);
        seen.lock().expect("the request log").push(request);
        while let Reply::After(wait, later) = reply {
            std::thread::sleep(wait);
            reply = *later;
        }
        match reply {
            Reply::Answer {
                status,
                headers,
                mut body,
            } => {
                let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
                for (name, value) in &headers {
                    head.push_str(&format!("{name}: {value}\r\n"));
                }
                // A 204 has no body, as HTTP says: one written anyway would be read as the
                // start of the next answer on the connection.
                if status == 204 {
                    body.clear();
                    head.push_str("\r\n");
                } else {
                    head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
                }
                if writer.write_all(head.as_bytes()).is_err() || writer.write_all(&body).is_err() {
                    return;
                }
            }
            Reply::HangUp { body } => {
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                    body.len()
                );
                let _ = writer.write_all(head.as_bytes());
                let _ = writer.write_all(&body[..body.len() / 2]);
                let _ = writer.flush();
                let _ = writer.shutdown(std::net::Shutdown::Both);
                return;
            }
            Reply::After(..) => unreachable!("unwrapped above"),
        }
    }
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    reader.read_line(&mut line).ok().filter(|&n| n > 0)?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok().filter(|&n| n > 0)?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        headers.insert(name.trim().to_lowercase(), value.trim().to_string());
    }
    let length: usize = headers
        .get("content-length")
        .map_or(0, |v| v.parse().expect("a content length"));
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let query = url::form_urlencoded::parse(query.as_bytes())
        .map(|(n, v)| (n.into_owned(), v.into_owned()))
        .collect();
    Some(Request {
        method,
        path: path.to_string(),
        query,
        headers,
        body,
        connection: 0,
    })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}
