//! A real OpenSSH server for the SFTP tests: `sshd` (Debian's `openssh-server`) on a free port
//! of 127.0.0.1, one per test, in a temporary directory with its own host key, serving
//! `internal-sftp` only, with password and public-key login for [`USER`]. Its sessions start
//! in [`SftpServer::data`], so the tests' remote paths are relative to it. Stopped when
//! dropped.

use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::accounts::{self, USER};

/// How long the server may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(15);

pub struct SftpServer {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl SftpServer {
    /// Starts a server, generating its host key and a client key (both ed25519).
    /// `None` when the test is to be skipped (see [`accounts::can_start`]).
    pub fn start() -> Option<Self> {
        let missing =
            accounts::missing_for_daemon(&["sshd", "ssh-keygen"], "openssh-server openssh-client");
        if !accounts::can_start("SFTP", missing) {
            return None;
        }
        accounts::ensure_test_user();
        let dir = tempfile::tempdir().expect("a temporary directory");
        let base = dir.path();
        accounts::open_to_test_user(base);
        let data = base.join("data");
        std::fs::create_dir(&data).expect("create the data directory");
        accounts::give_to_test_user(&data);
        keygen(&base.join("host_key"), "");
        keygen(&base.join("client_key"), "");
        std::fs::copy(base.join("client_key.pub"), base.join("authorized_keys"))
            .expect("authorize the client key");
        // sshd refuses to start without its privilege separation directory.
        std::fs::create_dir_all("/run/sshd").expect("create /run/sshd");
        let config = base.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "ListenAddress 127.0.0.1\n\
                 AddressFamily inet\n\
                 HostKey {base}/host_key\n\
                 PidFile none\n\
                 AuthorizedKeysFile {base}/authorized_keys\n\
                 StrictModes no\n\
                 UsePAM no\n\
                 PubkeyAuthentication yes\n\
                 PasswordAuthentication yes\n\
                 KbdInteractiveAuthentication no\n\
                 PermitRootLogin no\n\
                 AllowUsers {USER}\n\
                 DisableForwarding yes\n\
                 MaxStartups 100\n\
                 Subsystem sftp internal-sftp\n\
                 ForceCommand internal-sftp -d {data}\n",
                base = base.display(),
                data = data.display(),
            ),
        )
        .expect("write sshd_config");
        let mut last_failure = String::new();
        // A free port found by binding may be taken again before sshd binds it: a few tries.
        for _ in 0..5 {
            let port = accounts::free_port();
            let mut child = Command::new("/usr/sbin/sshd")
                .arg("-D")
                .arg("-e")
                .arg("-f")
                .arg(&config)
                .arg("-p")
                .arg(port.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(base.join("sshd.log")).expect("create sshd.log"))
                .spawn()
                .expect("start sshd");
            match wait_for_banner(&mut child, port) {
                Ok(()) => {
                    let server = SftpServer { child, port, dir };
                    let host_key = std::fs::read_to_string(server.dir.path().join("host_key.pub"))
                        .expect("read the host key");
                    let mut fields = host_key.split_whitespace();
                    let (kind, key) = (fields.next().unwrap(), fields.next().unwrap());
                    std::fs::write(
                        server.known_hosts(),
                        format!("[127.0.0.1]:{port} {kind} {key}\n"),
                    )
                    .expect("write known_hosts");
                    return Some(server);
                }
                Err(failure) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_failure = failure;
                }
            }
        }
        let log = std::fs::read_to_string(base.join("sshd.log")).unwrap_or_default();
        panic!("sshd did not start: {last_failure}\n{log}");
    }

    /// Where the sessions start: a remote path `inbound/a.csv` is this directory's.
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A `known_hosts` file with this server's host key.
    pub fn known_hosts(&self) -> PathBuf {
        self.dir.path().join("known_hosts")
    }

    /// The client's private key (OpenSSH format, no passphrase), authorized on the server.
    pub fn client_key(&self) -> PathBuf {
        self.dir.path().join("client_key")
    }

    /// A new client key under `name` protected by `passphrase`, authorized on the server.
    pub fn authorize_key_with_passphrase(&self, name: &str, passphrase: &str) -> PathBuf {
        let key = self.dir.path().join(name);
        keygen(&key, passphrase);
        let public =
            std::fs::read_to_string(format!("{}.pub", key.display())).expect("read the public key");
        let authorized = self.dir.path().join("authorized_keys");
        let mut keys = std::fs::read_to_string(&authorized).expect("read authorized_keys");
        keys.push_str(&public);
        std::fs::write(&authorized, keys).expect("write authorized_keys");
        key
    }

    /// The host key's fingerprint as OpenSSH prints it: `SHA256:` and unpadded base64.
    pub fn fingerprint(&self) -> String {
        let output = Command::new("ssh-keygen")
            .arg("-l")
            .arg("-E")
            .arg("sha256")
            .arg("-f")
            .arg(self.dir.path().join("host_key.pub"))
            .output()
            .expect("run ssh-keygen -l");
        let text = String::from_utf8(output.stdout).expect("UTF-8");
        text.split_whitespace()
            .nth(1)
            .expect("a fingerprint")
            .to_string()
    }

    /// Kills the server and its sessions, as a crash of the server's machine would.
    pub fn kill(&mut self) {
        accounts::kill_tree(&mut self.child);
    }

    /// Ends every session, as a dropped network connection would; the server goes on.
    pub fn drop_sessions(&self) {
        accounts::kill_sessions(&self.child);
    }
}

impl Drop for SftpServer {
    fn drop(&mut self) {
        accounts::kill_tree(&mut self.child);
    }
}

fn keygen(path: &Path, passphrase: &str) {
    let status = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            passphrase,
            "-C",
            "longshore-test",
            "-f",
        ])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .expect("run ssh-keygen");
    assert!(status.success(), "ssh-keygen failed for {}", path.display());
}

/// Waits (bounded) until sshd on `port` sends its `SSH-2.0` banner.
fn wait_for_banner(child: &mut Child, port: u16) -> Result<(), String> {
    let started = Instant::now();
    while started.elapsed() < START_TIMEOUT {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Err(format!("sshd exited: {status}"));
        }
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut banner = [0u8; 8];
            if stream.read_exact(&mut banner).is_ok() && banner.starts_with(b"SSH-2.0") {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!(
        "no SSH banner on port {port} after {START_TIMEOUT:?}"
    ))
}
