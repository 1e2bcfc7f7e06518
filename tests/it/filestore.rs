//! The file stores against real servers: OpenSSH's sshd for SFTP, vsftpd for FTP and FTPS
//! (explicit, implicit, plain). Every store does the same operations with the same results,
//! checked on the server's disk; each refuses a server it cannot verify.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use longshore::filestore::ftps::FtpServerConfig;
use longshore::filestore::sftp::SftpServerConfig;
use longshore::filestore::{Connection, ServerConfig};
use longshore::stage::RunContext;

use super::support::accounts::{PASSWORD, USER};
use super::support::sshd::SftpServer;
use super::support::vsftpd::{FtpMode, FtpServer};

fn cx() -> RunContext {
    RunContext::new("filestore-test", Path::new("."))
}

fn sftp_config(server: &SftpServer, extra: &str) -> SftpServerConfig {
    toml::from_str(&format!(
        "host = \"127.0.0.1\"\nport = {}\nuser = \"{USER}\"\nknown_hosts = \"{}\"\nattempts = 1\n{extra}",
        server.port,
        server.known_hosts().display()
    ))
    .expect("an SFTP server config")
}

fn ftp_config(server: &FtpServer, mode: FtpMode, extra: &str) -> FtpServerConfig {
    let tls = match mode {
        FtpMode::Explicit => format!(
            "tls = \"explicit\"\nca_file = \"{}\"",
            server.ca().display()
        ),
        FtpMode::Implicit => format!(
            "tls = \"implicit\"\nca_file = \"{}\"",
            server.ca().display()
        ),
        FtpMode::Plain => "tls = \"none\"".to_string(),
    };
    toml::from_str(&format!(
        "host = \"127.0.0.1\"\nport = {}\nuser = \"{USER}\"\npassword = \"{PASSWORD}\"\nattempts = 1\n{tls}\n{extra}",
        server.port
    ))
    .expect("an FTP server config")
}

fn read_all(connection: &mut Connection, path: &str) -> Vec<u8> {
    let mut reader = connection
        .run("download", |store| store.open(path))
        .expect("open");
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes).expect("read to the end");
    bytes
}

/// The operations the source and the sink use, each checked on the server's disk (`data`).
fn exercise(connection: &mut Connection, data: &Path) {
    connection
        .run("create", |store| store.create_dir_all("outbound/2024/08"))
        .expect("create directories");
    connection
        .run("create again", |store| {
            store.create_dir_all("outbound/2024")
        })
        .expect("directories that exist are fine");
    assert!(data.join("outbound/2024/08").is_dir());

    let content = b"id,total\n1,9.99\n2,20.00\n";
    let written = connection
        .run("upload", |store| {
            store.upload("outbound/2024/08/.orders.csv.part", &mut &content[..])
        })
        .expect("upload");
    assert_eq!(written, content.len() as u64);
    assert_eq!(
        std::fs::read(data.join("outbound/2024/08/.orders.csv.part")).unwrap(),
        content
    );

    let entry = connection
        .run("stat", |store| {
            store.stat("outbound/2024/08/.orders.csv.part")
        })
        .expect("stat")
        .expect("the file is there");
    assert_eq!(
        (entry.name.as_str(), entry.size, entry.is_dir()),
        (".orders.csv.part", 24, false)
    );
    assert!(entry.mtime.is_some_and(|mtime| mtime > 1_700_000_000));
    assert_eq!(
        connection
            .run("stat", |store| store.stat("outbound/nothing.csv"))
            .expect("stat"),
        None
    );

    connection
        .run("rename", |store| {
            store.rename(
                "outbound/2024/08/.orders.csv.part",
                "outbound/2024/08/orders.csv",
                false,
            )
        })
        .expect("rename");
    assert_eq!(read_all(connection, "outbound/2024/08/orders.csv"), content);

    // A name that exists is replaced only when asked.
    connection
        .run("upload", |store| {
            store.upload("outbound/2024/08/.next.part", &mut &b"new"[..])
        })
        .expect("upload");
    let refused = connection
        .run("rename", |store| {
            store.rename(
                "outbound/2024/08/.next.part",
                "outbound/2024/08/orders.csv",
                false,
            )
        })
        .expect_err("the rename must not replace");
    assert!(refused.message.contains("orders.csv"), "{refused}");
    assert_eq!(
        std::fs::read(data.join("outbound/2024/08/orders.csv")).unwrap(),
        content
    );
    connection
        .run("rename", |store| {
            store.rename(
                "outbound/2024/08/.next.part",
                "outbound/2024/08/orders.csv",
                true,
            )
        })
        .expect("rename over");
    assert_eq!(
        std::fs::read(data.join("outbound/2024/08/orders.csv")).unwrap(),
        b"new"
    );

    let mut listed = connection
        .run("list", |store| store.list("outbound/2024"))
        .expect("list");
    listed.extend(
        connection
            .run("list", |store| store.list("outbound/2024/08"))
            .expect("list"),
    );
    let mut names: Vec<(String, bool, u64)> = listed
        .iter()
        .map(|entry| {
            (
                entry.path.clone(),
                entry.is_dir(),
                if entry.is_dir() { 0 } else { entry.size },
            )
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            ("outbound/2024/08".to_string(), true, 0),
            ("outbound/2024/08/orders.csv".to_string(), false, 3),
        ]
    );

    connection
        .run("remove", |store| {
            store.remove("outbound/2024/08/orders.csv")
        })
        .expect("remove");
    connection
        .run("remove", |store| {
            store.remove("outbound/2024/08/orders.csv")
        })
        .expect("removing what is gone is fine");
    assert!(!data.join("outbound/2024/08/orders.csv").exists());
}

