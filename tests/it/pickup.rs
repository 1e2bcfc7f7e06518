//! The `sftp` and `ftps` sources, run by the real binary against real servers: which dropped
//! files are taken (complete ones, once), what happens to them after the run committed, and
//! that no crash delivers a file twice.

use std::path::Path;
use std::time::{Duration, SystemTime};

use super::support::accounts::{self, PASSWORD, USER};
use super::support::sshd::SftpServer;
use super::support::vsftpd::{FtpMode, FtpServer};
use super::support::{Outcome, Sandbox, crash_at, run};

/// The `[source.server]` table of an SFTP server, logging in with a key.
pub(crate) fn sftp_server(server: &SftpServer) -> String {
    format!(
        "[source.server]\nhost = \"127.0.0.1\"\nport = {}\nuser = \"{USER}\"\nprivate_key = \"{}\"\nknown_hosts = \"{}\"\n",
        server.port,
        server.client_key().display(),
        server.known_hosts().display()
    )
}

/// A pipeline `p` picking up from `inbound` on `server` with `source` lines, every record to
/// one new local NDJSON file per run (`out/orders-{run_ts}.ndjson`, numbered when two runs
/// share a second, never replaced).
pub(crate) fn pickup_pipeline(kind: &str, source: &str, server: &str) -> String {
    // Files are taken once a minute old by default: these tests drop them just before a run.
    let source = match source.contains("min_age_secs") {
        true => source.to_string(),
        false => format!("min_age_secs = 0\n{source}"),
    };
    format!(
        "name = \"p\"\n[source]\ntype = \"{kind}\"\ndir = \"inbound\"\n{source}\n{server}\n[[sinks]]\ntype = \"file\"\npath = \"out/orders-{{run_ts}}.ndjson\"\nif_exists = \"rename\"\n"
    )
}

pub(crate) fn longshore(sandbox: &Sandbox, env: &[(&str, &str)]) -> Outcome {
    let mut command = sandbox.command(["run", "p.toml"]);
    command.env("FTP_PASSWORD", PASSWORD);
    for (name, value) in env {
        command.env(name, value);
    }
    run(command)
}

/// Drops `content` as `inbound/NAME` on the server, as the partner's user would.
pub(crate) fn drop_file(data: &Path, name: &str, content: &str) {
    let inbound = data.join("inbound");
    if !inbound.exists() {
        std::fs::create_dir_all(&inbound).unwrap();
        accounts::give_to_test_user(&inbound);
    }
    std::fs::write(inbound.join(name), content).unwrap();
}

