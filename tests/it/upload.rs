//! The `sftp` and `ftps` sinks, run by the real binary against real servers: what arrives on
//! the server, under which names, and when (never before the run commits, never half-written).

use std::path::Path;
use std::time::{Duration, Instant};

use super::support::accounts::{PASSWORD, USER};
use super::support::sshd::SftpServer;
use super::support::vsftpd::{FtpMode, FtpServer};
use super::support::{Sandbox, crash_at, run};

const ORDERS_CSV: &str = "id,total\n1,9.99\n2,20.00\n3,5.00\n";

/// The `[sinks.server]` table of an SFTP server, logging in with a password.
fn sftp_server(server: &SftpServer) -> String {
    format!(
        "[sinks.server]\nhost = \"127.0.0.1\"\nport = {}\nuser = \"{USER}\"\npassword = \"${{env:SFTP_PASSWORD}}\"\nknown_hosts = \"{}\"\nattempts = 2\n",
        server.port,
        server.known_hosts().display()
    )
}

fn ftps_server(server: &FtpServer) -> String {
    format!(
        "[sinks.server]\nhost = \"127.0.0.1\"\nport = {}\nuser = \"{USER}\"\npassword = \"${{env:FTP_PASSWORD}}\"\nca_file = \"{}\"\nattempts = 2\n",
        server.port,
        server.ca().display()
    )
}

/// A pipeline reading `in/*.csv` into one sink of `kind` with `sink` lines and `server`.
fn upload_pipeline(kind: &str, sink: &str, server: &str) -> String {
    format!(
        "name = \"drop\"\n[source]\ntype = \"file\"\npath = \"in/*.csv\"\n\n[[sinks]]\ntype = \"{kind}\"\n{sink}\n{server}"
    )
}

fn longshore(sandbox: &Sandbox, args: &[&str]) -> super::support::Outcome {
    let mut command = sandbox.command(args);
    command
        .env("SFTP_PASSWORD", PASSWORD)
        .env("FTP_PASSWORD", PASSWORD);
    run(command)
}

/// Every file under `dir`, with its content, sorted by path.
fn files_under(dir: &Path) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).expect("read a directory") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let relative = path.strip_prefix(dir).unwrap().display().to_string();
                found.push((relative, std::fs::read_to_string(&path).unwrap_or_default()));
            }
        }
    }
    found.sort();
    found
}

fn pairs(files: &[(&str, &str)]) -> Vec<(String, String)> {
    files
        .iter()
        .map(|(name, content)| (name.to_string(), content.to_string()))
        .collect()
}

#[test]
fn sftp_sink_uploads_under_a_temporary_name_and_renames_at_commit() {
    let Some(server) = SftpServer::start() else {
        return;
    };
    let sandbox = Sandbox::new();
    sandbox.write("in/orders.csv", ORDERS_CSV);
    sandbox.write(
        "drop.toml",
        upload_pipeline(
            "sftp",
            "path = \"outbound/{pipeline}/orders.ndjson\"\nmarker = \"{name}.done\"",
            &sftp_server(&server),
        ),
    );

    // Stopped right after recording what it is about to publish: the upload is on the server,
    // hidden, the final name absent.
    let mut command = sandbox.command(["run", "drop.toml"]);
    command.env("SFTP_PASSWORD", PASSWORD);
    crash_at(command, "after-intent");
    let expected = "{\"id\":\"1\",\"total\":\"9.99\"}\n{\"id\":\"2\",\"total\":\"20.00\"}\n{\"id\":\"3\",\"total\":\"5.00\"}\n";
    assert_eq!(
        files_under(&server.data()),
        pairs(&[("outbound/drop/.orders.ndjson.part", expected)])
    );

    // The next run finishes publishing what the interrupted one prepared: renamed, marked,
    // and the source file not delivered again.
    longshore(&sandbox, &["run", "drop.toml"]).assert_success();
    assert_eq!(
        files_under(&server.data()),
        pairs(&[
            ("outbound/drop/orders.ndjson", expected),
            ("outbound/drop/orders.ndjson.done", ""),
        ])
    );
    let again = longshore(&sandbox, &["run", "drop.toml"]);
    again.assert_success();
    assert_eq!(
        files_under(&server.data()),
        pairs(&[
            ("outbound/drop/orders.ndjson", expected),
            ("outbound/drop/orders.ndjson.done", ""),
        ])
    );
}