#[test]
fn sftp_with_a_password_does_every_operation() {
    let Some(server) = SftpServer::start() else {
        return;
    };
    let config = sftp_config(&server, &format!("password = \"{PASSWORD}\""));
    let mut connection = config.connection(&cx()).expect("a connection");
    assert_eq!(
        connection.location(),
        format!("sftp://{USER}@127.0.0.1:{}", server.port)
    );
    exercise(&mut connection, &server.data());
}

#[test]
fn sftp_logs_in_with_a_key_with_and_without_a_passphrase() {
    let Some(server) = SftpServer::start() else {
        return;
    };
    std::fs::write(server.data().join("a.txt"), "hello").unwrap();
    let config = sftp_config(
        &server,
        &format!("private_key = \"{}\"", server.client_key().display()),
    );
    let mut connection = config.connection(&cx()).expect("a connection");
    assert_eq!(read_all(&mut connection, "a.txt"), b"hello");

    let key = server.authorize_key_with_passphrase("locked_key", "open sesame");
    let with = |passphrase: &str| {
        sftp_config(
            &server,
            &format!(
                "private_key = \"{}\"\nprivate_key_passphrase = \"{passphrase}\"",
                key.display()
            ),
        )
    };
    let mut connection = with("open sesame").connection(&cx()).expect("a connection");
    assert_eq!(read_all(&mut connection, "a.txt"), b"hello");
    let refused = with("wrong")
        .connection(&cx())
        .expect("a connection")
        .run("list", |store| store.list("."))
        .expect_err("a wrong passphrase");
    assert!(
        refused.message.starts_with(&format!(
            "the server refused to log in {USER} with the key {}",
            key.display()
        )),
        "{refused}"
    );
    assert!(!refused.transient);
}

#[test]
fn sftp_refuses_a_host_key_it_cannot_verify_and_says_how_to_pin_it() {
    let Some(server) = SftpServer::start() else {
        return;
    };
    let fingerprint = server.fingerprint();
    let password = format!("password = \"{PASSWORD}\"");
    let attempt = |config: SftpServerConfig| {
        config
            .connection(&cx())
            .expect("a connection")
            .run("list", |store| store.list("."))
            .map(|_| ())
    };

    // Not in known_hosts.
    let empty = tempfile::NamedTempFile::new().unwrap();
    let mut config = sftp_config(&server, &password);
    config.known_hosts = Some(empty.path().display().to_string());
    let refused = attempt(config).expect_err("an unknown host");
    let message = refused.to_string();
    assert!(
        message.starts_with(&format!(
            "sftp://{USER}@127.0.0.1:{}: the server is not in {}, so its host key cannot be checked: the server offered a ",
            server.port,
            empty.path().display()
        )) && message.contains(&format!(" key with fingerprint {fingerprint};")),
        "{message}"
    );
    assert!(
        message.contains(&format!("host_key_fingerprint = \"{fingerprint}\"")),
        "{message}"
    );
    assert!(!refused.transient);

    // Recorded with another key: changed.
    let other = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(other.path().join("key"))
        .status()
        .unwrap();
    assert!(status.success());
    let other_key = std::fs::read_to_string(other.path().join("key.pub")).unwrap();
    let mut fields = other_key.split_whitespace();
    let changed = other.path().join("known_hosts");
    std::fs::write(
        &changed,
        format!(
            "[127.0.0.1]:{} {} {}\n",
            server.port,
            fields.next().unwrap(),
            fields.next().unwrap()
        ),
    )
    .unwrap();
    let mut config = sftp_config(&server, &password);
    config.known_hosts = Some(changed.display().to_string());
    let message = attempt(config).expect_err("a changed key").to_string();
    assert!(message.contains("THE HOST KEY HAS CHANGED"), "{message}");

    // Pinned: the right fingerprint connects without known_hosts, a wrong one is refused.
    let mut config = sftp_config(&server, &password);
    config.known_hosts = None;
    config.host_key_fingerprint = Some(fingerprint.clone());
    attempt(config).expect("the pinned key");
    let mut config = sftp_config(&server, &password);
    config.known_hosts = None;
    config.host_key_fingerprint = Some("SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU".into());
    let message = attempt(config).expect_err("another pinned key").to_string();
    assert!(
        message.contains("the host key is not the pinned one (SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU)"),
        "{message}"
    );

    // Skipping the check is possible, when said.
    let mut config = sftp_config(&server, &password);
    config.known_hosts = None;
    config.insecure_skip_host_key_check = true;
    attempt(config).expect("no check");
}

