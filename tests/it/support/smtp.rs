//! A real SMTP server for the email notification tests: Python's `aiosmtpd`, listening on
//! 127.0.0.1 on two free ports (plain with STARTTLS, and TLS from the start) with a self-signed
//! certificate made by `openssl` for this server, AUTH PLAIN/LOGIN accepting [`USER`] and
//! [`PASSWORD`] only. Every message it accepts is saved, parsed by Python's `email` package, as
//! a JSON file before the server answers `250`, so a test can read it as soon as sending returns.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const USER: &str = "notifier";
pub const PASSWORD: &str = "correct-horse-battery";

/// How long the server may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(30);

const SERVER: &str = r#"
import asyncio, email, email.policy, json, os, socket, ssl, sys
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

out_dir, cert, key, user, password = sys.argv[1:6]
saved = 0

class Handler:
    async def handle_DATA(self, server, session, envelope):
        global saved
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        body = message.get_body(("plain",))
        auth = session.auth_data if session.authenticated else None
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "from": str(message["From"]),
            "to": str(message["To"]),
            "subject": str(message["Subject"]),
            "body": body.get_content().replace("\r\n", "\n") if body is not None else None,
            "tls": server.transport.get_extra_info("ssl_object") is not None,
            "login": auth.login.decode() if auth is not None else None,
        }
        saved += 1
        path = os.path.join(out_dir, f"{saved:03}.json")
        with open(path + ".tmp", "w") as file:
            json.dump(record, file)
        os.replace(path + ".tmp", path)
        return "250 OK"

def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (isinstance(auth_data, LoginPassword)
          and auth_data.login == user.encode() and auth_data.password == password.encode())
    return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

def listener():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock

async def main():
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    handler = Handler()
    loop = asyncio.get_running_loop()
    plain, wrapped = listener(), listener()
    await loop.create_server(
        lambda: SMTP(handler, hostname="localhost", tls_context=context,
                     authenticator=authenticator, auth_require_tls=True),
        sock=plain)
    await loop.create_server(
        lambda: SMTP(handler, hostname="localhost", authenticator=authenticator,
                     auth_require_tls=False),
        sock=wrapped, ssl=context)
    print("READY", plain.getsockname()[1], wrapped.getsockname()[1], flush=True)
    # Stop when the test process is gone (its end of our stdin closes), whatever happened to it.
    await loop.run_in_executor(None, sys.stdin.read)

asyncio.run(main())
"#;

/// A running server, stopped on drop.
pub struct SmtpServer {
    child: Child,
    dir: tempfile::TempDir,
    /// Plain SMTP, with STARTTLS offered.
    pub port: u16,
    /// TLS from the first byte (SMTPS).
    pub tls_port: u16,
}

impl SmtpServer {
    /// `None` when the test is to be skipped (see [`accounts::can_start`]).
    pub fn start() -> Option<SmtpServer> {
        let check = Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .output();
        let missing = match check {
            Ok(output) if output.status.success() => None,
            _ => Some(
                "they need Python's aiosmtpd: `python3 -m pip install aiosmtpd` (scripts/test \
                 does, as root)"
                    .to_string(),
            ),
        };
        if !super::accounts::can_start("email", missing) {
            return None;
        }
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let path = |name: &str| dir.path().join(name);
        std::fs::create_dir(path("messages")).expect("create the messages directory");
        super::certs::self_signed(dir.path(), "cert", "longshore test SMTP server");
        std::fs::write(path("server.py"), SERVER).expect("write the server script");
        let log = std::fs::File::create(path("server.log")).expect("create the server log");
        let mut child = Command::new("python3")
            .arg(path("server.py"))
            .arg(path("messages"))
            .arg(path("cert.pem"))
            .arg(path("cert.key"))
            .args([USER, PASSWORD])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start python3");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let mut server = SmtpServer {
            child,
            dir,
            port: 0,
            tls_port: 0,
        };
        let line = rx.recv_timeout(START_TIMEOUT).unwrap_or_default();
        let ports: Vec<u16> = line
            .strip_prefix("READY ")
            .map(|ports| {
                ports
                    .split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        let [port, tls_port] = ports[..] else {
            panic!(
                "the SMTP server did not start within {START_TIMEOUT:?}; its output:\n{line}{}",
                server.log()
            );
        };
        server.port = port;
        server.tls_port = tls_port;
        Some(server)
    }

    /// The server's certificate (PEM), for `ca_file`.
    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    /// The messages accepted so far, oldest first.
    pub fn messages(&self) -> Vec<serde_json::Value> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(self.dir.path().join("messages"))
            .expect("list the messages")
            .map(|entry| entry.expect("a directory entry").path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
            .collect();
        paths.sort();
        paths
            .iter()
            .map(|path| {
                let text = std::fs::read_to_string(path).expect("read a saved message");
                serde_json::from_str(&text).expect("a saved message is JSON")
            })
            .collect()
    }

    /// What the server logged (Python errors), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