#[test]
fn a_run_that_fails_before_committing_leaves_nothing_on_the_server() {
    let Some(server) = SftpServer::start() else {
        return;
    };
    let sandbox = Sandbox::new();
    sandbox.write("in/orders.csv", ORDERS_CSV);
    std::fs::create_dir_all(server.data().join("outbound")).unwrap();
    super::support::accounts::give_to_test_user(&server.data().join("outbound"));
    std::fs::write(server.data().join("outbound/b.csv"), "taken\n").unwrap();
    // The second sink refuses to publish over b.csv once the first has uploaded a.csv: that
    // upload must go too.
    sandbox.write(
        "drop.toml",
        format!(
            "{}\n[[sinks]]\ntype = \"sftp\"\npath = \"outbound/b.csv\"\nif_exists = \"fail\"\n{}",
            upload_pipeline("sftp", "path = \"outbound/a.csv\"", &sftp_server(&server)),
            sftp_server(&server)
        ),
    );
    let outcome = longshore(&sandbox, &["run", "drop.toml"]);
    outcome.assert_code(1);
    assert!(
        outcome
            .stderr
            .contains("outbound/b.csv already exists on sftp://"),
        "{}",
        outcome.stderr
    );
    assert_eq!(
        files_under(&server.data()),
        pairs(&[("outbound/b.csv", "taken\n")])
    );
}

#[test]
fn existing_files_on_the_server_are_replaced_kept_or_numbered_as_asked() {
    let Some(server) = SftpServer::start() else {
        return;
    };
    let sandbox = Sandbox::new();
    std::fs::create_dir_all(server.data().join("outbound")).unwrap();
    super::support::accounts::give_to_test_user(&server.data().join("outbound"));
    std::fs::write(server.data().join("outbound/orders.csv"), "old\n").unwrap();
    let expected_csv = ORDERS_CSV;
    let run_with = |policy: &str, file: &str| {
        sandbox.write(&format!("in/{file}"), ORDERS_CSV);
        sandbox.write(
            "drop.toml",
            upload_pipeline(
                "sftp",
                &format!(
                    "path = \"outbound/orders.csv\"\nif_exists = \"{policy}\"\nmarker = \"{{name}}.ok\""
                ),
                &sftp_server(&server),
            ),
        );
        longshore(&sandbox, &["run", "drop.toml"])
    };

    let failed = run_with("fail", "a.csv");
    failed.assert_code(1);
    assert!(
        failed.stderr.contains(&format!(
            "outbound/orders.csv already exists on sftp://{USER}@127.0.0.1:{} and the sink has `if_exists = \"fail\"`",
            server.port
        )),
        "{}",
        failed.stderr
    );
    run_with("skip", "b.csv").assert_success();
    assert_eq!(
        files_under(&server.data()),
        pairs(&[("outbound/orders.csv", "old\n")])
    );
    // Numbered, each with its own marker; and the run report names them as published.
    let renamed = run_with("rename", "c.csv");
    renamed.assert_success();
    assert!(
        renamed
            .stderr
            .contains("pipeline `drop`: published outbound/orders-1.csv ("),
        "{}",
        renamed.stderr
    );
    run_with("rename", "d.csv").assert_success();
    assert_eq!(
        files_under(&server.data()),
        pairs(&[
            ("outbound/orders-1.csv", expected_csv),
            ("outbound/orders-1.csv.ok", ""),
            ("outbound/orders-2.csv", expected_csv),
            ("outbound/orders-2.csv.ok", ""),
            ("outbound/orders.csv", "old\n"),
        ])
    );
    run_with("replace", "e.csv").assert_success();
    assert_eq!(
        std::fs::read_to_string(server.data().join("outbound/orders.csv")).unwrap(),
        expected_csv
    );
    assert!(server.data().join("outbound/orders.csv.ok").exists());
}