#[test]
fn ftps_explicit_does_every_operation() {
    let Some(server) = FtpServer::start(FtpMode::Explicit) else {
        return;
    };
    let mut connection = ftp_config(&server, FtpMode::Explicit, "")
        .connection(&cx())
        .expect("a connection");
    assert_eq!(
        connection.location(),
        format!("ftps://{USER}@127.0.0.1:{}", server.port)
    );
    exercise(&mut connection, &server.data());
}

#[test]
fn ftps_implicit_does_every_operation() {
    let Some(server) = FtpServer::start(FtpMode::Implicit) else {
        return;
    };
    let mut connection = ftp_config(&server, FtpMode::Implicit, "")
        .connection(&cx())
        .expect("a connection");
    exercise(&mut connection, &server.data());
}

#[test]
fn plain_ftp_does_every_operation() {
    let Some(server) = FtpServer::start(FtpMode::Plain) else {
        return;
    };
    let mut connection = ftp_config(&server, FtpMode::Plain, "")
        .connection(&cx())
        .expect("a connection");
    assert_eq!(
        connection.location(),
        format!("ftp://{USER}@127.0.0.1:{}", server.port)
    );
    exercise(&mut connection, &server.data());
}

#[test]
fn ftps_refuses_a_certificate_no_trusted_ca_signed() {
    let Some(server) = FtpServer::start(FtpMode::Explicit) else {
        return;
    };
    // The system's CAs did not sign the test server's certificate.
    let mut config = ftp_config(&server, FtpMode::Explicit, "");
    config.ca_file = None;
    let refused = config
        .connection(&cx())
        .expect("a connection")
        .run("list", |store| store.list("."))
        .expect_err("an untrusted certificate");
    assert!(
        refused.message.starts_with("cannot start TLS (AUTH TLS):")
            && refused.message.contains("UnknownIssuer"),
        "{refused}"
    );
    assert!(!refused.transient, "a certificate is not retried");

    // Another CA is no better.
    let other = tempfile::tempdir().unwrap();
    let other_ca = super::support::certs::self_signed(other.path(), "other", "another CA");
    config.ca_file = Some(other_ca.cert.display().to_string());
    let refused = config
        .connection(&cx())
        .expect("a connection")
        .run("list", |store| store.list("."))
        .expect_err("a certificate of another CA");
    assert!(refused.message.contains("certificate"), "{refused}");
}

#[test]
fn ftps_uploads_arrive_whole_with_tls_1_3_session_tickets_on() {
    let Some(server) = FtpServer::start_with_tickets(FtpMode::Explicit, 2) else {
        return;
    };
    let mut connection = ftp_config(&server, FtpMode::Explicit, "")
        .connection(&cx())
        .expect("a connection");
    for (name, size) in [
        ("1k.bin", 1024),
        ("1m.bin", 1 << 20),
        ("100m.bin", 100 << 20),
    ] {
        let content: Vec<u8> = (0..size).map(|i: usize| (i * 7 + i / 251) as u8).collect();
        let written = connection
            .run("upload", |store| store.upload(name, &mut &content[..]))
            .unwrap_or_else(|e| panic!("upload {name}: {e}\n{}", server.log()));
        assert_eq!(written, size as u64);
        let arrived = std::fs::read(server.data().join(name)).expect("the uploaded file");
        assert!(
            arrived == content,
            "{name}: {} of {size} bytes arrived, or different ones",
            arrived.len()
        );
        assert_eq!(
            read_all(&mut connection, name),
            content,
            "{name} downloaded"
        );
    }
}

