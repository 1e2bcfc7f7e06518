//! SFTP over SSH, with `ssh2` (libssh2). The server's host key is checked before anything is
//! sent: against a `known_hosts` file (OpenSSH's, by default) or a pinned SHA-256 fingerprint.
//! An unknown or changed key refuses the connection and says which key the server offered and
//! how to pin it; skipping the check takes `insecure_skip_host_key_check` and a warning on
//! every connection.

use std::io::{self, Read};
use std::net::ToSocketAddrs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use schemars::JsonSchema;
use serde::Deserialize;
use ssh2::{CheckResult, ErrorCode, HashType, KnownHostFileKind, RenameFlags, Session, Sftp};

use super::{EntryKind, FileStore, Reconnect, RemoteEntry, ServerConfig, StoreError, ancestors};
use crate::config::{Invalid, Secret, SecretValue, Validate};
use crate::stage::RunContext;

/// An SFTP server and how to log in to it. Exactly one of `password`, `private_key` and
/// `agent` says how.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SftpServerConfig {
    /// The server's host name or IP address. Required.
    pub host: String,
    /// The server's port. Default 22.
    #[serde(default = "default_port")]
    pub port: u16,
    /// The user to log in as. Required.
    pub user: String,
    /// Log in with this password, e.g. `"${env:PARTNER_SFTP_PASSWORD}"`. Default: none.
    pub password: Option<Secret>,
    /// Log in with this private key file (OpenSSH or PEM format), e.g. `"~/.ssh/id_ed25519"`;
    /// relative paths are resolved against the pipeline file's directory. Default: none.
    pub private_key: Option<String>,
    /// The passphrase of `private_key`, when it has one. Default: none.
    pub private_key_passphrase: Option<Secret>,
    /// Log in with the keys of the running ssh-agent (`SSH_AUTH_SOCK`). Default `false`.
    #[serde(default)]
    pub agent: bool,
    /// The `known_hosts` file (OpenSSH's format, hashed names included) that must hold the
    /// server's host key. Default `"~/.ssh/known_hosts"`, unless `host_key_fingerprint` is set.
    pub known_hosts: Option<String>,
    /// The server's host key fingerprint, as `ssh-keygen -lf` prints it:
    /// `"SHA256:"` and base64. When set, the key must have it (`known_hosts` is then not read
    /// unless also set). Default: none.
    pub host_key_fingerprint: Option<String>,
    /// Connect without checking the server's host key: anyone between this machine and the
    /// server can then read and change what is transferred, passwords included. Logged as a
    /// warning on every connection. Default `false`.
    #[serde(default)]
    pub insecure_skip_host_key_check: bool,
    /// Seconds to wait for the server to connect or answer before the operation fails (and is
    /// tried again on a new connection). Default 30.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Seconds between keep-alive messages on an idle connection. Default 30.
    #[serde(default = "default_keepalive_secs")]
    pub keepalive_secs: u32,
    /// Tries in all for an operation that fails on the connection (dropped, timed out): each
    /// further try is on a new connection, after 1 s, 2 s, 4 s... (at most a minute). An interrupted transfer
    /// starts again from its first byte. Default 3.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
}

fn default_port() -> u16 {
    22
}

fn default_timeout_secs() -> u64 {
    30
}

fn default_keepalive_secs() -> u32 {
    30
}

fn default_attempts() -> u32 {
    3
}

impl Validate for SftpServerConfig {
    fn problems(&self) -> Vec<Invalid> {
        let mut problems = Vec::new();
        let ways = [
            self.password.is_some(),
            self.private_key.is_some(),
            self.agent,
        ];
        match ways.iter().filter(|&&way| way).count() {
            0 => problems.push(Invalid::new(
                "password",
                "say how to log in: `password`, `private_key` or `agent = true`",
            )),
            1 => {}
            _ => problems.push(Invalid::new(
                "password",
                "give one way to log in: `password`, `private_key` or `agent = true`",
            )),
        }
        if self.private_key_passphrase.is_some() && self.private_key.is_none() {
            problems.push(Invalid::new(
                "private_key_passphrase",
                "is the passphrase of `private_key`, which is not set",
            ));
        }
        if let Some(fingerprint) = &self.host_key_fingerprint
            && parse_fingerprint(fingerprint).is_none()
        {
            problems.push(Invalid::new(
                "host_key_fingerprint",
                "must be `SHA256:` and the base64 of 32 bytes, as `ssh-keygen -lf KEY.pub` prints it",
            ));
        }
        if self.insecure_skip_host_key_check
            && (self.host_key_fingerprint.is_some() || self.known_hosts.is_some())
        {
            problems.push(Invalid::new(
                "insecure_skip_host_key_check",
                "cannot be combined with `known_hosts` or `host_key_fingerprint`, which check the host key",
            ));
        }
        problems.extend(super::connection_problems(self.timeout_secs, self.attempts));
        problems
    }
}