/// Every record delivered so far, one line each, sorted; and how many files they came in.
fn delivered(sandbox: &Sandbox) -> (Vec<String>, usize) {
    let files: Vec<String> = if sandbox.exists("out") {
        sandbox.files("out")
    } else {
        Vec::new()
    }
    .into_iter()
    // A killed run's temporary files are not deliveries.
    .filter(|file| !file.rsplit('/').next().unwrap_or(file).starts_with('.'))
    .collect();
    let mut lines: Vec<String> = files
        .iter()
        .flat_map(|file| {
            sandbox
                .read(file)
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    lines.sort();
    (lines, files.len())
}

fn lines(expected: &[&str]) -> Vec<String> {
    expected.iter().map(|line| line.to_string()).collect()
}

/// The files in the server's `dir`, sorted.
pub(crate) fn remote_files(data: &Path, dir: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(data.join(dir))
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn complete_files_are_picked_up_once_and_changed_ones_again() {
    let Some(server) = SftpServer::start() else {
        return;
    };
    let sandbox = Sandbox::new();
    sandbox.write("p.toml", pickup_pipeline("sftp", "", &sftp_server(&server)));
    drop_file(&server.data(), "a.csv", "id\n1\n2\n");
    drop_file(&server.data(), "b.csv", "id\n3\n");
    // Uploads in progress and hidden files are not data.
    drop_file(&server.data(), "c.csv.part", "id\n99\n");
    drop_file(&server.data(), ".d.csv", "id\n98\n");
    drop_file(&server.data(), "e.tmp", "id\n97\n");

    longshore(&sandbox, &[]).assert_success();
    assert_eq!(
        delivered(&sandbox),
        (
            lines(&[r#"{"id":"1"}"#, r#"{"id":"2"}"#, r#"{"id":"3"}"#]),
            1
        )
    );

    // Nothing new: nothing delivered, nothing written; b.csv uploaded again as it was (a new
    // modification time, the same bytes) is not new either.
    drop_file(&server.data(), "b.csv", "id\n3\n");
    std::fs::File::options()
        .write(true)
        .open(server.data().join("inbound/b.csv"))
        .unwrap()
        .set_modified(SystemTime::now() + Duration::from_secs(60))
        .unwrap();
    let again = longshore(&sandbox, &[]);
    again.assert_success();
    assert_eq!(delivered(&sandbox).1, 1);

    // A new file, and a file replaced under the same name with other content.
    drop_file(&server.data(), "f.csv", "id\n4\n");
    drop_file(&server.data(), "a.csv", "id\n1\n2\n5\n");
    longshore(&sandbox, &[]).assert_success();
    assert_eq!(
        delivered(&sandbox),
        (
            lines(&[
                r#"{"id":"1"}"#,
                r#"{"id":"1"}"#,
                r#"{"id":"2"}"#,
                r#"{"id":"2"}"#,
                r#"{"id":"3"}"#,
                r#"{"id":"4"}"#,
                r#"{"id":"5"}"#,
            ]),
            2
        )
    );
    // Forgotten, a file is delivered again.
    let key = format!("sftp://{USER}@127.0.0.1:{}/inbound/b.csv", server.port);
    sandbox
        .run(["state", "forget", "p.toml", &key])
        .assert_success();
    longshore(&sandbox, &[]).assert_success();
    assert_eq!(delivered(&sandbox).1, 3);
    // `after = "keep"` (the default) leaves them all.
    assert_eq!(
        remote_files(&server.data(), "inbound"),
        [".d.csv", "a.csv", "b.csv", "c.csv.part", "e.tmp", "f.csv"]
    );
}

#[test]
fn a_file_is_taken_only_once_its_marker_is_there_and_old_enough() {
    let Some(server) = SftpServer::start() else {
        return;
    };
    let sandbox = Sandbox::new();
    sandbox.write(
        "p.toml",
        pickup_pipeline(
            "sftp",
            "marker = \"{name}.done\"\nmin_age_secs = 600\nafter = \"delete\"",
            &sftp_server(&server),
        ),
    );
    drop_file(&server.data(), "a.csv", "id\n1\n");
    drop_file(&server.data(), "b.csv", "id\n2\n");
    drop_file(&server.data(), "b.csv.done", "");
    // b.csv is announced but too recent; a.csv is old but not announced.
    let old = SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(server.data().join("inbound/a.csv"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    longshore(&sandbox, &[]).assert_success();
    assert_eq!(delivered(&sandbox), (lines(&[]), 0));

    std::fs::File::options()
        .write(true)
        .open(server.data().join("inbound/b.csv"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    longshore(&sandbox, &[]).assert_success();
    assert_eq!(delivered(&sandbox), (lines(&[r#"{"id":"2"}"#]), 1));
    // Deleted with its marker once delivered; a.csv waits for its own.
    assert_eq!(remote_files(&server.data(), "inbound"), ["a.csv"]);
}

#[test]
fn a_file_still_growing_is_left_for_a_later_run() {
    let Some(server) = SftpServer::start() else {
        return;
    };
    let sandbox = Sandbox::new();
    sandbox.write(
        "p.toml",
        pickup_pipeline("sftp", "stable_secs = 1", &sftp_server(&server)),
    );
    drop_file(&server.data(), "done.csv", "id\n1\n");
    drop_file(&server.data(), "growing.csv", "id\n");
    let growing = server.data().join("inbound/growing.csv");
    // The partner's upload goes on for longer than the run's two listings are apart.
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(growing)
            .unwrap();
        for id in 2..60 {
            writeln!(file, "{id}").unwrap();
            file.sync_data().unwrap();
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    longshore(&sandbox, &[]).assert_success();
    writer.join().unwrap();
    assert_eq!(delivered(&sandbox), (lines(&[r#"{"id":"1"}"#]), 1));

    // Complete now: the next run takes it whole.
    longshore(&sandbox, &[]).assert_success();
    let (records, files) = delivered(&sandbox);
    assert_eq!((records.len(), files), (59, 2));
}

#[test]
fn files_are_archived_only_after_the_run_committed_and_never_delivered_twice() {
    let Some(server) = SftpServer::start() else {
        return;
    };
    let sandbox = Sandbox::new();
    sandbox.write(
        "p.toml",
        pickup_pipeline(
            "sftp",
            "after = \"move\"\narchive_dir = \"archive/{pipeline}\"",
            &sftp_server(&server),
        ),
    );
    drop_file(&server.data(), "a.csv", "id\n1\n");

    // Killed after the sinks published, before the ledger was saved.
    crash_at(sandbox.command(["run", "p.toml"]), "after-commit");
    assert_eq!(delivered(&sandbox), (lines(&[r#"{"id":"1"}"#]), 1));
    assert_eq!(
        remote_files(&server.data(), "inbound"),
        ["a.csv"],
        "not moved before the commit"
    );

    // The rerun saves the interrupted run's ledger, delivers nothing again, and archives.
    longshore(&sandbox, &[]).assert_success();
    assert_eq!(delivered(&sandbox), (lines(&[r#"{"id":"1"}"#]), 1));
    assert_eq!(
        remote_files(&server.data(), "inbound"),
        Vec::<String>::new()
    );
    assert_eq!(remote_files(&server.data(), "archive/p"), ["a.csv"]);
}

/// The `[source.server]` table of an FTPS server.
fn ftps_server(server: &FtpServer) -> String {
    format!(
        "[source.server]\nhost = \"127.0.0.1\"\nport = {}\nuser = \"{USER}\"\npassword = \"${{env:FTP_PASSWORD}}\"\nca_file = \"{}\"\n",
        server.port,
        server.ca().display()
    )
}

#[test]
fn claimed_files_are_hidden_while_read_and_taken_up_again_after_a_crash() {
    let Some(sftp) = SftpServer::start() else {
        return;
    };
    let Some(ftps) = FtpServer::start(FtpMode::Explicit) else {
        return;
    };
    for (kind, server, data) in [
        ("sftp", sftp_server(&sftp), sftp.data()),
        ("ftps", ftps_server(&ftps), ftps.data()),
    ] {
        let sandbox = Sandbox::new();
        sandbox.write(
            "p.toml",
            pickup_pipeline(kind, "claim = true\nfile_fields = true", &server),
        );
        drop_file(&data, "a.csv", "id\n1\n");

        let mut command = sandbox.command(["run", "p.toml"]);
        command.env("FTP_PASSWORD", PASSWORD);
        crash_at(command, "after-first-batch");
        assert_eq!(
            remote_files(&data, "inbound"),
            [".a.csv.claimed-by-p"],
            "{kind}"
        );
        assert_eq!(delivered(&sandbox).1, 0);

        // The claim is found again (over FTP too, where listings hide dot files unless asked).
        longshore(&sandbox, &[]).assert_success();
        let (records, files) = delivered(&sandbox);
        assert_eq!(files, 1, "{kind}");
        let record: serde_json::Value = serde_json::from_str(&records[0]).unwrap();
        assert_eq!(record["id"], "1");
        assert_eq!(record["_file_name"], "a.csv");
        assert_eq!(record["_file_path"], "inbound/a.csv");
        assert_eq!(record["_file_size"], 5);
        // `after = "keep"` gives the file its name back.
        assert_eq!(remote_files(&data, "inbound"), ["a.csv"], "{kind}");
        longshore(&sandbox, &[]).assert_success();
        assert_eq!(delivered(&sandbox).1, 1, "{kind}: not delivered again");
    }
}

/// A name that leaves no room for the claim's hidden name is not taken, with a warning, rather
/// than left alone in silence every run (the rename would fail); nor does it take the place of
/// a file that can be taken.
#[test]
fn a_file_whose_claimed_name_would_be_too_long_is_not_taken_and_said_so() {
    let Some(server) = SftpServer::start() else {
        return;
    };
    let sandbox = Sandbox::new();
    sandbox.write(
        "p.toml",
        pickup_pipeline("sftp", "claim = true\nmax_files = 1", &sftp_server(&server)),
    );
    // First by name, and past `max_files = 1` it must not keep `b.csv` waiting.
    let long = format!("a{}.csv", "x".repeat(237));
    drop_file(&server.data(), &long, "id\n1\n");
    drop_file(&server.data(), "b.csv", "id\n2\n");
    let outcome = longshore(&sandbox, &[]);
    outcome.assert_success();
    assert_eq!(delivered(&sandbox), (lines(&[r#"{"id":"2"}"#]), 1));
    let warning = format!(
        "WARN sftp://{USER}@127.0.0.1:{}/inbound/{long} is not taken: its claimed name `.NAME.claimed-by-p` would be 256 bytes, more than a file name can be (255)",
        server.port
    );
    assert!(
        outcome.stderr.contains(&warning),
        "{warning}\nnot in:\n{}",
        outcome.stderr
    );
    assert_eq!(
        remote_files(&server.data(), "inbound"),
        [long.as_str(), "b.csv"]
    );
}

/// A file that cannot be claimed but is still there (a drop folder the account may read but
/// not change) is named in a warning each run, not taken for another consumer's.
#[test]
fn a_file_that_cannot_be_claimed_is_said_so() {
    let Some(server) = SftpServer::start() else {
        return;
    };
    let sandbox = Sandbox::new();
    sandbox.write(
        "p.toml",
        pickup_pipeline("sftp", "claim = true", &sftp_server(&server)),
    );
    drop_file(&server.data(), "a.csv", "id\n1\n");
    let inbound = server.data().join("inbound");
    std::os::unix::fs::chown(&inbound, Some(0), Some(0)).unwrap();
    let outcome = longshore(&sandbox, &[]);
    outcome.assert_success();
    assert_eq!(delivered(&sandbox).1, 0);
    let warning = format!(
        "WARN sftp://{USER}@127.0.0.1:{}/inbound/a.csv is not taken: it cannot be claimed (",
        server.port
    );
    assert!(
        outcome.stderr.contains(&warning),
        "{warning}\nnot in:\n{}",
        outcome.stderr
    );
}

#[test]
fn ftps_pickup_reads_what_was_dropped() {
    let Some(server) = FtpServer::start(FtpMode::Explicit) else {
        return;
    };
    let sandbox = Sandbox::new();
    let source_server = ftps_server(&server);
    sandbox.write(
        "p.toml",
        pickup_pipeline(
            "ftps",
            "include = [\"*.csv\"]\nafter = \"delete\"",
            &source_server,
        ),
    );
    drop_file(&server.data(), "a.csv", "id,name\n1,ant\n");
    drop_file(&server.data(), "notes.txt", "not data\n");
    // Logging everything, the FTP client's commands by name too, the password appears nowhere.
    let outcome = longshore(
        &sandbox,
        &[("RUST_LOG", "trace,suppaftp::sync_ftp::control=trace")],
    );
    outcome.assert_success();
    assert!(outcome.stderr.contains("DEBUG"), "debug logging was on");
    assert!(!outcome.stderr.contains(PASSWORD), "{}", outcome.stderr);
    assert_eq!(
        delivered(&sandbox),
        (lines(&[r#"{"id":"1","name":"ant"}"#]), 1)
    );
    assert_eq!(remote_files(&server.data(), "inbound"), ["notes.txt"]);
}

#[test]
fn a_csv_dropped_on_sftp_arrives_on_ftps_as_the_expected_workbook() {
    let Some(vendor) = SftpServer::start() else {
        return;
    };
    let Some(partner) = FtpServer::start(FtpMode::Explicit) else {
        return;
    };
    let sandbox = Sandbox::new();
    let csv = "order_id,customer,total,shipped_on\nA-1,Müller GmbH,1234.50,2024-08-01\nA-2,\"Smith, Jones & Co\",99.00,2024-08-02\n";
    drop_file(&vendor.data(), "orders-20240802.csv", csv);
    sandbox.write(
        "p.toml",
        format!(
            "name = \"p\"\n[source]\ntype = \"sftp\"\ndir = \"inbound\"\nmin_age_secs = 0\ninfer_types = true\nafter = \"delete\"\n{}\n\
             [[sinks]]\ntype = \"ftps\"\npath = \"outbound/{{source_stem}}.xlsx\"\n\
             [sinks.server]\nhost = \"127.0.0.1\"\nport = {}\nuser = \"{USER}\"\npassword = \"${{env:FTP_PASSWORD}}\"\nca_file = \"{}\"\n",
            sftp_server(&vendor),
            partner.port,
            partner.ca().display()
        ),
    );
    longshore(&sandbox, &[]).assert_success();

    // What `longshore convert` makes of the same file locally is what the partner received.
    sandbox.write("orders-20240802.csv", csv);
    let mut convert = sandbox.command([
        "convert",
        "--infer-types",
        "orders-20240802.csv",
        "expected.xlsx",
    ]);
    convert.env_remove("RUST_LOG");
    run(convert).assert_success();
    let received = std::fs::read(partner.data().join("outbound/orders-20240802.xlsx"))
        .expect("the workbook on the FTPS server");
    assert!(
        received == sandbox.read_bytes("expected.xlsx"),
        "the workbooks differ"
    );
    assert_eq!(
        remote_files(&vendor.data(), "inbound"),
        Vec::<String>::new()
    );
    assert_eq!(
        remote_files(&partner.data(), "outbound"),
        ["orders-20240802.xlsx"]
    );
}

#[test]
fn recursive_pickup_in_mtime_order_with_a_limit_reads_gzip_files_too() {
    let Some(server) = SftpServer::start() else {
        return;
    };
    let sandbox = Sandbox::new();
    sandbox.write(
        "p.toml",
        pickup_pipeline(
            "sftp",
            "recursive = true\norder = \"mtime\"\nmax_files = 2\nexclude = [\"skip-*\"]",
            &sftp_server(&server),
        ),
    );
    let inbound = server.data().join("inbound");
    std::fs::create_dir_all(inbound.join("day2")).unwrap();
    accounts::give_to_test_user(&inbound);
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gzip, b"id\n3\n").unwrap();
    std::fs::write(inbound.join("day2/c.csv.gz"), gzip.finish().unwrap()).unwrap();
    std::fs::write(inbound.join("b.csv"), "id\n2\n").unwrap();
    std::fs::write(inbound.join("a.csv"), "id\n1\n").unwrap();
    std::fs::write(inbound.join("skip-me.csv"), "id\n0\n").unwrap();
    // Oldest first: c (three hours), b (two), a (one).
    for (name, hours) in [("day2/c.csv.gz", 3), ("b.csv", 2), ("a.csv", 1)] {
        std::fs::File::options()
            .write(true)
            .open(inbound.join(name))
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(hours * 3600))
            .unwrap();
    }
    longshore(&sandbox, &[]).assert_success();
    assert_eq!(
        delivered(&sandbox),
        (lines(&[r#"{"id":"2"}"#, r#"{"id":"3"}"#]), 1)
    );
    longshore(&sandbox, &[]).assert_success();
    assert_eq!(
        delivered(&sandbox),
        (
            lines(&[r#"{"id":"1"}"#, r#"{"id":"2"}"#, r#"{"id":"3"}"#]),
            2
        )
    );
}

#[test]
fn sftp_logs_in_with_the_ssh_agent_and_warns_when_the_host_key_is_not_checked() {
    let Some(server) = SftpServer::start() else {
        return;
    };
    let sandbox = Sandbox::new();
    let socket = sandbox.join("agent.sock");
    let agent = std::process::Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&socket)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start ssh-agent (apt-get install openssh-client)");
    struct Stop(std::process::Child);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _agent = Stop(agent);
    let started = std::time::Instant::now();
    while !socket.exists() && started.elapsed() < Duration::from_secs(10) {
        std::thread::yield_now();
    }
    let added = std::process::Command::new("ssh-add")
        .arg(server.client_key())
        .env("SSH_AUTH_SOCK", &socket)
        .output()
        .expect("run ssh-add");
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    sandbox.write(
        "p.toml",
        pickup_pipeline(
            "sftp",
            "",
            &format!(
                "[source.server]\nhost = \"127.0.0.1\"\nport = {}\nuser = \"{USER}\"\nagent = true\ninsecure_skip_host_key_check = true\n",
                server.port
            ),
        ),
    );
    drop_file(&server.data(), "a.csv", "id\n1\n");
    let socket = socket.display().to_string();
    let outcome = longshore(&sandbox, &[("SSH_AUTH_SOCK", &socket)]);
    outcome.assert_success();
    assert_eq!(delivered(&sandbox), (lines(&[r#"{"id":"1"}"#]), 1));
    assert!(
        outcome.stderr.contains(&format!(
            "WARN the server's host key is not checked (insecure_skip_host_key_check = true): anyone on the way can read and change this connection server=sftp://{USER}@127.0.0.1:{}",
            server.port
        )),
        "{}",
        outcome.stderr
    );
}

#[test]
fn a_download_cut_off_midway_fails_the_run_and_the_next_run_delivers_the_file_whole() {
    let Some(server) = SftpServer::start() else {
        return;
    };
    let sandbox = Sandbox::new();
    sandbox.write("p.toml", pickup_pipeline("sftp", "", &sftp_server(&server)));
    let mut csv = String::from("id,payload\n");
    let payload = "y".repeat(200);
    for id in 0..200_000 {
        csv.push_str(&format!("{id},{payload}\n"));
    }
    drop_file(&server.data(), "big.csv", &csv);

    let mut command = sandbox.command(["run", "p.toml"]);
    command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().expect("start longshore");
    // Records are being written (the sink's hidden temporary file is there): cut the session.
    let started = std::time::Instant::now();
    let writing = loop {
        let temp = std::fs::read_dir(sandbox.join("out"))
            .ok()
            .and_then(|entries| {
                entries
                    .filter_map(Result::ok)
                    .find(|e| e.file_name().to_string_lossy().ends_with(".part"))
            });
        if temp.is_some() || started.elapsed() > Duration::from_secs(60) {
            break temp.is_some();
        }
        std::thread::yield_now();
    };
    server.drop_sessions();
    if !writing {
        let _ = child.kill();
    }
    assert!(writing, "the run was never seen writing");
    let outcome = Outcome::from(child.wait_with_output().expect("wait for longshore"));
    outcome.assert_code(1);
    assert!(
        outcome
            .stderr
            .contains("error: pipeline `p`: source (sftp) failed"),
        "{}",
        outcome.stderr
    );
    assert_eq!(delivered(&sandbox), (lines(&[]), 0), "nothing published");

    longshore(&sandbox, &[]).assert_success();
    let (records, files) = delivered(&sandbox);
    assert_eq!((records.len(), files), (200_000, 1));
}

#[test]
fn without_readiness_rules_a_file_waits_until_it_is_a_minute_old() {
    let Some(server) = SftpServer::start() else {
        return;
    };
    let sandbox = Sandbox::new();
    sandbox.write(
        "p.toml",
        format!(
            "name = \"p\"\n[source]\ntype = \"sftp\"\ndir = \"inbound\"\n{}\n[[sinks]]\ntype = \"file\"\npath = \"out/orders-{{run_ts}}.ndjson\"\n",
            sftp_server(&server)
        ),
    );
    drop_file(&server.data(), "fresh.csv", "id\n1\n");
    drop_file(&server.data(), "old.csv", "id\n2\n");
    std::fs::File::options()
        .write(true)
        .open(server.data().join("inbound/old.csv"))
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(61))
        .unwrap();
    longshore(&sandbox, &[]).assert_success();
    assert_eq!(delivered(&sandbox), (lines(&[r#"{"id":"2"}"#]), 1));
}

#[test]
fn archived_files_keep_their_paths_below_the_drop_with_their_markers_beside_them() {
    let Some(server) = SftpServer::start() else {
        return;
    };
    let sandbox = Sandbox::new();
    sandbox.write(
        "p.toml",
        pickup_pipeline(
            "sftp",
            "recursive = true\nmarker = \"{name}.done\"\nafter = \"move\"\narchive_dir = \"archive\"",
            &sftp_server(&server),
        ),
    );
    let inbound = server.data().join("inbound");
    for sub in ["north", "south"] {
        std::fs::create_dir_all(inbound.join(sub)).unwrap();
        std::fs::write(inbound.join(sub).join("a.csv"), format!("id\n{sub}\n")).unwrap();
        std::fs::write(inbound.join(sub).join("a.csv.done"), "").unwrap();
    }
    accounts::give_to_test_user(&inbound);
    for sub in ["north", "south"] {
        accounts::give_to_test_user(&inbound.join(sub));
    }
    longshore(&sandbox, &[]).assert_success();
    assert_eq!(
        delivered(&sandbox),
        (lines(&[r#"{"id":"north"}"#, r#"{"id":"south"}"#]), 1)
    );
    for sub in ["north", "south"] {
        assert_eq!(
            remote_files(&server.data(), &format!("archive/{sub}")),
            ["a.csv", "a.csv.done"]
        );
        assert_eq!(
            remote_files(&server.data(), &format!("inbound/{sub}")),
            Vec::<String>::new()
        );
    }
}

/// A run of `p.toml` with its report: what the run wrote to stderr, and the report's JSON.
fn longshore_reporting(sandbox: &Sandbox) -> (Outcome, serde_json::Value) {
    let mut command = sandbox.command(["run", "p.toml", "--report", "report.json"]);
    command.env("FTP_PASSWORD", PASSWORD);
    let outcome = run(command);
    let report = serde_json::from_str(&sandbox.read("report.json")).expect("a JSON report");
    std::fs::remove_file(sandbox.join("report.json")).expect("remove the report");
    (outcome, report)
}

/// Asserts the run's warnings: in its report, and each one logged on stderr.
#[track_caller]
fn assert_warnings(outcome: &Outcome, report: &serde_json::Value, expected: &[String]) {
    assert_eq!(report["warnings"], serde_json::json!(expected));
    for warning in expected {
        assert!(
            outcome.stderr.contains(&format!("WARN {warning}")),
            "{warning} not logged:\n{}",
            outcome.stderr
        );
    }
}

#[test]
fn links_in_a_drop_are_skipped_with_a_warning_unless_followed_and_never_into_directories() {
    let Some(server) = SftpServer::start() else {
        return;
    };
    let sandbox = Sandbox::new();
    sandbox.write(
        "p.toml",
        pickup_pipeline("sftp", "recursive = true", &sftp_server(&server)),
    );
    drop_file(&server.data(), "a.csv", "id\n1\n");
    let inbound = server.data().join("inbound");
    std::fs::create_dir(inbound.join("2024-08-01")).unwrap();
    std::fs::write(inbound.join("2024-08-01/b.csv"), "id\n2\n").unwrap();
    accounts::give_to_test_user(&inbound.join("2024-08-01"));
    std::fs::create_dir(server.data().join("elsewhere")).unwrap();
    std::fs::write(server.data().join("elsewhere/c.csv"), "id\n3\n").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", inbound.join("passwd.csv")).unwrap();
    std::os::unix::fs::symlink("2024-08-01", inbound.join("latest")).unwrap();
    std::os::unix::fs::symlink("../elsewhere/c.csv", inbound.join("c.csv")).unwrap();
    // A link in a hidden (ignored) name is not even looked at.
    std::os::unix::fs::symlink("/etc/passwd", inbound.join(".hidden.csv")).unwrap();

    let at = format!("sftp://{USER}@127.0.0.1:{}/inbound", server.port);
    let (outcome, report) = longshore_reporting(&sandbox);
    outcome.assert_success();
    assert_eq!(
        delivered(&sandbox),
        (lines(&[r#"{"id":"1"}"#, r#"{"id":"2"}"#]), 1)
    );
    let not_followed =
        "is a symbolic link: skipped (`follow_symlinks = true` reads links to files)";
    assert_warnings(
        &outcome,
        &report,
        &[
            format!("{at}/c.csv {not_followed}"),
            format!("{at}/latest {not_followed}"),
            format!("{at}/passwd.csv {not_followed}"),
        ],
    );

    // Followed, a link to a file is read (once), a link to a directory is still skipped.
    std::fs::remove_file(inbound.join("passwd.csv")).unwrap();
    sandbox.write(
        "p.toml",
        pickup_pipeline(
            "sftp",
            "recursive = true\nfollow_symlinks = true",
            &sftp_server(&server),
        ),
    );
    let (outcome, report) = longshore_reporting(&sandbox);
    outcome.assert_success();
    assert_eq!(
        delivered(&sandbox),
        (
            lines(&[r#"{"id":"1"}"#, r#"{"id":"2"}"#, r#"{"id":"3"}"#]),
            2
        )
    );
    assert_warnings(
        &outcome,
        &report,
        &[format!(
            "{at}/latest is a symbolic link to a directory or to nothing: skipped"
        )],
    );
    let (outcome, _) = longshore_reporting(&sandbox);
    outcome.assert_success();
    assert_eq!(delivered(&sandbox).1, 2, "nothing delivered twice");
}

#[test]
fn ftps_links_are_skipped_and_a_name_listed_trimmed_is_skipped_not_fatal() {
    let Some(server) = FtpServer::start(FtpMode::Explicit) else {
        return;
    };
    let sandbox = Sandbox::new();
    sandbox.write("p.toml", pickup_pipeline("ftps", "", &ftps_server(&server)));
    drop_file(&server.data(), "a.csv", "id\n1\n");
    // vsftpd lists names without their leading spaces, and has no `MLSD`.
    drop_file(&server.data(), "  lead.csv", "id\n2\n");
    std::os::unix::fs::symlink("a.csv", server.data().join("inbound/alias.csv")).unwrap();

    let at = format!("ftps://{USER}@127.0.0.1:{}/inbound", server.port);
    let (outcome, report) = longshore_reporting(&sandbox);
    outcome.assert_success();
    assert_eq!(delivered(&sandbox), (lines(&[r#"{"id":"1"}"#]), 1));
    assert_warnings(
        &outcome,
        &report,
        &[
            format!(
                "{at}/alias.csv is a symbolic link: skipped (`follow_symlinks = true` reads links to files)"
            ),
            format!(
                "{at}/lead.csv is gone since it was listed (or cannot be found by its listed name): skipped"
            ),
        ],
    );
}

/// A CSV file of `rows` records of 200 bytes each: long enough to read that the tests act on
/// the server while the run is reading it.
fn big_csv(rows: usize) -> String {
    let mut csv = String::from("id,payload\n");
    let payload = "y".repeat(200);
    for id in 0..rows {
        csv.push_str(&format!("{id},{payload}\n"));
    }
    csv
}

/// Starts a run of `p.toml` and waits (a minute at most) until it writes records (the sink's
/// hidden temporary file is there): it is reading the first file.
fn start_and_wait_until_writing(sandbox: &Sandbox) -> std::process::Child {
    let mut command = sandbox.command(["run", "p.toml"]);
    command
        .env("FTP_PASSWORD", PASSWORD)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    crate::support::start_and_wait_until_writing(sandbox, command)
}

#[test]
fn a_file_appended_to_while_read_fails_the_run_and_the_next_run_delivers_it_whole() {
    let Some(sftp) = SftpServer::start() else {
        return;
    };
    let Some(ftps) = FtpServer::start(FtpMode::Explicit) else {
        return;
    };
    for (kind, server, data, port) in [
        ("sftp", sftp_server(&sftp), sftp.data(), sftp.port),
        ("ftps", ftps_server(&ftps), ftps.data(), ftps.port),
    ] {
        let sandbox = Sandbox::new();
        sandbox.write("p.toml", pickup_pipeline(kind, "", &server));
        let csv = big_csv(200_000);
        drop_file(&data, "big.csv", &csv);

        let child = start_and_wait_until_writing(&sandbox);
        // The partner rewrites the file while the run reads it: one more record at its end.
        let appended = "200000,late\n";
        std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("inbound/big.csv"))
            .and_then(|mut file| std::io::Write::write_all(&mut file, appended.as_bytes()))
            .unwrap();
        let outcome = Outcome::from(child.wait_with_output().expect("wait for longshore"));
        outcome.assert_code(1);
        assert_eq!(
            outcome.stderr,
            format!(
                "error: pipeline `p`: source ({kind}) failed\n  caused by: {kind}://{USER}@127.0.0.1:{port}/inbound/big.csv changed while it was read (size {} listed, {} read): this run delivers nothing, and the next run reads the file again\n",
                csv.len(),
                csv.len() + appended.len()
            ),
            "{kind}"
        );
        assert_eq!(
            delivered(&sandbox),
            (lines(&[]), 0),
            "{kind}: nothing published"
        );

        longshore(&sandbox, &[]).assert_success();
        let (records, files) = delivered(&sandbox);
        assert_eq!((records.len(), files), (200_001, 1), "{kind}");
    }
}

/// Found by `scripts/soak` (`torn`): a file rewritten in place on the server while a run
/// downloaded it failed the run with what the decoder made of the junction of its two
/// versions, not with the change. Over FTP the download given up on midway leaves its
/// connection waiting for the transfer's reply: the file is looked up on a new one.
#[test]
fn a_file_rewritten_while_read_fails_the_run_as_changed_not_as_malformed() {
    let Some(sftp) = SftpServer::start() else {
        return;
    };
    let Some(ftps) = FtpServer::start(FtpMode::Explicit) else {
        return;
    };
    for (kind, server, data, port) in [
        ("sftp", sftp_server(&sftp), sftp.data(), sftp.port),
        ("ftps", ftps_server(&ftps), ftps.data(), ftps.port),
    ] {
        let sandbox = Sandbox::new();
        sandbox.write("p.toml", pickup_pipeline(kind, "", &server));
        let (first, second) = crate::reruns::rewritten_csv();
        drop_file(&data, "big.csv", &first);

        let child = start_and_wait_until_writing(&sandbox);
        std::fs::write(data.join("inbound/big.csv"), &second).unwrap();
        let outcome = Outcome::from(child.wait_with_output().expect("wait for longshore"));
        outcome.assert_code(1);
        let start = format!(
            "error: pipeline `p`: source ({kind}) failed\n  caused by: {kind}://{USER}@127.0.0.1:{port}/inbound/big.csv changed while it was read ("
        );
        assert!(
            outcome.stderr.starts_with(&start)
                && outcome.stderr.ends_with(
                    "): this run delivers nothing, and the next run reads the file again\n"
                ),
            "{kind}: {}",
            outcome.stderr
        );
        assert_eq!(
            delivered(&sandbox),
            (lines(&[]), 0),
            "{kind}: nothing published"
        );

        longshore(&sandbox, &[]).assert_success();
        let (records, files) = delivered(&sandbox);
        assert_eq!((records.len(), files), (200_000, 1), "{kind}");
        assert!(
            records.iter().all(|r| r.contains(r#""j":null"#)),
            "{kind}: the second version"
        );
    }
}

#[test]
fn a_file_removed_before_the_run_opens_it_is_skipped_with_a_warning() {
    let Some(server) = SftpServer::start() else {
        return;
    };
    let sandbox = Sandbox::new();
    sandbox.write("p.toml", pickup_pipeline("sftp", "", &sftp_server(&server)));
    // Read in name order: b.csv is opened once a.csv, long to read, was read.
    drop_file(&server.data(), "a.csv", &big_csv(100_000));
    drop_file(&server.data(), "b.csv", "id\n1\n");
    let mut command = sandbox.command(["run", "p.toml", "--report", "report.json"]);
    command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = crate::support::start_and_wait_until_writing(&sandbox, command);
    std::fs::remove_file(server.data().join("inbound/b.csv")).unwrap();
    let outcome = Outcome::from(child.wait_with_output().expect("wait for longshore"));
    outcome.assert_success();
    let report: serde_json::Value = serde_json::from_str(&sandbox.read("report.json")).unwrap();
    assert_warnings(
        &outcome,
        &report,
        &[format!(
            "sftp://{USER}@127.0.0.1:{}/inbound/b.csv is gone since it was listed (or cannot be found by its listed name): skipped",
            server.port
        )],
    );
    let (records, files) = delivered(&sandbox);
    assert_eq!((records.len(), files), (100_000, 1));
    assert_eq!(report["files_read"].as_array().map(Vec::len), Some(1));
}