#[test]
fn a_dropped_connection_is_replaced_and_the_operation_done_once() {
    let Some(sftp) = SftpServer::start() else {
        return;
    };
    let mut config = sftp_config(&sftp, &format!("password = \"{PASSWORD}\""));
    config.attempts = 2;
    let mut connection = config.connection(&cx()).expect("a connection");
    let Some(ftp) = FtpServer::start(FtpMode::Explicit) else {
        return;
    };
    let mut config = ftp_config(&ftp, FtpMode::Explicit, "");
    config.attempts = 2;
    let mut ftp_connection = config.connection(&cx()).expect("a connection");

    for (connection, data, drop_sessions) in [
        (
            &mut connection,
            sftp.data(),
            &(|| sftp.drop_sessions()) as &dyn Fn(),
        ),
        (
            &mut ftp_connection,
            ftp.data(),
            &(|| ftp.drop_sessions()) as &dyn Fn(),
        ),
    ] {
        connection
            .run("upload", |store| store.upload("a.csv", &mut &b"a,b\n"[..]))
            .expect("upload");
        drop_sessions();
        // The connection is dead: the upload fails on it, then succeeds on a new one.
        let written = connection
            .run("upload", |store| store.upload("b.csv", &mut &b"c,d\n"[..]))
            .expect("the upload on a new connection");
        assert_eq!(written, 4);
        assert_eq!(std::fs::read(data.join("b.csv")).unwrap(), b"c,d\n");
        // With no tries left, the failure is the caller's.
        drop_sessions();
        let once = connection_with_one_attempt(connection);
        let failed = once
            .run("list", |store| store.list("."))
            .expect_err("a dead connection, no second try");
        assert!(failed.transient, "{failed}");
    }
}

/// The same connection, tried once only (its next operation fails if the connection is dead).
fn connection_with_one_attempt(connection: &mut Connection) -> &mut Connection {
    connection.set_attempts(1);
    connection
}

/// `timeout_secs` of the tests of servers that do not answer; each must end well within
/// [`BOUND`].
const TIMEOUT_SECS: u64 = 2;
const BOUND: Duration = Duration::from_secs(4 * TIMEOUT_SECS);
/// An upload to a server that stopped reading waits more than once: a write that moved some
/// bytes returns them before the one that moves none times out, and the transfer's reply is
/// waited for before the data connection is given up.
const UPLOAD_BOUND: Duration = Duration::from_secs(8 * TIMEOUT_SECS);

/// A server on 127.0.0.1 at `port` (not vsftpd), tried once, `tls` as given; a CA file that
/// signed nothing, for the TLS modes (a handshake never gets that far).
fn fake_server_config(port: u16, tls: &str, ca: &Path) -> FtpServerConfig {
    let ca_file = match tls {
        "none" => String::new(),
        _ => format!("ca_file = \"{}\"", ca.display()),
    };
    toml::from_str(&format!(
        "host = \"127.0.0.1\"\nport = {port}\nuser = \"{USER}\"\npassword = \"{PASSWORD}\"\nattempts = 1\ntimeout_secs = {TIMEOUT_SECS}\ntls = \"{tls}\"\n{ca_file}"
    ))
    .expect("an FTP server config")
}

/// A listener whose connections are accepted and never answered; each is held until the
/// client closes it.
fn silent_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a listener");
    let port = listener.local_addr().expect("its address").port();
    std::thread::spawn(move || {
        for connection in listener.incoming().flatten() {
            std::thread::spawn(move || std::io::copy(&mut &connection, &mut std::io::sink()));
        }
    });
    port
}

/// Runs `what` once on a new connection of `config`, which must fail within `bound`.
fn fails_in_time(
    config: &FtpServerConfig,
    bound: Duration,
    what: impl FnOnce(&mut Connection) -> Result<(), String>,
) -> String {
    let started = Instant::now();
    let mut connection = config.connection(&cx()).expect("a connection");
    let failure = what(&mut connection).expect_err("a server that does not answer");
    let took = started.elapsed();
    assert!(took < bound, "took {took:?}: {failure}");
    failure
}

fn list(connection: &mut Connection) -> Result<(), String> {
    connection
        .run("list", |store| store.list("."))
        .map(drop)
        .map_err(|e| e.to_string())
}

#[test]
fn ftp_gives_up_on_a_server_that_never_greets_in_every_tls_mode() {
    let port = silent_server();
    let ca = tempfile::tempdir().unwrap();
    let ca = super::support::certs::self_signed(ca.path(), "ca", "a CA");
    for tls in ["explicit", "implicit", "none"] {
        let config = fake_server_config(port, tls, &ca.cert);
        let failure = fails_in_time(&config, BOUND, list);
        assert_eq!(
            failure,
            format!(
                "{}: no FTP greeting within 2 s: is this an FTP server, and is `tls` (explicit/implicit) right?",
                config.location()
            ),
            "tls = {tls}"
        );
    }
}