impl ServerConfig for SftpServerConfig {
    /// The server, as messages name it: `sftp://user@host:port`.
    fn location(&self) -> String {
        format!("sftp://{}@{}:{}", self.user, self.host, self.port)
    }

    /// A connection to the server that logs in when first used. Secrets and paths are read now.
    fn connection(&self, cx: &RunContext) -> Result<super::Connection, StoreError> {
        let location = self.location();
        let fail = |message: String| StoreError {
            location: location.clone(),
            message,
            transient: false,
        };
        let secret = |secret: &Option<Secret>| {
            secret
                .as_ref()
                .map(|secret| secret.resolve(&cx.references()))
                .transpose()
                .map_err(|e| fail(e.to_string()))
        };
        let login = if let Some(password) = secret(&self.password)? {
            Login::Password(password)
        } else if let Some(key) = &self.private_key {
            Login::Key {
                path: cx.resolve(key),
                passphrase: secret(&self.private_key_passphrase)?,
            }
        } else {
            Login::Agent
        };
        let fingerprint = match &self.host_key_fingerprint {
            Some(text) => Some(parse_fingerprint(text).ok_or_else(|| {
                fail(format!(
                    "host_key_fingerprint {text} is not `SHA256:` and base64"
                ))
            })?),
            None => None,
        };
        let host_key = if self.insecure_skip_host_key_check {
            HostKeyCheck::Skip
        } else {
            HostKeyCheck::Verify {
                fingerprint,
                known_hosts: match (&self.known_hosts, &self.host_key_fingerprint) {
                    (Some(path), _) => Some(cx.resolve(path)),
                    (None, Some(_)) => None,
                    (None, None) => Some(cx.resolve("~/.ssh/known_hosts")),
                },
            }
        };
        let settings = Settings {
            location: location.clone(),
            host: self.host.clone(),
            port: self.port,
            user: self.user.clone(),
            login,
            host_key,
            timeout: Duration::from_secs(self.timeout_secs),
            keepalive_secs: self.keepalive_secs,
        };
        let reconnect = Reconnect {
            attempts: self.attempts,
            first_delay: Duration::from_secs(1),
        };
        Ok(super::Connection::new(location, reconnect, move || {
            Ok(Box::new(SftpStore::connect(&settings)?) as Box<dyn FileStore>)
        }))
    }
}

/// `SHA256:` and unpadded (or padded) base64 of 32 bytes, as the bytes.
fn parse_fingerprint(text: &str) -> Option<Vec<u8>> {
    let encoded = text.strip_prefix("SHA256:")?.trim_end_matches('=');
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(encoded)
        .ok()?;
    (bytes.len() == 32).then_some(bytes)
}

/// A SHA-256 fingerprint as OpenSSH prints it.
fn show_fingerprint(bytes: &[u8]) -> String {
    format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
    )
}

enum Login {
    Password(SecretValue),
    Key {
        path: PathBuf,
        passphrase: Option<SecretValue>,
    },
    Agent,
}

enum HostKeyCheck {
    Skip,
    Verify {
        fingerprint: Option<Vec<u8>>,
        known_hosts: Option<PathBuf>,
    },
}

/// What connecting needs, resolved once.
struct Settings {
    location: String,
    host: String,
    port: u16,
    user: String,
    login: Login,
    host_key: HostKeyCheck,
    timeout: Duration,
    keepalive_secs: u32,
}

/// A logged-in SFTP session.
pub struct SftpStore {
    location: String,
    session: Session,
    sftp: Sftp,
}

