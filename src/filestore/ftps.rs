//! FTP with TLS (FTPS), with `suppaftp` over rustls: explicit (`AUTH TLS` on port 21) or
//! implicit (TLS from the first byte, port 990), passive data connections, binary transfers.
//! Certificates are verified against the system's CAs or `ca_file`; plain FTP takes
//! `tls = "none"` and a warning on every connection.
//!
//! Uploads end the way that keeps them whole: the data connection sends TLS `close_notify`,
//! is read to its end (TLS 1.3 session tickets the server sent would otherwise make the close a
//! reset, and the server drop the file's tail), and only then is the server's transfer reply
//! read (suppaftp's `TransferStream::finish`). The size on the server is checked after every
//! upload besides.
//!
//! `timeout_secs` bounds every wait on the server, set on each socket before anything is read
//! from it: the control connection before its greeting (so a silent server or the wrong `tls`
//! mode fails instead of hanging), and each data connection as it is made, so a transfer that
//! stalls fails and is tried again on a new connection.

use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use suppaftp::list::ListParser;
use suppaftp::types::FileType;
use suppaftp::{
    FtpError, RustlsConnector, RustlsFtpStream, Status, TlsConnector, TlsStream, TransferStream,
};

use super::{EntryKind, FileStore, Reconnect, RemoteEntry, ServerConfig, StoreError};
use crate::config::{Invalid, Secret, SecretValue, Validate};
use crate::stage::RunContext;

/// An FTP or FTPS server and how to log in to it.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FtpServerConfig {
    /// The server's host name or IP address; the certificate must be for it. Required.
    pub host: String,
    /// The server's port. Default 21, or 990 with `tls = "implicit"`.
    pub port: Option<u16>,
    /// The user to log in as. Required.
    pub user: String,
    /// The user's password, e.g. `"${env:PARTNER_FTP_PASSWORD}"`. Required.
    pub password: Secret,
    /// How the connection is encrypted: `"explicit"` (`AUTH TLS` after connecting, FTPS's
    /// usual way), `"implicit"` (TLS from the first byte), or `"none"` (plain FTP: the
    /// password and the files cross the network readable by anyone on the way; logged as a
    /// warning on every connection). Default `"explicit"`.
    #[serde(default)]
    pub tls: FtpTls,
    /// A PEM file of the CA certificates the server's certificate must be signed by, for a
    /// server with a private CA or a self-signed certificate. Default: the system's CAs.
    pub ca_file: Option<String>,
    /// Seconds to wait for the server before the operation fails (and is tried again on a new
    /// connection): to connect, to greet (a server that never does, or expects another `tls`
    /// mode, fails with a message saying so), for the TLS handshake, each reply, and every
    /// read and write of a transfer (a data connection that stalls fails). Default 30.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Tries in all for an operation that fails on the connection (dropped, timed out, a
    /// transfer the server aborted): each further try is on a new connection, after 1 s, 2 s,
    /// 4 s... (at most a minute). An interrupted transfer starts again from its first byte.
    /// Default 3.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
}

/// How an FTP connection is encrypted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FtpTls {
    /// `AUTH TLS` on the plain connection, before logging in.
    #[default]
    Explicit,
    /// TLS from the first byte.
    Implicit,
    /// Plain FTP, unencrypted.
    None,
}

fn default_timeout_secs() -> u64 {
    30
}

fn default_attempts() -> u32 {
    3
}

impl Validate for FtpServerConfig {
    fn problems(&self) -> Vec<Invalid> {
        let mut problems = Vec::new();
        if self.tls == FtpTls::None && self.ca_file.is_some() {
            problems.push(Invalid::new(
                "ca_file",
                "is for checking the server's certificate, and `tls = \"none\"` has none",
            ));
        }
        problems.extend(super::connection_problems(self.timeout_secs, self.attempts));
        problems
    }
}