#[test]
fn a_split_output_is_numbered_by_part() {
    let Some(server) = FtpServer::start(FtpMode::Explicit) else {
        return;
    };
    let sandbox = Sandbox::new();
    let mut csv = String::from("id\n");
    for id in 1..=7 {
        csv.push_str(&format!("{id}\n"));
    }
    sandbox.write("in/ids.csv", &csv);
    sandbox.write(
        "drop.toml",
        upload_pipeline(
            "ftps",
            "path = \"out/ids-{part}.csv\"\nmax_records_per_file = 3",
            &ftps_server(&server),
        ),
    );
    longshore(&sandbox, &["run", "drop.toml"]).assert_success();
    assert_eq!(
        files_under(&server.data()),
        pairs(&[
            ("out/ids-1.csv", "id\n1\n2\n3\n"),
            ("out/ids-2.csv", "id\n4\n5\n6\n"),
            ("out/ids-3.csv", "id\n7\n"),
        ])
    );
}

/// A new file with just its header: nothing is uploaded by default, and the next run does not
/// read it again; with `if_empty = "write"` the partner gets the header row and the marker.
#[test]
fn a_run_without_records_uploads_nothing_unless_if_empty_write() {
    let Some(sftp) = SftpServer::start() else {
        return;
    };
    let sandbox = Sandbox::new();
    sandbox.write("in/orders.csv", "id,total\n");
    sandbox.write(
        "drop.toml",
        upload_pipeline(
            "sftp",
            "path = \"outbound/orders.csv\"\nmarker = \"{name}.done\"",
            &sftp_server(&sftp),
        ),
    );
    let outcome = longshore(&sandbox, &["run", "drop.toml"]);
    outcome.assert_success();
    assert!(
        outcome
            .stderr
            .contains("pipeline `drop`: nothing new: no records, nothing written"),
        "{}",
        outcome.stderr
    );
    assert_eq!(files_under(&sftp.data()), pairs(&[]));
    let again = longshore(&sandbox, &["run", "drop.toml"]);
    assert!(
        again.stderr.contains("nothing new to read"),
        "{}",
        again.stderr
    );

    let Some(ftps) = FtpServer::start(FtpMode::Explicit) else {
        return;
    };
    let sandbox = Sandbox::new();
    sandbox.write("in/orders.csv", "id,total\n");
    sandbox.write(
        "drop.toml",
        upload_pipeline(
            "ftps",
            "path = \"outbound/orders.csv\"\nformat = { type = \"csv\", columns = [\"id\", \"total\"] }\nmarker = \"{name}.done\"\nif_empty = \"write\"",
            &ftps_server(&ftps),
        ),
    );
    longshore(&sandbox, &["run", "drop.toml"]).assert_success();
    assert_eq!(
        files_under(&ftps.data()),
        pairs(&[
            ("outbound/orders.csv", "id,total\n"),
            ("outbound/orders.csv.done", ""),
        ])
    );
}

/// A CSV file of about 40 MB, so that its upload is still going when the test cuts it.
fn big_csv() -> String {
    let mut csv = String::from("id,payload\n");
    let payload = "x".repeat(200);
    for id in 0..200_000 {
        csv.push_str(&format!("{id},{payload}\n"));
    }
    csv
}

/// Starts `longshore run drop.toml` and waits (bounded) until the upload of `temp` is on the
/// server and not yet complete (`total` bytes).
fn run_until_uploading(sandbox: &Sandbox, temp: &Path, total: usize) -> std::process::Child {
    let mut command = sandbox.command(["run", "drop.toml"]);
    command.env("SFTP_PASSWORD", PASSWORD);
    command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().expect("start longshore");
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        let size = std::fs::metadata(temp).map_or(0, |m| m.len());
        if size > 0 && (size as usize) < total {
            return child;
        }
        std::thread::yield_now();
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!(
        "the upload of {} was never seen in progress",
        temp.display()
    );
}