impl SftpStore {
    fn connect(settings: &Settings) -> Result<Self, StoreError> {
        let location = &settings.location;
        let transient = |message: String| StoreError {
            location: location.clone(),
            message,
            transient: true,
        };
        let refused = |message: String| StoreError {
            location: location.clone(),
            message,
            transient: false,
        };
        let addresses: Vec<_> = (settings.host.as_str(), settings.port)
            .to_socket_addrs()
            .map_err(|e| transient(format!("cannot resolve {}: {e}", settings.host)))?
            .collect();
        let tcp = super::connect_any(&addresses, settings.timeout)
            .map_err(|e| transient(format!("cannot connect: {e}")))?;
        let mut session = Session::new().map_err(|e| transient(e.to_string()))?;
        session.set_tcp_stream(tcp);
        session.set_timeout(settings.timeout.as_millis().min(u32::MAX as u128) as u32);
        session
            .handshake()
            .map_err(|e| transient(format!("the SSH handshake failed: {}", e.message())))?;
        check_host_key(&session, settings).map_err(refused)?;
        let user = settings.user.as_str();
        let logged_in = match &settings.login {
            Login::Password(password) => session.userauth_password(user, password.expose()),
            Login::Key { path, passphrase } => session.userauth_pubkey_file(
                user,
                None,
                path,
                passphrase.as_ref().map(SecretValue::expose),
            ),
            Login::Agent => session.userauth_agent(user),
        };
        if let Err(e) = logged_in {
            if is_connection_error(&e) {
                return Err(transient(format!(
                    "the connection failed while logging in: {}",
                    e.message()
                )));
            }
            let how = match &settings.login {
                Login::Password(_) => "with its password".to_string(),
                Login::Key { path, .. } => format!("with the key {}", path.display()),
                Login::Agent => "with the ssh-agent's keys".to_string(),
            };
            return Err(refused(format!(
                "the server refused to log in {user} {how}: {}",
                e.message()
            )));
        }
        session.set_keepalive(false, settings.keepalive_secs);
        let sftp = session
            .sftp()
            .map_err(|e| transient(format!("cannot start SFTP: {}", e.message())))?;
        Ok(SftpStore {
            location: location.clone(),
            session,
            sftp,
        })
    }

    fn error(&self, action: &str, path: &str, error: ssh2::Error) -> StoreError {
        // SFTP status codes are the server's answer; session errors are the connection's.
        let transient = matches!(error.code(), ErrorCode::Session(_));
        StoreError {
            location: self.location.clone(),
            message: format!("cannot {action} {path}: {}", describe(&error)),
            transient,
        }
    }

    /// Sends a keep-alive if one is due, so that a connection idle between operations is not
    /// dropped by a firewall.
    fn keep_alive(&self) -> Result<(), StoreError> {
        self.session
            .keepalive_send()
            .map(|_| ())
            .map_err(|e| self.error("keep the connection to", &self.location, e))
    }
}

/// The SFTP status an error carries, in words.
fn describe(error: &ssh2::Error) -> String {
    match error.code() {
        ErrorCode::SFTP(2) => "no such file or directory".into(),
        ErrorCode::SFTP(3) => "permission denied".into(),
        ErrorCode::SFTP(4) => "the server refused (failure)".into(),
        _ => error.message().to_string(),
    }
}

/// libssh2's errors of the connection itself (timed out, the socket failed or closed), as
/// opposed to the server's answers.
fn is_connection_error(error: &ssh2::Error) -> bool {
    // LIBSSH2_ERROR_SOCKET_SEND, _TIMEOUT, _SOCKET_DISCONNECT, _SOCKET_RECV.
    matches!(error.code(), ErrorCode::Session(-7 | -9 | -13 | -43))
}

/// What an entry is, by the type bits of its permissions. `readdir` gives what `lstat` gives
/// (OpenSSH's server), so a link is a link there. A server that sends no permissions tells
/// nothing: the entry is taken for a file, as it always was.
fn kind(stat: &ssh2::FileStat) -> EntryKind {
    if stat.perm.is_none() {
        return EntryKind::File;
    }
    let file_type = stat.file_type();
    if file_type.is_file() {
        EntryKind::File
    } else if file_type.is_dir() {
        EntryKind::Dir
    } else if file_type.is_symlink() {
        EntryKind::Symlink
    } else {
        EntryKind::Other
    }
}

