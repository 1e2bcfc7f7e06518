//! A real FTP server for the FTP and FTPS tests: `vsftpd` (Debian's `vsftpd`) on a free port of
//! 127.0.0.1, one per test, in a temporary directory, logging in [`USER`](super::accounts::USER)
//! with its password, chrooted to [`FtpServer::data`] (so remote paths are relative to it).
//! TLS explicit (`AUTH TLS`, required for login and data), implicit, or none, with a
//! self-signed certificate ([`FtpServer::ca`]). Stopped when dropped.

use std::io::Read;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::accounts;

/// How long the server may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// How the server speaks TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FtpMode {
    /// `AUTH TLS` on the plain control connection, required before login.
    Explicit,
    /// TLS from the first byte.
    Implicit,
    /// Plain FTP.
    Plain,
}

pub struct FtpServer {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl FtpServer {
    /// Starts a server; TLS 1.3 session tickets are off, as vsftpd's own default TLS stack
    /// would have them on only with OpenSSL's defaults.
    pub fn start(mode: FtpMode) -> Option<Self> {
        Self::start_with_tickets(mode, 0)
    }

    /// Starts a server that sends `tickets` TLS 1.3 session tickets after each handshake
    /// (OpenSSL's `NumTickets`): a client that closes a data connection without reading them
    /// loses the end of its uploads.
    /// `None` when the test is to be skipped (see [`accounts::can_start`]).
    pub fn start_with_tickets(mode: FtpMode, tickets: u32) -> Option<Self> {
        let missing = accounts::missing_for_daemon(&["vsftpd", "openssl"], "vsftpd openssl");
        if !accounts::can_start("FTP", missing) {
            return None;
        }
        accounts::ensure_test_user();
        let dir = tempfile::tempdir().expect("a temporary directory");
        let base = dir.path();
        accounts::open_to_test_user(base);
        let data = base.join("data");
        std::fs::create_dir(&data).expect("create the data directory");
        accounts::give_to_test_user(&data);
        let empty = base.join("empty");
        std::fs::create_dir(&empty).expect("create the secure chroot directory");
        let tls = super::certs::self_signed(base, "server", "longshore test FTP server");
        let openssl_conf = base.join("openssl.cnf");
        std::fs::write(
            &openssl_conf,
            format!(
                "openssl_conf = c\n[c]\nssl_conf = s\n[s]\nsystem_default = d\n[d]\nNumTickets = {tickets}\n"
            ),
        )
        .expect("write openssl.cnf");
        let mut last_failure = String::new();
        for _ in 0..5 {
            let port = accounts::free_port();
            let config = base.join("vsftpd.conf");
            let mut text = format!(
                "listen=YES\nlisten_ipv6=NO\nlisten_address=127.0.0.1\nlisten_port={port}\n\
                 background=NO\nanonymous_enable=NO\nlocal_enable=YES\nwrite_enable=YES\n\
                 local_umask=022\nlocal_root={data}\nchroot_local_user=YES\n\
                 allow_writeable_chroot=YES\nsecure_chroot_dir={empty}\n\
                 pam_service_name=longshore-test-ftp\npasv_enable=YES\npasv_address=127.0.0.1\n\
                 xferlog_enable=YES\nvsftpd_log_file={log}\nseccomp_sandbox=NO\n",
                data = data.display(),
                empty = empty.display(),
                log = base.join("vsftpd.log").display(),
            );
            match mode {
                FtpMode::Plain => text.push_str("ssl_enable=NO\n"),
                FtpMode::Explicit | FtpMode::Implicit => {
                    text.push_str(&format!(
                        "ssl_enable=YES\nrsa_cert_file={}\nrsa_private_key_file={}\n\
                         require_ssl_reuse=NO\nforce_local_logins_ssl=YES\nforce_local_data_ssl=YES\n",
                        tls.cert.display(),
                        tls.key.display()
                    ));
                    if mode == FtpMode::Implicit {
                        text.push_str("implicit_ssl=YES\n");
                    }
                }
            }
            std::fs::write(&config, text).expect("write vsftpd.conf");
            let mut child = Command::new("/usr/sbin/vsftpd")
                .arg(&config)
                .env("OPENSSL_CONF", &openssl_conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(base.join("stderr.log")).expect("create a log"))
                .spawn()
                .expect("start vsftpd");
            match wait_until_listening(&mut child, port, mode) {
                Ok(()) => return Some(FtpServer { child, port, dir }),
                Err(failure) => {
                    accounts::kill_tree(&mut child);
                    last_failure = failure;
                }
            }
        }
        let log = std::fs::read_to_string(base.join("stderr.log")).unwrap_or_default();
        panic!("vsftpd did not start: {last_failure}\n{log}");
    }

    /// The server's root as the client sees it: a remote path `inbound/a.csv` is this
    /// directory's.
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The server's certificate, which a client trusts as its CA.
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    /// The transfer log and the server's errors, for a failing test's message.
    pub fn log(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.path().join(name));
        format!(
            "{}{}",
            read("vsftpd.log").unwrap_or_default(),
            read("stderr.log").unwrap_or_default()
        )
    }

    /// Ends every session, as a dropped network connection would; the server goes on.
    pub fn drop_sessions(&self) {
        accounts::kill_sessions(&self.child);
    }
}

impl Drop for FtpServer {
    fn drop(&mut self) {
        accounts::kill_tree(&mut self.child);
    }
}

/// Waits (bounded) until vsftpd on `port` accepts connections: its `220` greeting, or for
/// implicit TLS, an open port.
fn wait_until_listening(child: &mut Child, port: u16, mode: FtpMode) -> Result<(), String> {
    let started = Instant::now();
    while started.elapsed() < START_TIMEOUT {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Err(format!("vsftpd exited: {status}"));
        }
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            if mode == FtpMode::Implicit {
                return Ok(());
            }
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut greeting = [0u8; 3];
            if stream.read_exact(&mut greeting).is_ok() && &greeting == b"220" {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!(
        "nothing listening on port {port} after {START_TIMEOUT:?}"
    ))
}