#[test]
fn a_server_that_dies_mid_upload_fails_the_run_with_nothing_published() {
    let Some(mut server) = SftpServer::start() else {
        return;
    };
    let sandbox = Sandbox::new();
    let csv = big_csv();
    sandbox.write("in/big.csv", &csv);
    sandbox.write(
        "drop.toml",
        upload_pipeline("sftp", "path = \"outbound/big.csv\"", &sftp_server(&server)),
    );
    let temp = server.data().join("outbound/.big.csv.part");
    let child = run_until_uploading(&sandbox, &temp, csv.len());
    server.kill();
    let outcome =
        super::support::Outcome::from(child.wait_with_output().expect("wait for longshore"));
    outcome.assert_code(1);
    assert!(
        outcome.stderr.contains(&format!(
            "error: pipeline `drop`: sink 1 (sftp) failed\n  caused by: sftp://{USER}@127.0.0.1:{}: cannot connect:",
            server.port
        )),
        "{}",
        outcome.stderr
    );
    assert!(!server.data().join("outbound/big.csv").exists());
    // The source file was not delivered: the next run takes it again.
    use longshore::state::StateStore as _;
    let mut state = longshore::state::SqliteStore::open(&sandbox.join(".longshore/state.db"))
        .expect("the state store");
    assert_eq!(state.summary("drop").expect("a summary").ledger_files, 0);
}

#[test]
fn an_upload_cut_off_midway_starts_again_and_arrives_whole() {
    let Some(server) = SftpServer::start() else {
        return;
    };
    let sandbox = Sandbox::new();
    let csv = big_csv();
    sandbox.write("in/big.csv", &csv);
    sandbox.write(
        "drop.toml",
        upload_pipeline("sftp", "path = \"outbound/big.csv\"", &sftp_server(&server)),
    );
    // Once the temporary file is on the server and growing, cut every session.
    let temp = server.data().join("outbound/.big.csv.part");
    let child = run_until_uploading(&sandbox, &temp, csv.len());
    server.drop_sessions();
    assert!(
        !server.data().join("outbound/big.csv").exists(),
        "the final name appeared mid-upload"
    );

    let outcome =
        super::support::Outcome::from(child.wait_with_output().expect("wait for longshore"));
    outcome.assert_success();
    assert!(
        outcome
            .stderr
            .contains("upload failed, trying again on a new connection"),
        "{}",
        outcome.stderr
    );
    let arrived = std::fs::read_to_string(server.data().join("outbound/big.csv")).unwrap();
    assert!(
        arrived == csv,
        "{} of {} bytes arrived, or different ones",
        arrived.len(),
        csv.len()
    );
    assert!(!temp.exists());
}

#[test]
fn uploads_a_killed_run_left_are_removed_by_the_next_run() {
    let Some(server) = SftpServer::start() else {
        return;
    };
    let sandbox = Sandbox::new();
    sandbox.write("in/orders.csv", ORDERS_CSV);
    sandbox.write(
        "drop.toml",
        upload_pipeline(
            "sftp",
            "path = \"outbound/orders-{run_ts}.csv\"",
            &sftp_server(&server),
        ),
    );
    // Killed after uploading, before recording what it was about to publish.
    let mut command = sandbox.command(["run", "drop.toml"]);
    let spools = tempfile::tempdir().unwrap();
    command
        .env("SFTP_PASSWORD", PASSWORD)
        .env("TMPDIR", spools.path());
    crash_at(command, "after-prepare");
    // Its local spool files went with it: they have no name to leave behind.
    assert_eq!(
        std::fs::read_dir(spools.path()).unwrap().count(),
        0,
        "spool files left in TMPDIR"
    );
    let left = files_under(&server.data());
    assert_eq!(left.len(), 1);
    let (temp, _) = &left[0];
    assert!(
        temp.starts_with("outbound/.orders-") && temp.ends_with(".csv.part"),
        "{temp}"
    );

    let outcome = longshore(&sandbox, &["run", "drop.toml"]);
    outcome.assert_success();
    assert!(
        outcome.stderr.contains(&format!(
            "removed temporary files an interrupted run left: {temp} on sftp://{USER}@127.0.0.1:{}",
            server.port
        )),
        "{}",
        outcome.stderr
    );
    let now = files_under(&server.data());
    assert_eq!(now.len(), 1, "{now:?}");
    assert!(now[0].0.starts_with("outbound/orders-"), "{now:?}");
    assert_eq!(now[0].1, ORDERS_CSV);
}