fn is_no_such_file(error: &ssh2::Error) -> bool {
    matches!(error.code(), ErrorCode::SFTP(2))
}

fn check_host_key(session: &Session, settings: &Settings) -> Result<(), String> {
    let (key, key_type) = session.host_key().ok_or("the server offered no host key")?;
    let fingerprint = session
        .host_key_hash(HashType::Sha256)
        .map(show_fingerprint)
        .ok_or("cannot compute the host key's fingerprint")?;
    let (pinned, known_hosts) = match &settings.host_key {
        HostKeyCheck::Skip => {
            tracing::warn!(
                server = %settings.location,
                fingerprint = %fingerprint,
                "the server's host key is not checked (insecure_skip_host_key_check = true): anyone on the way can read and change this connection"
            );
            return Ok(());
        }
        HostKeyCheck::Verify {
            fingerprint,
            known_hosts,
        } => (fingerprint, known_hosts),
    };
    let key_type = format!("{key_type:?}");
    let pin_it = format!(
        "the server offered a {key_type} key with fingerprint {fingerprint}; if that is the server's key (ask its administrator), pin it with `host_key_fingerprint = \"{fingerprint}\"` or add it to known_hosts (`ssh-keyscan -p {} {} >> ~/.ssh/known_hosts`)",
        settings.port, settings.host
    );
    if let Some(pinned) = pinned
        && session.host_key_hash(HashType::Sha256) != Some(pinned.as_slice())
    {
        return Err(format!(
            "the host key is not the pinned one ({}): {pin_it}",
            show_fingerprint(pinned)
        ));
    }
    let Some(path) = known_hosts else {
        return match pinned {
            Some(_) => Ok(()),
            None => Err(format!("nothing to check the host key against: {pin_it}")),
        };
    };
    let mut hosts = session
        .known_hosts()
        .map_err(|e| format!("cannot read known hosts: {}", e.message()))?;
    if !path.exists() {
        return Err(format!(
            "the known_hosts file {} does not exist, so the server's key cannot be checked: {pin_it}",
            path.display()
        ));
    }
    hosts
        .read_file(path, KnownHostFileKind::OpenSSH)
        .map_err(|e| format!("cannot read {}: {}", path.display(), e.message()))?;
    match hosts.check_port(&settings.host, settings.port, key) {
        CheckResult::Match => Ok(()),
        CheckResult::Mismatch => Err(format!(
            "THE HOST KEY HAS CHANGED since it was recorded in {}: someone may be intercepting the connection, or the server was reinstalled. Refusing to connect; {pin_it}",
            path.display()
        )),
        CheckResult::NotFound => Err(format!(
            "the server is not in {}, so its host key cannot be checked: {pin_it}",
            path.display()
        )),
        CheckResult::Failure => Err(format!(
            "cannot check the host key against {}: {pin_it}",
            path.display()
        )),
    }
}

impl FileStore for SftpStore {
    fn list(&mut self, dir: &str) -> Result<Vec<RemoteEntry>, StoreError> {
        self.keep_alive()?;
        let listed = self
            .sftp
            .readdir(Path::new(if dir.is_empty() { "." } else { dir }))
            .map_err(|e| self.error("list", dir, e))?;
        Ok(listed
            .into_iter()
            .filter_map(|(path, stat)| {
                let name = path.file_name()?.to_string_lossy().into_owned();
                Some(RemoteEntry {
                    path: super::join(dir, &name),
                    name,
                    size: stat.size.unwrap_or(0),
                    mtime: stat.mtime.map(|t| t as i64),
                    kind: kind(&stat),
                })
            })
            .collect())
    }

    fn stat(&mut self, path: &str) -> Result<Option<RemoteEntry>, StoreError> {
        self.keep_alive()?;
        match self.sftp.stat(Path::new(path)) {
            Ok(stat) => Ok(Some(RemoteEntry {
                path: path.to_string(),
                name: super::file_name(path).to_string(),
                size: stat.size.unwrap_or(0),
                mtime: stat.mtime.map(|t| t as i64),
                kind: kind(&stat),
            })),
            Err(e) if is_no_such_file(&e) => Ok(None),
            Err(e) => Err(self.error("look up", path, e)),
        }
    }

