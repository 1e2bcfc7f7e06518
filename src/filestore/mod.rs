//! Where files are kept on other machines: an SFTP server (`sftp.rs`, over `ssh2`) or an FTP
//! server with or without TLS (`ftps.rs`, over `suppaftp`), behind one trait, [`FileStore`], so
//! that the drop source and the upload sink are written once. Each store verifies the server
//! by default (host keys, certificates).
//!
//! [`Connection`] wraps a store with what every operation needs on a real network: it connects
//! lazily, and an operation that fails on a dropped connection or a timeout is tried again on
//! a new connection, after a backoff, a bounded number of times. The callers make what they run
//! safe to repeat that way: an upload starts again from the first byte, removing what is gone
//! succeeds, a rename is first checked for being done already.

pub mod ftps;
pub mod sftp;

use std::io::Read;
use std::time::Duration;

use crate::backoff::Backoff;

/// A file or directory on a server, as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteEntry {
    /// Its path, as the store's operations take it (the listed directory joined with the name).
    pub path: String,
    pub name: String,
    pub size: u64,
    /// Modification time, seconds since the Unix epoch, when the server tells it.
    pub mtime: Option<i64>,
    pub kind: EntryKind,
}

impl RemoteEntry {
    pub fn is_dir(&self) -> bool {
        self.kind == EntryKind::Dir
    }
}

/// What a listed entry is. Listings do not follow symbolic links: a link is listed as one, so
/// that a drop's `passwd.csv -> /etc/passwd` is not read as the partner's data unless asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File,
    Dir,
    /// A symbolic link (where it points is not looked at).
    Symlink,
    /// Anything else: a named pipe, a socket, a device.
    Other,
}

/// An operation on a server that failed.
#[derive(Debug, thiserror::Error)]
#[error("{location}: {message}")]
pub struct StoreError {
    /// The server, as `sftp://user@host:port`.
    pub location: String,
    pub message: String,
    /// Worth trying again on a new connection: the connection dropped or timed out.
    pub transient: bool,
}

/// The operations the drop source and the upload sink need of a server. Paths are the
/// server's (`/outbound/a.csv`, or relative to the login directory).
pub trait FileStore: Send {
    /// The entries of `dir` (not `.` and `..`), links listed as links.
    fn list(&mut self, dir: &str) -> Result<Vec<RemoteEntry>, StoreError>;
    /// The file or directory at `path` (following links), or `None` when there is none.
    fn stat(&mut self, path: &str) -> Result<Option<RemoteEntry>, StoreError>;
    /// The content of the file at `path`, streamed from the server. Reading to the end checks
    /// that the transfer completed.
    fn open(&mut self, path: &str) -> Result<Box<dyn Read + Send>, StoreError>;
    /// Writes everything `from` gives to the file at `path` (created or truncated), and makes it
    /// durable where the server can. Returns the bytes written.
    fn upload(&mut self, path: &str, from: &mut dyn Read) -> Result<u64, StoreError>;
    /// Renames `from` to `to`. When `to` exists the rename fails, unless `replace`.
    fn rename(&mut self, from: &str, to: &str, replace: bool) -> Result<(), StoreError>;
    /// Removes the file at `path`; one that is not there is not an error.
    fn remove(&mut self, path: &str) -> Result<(), StoreError>;
    /// Creates `dir` and its missing parents.
    fn create_dir_all(&mut self, dir: &str) -> Result<(), StoreError>;
}

/// A server's part of a pipeline file: where it is and how to log in.
pub trait ServerConfig: crate::config::Validate {
    /// The server, as messages name it: `sftp://user@host:port`.
    fn location(&self) -> String;
    /// A connection that logs in when first used; secrets are read now.
    fn connection(&self, cx: &crate::stage::RunContext) -> Result<Connection, StoreError>;
}

/// A stage's `server` table's problems, with their keys under `server.`.
pub fn server_problems(server: &dyn ServerConfig) -> Vec<crate::config::Invalid> {
    server
        .problems()
        .into_iter()
        .map(|p| crate::config::Invalid::new(format!("server.{}", p.key), p.message))
        .collect()
}

/// The problems of the connection settings every server has.
fn connection_problems(timeout_secs: u64, attempts: u32) -> Vec<crate::config::Invalid> {
    let mut problems = Vec::new();
    if timeout_secs == 0 {
        problems.push(crate::config::Invalid::new(
            "timeout_secs",
            "must be at least 1",
        ));
    }
    if attempts == 0 {
        problems.push(crate::config::Invalid::new(
            "attempts",
            "must be at least 1",
        ));
    }
    problems
}

/// How often, and after how long, an operation that failed on the connection is tried again.
#[derive(Debug, Clone, Copy)]
pub struct Reconnect {
    /// Tries in all, the first included.
    pub attempts: u32,
    /// The wait before the second try; it doubles for each further try.
    pub first_delay: Duration,
}

/// The longest wait before a new connection.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(60);

