//! Names partners choose, run by the real binary: a file named with a newline is not read
//! (and no `.profile` is ever removed), a forged temporary-file journal removes nothing that is
//! not a temporary file, `{source_stem}` stays inside the destination, and long output names
//! fit their temporary names.

use std::path::Path;

use super::pickup::{drop_file, longshore, pickup_pipeline, remote_files, sftp_server};
use super::support::sshd::SftpServer;
use super::support::{Sandbox, crash_at, pipeline};

/// The temporary-file journals in the sandbox's state directory.
fn journals(sandbox: &Sandbox) -> Vec<std::path::PathBuf> {
    match std::fs::read_dir(sandbox.join(".longshore/temp")) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

/// `.profile` files where a line `.profile` of the old journal would have pointed: the run's
/// working directory and a `$HOME`.
fn place_profiles(sandbox: &Sandbox) -> [std::path::PathBuf; 2] {
    [
        sandbox.write(".profile", "# mine\n"),
        sandbox.write("home/.profile", "# mine\n"),
    ]
}

fn assert_still_there(profiles: &[std::path::PathBuf]) {
    for profile in profiles {
        assert_eq!(
            std::fs::read_to_string(profile).unwrap(),
            "# mine\n",
            "{}",
            profile.display()
        );
    }
}

#[test]
fn a_dropped_file_named_with_a_newline_is_not_read_and_removes_nothing() {
    let Some(server) = SftpServer::start() else {
        return;
    };
    let sandbox = Sandbox::new();
    sandbox.write("p.toml", pickup_pipeline("sftp", "", &sftp_server(&server)));
    let profiles = place_profiles(&sandbox);
    let home = sandbox.join("home").display().to_string();
    let bad = "x\n.profile\ny.csv";
    drop_file(&server.data(), bad, "id\n66\n");
    drop_file(&server.data(), "a.csv", "id\n1\n");

    // A killed run leaves its journal: JSON lines naming its temporary files.
    let mut command = sandbox.command(["run", "p.toml"]);
    command.env("HOME", &home);
    crash_at(command, "after-first-batch");
    let journal = journals(&sandbox);
    assert_eq!(journal.len(), 1, "{journal:?}");
    let text = std::fs::read_to_string(&journal[0]).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    let entry: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
    assert_eq!(entry["location"], serde_json::Value::Null);
    let temp = entry["path"].as_str().unwrap();
    assert!(
        temp.starts_with(&format!("{}/out/.orders-", sandbox.path().display())),
        "{temp}"
    );
    assert!(entry["run_id"].as_str().is_some_and(|id| !id.is_empty()));

    let outcome = longshore(&sandbox, &[("HOME", &home)]);
    outcome.assert_success();
    let warning = format!(
        "\"sftp://{}@127.0.0.1:{}/inbound/x\\n.profile\\ny.csv\" is not read: its name has a control character, which could forge log lines or paths; rename the file to have it read",
        super::support::accounts::USER,
        server.port
    );
    assert!(
        outcome.stderr.contains(&format!("WARN {warning}\n")),
        "{}",
        outcome.stderr
    );
    // No log line starts with what followed the newline.
    assert!(
        !outcome
            .stderr
            .lines()
            .any(|line| line.starts_with(".profile")),
        "{}",
        outcome.stderr
    );
    assert!(!Path::new(temp).exists(), "the killed run's {temp} is left");
    assert_still_there(&profiles);
    let out = sandbox.files("out");
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(sandbox.read(&out[0]), "{\"id\":\"1\"}\n");
    assert!(journals(&sandbox).is_empty());
    // Left on the server for the partner to rename.
    assert_eq!(remote_files(&server.data(), "inbound"), ["a.csv", bad]);
}

#[test]
fn a_forged_journal_removes_only_temporary_files() {
    let sandbox = Sandbox::new();
    sandbox.write("in/a.csv", "id\n1\n");
    sandbox.write(
        "p.toml",
        format!(
            "name = \"p\"\n{}",
            pipeline("path = \"in/*.csv\"", &["path = \"out/{source_stem}.csv\""])
        ),
    );
    let profiles = place_profiles(&sandbox);
    // A first run creates the journal's directory; its journal is gone once it succeeded.
    sandbox.run(["run", "p.toml"]).assert_success();
    sandbox.write("in/b.csv", "id\n2\n");
    let mut command = sandbox.command(["run", "p.toml"]);
    command.env("LONGSHORE_CRASH_AT", "after-first-batch");
    assert!(!command.output().unwrap().status.success());
    let journal = journals(&sandbox).pop().expect("a journal");
    let killed: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&journal).unwrap().trim_end()).unwrap();
    let temp = killed["path"].as_str().unwrap().to_string();
    assert!(Path::new(&temp).exists());

    // Entries forged to name the `.profile` files, as JSON and as the old lines.
    let mut forged = std::fs::read_to_string(&journal).unwrap();
    for profile in &profiles {
        forged.push_str(
            &serde_json::json!({"location": null, "path": profile, "run_id": "x"}).to_string(),
        );
        forged.push('\n');
        forged.push_str(&format!("{}\n", profile.display()));
    }
    forged.push_str(".profile\n");
    std::fs::write(&journal, forged).unwrap();

    let outcome = sandbox.run(["run", "p.toml"]);
    outcome.assert_success();
    assert_still_there(&profiles);
    assert!(!Path::new(&temp).exists(), "{temp} is left");
    let refused = format!(
        "{:?} (not the name of a temporary file (.NAME.XXXXXX.part))",
        profiles[0].display().to_string()
    );
    assert!(outcome.stderr.contains(&refused), "{}", outcome.stderr);
    assert!(
        outcome
            .stderr
            .contains("\".profile\" (not an absolute path without control characters)"),
        "{}",
        outcome.stderr
    );
    assert_eq!(sandbox.read("out/b.csv"), "id\n2\n");
    assert!(journals(&sandbox).is_empty());
}