impl ServerConfig for FtpServerConfig {
    /// The server, as messages name it: `ftps://user@host:port` (`ftp://` without TLS).
    fn location(&self) -> String {
        let scheme = match self.tls {
            FtpTls::None => "ftp",
            FtpTls::Explicit | FtpTls::Implicit => "ftps",
        };
        format!("{scheme}://{}@{}:{}", self.user, self.host, self.port())
    }

    /// A connection to the server that logs in when first used. The password and the CAs are
    /// read now.
    fn connection(&self, cx: &RunContext) -> Result<super::Connection, StoreError> {
        let location = self.location();
        let fail = |message: String| StoreError {
            location: location.clone(),
            message,
            transient: false,
        };
        let password = self
            .password
            .resolve(&cx.references())
            .map_err(|e| fail(e.to_string()))?;
        let tls = match self.tls {
            FtpTls::None => None,
            FtpTls::Explicit | FtpTls::Implicit => {
                Some(client_config(self.ca_file.as_deref(), cx).map_err(fail)?)
            }
        };
        let settings = Settings {
            location: location.clone(),
            host: self.host.clone(),
            port: self.port(),
            user: self.user.clone(),
            password,
            mode: self.tls,
            tls,
            timeout: Duration::from_secs(self.timeout_secs),
        };
        let reconnect = Reconnect {
            attempts: self.attempts,
            first_delay: Duration::from_secs(1),
        };
        Ok(super::Connection::new(location, reconnect, move || {
            Ok(Box::new(FtpStore::connect(&settings)?) as Box<dyn FileStore>)
        }))
    }
}

impl FtpServerConfig {
    fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            FtpTls::Implicit => 990,
            FtpTls::Explicit | FtpTls::None => 21,
        })
    }
}