/// A TCP connection to the first of `addresses` that answers within `timeout`.
fn connect_any(
    addresses: &[std::net::SocketAddr],
    timeout: Duration,
) -> std::io::Result<std::net::TcpStream> {
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "the host has no address");
    for address in addresses {
        match std::net::TcpStream::connect_timeout(address, timeout) {
            Ok(tcp) => return Ok(tcp),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// A server's store, connected when first used and again after the connection failed.
pub struct Connection {
    location: String,
    connect: Box<dyn Fn() -> Result<Box<dyn FileStore>, StoreError> + Send>,
    store: Option<Box<dyn FileStore>>,
    reconnect: Reconnect,
}

impl Connection {
    pub fn new(
        location: String,
        reconnect: Reconnect,
        connect: impl Fn() -> Result<Box<dyn FileStore>, StoreError> + Send + 'static,
    ) -> Self {
        Connection {
            location,
            connect: Box::new(connect),
            store: None,
            reconnect,
        }
    }

    /// The server, as `sftp://user@host:port`.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Sets how many tries an operation gets in all.
    pub fn set_attempts(&mut self, attempts: u32) {
        self.reconnect.attempts = attempts.max(1);
    }

    /// Drops the connection, for one left in the middle of something (a download given up
    /// on): the next operation connects again.
    pub fn disconnect(&mut self) {
        self.store = None;
    }

    /// Runs `operation` on the store, connecting first if needed; an error marked transient
    /// drops the connection and, after a backoff, tries again on a new one.
    pub fn run<T>(
        &mut self,
        what: &str,
        mut operation: impl FnMut(&mut dyn FileStore) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut backoff = Backoff::doubling(self.reconnect.first_delay, MAX_RECONNECT_DELAY);
        let mut attempt = 1;
        loop {
            let result = match &mut self.store {
                Some(store) => operation(store.as_mut()),
                None => {
                    (self.connect)().and_then(|store| operation(self.store.insert(store).as_mut()))
                }
            };
            let result = result.map_err(|mut error| {
                if error.location.is_empty() {
                    error.location.clone_from(&self.location);
                }
                error
            });
            match result {
                Err(error) if error.transient && attempt < self.reconnect.attempts => {
                    let delay = backoff.next_wait();
                    tracing::warn!(
                        server = %self.location,
                        attempt,
                        error = %error.message,
                        "{what} failed, trying again on a new connection in {delay:?}"
                    );
                    self.store = None;
                    std::thread::sleep(delay);
                    attempt += 1;
                }
                Err(error) => {
                    if error.transient {
                        self.store = None;
                    }
                    return Err(error);
                }
                Ok(value) => return Ok(value),
            }
        }
    }
}

/// Bytes moved per read and write of a transfer: large, so that libssh2 keeps many SFTP
/// requests in flight and TLS writes full records.
const TRANSFER_BUFFER: usize = 4 << 20;

/// Copies `from` to `to` in [`TRANSFER_BUFFER`] pieces; returns the bytes copied.
fn copy_large(from: &mut dyn Read, to: &mut impl std::io::Write) -> std::io::Result<u64> {
    let mut buffer = vec![0u8; TRANSFER_BUFFER];
    let mut total = 0;
    loop {
        let read = match from.read(&mut buffer) {
            Ok(0) => return Ok(total),
            Ok(read) => read,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buffer[..read])?;
        total += read as u64;
    }
}

/// `dir` and `name` joined with one `/`.
pub fn join(dir: &str, name: &str) -> String {
    match dir {
        "" | "." => name.to_string(),
        _ if dir.ends_with('/') => format!("{dir}{name}"),
        _ => format!("{dir}/{name}"),
    }
}

/// The directory part of `path` (`""` for a bare name).
pub fn parent(path: &str) -> &str {
    match path.rsplit_once('/') {
        Some(("", _)) => "/",
        Some((dir, _)) => dir,
        None => "",
    }
}

/// The last part of `path`.
pub fn file_name(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(_, name)| name)
}

/// The directories to create, outermost first, for `dir` to exist: `a`, `a/b`, `a/b/c`.
fn ancestors(dir: &str) -> Vec<String> {
    let mut built = String::new();
    let mut all = Vec::new();
    if dir.starts_with('/') {
        built.push('/');
    }
    for part in dir
        .split('/')
        .filter(|part| !part.is_empty() && *part != ".")
    {
        if !built.is_empty() && !built.ends_with('/') {
            built.push('/');
        }
        built.push_str(part);
        all.push(built.clone());
    }
    all
}

impl From<StoreError> for crate::error::StageError {
    fn from(error: StoreError) -> Self {
        crate::error::StageError::Failed(Box::new(error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_join_and_split_on_slashes() {
        assert_eq!(join("/outbound", "a.csv"), "/outbound/a.csv");
        assert_eq!(join("/outbound/", "a.csv"), "/outbound/a.csv");
        assert_eq!(join("", "a.csv"), "a.csv");
        assert_eq!(parent("/outbound/a.csv"), "/outbound");
        assert_eq!(parent("/a.csv"), "/");
        assert_eq!(parent("a.csv"), "");
        assert_eq!(file_name("/outbound/a.csv"), "a.csv");
        assert_eq!(ancestors("/a/b//c/"), ["/a", "/a/b", "/a/b/c"]);
        assert_eq!(ancestors("a/./b"), ["a", "a/b"]);
    }
}