#[test]
fn ftps_in_the_wrong_tls_mode_fails_within_the_timeout_and_says_so() {
    // Explicit TLS waits for a plain greeting; an implicit server waits for a TLS handshake.
    let Some(implicit) = FtpServer::start(FtpMode::Implicit) else {
        return;
    };
    let config = ftp_config(
        &implicit,
        FtpMode::Explicit,
        &format!("timeout_secs = {TIMEOUT_SECS}"),
    );
    assert_eq!(
        fails_in_time(&config, BOUND, list),
        format!(
            "{}: no FTP greeting within 2 s: is this an FTP server, and is `tls` (explicit/implicit) right?",
            config.location()
        )
    );

    // Implicit TLS's handshake meets a plain `220` greeting.
    let Some(plain) = FtpServer::start(FtpMode::Plain) else {
        return;
    };
    let config = ftp_config(
        &plain,
        FtpMode::Implicit,
        &format!("timeout_secs = {TIMEOUT_SECS}"),
    );
    let failure = fails_in_time(&config, BOUND, list);
    assert!(
        failure.starts_with(&format!(
            "{}: the server did not answer in TLS (",
            config.location()
        )) && failure.ends_with(
            "): is `tls = \"implicit\"` right? (a server that greets in plain text wants `tls = \"explicit\"`)"
        ),
        "{failure}"
    );
}

/// Just enough of a plain FTP server for transfers whose data connections stall: a download
/// gets a few bytes and then nothing (`426` once the client closes the data connection), an
/// upload's data is never read, nor its transfer answered.
fn stalling_ftp_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a listener");
    let port = listener.local_addr().expect("its address").port();
    std::thread::spawn(move || {
        for control in listener.incoming().flatten() {
            std::thread::spawn(move || serve_stalling(control));
        }
    });
    port
}

fn serve_stalling(control: TcpStream) -> std::io::Result<()> {
    let mut reply = control.try_clone()?;
    reply.write_all(b"220 stalling\r\n")?;
    let mut passive = None;
    // Held until the client closes the control connection.
    let mut unread = Vec::new();
    for line in BufReader::new(control).lines() {
        let line = line?;
        let verb = line
            .split(' ')
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let answer = match verb.as_str() {
            "USER" => "331 password please".to_string(),
            "PASS" => "230 logged in".to_string(),
            "TYPE" => "200 type set".to_string(),
            "PASV" => {
                let listener = TcpListener::bind("127.0.0.1:0")?;
                let port = listener.local_addr()?.port();
                passive = Some(listener);
                format!(
                    "227 Entering Passive Mode (127,0,0,1,{},{})",
                    port >> 8,
                    port & 0xff
                )
            }
            "RETR" | "STOR" => {
                let listener = passive.take().expect("PASV first");
                reply.write_all(b"150 opening the data connection\r\n")?;
                let (mut data, _) = listener.accept()?;
                if verb == "STOR" {
                    unread.push(data);
                    continue;
                }
                data.write_all(b"a,b\n")?;
                // Nothing more, until the client closes the data connection.
                std::io::copy(&mut data, &mut std::io::sink())?;
                "426 transfer aborted".to_string()
            }
            _ => "502 not implemented".to_string(),
        };
        reply.write_all(format!("{answer}\r\n").as_bytes())?;
    }
    Ok(())
}

#[test]
fn ftp_transfers_whose_data_connection_stalls_fail_after_the_timeout() {
    let port = stalling_ftp_server();
    let config = fake_server_config(port, "none", Path::new(""));
    let failure = fails_in_time(&config, BOUND, |connection| {
        let mut reader = connection
            .run("download", |store| store.open("a.csv"))
            .map_err(|e| e.to_string())?;
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
        Ok(())
    });
    assert_eq!(failure, "timed out after 2 s (`timeout_secs`)");

    let failure = fails_in_time(&config, UPLOAD_BOUND, |connection| {
        connection
            .run("upload", |store| {
                store.upload("big.bin", &mut std::io::repeat(0).take(1 << 30))
            })
            .map(drop)
            .map_err(|e| e.to_string())
    });
    assert_eq!(
        failure,
        format!(
            "{}: cannot upload big.bin: timed out after 2 s (`timeout_secs`)",
            config.location()
        )
    );
}