/// rustls' settings for the server: `ca_file`'s CAs, or the system's.
fn client_config(
    ca_file: Option<&str>,
    cx: &RunContext,
) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(ca_file) => {
            let path = cx.resolve(ca_file);
            let certificates: Vec<CertificateDer> = CertificateDer::pem_file_iter(&path)
                .and_then(|certificates| certificates.collect())
                .map_err(|e| format!("cannot read the CA file {}: {e}", path.display()))?;
            if certificates.is_empty() {
                return Err(format!(
                    "the CA file {} holds no certificate",
                    path.display()
                ));
            }
            for certificate in certificates {
                roots.add(certificate).map_err(|e| {
                    format!(
                        "the CA file {} holds a certificate rustls refuses: {e}",
                        path.display()
                    )
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(
                    "no CA certificates found on this system (Debian: apt-get install ca-certificates); or set `ca_file`"
                        .into(),
                );
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// What connecting needs, resolved once.
struct Settings {
    location: String,
    host: String,
    port: u16,
    user: String,
    password: SecretValue,
    mode: FtpTls,
    tls: Option<Arc<rustls::ClientConfig>>,
    timeout: Duration,
}

/// A logged-in FTP session.
pub struct FtpStore {
    location: String,
    ftp: RustlsFtpStream,
    /// Whether the server answers `MLSD`, once asked.
    mlsd: Option<bool>,
    /// `timeout_secs`, for messages.
    timeout: Duration,
}

impl FtpStore {
    fn connect(settings: &Settings) -> Result<Self, StoreError> {
        let location = &settings.location;
        let failed = |action: &str, error: FtpError| StoreError {
            location: location.clone(),
            message: format!("cannot {action}: {}", describe(&error, settings.timeout)),
            transient: is_transient(&error),
        };
        let addresses: Vec<SocketAddr> = (settings.host.as_str(), settings.port)
            .to_socket_addrs()
            .map_err(|e| failed("resolve the host", FtpError::ConnectionError(e)))?
            .collect();
        let connector = || TimedConnector {
            inner: RustlsConnector::from(
                settings.tls.clone().expect("TLS settings for a TLS mode"),
            ),
            timeout: settings.timeout,
            connected: Mutex::new(None),
        };
        let mut ftp = match settings.mode {
            FtpTls::Implicit => {
                let mut ftp = connect_implicit(settings, addresses, connector())?;
                // Data connections encrypted too, as explicit TLS asks for them.
                for command in ["PBSZ 0", "PROT P"] {
                    ftp.custom_command(command, &[Status::CommandOk])
                        .map_err(|e| failed("protect the data connections", e))?;
                }
                ftp
            }
            FtpTls::Explicit | FtpTls::None => {
                let tcp = super::connect_any(&addresses, settings.timeout)
                    .map_err(|e| failed("connect", FtpError::ConnectionError(e)))?;
                set_timeouts(&tcp, settings.timeout)
                    .map_err(|e| failed("connect", FtpError::ConnectionError(e)))?;
                let ftp = RustlsFtpStream::connect_with_stream(tcp)
                    .map_err(|e| greeting_failed(settings, "connect", e))?;
                if settings.mode == FtpTls::None {
                    tracing::warn!(
                        server = %location,
                        "plain FTP (tls = \"none\"): the password and the files cross the network unencrypted"
                    );
                    ftp
                } else {
                    ftp.into_secure(connector(), &settings.host)
                        .map_err(|e| failed("start TLS (AUTH TLS)", e))?
                }
            }
        };
        let timeout = settings.timeout;
        ftp = ftp.passive_stream_builder(move |address| {
            let tcp =
                TcpStream::connect_timeout(&address, timeout).map_err(FtpError::ConnectionError)?;
            set_timeouts(&tcp, timeout).map_err(FtpError::ConnectionError)?;
            Ok(tcp)
        });
        ftp.login(settings.user.as_str(), settings.password.expose())
            .map_err(|e| StoreError {
                location: location.clone(),
                message: format!(
                    "the server refused to log in {}: {}",
                    settings.user,
                    describe(&e, settings.timeout)
                ),
                transient: is_transient(&e),
            })?;
        ftp.transfer_type(FileType::Binary)
            .map_err(|e| failed("switch to binary transfers", e))?;
        Ok(FtpStore {
            location: location.clone(),
            ftp,
            mlsd: None,
            timeout: settings.timeout,
        })
    }

    /// A file's modification time from `MDTM` (UTC, to the second), or `listed` (what a
    /// listing said) when the server refuses the command; a failed connection is an error,
    /// so that no reply is taken for another command's.
    fn exact_mtime(&mut self, path: &str, listed: Option<i64>) -> Result<Option<i64>, StoreError> {
        match self.ftp.mdtm(path) {
            Ok(time) => Ok(Some(time.and_utc().timestamp())),
            Err(FtpError::UnexpectedResponse(response))
                if (500..600).contains(&response.status.code()) =>
            {
                Ok(listed)
            }
            Err(e) => Err(self.error("read the modification time of", path, e)),
        }
    }

    fn error(&self, action: &str, path: &str, error: FtpError) -> StoreError {
        StoreError {
            location: self.location.clone(),
            message: format!("cannot {action} {path}: {}", describe(&error, self.timeout)),
            transient: is_transient(&error),
        }
    }

    /// The entries of `dir` from its `MLSD` lines: names exactly as they are (a `LIST` line's
    /// name loses its leading spaces), times in UTC to the second.
    fn mlsd_entries(&self, dir: &str, lines: Vec<String>) -> Vec<RemoteEntry> {
        let mut entries = Vec::new();
        for line in lines {
            match parse_mlsd(&line) {
                Some(Some(fact)) => entries.push(RemoteEntry {
                    path: super::join(dir, &fact.name),
                    name: fact.name,
                    size: fact.size,
                    mtime: fact.mtime,
                    kind: fact.kind,
                }),
                Some(None) => {}
                None => {
                    tracing::warn!(server = %self.location, line, "a listing line not understood: its file is not seen");
                }
            }
        }
        entries
    }
}

/// One entry of an `MLSD` listing.
#[derive(Debug, PartialEq, Eq)]
struct MlsdEntry {
    name: String,
    kind: EntryKind,
    size: u64,
    mtime: Option<i64>,
}

/// An `MLSD` line (RFC 3659: `fact=value;...` facts, one space, the name as it is):
/// `Some(None)` for the directory itself and its parent (`cdir`, `pdir`), `None` for a line
/// that is not one.
fn parse_mlsd(line: &str) -> Option<Option<MlsdEntry>> {
    let (facts, name) = line.split_once("; ")?;
    let mut entry = MlsdEntry {
        name: name.to_string(),
        kind: EntryKind::Other,
        size: 0,
        mtime: None,
    };
    let mut typed = false;
    for fact in facts.split(';') {
        let Some((key, value)) = fact.split_once('=') else {
            continue;
        };
        match key.to_ascii_lowercase().as_str() {
            "type" => {
                typed = true;
                let value = value.to_ascii_lowercase();
                entry.kind = match value.as_str() {
                    "file" => EntryKind::File,
                    "dir" => EntryKind::Dir,
                    "cdir" | "pdir" => return Some(None),
                    // `OS.unix=symlink`, `OS.unix=slink:TARGET` (proftpd), `link`.
                    _ if value.contains("link") => EntryKind::Symlink,
                    _ => EntryKind::Other,
                };
            }
            "size" => entry.size = value.parse().ok()?,
            "modify" => {
                let time =
                    chrono::NaiveDateTime::parse_from_str(value.get(..14)?, "%Y%m%d%H%M%S").ok()?;
                entry.mtime = Some(time.and_utc().timestamp());
            }
            _ => {}
        }
    }
    // A name is one entry of the directory listed: one that would climb out of it or into
    // another (`..`, `a/b`) is no file of the drop, whatever the server says.
    if matches!(name, "." | "..") || name.contains('/') {
        return Some(None);
    }
    (typed && !name.is_empty()).then_some(Some(entry))
}

/// A socket's read or write that `timeout_secs` ended (`EAGAIN` on Unix, `ETIMEDOUT` elsewhere).
fn is_timeout(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn timed_out(timeout: Duration) -> String {
    format!("timed out after {} s (`timeout_secs`)", timeout.as_secs())
}

fn set_timeouts(tcp: &TcpStream, timeout: Duration) -> io::Result<()> {
    tcp.set_read_timeout(Some(timeout))?;
    tcp.set_write_timeout(Some(timeout))
}

/// rustls with the socket's timeouts set before each handshake: suppaftp makes implicit TLS's
/// control connection itself, and hands it (like every protected data connection) to the
/// connector straight after connecting, before anything is read.
#[derive(Debug)]
struct TimedConnector {
    inner: RustlsConnector,
    timeout: Duration,
    /// Told when the first connection is made: implicit TLS's control connection.
    connected: Mutex<Option<mpsc::Sender<()>>>,
}

impl TlsConnector for TimedConnector {
    type Stream = <RustlsConnector as TlsConnector>::Stream;

    fn connect(&self, domain: &str, stream: TcpStream) -> Result<Self::Stream, FtpError> {
        if let Some(connected) = self.connected.lock().expect("not poisoned").take() {
            // The waiter may have given up already.
            let _ = connected.send(());
        }
        set_timeouts(&stream, self.timeout).map_err(FtpError::ConnectionError)?;
        self.inner.connect(domain, stream)
    }
}

/// The control connection with TLS from the first byte. suppaftp connects it without a timeout
/// of its own, so that is done on a thread that is given up on after `timeout_secs` (it ends
/// when the system's connect does); the handshake and the greeting are bounded by the
/// socket's timeouts, which the connector sets.
fn connect_implicit(
    settings: &Settings,
    addresses: Vec<SocketAddr>,
    connector: TimedConnector,
) -> Result<RustlsFtpStream, StoreError> {
    let (connected_tx, connected) = mpsc::channel();
    *connector.connected.lock().expect("not poisoned") = Some(connected_tx);
    let (done_tx, done) = mpsc::channel();
    let host = settings.host.clone();
    std::thread::spawn(move || {
        let _ = done_tx.send(RustlsFtpStream::connect_secure_implicit(
            &addresses[..],
            connector,
            &host,
        ));
    });
    let cannot_connect = |error: FtpError| StoreError {
        location: settings.location.clone(),
        message: format!("cannot connect: {}", describe(&error, settings.timeout)),
        transient: is_transient(&error),
    };
    match connected.recv_timeout(settings.timeout) {
        Ok(()) => {}
        Err(mpsc::RecvTimeoutError::Timeout) => {
            return Err(cannot_connect(FtpError::ConnectionError(
                io::ErrorKind::TimedOut.into(),
            )));
        }
        // Not connected: the result says why.
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            return Err(cannot_connect(
                done.recv()
                    .expect("the connecting thread answers")
                    .err()
                    .expect("not connected"),
            ));
        }
    }
    done.recv()
        .expect("the connecting thread answers")
        .map_err(|e| greeting_failed(settings, "connect with TLS", e))
}

/// A connection on which no FTP session started: no greeting within the timeout (a server
/// that is not an FTP server, or expects TLS from the first byte when explicit TLS waits for
/// its plain greeting), or, with implicit TLS, a server that answered without TLS.
fn greeting_failed(settings: &Settings, action: &str, error: FtpError) -> StoreError {
    let fail = |message: String, transient: bool| StoreError {
        location: settings.location.clone(),
        message,
        transient,
    };
    match &error {
        FtpError::ConnectionError(e) if is_timeout(e) => fail(
            format!(
                "no FTP greeting within {} s: is this an FTP server, and is `tls` (explicit/implicit) right?",
                settings.timeout.as_secs()
            ),
            true,
        ),
        FtpError::ConnectionError(e) if is_not_tls(e) => fail(
            format!(
                "the server did not answer in TLS ({e}): is `tls = \"implicit\"` right? (a server that greets in plain text wants `tls = \"explicit\"`)"
            ),
            false,
        ),
        _ => fail(
            format!("cannot {action}: {}", describe(&error, settings.timeout)),
            is_transient(&error),
        ),
    }
}

/// rustls met bytes that are not TLS records: a plain-text server.
fn is_not_tls(error: &io::Error) -> bool {
    error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|error| matches!(error, rustls::Error::InvalidMessage(_)))
}

/// A server's answer as its code and text, a timeout as one; other errors as they are.
fn describe(error: &FtpError, timeout: Duration) -> String {
    match error {
        FtpError::ConnectionError(e) if is_timeout(e) => timed_out(timeout),
        // The body is the whole reply line, its code included.
        FtpError::UnexpectedResponse(response) => {
            String::from_utf8_lossy(&response.body).trim().to_string()
        }
        FtpError::SecureError(message) => format!("TLS: {message}"),
        other => other.to_string(),
    }
}

/// Worth a new connection: the connection failed, or the server said "try again" (4xx).
fn is_transient(error: &FtpError) -> bool {
    match error {
        // `InvalidInput`: a line FTP cannot carry (a path with a line break), refused locally.
        FtpError::ConnectionError(e) => {
            !is_certificate_error(e) && e.kind() != io::ErrorKind::InvalidInput
        }
        FtpError::UnexpectedResponse(response) => (400..500).contains(&response.status.code()),
        _ => false,
    }
}

/// rustls reports a certificate that does not verify as an I/O error around its own.
fn is_certificate_error(error: &io::Error) -> bool {
    error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|error| matches!(error, rustls::Error::InvalidCertificate(_)))
}

/// `550`: the file is not there (or is not a file).
fn is_unavailable(error: &FtpError) -> bool {
    matches!(error, FtpError::UnexpectedResponse(response) if response.status == Status::FileUnavailable)
}

impl FileStore for FtpStore {
    fn list(&mut self, dir: &str) -> Result<Vec<RemoteEntry>, StoreError> {
        let dir_arg = if dir.is_empty() { "." } else { dir };
        if self.mlsd != Some(false) {
            match self.ftp.mlsd(Some(dir_arg)) {
                Ok(lines) => {
                    self.mlsd = Some(true);
                    let mut entries = self.mlsd_entries(dir, lines);
                    // Times from `MDTM`, as `stat` reads them: a file is checked for change
                    // against a time from the same command (servers' `MLSD` and `MDTM` can
                    // disagree, and every file would look changed).
                    for entry in entries.iter_mut().filter(|e| e.kind == EntryKind::File) {
                        entry.mtime = self.exact_mtime(&entry.path, entry.mtime)?;
                    }
                    return Ok(entries);
                }
                // 500, 502: a server without `MLSD` (vsftpd): `LIST` from now on.
                Err(FtpError::UnexpectedResponse(response))
                    if matches!(response.status.code(), 500 | 502) =>
                {
                    self.mlsd = Some(false);
                }
                Err(e) => return Err(self.error("list", dir, e)),
            }
        }
        // `-a`: hidden files too (uploads in progress, this pipeline's claims), which most
        // servers leave out of a plain `LIST`.
        let lines = self
            .ftp
            .list(Some(&format!("-a {dir_arg}")))
            .map_err(|e| self.error("list", dir, e))?;
        let mut entries = Vec::new();
        for line in lines {
            let Ok(file) = ListParser::parse_posix(&line).or_else(|_| ListParser::parse_dos(&line))
            else {
                tracing::warn!(server = %self.location, line, "a listing line not understood: its file is not seen");
                continue;
            };
            if matches!(file.name(), "." | "..") {
                continue;
            }
            let path = super::join(dir, file.name());
            // A listing gives times to the minute, in the server's time zone (and for old
            // files, the day only); `MDTM` gives a file's, in UTC, to the second.
            let listed = file
                .modified()
                .duration_since(std::time::UNIX_EPOCH)
                .ok()
                .map(|since| since.as_secs() as i64);
            // `LIST` shows a link as `l...` (`name -> target`): where it points is not looked at.
            let kind = if file.is_directory() {
                EntryKind::Dir
            } else if file.is_symlink() {
                EntryKind::Symlink
            } else {
                EntryKind::File
            };
            let mtime = match kind {
                EntryKind::File => self.exact_mtime(&path, listed)?,
                _ => None,
            };
            entries.push(RemoteEntry {
                path,
                name: file.name().to_string(),
                size: file.size() as u64,
                mtime,
                kind,
            });
        }
        Ok(entries)
    }

    fn stat(&mut self, path: &str) -> Result<Option<RemoteEntry>, StoreError> {
        let size = match self.ftp.size(path) {
            Ok(size) => size as u64,
            Err(e) if is_unavailable(&e) => return Ok(None),
            Err(e) => return Err(self.error("look up", path, e)),
        };
        let mtime = self.exact_mtime(path, None)?;
        Ok(Some(RemoteEntry {
            path: path.to_string(),
            name: super::file_name(path).to_string(),
            size,
            mtime,
            kind: EntryKind::File,
        }))
    }

    fn open(&mut self, path: &str) -> Result<Box<dyn Read + Send>, StoreError> {
        let stream = self
            .ftp
            .retr_as_stream(path)
            .map_err(|e| self.error("download", path, e))?;
        Ok(Box::new(Download {
            stream: Some(stream),
            timeout: self.timeout,
        }))
    }

    fn upload(&mut self, path: &str, from: &mut dyn Read) -> Result<u64, StoreError> {
        let mut stream = self
            .ftp
            .put_with_stream(path)
            .map_err(|e| self.error("upload", path, e))?;
        let written = super::copy_large(from, &mut stream)
            .map_err(|e| self.error("upload", path, FtpError::ConnectionError(e)))?;
        stream.finish().map_err(|e| self.error("upload", path, e))?;
        Ok(written)
    }

    fn rename(&mut self, from: &str, to: &str, replace: bool) -> Result<(), StoreError> {
        // FTP's rename replaces whatever is there; the check before it is the best FTP has.
        if !replace && self.stat(to)?.is_some() {
            return Err(StoreError {
                location: self.location.clone(),
                message: format!("cannot rename {from} to {to}: {to} exists"),
                transient: false,
            });
        }
        self.ftp
            .rename(from, to)
            .map_err(|e| self.error("rename", &format!("{from} to {to}"), e))
    }

    fn remove(&mut self, path: &str) -> Result<(), StoreError> {
        match self.ftp.rm(path) {
            Ok(()) => Ok(()),
            Err(e) if is_unavailable(&e) => Ok(()),
            Err(e) => Err(self.error("remove", path, e)),
        }
    }

    fn create_dir_all(&mut self, dir: &str) -> Result<(), StoreError> {
        // FTP has no "exists" for directories: each is made, and a refusal (there already, or
        // not allowed: servers answer 521, 550 or 553) is judged by the upload into it.
        for dir in super::ancestors(dir) {
            match self.ftp.mkdir(&dir) {
                Ok(()) => {}
                Err(FtpError::UnexpectedResponse(response))
                    if (500..600).contains(&response.status.code()) => {}
                Err(e) => return Err(self.error("create the directory", &dir, e)),
            }
        }
        Ok(())
    }
}

/// A file being downloaded; at its end, the server's transfer reply says whether all of it came.
struct Download<T: TlsStream> {
    stream: Option<TransferStream<T>>,
    /// `timeout_secs`, for messages.
    timeout: Duration,
}

impl<T: TlsStream> Read for Download<T> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let Some(stream) = &mut self.stream else {
            return Ok(0);
        };
        let read = stream.read(buffer).map_err(|e| {
            if is_timeout(&e) {
                io::Error::new(e.kind(), timed_out(self.timeout))
            } else {
                e
            }
        })?;
        if read == 0 && !buffer.is_empty() {
            let stream = self.stream.take().expect("present");
            stream.finish().map_err(|e| {
                io::Error::other(format!(
                    "the transfer did not complete: {}",
                    describe(&e, self.timeout)
                ))
            })?;
        }
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mlsd_lines_keep_names_as_they_are_and_tell_links_apart() {
        assert_eq!(
            parse_mlsd("type=file;size=5;modify=20240801120030.250;UNIX.mode=0644;   lead.csv"),
            Some(Some(MlsdEntry {
                name: "  lead.csv".into(),
                kind: EntryKind::File,
                size: 5,
                mtime: Some(1_722_513_630),
            }))
        );
        let kind = |line: &str| parse_mlsd(line).flatten().map(|entry| entry.kind);
        assert_eq!(
            kind("type=dir;modify=20240801120030; 2024-08-01"),
            Some(EntryKind::Dir)
        );
        assert_eq!(
            kind("type=OS.unix=symlink;size=11; passwd.csv"),
            Some(EntryKind::Symlink)
        );
        assert_eq!(
            kind("type=OS.unix=slink:/etc/passwd; passwd.csv"),
            Some(EntryKind::Symlink)
        );
        assert_eq!(kind("type=OS.unix=fifo; pipe"), Some(EntryKind::Other));
        assert_eq!(
            parse_mlsd("type=cdir;modify=20240801120030; /inbound"),
            Some(None)
        );
        assert_eq!(parse_mlsd("type=pdir; .."), Some(None));
        assert_eq!(parse_mlsd("type=file;size=5; ../x.csv"), Some(None));
        assert_eq!(parse_mlsd("type=file;size=5; .."), Some(None));
        assert_eq!(parse_mlsd("-rw-r--r-- 1 u g 5 Aug  1 12:00 a.csv"), None);
        assert_eq!(parse_mlsd("size=5; a.csv"), None, "no type: not understood");
    }
}