    fn open(&mut self, path: &str) -> Result<Box<dyn Read + Send>, StoreError> {
        self.keep_alive()?;
        let file = self
            .sftp
            .open(Path::new(path))
            .map_err(|e| self.error("open", path, e))?;
        // libssh2 asks for as much of the file at once as the read wants: a large buffer keeps
        // many requests in flight whatever size the decoder reads in.
        Ok(Box::new(io::BufReader::with_capacity(
            super::TRANSFER_BUFFER,
            file,
        )))
    }

    fn upload(&mut self, path: &str, from: &mut dyn Read) -> Result<u64, StoreError> {
        self.keep_alive()?;
        let mut file = self
            .sftp
            .create(Path::new(path))
            .map_err(|e| self.error("create", path, e))?;
        let written = super::copy_large(from, &mut file).map_err(|e| StoreError {
            location: self.location.clone(),
            message: format!("cannot write {path}: {e}"),
            transient: true,
        })?;
        // fsync@openssh.com where the server has it; a server without it says so, and the
        // size check after the upload still holds.
        if let Err(e) = file.fsync()
            && matches!(e.code(), ErrorCode::Session(_))
        {
            return Err(self.error("flush", path, e));
        }
        file.close().map_err(|e| self.error("close", path, e))?;
        Ok(written)
    }

    fn rename(&mut self, from: &str, to: &str, replace: bool) -> Result<(), StoreError> {
        self.keep_alive()?;
        // SFTP version 3 (OpenSSH's) has no overwriting rename: the old file goes first.
        if replace && self.stat(to)?.is_some() {
            self.remove(to)?;
        }
        // Without OVERWRITE: a server of a later SFTP version would otherwise replace `to`.
        self.sftp
            .rename(
                Path::new(from),
                Path::new(to),
                Some(RenameFlags::ATOMIC | RenameFlags::NATIVE),
            )
            .map_err(|e| self.error("rename", &format!("{from} to {to}"), e))
    }

    fn remove(&mut self, path: &str) -> Result<(), StoreError> {
        self.keep_alive()?;
        match self.sftp.unlink(Path::new(path)) {
            Ok(()) => Ok(()),
            Err(e) if is_no_such_file(&e) => Ok(()),
            Err(e) => Err(self.error("remove", path, e)),
        }
    }

    fn create_dir_all(&mut self, dir: &str) -> Result<(), StoreError> {
        for dir in ancestors(dir) {
            if self.stat(&dir)?.is_some() {
                continue;
            }
            if let Err(e) = self.sftp.mkdir(Path::new(&dir), 0o755) {
                // Made meanwhile by someone else: as good.
                if !self.stat(&dir)?.is_some_and(|entry| entry.is_dir()) {
                    return Err(self.error("create the directory", &dir, e));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_read_as_ssh_keygen_prints_them() {
        let shown = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU";
        let bytes = parse_fingerprint(shown).expect("a fingerprint");
        assert_eq!(show_fingerprint(&bytes), shown);
        assert_eq!(parse_fingerprint(&format!("{shown}=")), Some(bytes));
        assert_eq!(parse_fingerprint("MD5:16:27:ac"), None);
        assert_eq!(parse_fingerprint("SHA256:c2hvcnQ"), None);
    }

    #[test]
    fn one_way_to_log_in_and_no_check_skipped_silently() {
        let config = |extra: &str| -> SftpServerConfig {
            toml::from_str(&format!("host = \"h\"\nuser = \"u\"\n{extra}")).expect("a config")
        };
        let keys = |config: SftpServerConfig| -> Vec<String> {
            config.problems().into_iter().map(|p| p.key).collect()
        };
        assert_eq!(keys(config("")), ["password"]);
        assert_eq!(keys(config("password = \"p\"\nagent = true")), ["password"]);
        assert!(keys(config("private_key = \"k\"")).is_empty());
        assert_eq!(
            keys(config("agent = true\nprivate_key_passphrase = \"x\"")),
            ["private_key_passphrase"]
        );
        assert_eq!(
            keys(config(
                "agent = true\ninsecure_skip_host_key_check = true\nhost_key_fingerprint = \"SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU\""
            )),
            ["insecure_skip_host_key_check"]
        );
        assert_eq!(
            keys(config(
                "agent = true\nhost_key_fingerprint = \"SHA256:abc\""
            )),
            ["host_key_fingerprint"]
        );
    }
}