#[test]
fn a_local_file_named_with_a_newline_is_not_read() {
    let sandbox = Sandbox::new();
    let profiles = place_profiles(&sandbox);
    sandbox.write("in/x\n.profile\ny.csv", "id\n66\n");
    sandbox.write("in/a.csv", "id\n1\n");
    sandbox.write(
        "p.toml",
        pipeline("path = \"in/*.csv\"", &["path = \"out/{source_stem}.csv\""]),
    );
    let outcome = sandbox.run(["run", "p.toml"]);
    outcome.assert_success();
    assert!(
        outcome.stderr.contains(
            "WARN \"in/x\\n.profile\\ny.csv\" is not read: its name has a control character, which could forge log lines or paths; rename the file to have it read\n"
        ),
        "{}",
        outcome.stderr
    );
    assert_eq!(sandbox.files("out"), ["out/a.csv"]);
    assert_still_there(&profiles);
}

#[test]
fn a_source_stem_of_dots_writes_inside_the_destination() {
    let sandbox = Sandbox::new();
    sandbox.write("in/...csv", "id\n1\n");
    sandbox.write(
        "p.toml",
        pipeline(
            "path = \"in/...csv\"",
            &["path = \"out/{source_stem}/orders.csv\""],
        ),
    );
    sandbox.run(["run", "p.toml"]).assert_success();
    assert_eq!(sandbox.files("out"), ["out/__/orders.csv"]);
    assert_eq!(sandbox.read("out/__/orders.csv"), "id\n1\n");
    assert!(!sandbox.exists("orders.csv"));
}

#[test]
fn an_output_name_of_250_bytes_is_written_and_published() {
    let sandbox = Sandbox::new();
    let name = format!("{}.csv", "o".repeat(246));
    assert_eq!(name.len(), 250);
    sandbox.write("in/a.csv", "id\n1\n");
    sandbox.write(
        "p.toml",
        pipeline("path = \"in/a.csv\"", &[&format!("path = \"out/{name}\"")]),
    );
    sandbox.run(["run", "p.toml"]).assert_success();
    assert_eq!(sandbox.read(&format!("out/{name}")), "id\n1\n");
    sandbox.assert_no_temp_files();
}
