//! Operating pipelines from cron: the ledger of delivered files, the `state` and `runs`
//! commands, rejects, `--dry-run`, `--report`, and the log formats. Every test runs the real
//! binary in a sandbox and checks what an operator relies on: the records delivered, the
//! files present or absent, the exit code and the exact text shown.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::{Outcome, Sandbox, pipeline};

// ---------------------------------------------------------------------------------------------
// Inputs, pipelines and helpers
// ---------------------------------------------------------------------------------------------

const A_CSV: &str = "id,name\n1,ant\n2,bee\n";
const B_CSV: &str = "id,name\n3,cat\n4,dog\n";
const C_CSV: &str = "id,name\n5,eel\n6,fox\n";
const A_NDJSON: &str = "{\"id\":\"1\",\"name\":\"ant\"}\n{\"id\":\"2\",\"name\":\"bee\"}\n";
const B_NDJSON: &str = "{\"id\":\"3\",\"name\":\"cat\"}\n{\"id\":\"4\",\"name\":\"dog\"}\n";
const C_NDJSON: &str = "{\"id\":\"5\",\"name\":\"eel\"}\n{\"id\":\"6\",\"name\":\"fox\"}\n";

/// A modification time long past, set on files to see whether a run replaced or touched them.
const OLD: Duration = Duration::from_secs(1_000_000_000);

/// The drop-folder pipeline: every `in/*.csv` to `out/{source_stem}.ndjson`. `source` adds
/// lines to the `[source]` table, `extra` top-level tables after the sink.
fn drop_folder_pipeline(source: &str, extra: &str) -> String {
    let mut text = pipeline(
        &format!("path = \"in/*.csv\"\n{source}"),
        &["path = \"out/{source_stem}.ndjson\""],
    );
    text.push_str(extra);
    text
}

/// A sandbox with `p.toml` (the drop-folder pipeline) and `in/a.csv`, `in/b.csv`.
fn drop_folder(source: &str) -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.write("p.toml", drop_folder_pipeline(source, ""));
    sandbox.write("in/a.csv", A_CSV);
    sandbox.write("in/b.csv", B_CSV);
    sandbox
}

/// The binary in the sandbox, without the `LONGSHORE_*` variables of the environment running
/// the tests (they would move the state or change the log format).
fn command<I, S>(sandbox: &Sandbox, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = sandbox.command(args);
    command
        .env_remove("LONGSHORE_STATE")
        .env_remove("LONGSHORE_LOG_FORMAT");
    command
}

fn run<I, S>(sandbox: &Sandbox, args: I) -> Outcome
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    crate::support::run(command(sandbox, args))
}

/// Where `run_reporting` writes the report; removed once read, so file listings stay clean.
const REPORT: &str = "report.json";

/// `longshore <args> --report report.json` (args: `run p.toml`, maybe with options): the
/// outcome and the parsed report.
fn run_reporting(sandbox: &Sandbox, args: &[&str]) -> (Outcome, Value) {
    let outcome = run(sandbox, args.iter().copied().chain(["--report", REPORT]));
    let report = read_json(sandbox, REPORT);
    fs::remove_file(sandbox.join(REPORT)).expect("remove the report");
    (outcome, report)
}

fn read_json(sandbox: &Sandbox, relative: &str) -> Value {
    serde_json::from_str(&sandbox.read(relative))
        .unwrap_or_else(|e| panic!("{relative} is not JSON: {e}"))
}

/// The paths in a report list: `files_read` and `files_written` hold objects with a `path`,
/// `files_already_processed` plain strings.
pub(crate) fn paths(report: &Value, key: &str) -> Vec<String> {
    report[key]
        .as_array()
        .unwrap_or_else(|| panic!("`{key}` is not an array in {report:#}"))
        .iter()
        .map(|entry| {
            entry
                .as_str()
                .or_else(|| entry["path"].as_str())
                .unwrap_or_else(|| panic!("no path in {entry}"))
                .to_string()
        })
        .collect()
}

fn mtime(path: &Path) -> SystemTime {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("mtime of {}: {e}", path.display()))
}

fn set_mtime(path: &Path, since_epoch: Duration) {
    fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(UNIX_EPOCH + since_epoch))
        .unwrap_or_else(|e| panic!("set the mtime of {}: {e}", path.display()));
}

/// Marks each output with an old mtime, so that a later check can tell it was left alone.
fn age(sandbox: &Sandbox, outputs: &[&str]) {
    for output in outputs {
        set_mtime(&sandbox.join(output), OLD);
    }
}

#[track_caller]
fn assert_untouched(sandbox: &Sandbox, outputs: &[&str]) {
    for output in outputs {
        assert_eq!(
            mtime(&sandbox.join(output)),
            UNIX_EPOCH + OLD,
            "{output} was rewritten"
        );
    }
}

#[track_caller]
fn assert_rewritten(sandbox: &Sandbox, output: &str) {
    assert_ne!(
        mtime(&sandbox.join(output)),
        UNIX_EPOCH + OLD,
        "{output} was not rewritten"
    );
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The lines of a text-format log without their timestamps (`INFO message`), with the
/// duration at the end of a `done` line replaced by `{secs}`, and counts of one singular (see
/// [`singular`]).
fn log_lines(stderr: &str) -> Vec<String> {
    log_lines_as_written(stderr)
        .iter()
        .map(|line| singular(line))
        .collect()
}

/// [`log_lines`] without making counts of one singular.
fn log_lines_as_written(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .map(|line| {
            let (timestamp, rest) = line
                .split_once(' ')
                .unwrap_or_else(|| panic!("not a log line: {line:?}"));
            assert!(
                timestamp.starts_with("20") && timestamp.ends_with('Z'),
                "no timestamp at the start of {line:?}"
            );
            without_duration(rest.trim_start())
        })
        .collect()
}

/// `1 records`, `1 files`, `1 rejects` become `1 record`, `1 file`, `1 reject`. Today the
/// binary says `1 records`; `counts_of_one_are_singular` checks that, so the other tests
/// accept both and keep checking the rest of the text.
fn singular(text: &str) -> String {
    let words: Vec<&str> = text.split(' ').collect();
    let mut out: Vec<String> = Vec::with_capacity(words.len());
    for (i, word) in words.iter().enumerate() {
        let after_one = i > 0 && (words[i - 1] == "1" || words[i - 1].ends_with("(1"));
        let plural = ["records", "files", "rejects"].iter().find(|p| {
            word.strip_prefix(**p)
                .is_some_and(|rest| rest.chars().all(|c| c.is_ascii_punctuation()))
        });
        match plural {
            Some(p) if after_one => out.push(format!("{}{}", &p[..p.len() - 1], &word[p.len()..])),
            _ => out.push((*word).to_string()),
        }
    }
    out.join(" ")
}

/// `... in 0.03s` becomes `... in {secs}s`.
fn without_duration(message: &str) -> String {
    if let Some((head, tail)) = message.rsplit_once(" in ")
        && let Some(secs) = tail.strip_suffix('s')
        && secs.parse::<f64>().is_ok()
    {
        return format!("{head} in {{secs}}s");
    }
    message.to_string()
}

/// Whether `actual` is `pattern` with each `{run_id}` (`20240801T020500-3f9a1c`), `{time}`
/// (RFC 3339) and `{secs}` (a decimal number) standing for one such value.
fn matches_pattern(actual: &str, pattern: &str) -> bool {
    let mut rest = actual;
    let mut pattern = pattern;
    loop {
        let next = ["{run_id}", "{time}", "{secs}"]
            .iter()
            .filter_map(|p| pattern.find(p).map(|at| (at, *p)))
            .min();
        let Some((at, placeholder)) = next else {
            return rest == pattern;
        };
        let Some(after) = rest.strip_prefix(&pattern[..at]) else {
            return false;
        };
        let allowed = |c: char| match placeholder {
            "{run_id}" => c.is_ascii_alphanumeric() || c == '-',
            "{time}" => c.is_ascii_digit() || "-:.+TZ".contains(c),
            _ => c.is_ascii_digit() || c == '.',
        };
        let end = after.find(|c: char| !allowed(c)).unwrap_or(after.len());
        let value = &after[..end];
        let valid = match placeholder {
            "{run_id}" => is_run_id(value),
            "{time}" => value.len() >= 20 && value.as_bytes()[10] == b'T',
            _ => value.parse::<f64>().is_ok(),
        };
        if !valid {
            return false;
        }
        rest = &after[end..];
        pattern = &pattern[at + placeholder.len()..];
    }
}

/// `20240801T020500-3f9a1c`: the run's start, then six hex digits.
fn is_run_id(value: &str) -> bool {
    let bytes = value.as_bytes();
    value.len() == 22
        && bytes[8] == b'T'
        && bytes[15] == b'-'
        && value[..8].bytes().all(|b| b.is_ascii_digit())
        && value[9..15].bytes().all(|b| b.is_ascii_digit())
        && value[16..].bytes().all(|b| b.is_ascii_hexdigit())
}

#[track_caller]
fn assert_matches(actual: &str, pattern: &str) {
    assert!(
        matches_pattern(&singular(actual), pattern),
        "output does not match\n--- expected (pattern):\n{pattern}\n--- actual:\n{actual}"
    );
}

/// A path as the binary shows a ledger key: absolute, symbolic links resolved.
fn key(sandbox: &Sandbox, relative: &str) -> PathBuf {
    fs::canonicalize(sandbox.path())
        .expect("canonicalize the sandbox")
        .join(relative)
}

#[test]
fn the_text_helpers_are_strict() {
    let line = "  20240801T020500-3f9a1c  2024-08-01T02:05:00.123+02:00  success  0.1s";
    assert!(matches_pattern(
        line,
        "  {run_id}  {time}  success  {secs}s"
    ));
    assert!(!matches_pattern(
        line,
        "  {run_id}  {time}  failure  {secs}s"
    ));
    assert!(!matches_pattern(line, "  {run_id}  {time}  success"));
    assert!(!matches_pattern("  x  2024", "  {run_id}  {time}"));
    assert_eq!(
        singular("1 records read from 1 files (1 files), 11 files, 0 rejects, 1 rejects."),
        "1 record read from 1 file (1 file), 11 files, 0 rejects, 1 reject."
    );
    assert_eq!(
        without_duration("done, 2 records read in 0.03s"),
        "done, 2 records read in {secs}s"
    );
}

// ---------------------------------------------------------------------------------------------
// The ledger: each file is delivered once
// ---------------------------------------------------------------------------------------------

/// The first run delivers every file; the next one, with nothing new, writes nothing, replaces
/// no output and says so.
#[test]
fn a_second_run_with_nothing_new_writes_nothing() {
    let sandbox = drop_folder("");
    let first = run(&sandbox, ["run", "p.toml"]);
    first.assert_success();
    assert_eq!(
        log_lines(&first.stderr),
        [
            "INFO pipeline `p`: published out/a.ndjson (48 bytes)",
            "INFO pipeline `p`: published out/b.ndjson (48 bytes)",
            "INFO pipeline `p`: done, 4 records read from 2 files in {secs}s",
        ]
    );
    assert_eq!(sandbox.files("out"), ["out/a.ndjson", "out/b.ndjson"]);
    assert_eq!(sandbox.read("out/a.ndjson"), A_NDJSON);
    assert_eq!(sandbox.read("out/b.ndjson"), B_NDJSON);

    age(&sandbox, &["out/a.ndjson", "out/b.ndjson"]);
    let second = run(&sandbox, ["run", "p.toml"]);
    second.assert_success();
    assert_eq!(second.stdout(), "");
    assert_eq!(
        log_lines(&second.stderr),
        ["INFO pipeline `p`: nothing new to read, nothing written"]
    );
    assert_untouched(&sandbox, &["out/a.ndjson", "out/b.ndjson"]);
    assert_eq!(sandbox.read("out/a.ndjson"), A_NDJSON);
    assert_eq!(
        sandbox.files(""),
        [
            "in/a.csv",
            "in/b.csv",
            "out/a.ndjson",
            "out/b.ndjson",
            "p.toml"
        ]
    );
    sandbox.assert_no_temp_files();
}

/// A file dropped after the first run is the only one the next run reads.
#[test]
fn a_new_file_is_the_only_one_read() {
    let sandbox = drop_folder("");
    run(&sandbox, ["-q", "run", "p.toml"]).assert_success();
    age(&sandbox, &["out/a.ndjson", "out/b.ndjson"]);
    sandbox.write("in/c.csv", C_CSV);
    let (outcome, report) = run_reporting(&sandbox, &["run", "p.toml"]);
    outcome.assert_success();
    assert_eq!(paths(&report, "files_read"), ["in/c.csv"]);
    assert_eq!(
        paths(&report, "files_already_processed"),
        ["in/a.csv", "in/b.csv"]
    );
    assert_eq!(report["records_read"], 2);
    assert_eq!(sandbox.read("out/c.ndjson"), C_NDJSON);
    assert_untouched(&sandbox, &["out/a.ndjson", "out/b.ndjson"]);
}

/// `reprocess` defaults to "changed": a file rewritten under the same name is read again,
/// whether its size changed or only its content.
#[test]
fn a_rewritten_file_is_read_again_by_default() {
    let sandbox = drop_folder("");
    run(&sandbox, ["-q", "run", "p.toml"]).assert_success();

    // Same size, other content (and another mtime, set so the test does not depend on the
    // clock having ticked since the first run).
    age(&sandbox, &["out/a.ndjson", "out/b.ndjson"]);
    sandbox.write("in/a.csv", "id,name\n1,ANT\n2,bee\n");
    set_mtime(
        &sandbox.join("in/a.csv"),
        Duration::from_secs(1_500_000_000),
    );
    let outcome = run(&sandbox, ["run", "p.toml"]);
    outcome.assert_success();
    assert_eq!(
        log_lines(&outcome.stderr),
        [
            "INFO changed since it was delivered, reading it again file=in/a.csv",
            "INFO pipeline `p`: published out/a.ndjson (48 bytes)",
            "INFO pipeline `p`: done, 2 records read from 1 file in {secs}s",
        ]
    );
    assert_eq!(
        sandbox.read("out/a.ndjson"),
        "{\"id\":\"1\",\"name\":\"ANT\"}\n{\"id\":\"2\",\"name\":\"bee\"}\n"
    );
    assert_untouched(&sandbox, &["out/b.ndjson"]);

    // Another size.
    sandbox.write("in/b.csv", "id,name\n3,cat\n");
    let (outcome, report) = run_reporting(&sandbox, &["run", "p.toml"]);
    outcome.assert_success();
    assert_eq!(paths(&report, "files_read"), ["in/b.csv"]);
    assert_eq!(
        sandbox.read("out/b.ndjson"),
        "{\"id\":\"3\",\"name\":\"cat\"}\n"
    );
}

/// A file only touched (same content, new mtime), or copied again unchanged, is not re-read.
#[test]
fn a_touched_file_is_not_read_again() {
    let sandbox = drop_folder("");
    run(&sandbox, ["-q", "run", "p.toml"]).assert_success();
    age(&sandbox, &["out/a.ndjson", "out/b.ndjson"]);
    set_mtime(
        &sandbox.join("in/a.csv"),
        Duration::from_secs(1_500_000_000),
    );
    sandbox.write("in/b.csv", B_CSV);
    let (outcome, report) = run_reporting(&sandbox, &["run", "p.toml"]);
    outcome.assert_success();
    assert_eq!(report["outcome"], "nothing_new");
    assert_eq!(paths(&report, "files_read"), Vec::<String>::new());
    assert_untouched(&sandbox, &["out/a.ndjson", "out/b.ndjson"]);
}

/// `reprocess = "never"`: a delivered file is not read again even when its content changed.
#[test]
fn reprocess_never_skips_a_changed_file() {
    let sandbox = drop_folder("reprocess = \"never\"");
    run(&sandbox, ["-q", "run", "p.toml"]).assert_success();
    age(&sandbox, &["out/a.ndjson", "out/b.ndjson"]);
    sandbox.write("in/a.csv", "id,name\n1,ant\n2,bee\n7,gnu\n");
    sandbox.write("in/c.csv", C_CSV);
    let (outcome, report) = run_reporting(&sandbox, &["run", "p.toml"]);
    outcome.assert_success();
    assert_eq!(paths(&report, "files_read"), ["in/c.csv"]);
    assert_eq!(
        paths(&report, "files_already_processed"),
        ["in/a.csv", "in/b.csv"]
    );
    assert_eq!(sandbox.read("out/a.ndjson"), A_NDJSON);
    assert_untouched(&sandbox, &["out/a.ndjson", "out/b.ndjson"]);
}

/// `reprocess = "always"`: every run reads every file, and no ledger is kept.
#[test]
fn reprocess_always_reads_everything_every_run() {
    let sandbox = drop_folder("reprocess = \"always\"");
    for _ in 0..2 {
        age_if_present(&sandbox, &["out/a.ndjson", "out/b.ndjson"]);
        let (outcome, report) = run_reporting(&sandbox, &["run", "p.toml"]);
        outcome.assert_success();
        assert_eq!(report["outcome"], "success");
        assert_eq!(paths(&report, "files_read"), ["in/a.csv", "in/b.csv"]);
        assert_eq!(
            paths(&report, "files_already_processed"),
            Vec::<String>::new()
        );
        assert_rewritten(&sandbox, "out/a.ndjson");
        assert_rewritten(&sandbox, "out/b.ndjson");
        assert_eq!(sandbox.read("out/a.ndjson"), A_NDJSON);
    }
    let show = run(&sandbox, ["state", "show", "p.toml"]);
    show.assert_success();
    assert!(
        show.stdout().contains("\nledger: 0 files delivered\n"),
        "{}",
        show.stdout()
    );
}

fn age_if_present(sandbox: &Sandbox, outputs: &[&str]) {
    for output in outputs {
        if sandbox.exists(output) {
            age(sandbox, &[output]);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// `state` and `runs`
// ---------------------------------------------------------------------------------------------

/// `state show`: where the state is, the cursors, the ledger size, the lock and the last runs,
/// newest first; before any run, that there is no state yet.
#[test]
fn state_show_prints_the_ledger_and_the_last_runs() {
    let sandbox = drop_folder("");
    let before = run(&sandbox, ["state", "show", "p.toml"]);
    before.assert_success().assert_stderr("");
    assert_eq!(
        before.stdout(),
        "pipeline `p` has no state yet (.longshore/state.db does not exist)\n"
    );
    assert!(!sandbox.exists(".longshore"), "`state show` created state");

    run(&sandbox, ["-q", "run", "p.toml"]).assert_success();
    run(&sandbox, ["-q", "run", "p.toml"]).assert_success();
    let show = run(&sandbox, ["state", "show", "p.toml"]);
    show.assert_success().assert_stderr("");
    assert_matches(
        show.stdout(),
        "pipeline `p` (state in .longshore/state.db)
cursors: none
ledger: 2 files delivered
outbox: 0 sent and not acknowledged, 0 acknowledged
lock: free
last runs:
  {run_id}  {time}  nothing_new  0 records read, 0 files written, 0 rejected, {secs}s
  {run_id}  {time}  success      4 records read, 2 files written, 0 rejected, {secs}s
",
    );
}

/// `runs` lists runs newest first; `runs --json` gives their full reports; `-n` limits them.
#[test]
fn runs_lists_the_history_newest_first() {
    let sandbox = drop_folder("");
    let none = run(&sandbox, ["runs", "p.toml"]);
    none.assert_success().assert_stderr("");
    assert_eq!(none.stdout(), "  (none)\n");

    run(&sandbox, ["-q", "run", "p.toml"]).assert_success();
    run(&sandbox, ["-q", "run", "p.toml"]).assert_success();
    sandbox.write("in/c.csv", C_CSV);
    run(&sandbox, ["-q", "run", "p.toml"]).assert_success();

    let text = run(&sandbox, ["runs", "p.toml"]);
    text.assert_success().assert_stderr("");
    assert_matches(
        text.stdout(),
        "  {run_id}  {time}  success      2 records read, 1 file written, 0 rejected, {secs}s
  {run_id}  {time}  nothing_new  0 records read, 0 files written, 0 rejected, {secs}s
  {run_id}  {time}  success      4 records read, 2 files written, 0 rejected, {secs}s
",
    );

    let json = run(&sandbox, ["runs", "p.toml", "--json"]);
    json.assert_success().assert_stderr("");
    let runs: Value = serde_json::from_str(json.stdout()).expect("runs --json prints JSON");
    let runs = runs.as_array().expect("an array of reports");
    let field = |name: &str| runs.iter().map(|r| r[name].clone()).collect::<Vec<_>>();
    assert_eq!(
        field("outcome"),
        [json!("success"), json!("nothing_new"), json!("success")]
    );
    assert_eq!(field("records_read"), [json!(2), json!(0), json!(4)]);
    assert_eq!(field("pipeline"), [json!("p"), json!("p"), json!("p")]);
    assert_eq!(paths(&runs[0], "files_read"), ["in/c.csv"]);
    assert_eq!(paths(&runs[0], "files_written"), ["out/c.ndjson"]);
    assert_eq!(paths(&runs[2], "files_read"), ["in/a.csv", "in/b.csv"]);
    // The text lists the same runs, in the same order.
    let ids_in_text: Vec<&str> = text
        .stdout()
        .lines()
        .map(|l| l.split_whitespace().next().expect("a run id"))
        .collect();
    let ids_in_json: Vec<&str> = runs
        .iter()
        .map(|r| r["run_id"].as_str().expect("a run id"))
        .collect();
    assert_eq!(ids_in_text, ids_in_json);
    assert!(
        ids_in_json.iter().all(|id| is_run_id(id)),
        "{ids_in_json:?}"
    );

    let limited = run(&sandbox, ["runs", "p.toml", "-n", "1"]);
    limited.assert_success();
    let newest = text.stdout().lines().next().expect("a run");
    assert_eq!(limited.stdout(), format!("{newest}\n"));
}

/// `state forget`: the forgotten file is read again by the next run, and only it.
#[test]
fn state_forget_makes_the_next_run_read_the_file_again() {
    let sandbox = drop_folder("");
    run(&sandbox, ["-q", "run", "p.toml"]).assert_success();
    age(&sandbox, &["out/a.ndjson", "out/b.ndjson"]);
    let forget = run(&sandbox, ["state", "forget", "p.toml", "in/a.csv"]);
    forget.assert_success().assert_stderr("");
    assert_eq!(
        forget.stdout(),
        format!(
            "forgot {}: the next run of `p` reads it again\n",
            key(&sandbox, "in/a.csv").display()
        )
    );
    let (outcome, report) = run_reporting(&sandbox, &["run", "p.toml"]);
    outcome.assert_success();
    assert_eq!(paths(&report, "files_read"), ["in/a.csv"]);
    assert_eq!(paths(&report, "files_already_processed"), ["in/b.csv"]);
    assert_rewritten(&sandbox, "out/a.ndjson");
    assert_eq!(sandbox.read("out/a.ndjson"), A_NDJSON);
    assert_untouched(&sandbox, &["out/b.ndjson"]);
}

/// `state forget` of a file the ledger does not hold (a typo, or forgotten already) is a usage
/// error that changes nothing.
#[test]
fn state_forget_of_an_unknown_file_is_a_usage_error() {
    let sandbox = drop_folder("");
    run(&sandbox, ["-q", "run", "p.toml"]).assert_success();
    for file in ["in/zzz.csv", "in/a.csv"] {
        if file == "in/a.csv" {
            run(&sandbox, ["state", "forget", "p.toml", file]).assert_success();
        }
        let outcome = run(&sandbox, ["state", "forget", "p.toml", file]);
        outcome.assert_code(2).assert_stderr(&format!(
            "error: {} is not in the ledger of pipeline `p`: it was never delivered, or was forgotten already\n",
            key(&sandbox, file).display()
        ));
        assert_eq!(outcome.stdout(), "");
    }
    let show = run(&sandbox, ["state", "show", "p.toml"]);
    assert!(
        singular(show.stdout()).contains("\nledger: 1 file delivered\n"),
        "{}",
        show.stdout()
    );
}

/// `state reset` without `--yes` explains what it would do, exits 2 and changes nothing.
#[test]
fn state_reset_without_yes_changes_nothing() {
    let sandbox = drop_folder("");
    run(&sandbox, ["-q", "run", "p.toml"]).assert_success();
    let before = sandbox.read_bytes(".longshore/state.db");
    let outcome = run(&sandbox, ["state", "reset", "p.toml"]);
    outcome.assert_code(2).assert_stderr(
        "error: this forgets which files and records pipeline `p` delivered, so its next run delivers them again: add --yes to do it\n",
    );
    assert_eq!(outcome.stdout(), "");
    assert!(
        sandbox.read_bytes(".longshore/state.db") == before,
        "the state file changed"
    );
    let (outcome, report) = run_reporting(&sandbox, &["run", "p.toml"]);
    outcome.assert_success();
    assert_eq!(report["outcome"], "nothing_new");
}

/// `state reset --yes`: the next run delivers everything again; the run history stays.
#[test]
fn state_reset_with_yes_makes_the_next_run_deliver_everything() {
    let sandbox = drop_folder("");
    run(&sandbox, ["-q", "run", "p.toml"]).assert_success();
    age(&sandbox, &["out/a.ndjson", "out/b.ndjson"]);
    let reset = run(&sandbox, ["state", "reset", "p.toml", "--yes"]);
    reset.assert_success().assert_stderr("");
    assert_eq!(
        reset.stdout(),
        "reset pipeline `p`: its next run starts from scratch\n"
    );
    let (outcome, report) = run_reporting(&sandbox, &["run", "p.toml"]);
    outcome.assert_success();
    assert_eq!(paths(&report, "files_read"), ["in/a.csv", "in/b.csv"]);
    assert_rewritten(&sandbox, "out/a.ndjson");
    assert_rewritten(&sandbox, "out/b.ndjson");
    assert_eq!(sandbox.read("out/b.ndjson"), B_NDJSON);
    let runs = run(&sandbox, ["runs", "p.toml"]);
    assert_eq!(runs.stdout().lines().count(), 2, "{}", runs.stdout());
}

/// `state reset --cursor` sets the incremental cursor, which `state show` then shows.
#[test]
fn state_reset_with_a_cursor_sets_it() {
    let sandbox = drop_folder("");
    run(&sandbox, ["-q", "run", "p.toml"]).assert_success();
    let reset = run(
        &sandbox,
        [
            "state",
            "reset",
            "--cursor",
            "2024-01-01",
            "--yes",
            "p.toml",
        ],
    );
    reset.assert_success().assert_stderr("");
    assert_eq!(reset.stdout(), "reset pipeline `p`: cursor = 2024-01-01\n");
    let show = run(&sandbox, ["state", "show", "p.toml"]);
    show.assert_success();
    assert_matches(
        show.stdout(),
        "pipeline `p` (state in .longshore/state.db)
cursor cursor: 2024-01-01
ledger: 0 files delivered
outbox: 0 sent and not acknowledged, 0 acknowledged
lock: free
last runs:
  {run_id}  {time}  success      4 records read, 2 files written, 0 rejected, {secs}s
",
    );
}

/// `--state PATH` keeps the state there, for `run`, `state` and `runs` alike, and nothing is
/// created beside the pipeline file.
#[test]
fn the_state_flag_keeps_the_state_elsewhere() {
    let sandbox = drop_folder("");
    run(&sandbox, ["-q", "run", "--state", "var/s.db", "p.toml"]).assert_success();
    assert!(sandbox.exists("var/s.db"));
    assert!(!sandbox.exists(".longshore"), ".longshore/ was created");
    let (outcome, report) = run_reporting(&sandbox, &["run", "--state", "var/s.db", "p.toml"]);
    outcome.assert_success();
    assert_eq!(report["outcome"], "nothing_new");
    let show = run(&sandbox, ["state", "show", "--state", "var/s.db", "p.toml"]);
    assert!(
        show.stdout().starts_with(
            "pipeline `p` (state in var/s.db)\ncursors: none\nledger: 2 files delivered\n"
        ),
        "{}",
        show.stdout()
    );
    let runs = run(&sandbox, ["runs", "--state", "var/s.db", "p.toml"]);
    assert_eq!(runs.stdout().lines().count(), 2, "{}", runs.stdout());
    // Without the flag, the pipeline has no state.
    let show = run(&sandbox, ["state", "show", "p.toml"]);
    assert_eq!(
        show.stdout(),
        "pipeline `p` has no state yet (.longshore/state.db does not exist)\n"
    );
    assert!(!sandbox.exists(".longshore"), ".longshore/ was created");
}

/// `LONGSHORE_STATE` does what `--state` does.
#[test]
fn longshore_state_keeps_the_state_elsewhere() {
    let sandbox = drop_folder("");
    let with_env = |args: &[&str]| {
        let mut command = command(&sandbox, args);
        command.env("LONGSHORE_STATE", "var/s.db");
        crate::support::run(command)
    };
    with_env(&["-q", "run", "p.toml"]).assert_success();
    assert!(sandbox.exists("var/s.db"));
    assert!(!sandbox.exists(".longshore"), ".longshore/ was created");
    let second = with_env(&["run", "p.toml"]);
    second.assert_success();
    assert_eq!(
        log_lines(&second.stderr),
        ["INFO pipeline `p`: nothing new to read, nothing written"]
    );
    let show = with_env(&["state", "show", "p.toml"]);
    assert!(
        show.stdout().starts_with(
            "pipeline `p` (state in var/s.db)\ncursors: none\nledger: 2 files delivered\n"
        ),
        "{}",
        show.stdout()
    );
    assert!(!sandbox.exists(".longshore"), ".longshore/ was created");
}

/// `[state] path` in the pipeline file, relative to the file's directory whatever the working
/// directory.
#[test]
fn state_path_in_the_pipeline_file() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "pipelines/p.toml",
        drop_folder_pipeline("", "\n[state]\npath = \"../var/p.db\"\n").replace("in/", "../in/"),
    );
    sandbox.write("in/a.csv", A_CSV);
    sandbox.write("elsewhere/.keep", "");
    let pipeline_file = sandbox.join("pipelines/p.toml");
    let in_elsewhere = |args: &[&OsStr]| {
        let mut command = command(&sandbox, args);
        command.current_dir(sandbox.join("elsewhere"));
        crate::support::run(command)
    };
    let run_args = [
        OsStr::new("-q"),
        OsStr::new("run"),
        pipeline_file.as_os_str(),
    ];
    in_elsewhere(&run_args).assert_success();
    assert!(sandbox.exists("var/p.db"));
    assert!(!sandbox.exists("pipelines/.longshore"));
    assert!(!sandbox.exists("elsewhere/.longshore"));
    assert!(!sandbox.exists(".longshore"));
    assert_eq!(sandbox.read("pipelines/out/a.ndjson"), A_NDJSON);
    let show = run(&sandbox, ["state", "show", "pipelines/p.toml"]);
    assert!(
        singular(show.stdout()).starts_with(
            "pipeline `p` (state in var/p.db)\ncursors: none\nledger: 1 file delivered\n"
        ),
        "{}",
        show.stdout()
    );
    // The second run, from the sandbox itself, finds the same state.
    let second = run(&sandbox, ["run", "pipelines/p.toml"]);
    assert_eq!(
        log_lines(&second.stderr),
        ["INFO pipeline `p`: nothing new to read, nothing written"]
    );
}

// ---------------------------------------------------------------------------------------------
// Rejects
// ---------------------------------------------------------------------------------------------

const REJECTS: &str = "\n[rejects]\npath = \"rejects/{pipeline}.ndjson\"\n";

/// Rows 2 and 4 have the wrong number of fields, row 5 invalid UTF-8: 3 good rows, 3 bad.
const BAD_CSV: &[u8] = b"id,name\n1,ant\n2,bee,extra\n3,cat\n4\n5,\xffeel\n6,fox\n";
const BAD_CSV_GOOD_NDJSON: &str = "{\"id\":\"1\",\"name\":\"ant\"}\n{\"id\":\"3\",\"name\":\"cat\"}\n{\"id\":\"6\",\"name\":\"fox\"}\n";

/// A sandbox whose `p.toml` reads `in/*.csv` with the given top-level `extra` tables.
fn rejects_sandbox(extra: &str, csv: &[u8]) -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.write("p.toml", drop_folder_pipeline("", extra));
    sandbox.write("in/a.csv", csv);
    sandbox
}

/// Two ragged rows and one invalid UTF-8 row go to the rejects file, one object each with
/// file, position, reason and raw text; the good rows are delivered and the run succeeds.
#[test]
fn rejects_quarantines_bad_csv_rows() {
    let sandbox = rejects_sandbox(REJECTS, BAD_CSV);
    let outcome = run(&sandbox, ["run", "p.toml"]);
    outcome.assert_success();
    assert_eq!(
        log_lines(&outcome.stderr),
        [
            "INFO pipeline `p`: published out/a.ndjson (72 bytes)",
            "INFO pipeline `p`: published rejects/p.ndjson (426 bytes)",
            "INFO pipeline `p`: done, 3 records read from 1 file, 3 rejected to rejects/p.ndjson in {secs}s",
        ]
    );
    assert_eq!(sandbox.read("out/a.ndjson"), BAD_CSV_GOOD_NDJSON);
    let rejects = sandbox.read("rejects/p.ndjson");
    let lines: Vec<&str> = rejects.lines().collect();
    assert_eq!(lines.len(), 3, "{rejects}");
    assert_eq!(
        lines[0],
        r#"{"file":"in/a.csv","line":3,"column":null,"record":2,"field":null,"reason":"expected 2 fields (as in the header), found 3","raw":"2,bee,extra"}"#
    );
    assert_eq!(
        lines[1],
        r#"{"file":"in/a.csv","line":5,"column":null,"record":4,"field":null,"reason":"expected 2 fields (as in the header), found 1","raw":"4"}"#
    );
    // The raw text cannot hold the invalid byte: it is shown as U+FFFD. (The `field` value is
    // checked by `a_reject_names_its_field_by_name`.)
    let utf8: Value = serde_json::from_str(lines[2]).expect("a JSON object");
    for (name, expected) in [
        ("file", json!("in/a.csv")),
        ("line", json!(6)),
        ("column", Value::Null),
        ("record", json!(5)),
        (
            "reason",
            json!("invalid UTF-8 (byte 0xFF at offset 0 of the field)"),
        ),
        ("raw", json!("5,\u{fffd}eel")),
    ] {
        assert_eq!(utf8[name], expected, "`{name}` in {}", lines[2]);
    }
    assert_eq!(
        sandbox.files(""),
        ["in/a.csv", "out/a.ndjson", "p.toml", "rejects/p.ndjson"]
    );
}

/// The rejects file is for machines: `field` is the field's name, as in the header, not a
/// phrase for people.
#[test]
fn a_reject_names_its_field_by_name() {
    let sandbox = rejects_sandbox(REJECTS, b"id,name\n1,\xffant\n");
    run(&sandbox, ["-q", "run", "p.toml"]).assert_success();
    let reject: Value =
        serde_json::from_str(sandbox.read("rejects/p.ndjson").trim_end()).expect("one object");
    assert_eq!(reject["field"], json!("name"), "{reject}");
}

/// NDJSON input: a truncated line, a line that is not an object and invalid UTF-8 are each
/// quarantined with their line; the good lines are delivered.
#[test]
fn rejects_quarantines_bad_ndjson_lines() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "p.toml",
        pipeline(
            "path = \"in/*.ndjson\"",
            &["path = \"out/{source_stem}.ndjson\""],
        ) + REJECTS,
    );
    sandbox.write(
        "in/a.ndjson",
        b"{\"id\":1}\n{\"id\":2,\n{\"id\":3}\n[1,2]\n\n{\"id\":\"x\xff\"}\n{\"id\":4}\n",
    );
    let outcome = run(&sandbox, ["run", "p.toml"]);
    outcome.assert_success();
    assert_eq!(
        sandbox.read("out/a.ndjson"),
        "{\"id\":1}\n{\"id\":3}\n{\"id\":4}\n"
    );
    assert_eq!(
        sandbox.read("rejects/p.ndjson"),
        concat!(
            r#"{"file":"in/a.ndjson","line":2,"column":8,"record":null,"field":null,"reason":"invalid JSON: EOF while parsing a value","raw":"{\"id\":2,"}
{"file":"in/a.ndjson","line":4,"column":null,"record":null,"field":null,"reason":"invalid JSON: invalid type: sequence, expected a JSON object","raw":"[1,2]"}
{"file":"in/a.ndjson","line":6,"column":9,"record":null,"field":null,"reason":"invalid UTF-8 (byte 0xFF)","raw":"{\"id\":\"x"#,
            "\u{fffd}",
            r#"\"}"}
"#
        )
    );
}

/// A run without bad records publishes no rejects file.
#[test]
fn a_clean_run_writes_no_rejects_file() {
    let sandbox = rejects_sandbox(REJECTS, A_CSV.as_bytes());
    let (outcome, report) = run_reporting(&sandbox, &["run", "p.toml"]);
    outcome.assert_success();
    assert_eq!(sandbox.read("out/a.ndjson"), A_NDJSON);
    assert!(!sandbox.exists("rejects"), "a rejects folder was created");
    assert_eq!(
        report["rejects"],
        json!({"total": 0, "by_reason": {}, "file": null})
    );
}

/// Without `[rejects]`, the first bad row fails the run (exit 1, file and line named) and
/// nothing is published; the file stays undelivered, so the run after the fix reads it.
#[test]
fn without_rejects_the_first_bad_row_fails_the_run() {
    let sandbox = rejects_sandbox("", BAD_CSV);
    sandbox.write("in/b.csv", B_CSV);
    let outcome = run(&sandbox, ["run", "p.toml"]);
    outcome.assert_code(1).assert_stderr(
        "error: pipeline `p`: source (file) failed
  caused by: in/a.csv: line 3, record 2: expected 2 fields (as in the header), found 3. fix the row, or set `flexible = true` in the csv format to accept ragged rows
",
    );
    sandbox.assert_not_published("out/a.ndjson");
    sandbox.assert_not_published("out/b.ndjson");
    assert_eq!(sandbox.files(""), ["in/a.csv", "in/b.csv", "p.toml"]);

    sandbox.write("in/a.csv", A_CSV);
    let (outcome, report) = run_reporting(&sandbox, &["run", "p.toml"]);
    outcome.assert_success();
    assert_eq!(paths(&report, "files_read"), ["in/a.csv", "in/b.csv"]);
    assert_eq!(sandbox.read("out/a.ndjson"), A_NDJSON);
    assert_eq!(sandbox.read("out/b.ndjson"), B_NDJSON);
}

/// Two bad rows with `max_rejects = 1`: exit 1, a message with the count, the limit and the
/// first reject; no output and no rejects file published, and the file is not marked
/// delivered.
#[test]
fn max_rejects_exceeded_publishes_nothing() {
    let csv = b"id,name\n1,ant\n2,bee,extra\n3,cat\n4\n5,eel\n6,fox\n";
    let sandbox = rejects_sandbox(&format!("{REJECTS}max_rejects = 1\n"), csv);
    let (outcome, report) = run_reporting(&sandbox, &["run", "p.toml"]);
    outcome.assert_code(1).assert_stderr(
        "error: pipeline `p`: rejects failed
  caused by: 2 of 6 records were rejected, more than max_rejects = 1: nothing was published. The first: in/a.csv: line 3, record 2: expected 2 fields (as in the header), found 3
",
    );
    sandbox.assert_not_published("out/a.ndjson");
    sandbox.assert_not_published("rejects/p.ndjson");
    assert_eq!(sandbox.files(""), ["in/a.csv", "p.toml"]);
    assert_eq!(report["outcome"], "failure");
    assert_eq!(report["files_written"], json!([]));
    assert_eq!(report["rejects"]["total"], 2);

    // With the limit raised, the same file is read again and delivered.
    sandbox.write(
        "p.toml",
        drop_folder_pipeline("", &format!("{REJECTS}max_rejects = 2\n")),
    );
    run(&sandbox, ["-q", "run", "p.toml"]).assert_success();
    assert_eq!(sandbox.read("out/a.ndjson").lines().count(), 4);
    assert_eq!(sandbox.read("rejects/p.ndjson").lines().count(), 2);
}

/// `max_rejects = "N%"` is a share of every record read, rejects included: 2 of 6 is 33.3%.
#[test]
fn max_rejects_percentage() {
    let csv = b"id,name\n1,ant\n2,bee,extra\n3,cat\n4\n5,eel\n6,fox\n";
    for (limit, passes) in [
        ("50%", true),
        ("33.4%", true),
        ("33%", false),
        ("0%", false),
    ] {
        let sandbox = rejects_sandbox(&format!("{REJECTS}max_rejects = \"{limit}\"\n"), csv);
        let outcome = run(&sandbox, ["-q", "run", "p.toml"]);
        if passes {
            outcome.assert_success().assert_stderr("");
            assert_eq!(sandbox.read("out/a.ndjson").lines().count(), 4, "{limit}");
            assert_eq!(
                sandbox.read("rejects/p.ndjson").lines().count(),
                2,
                "{limit}"
            );
        } else {
            outcome.assert_code(1).assert_stderr(&format!(
                "error: pipeline `p`: rejects failed
  caused by: 2 of 6 records were rejected, more than max_rejects = \"{limit}\": nothing was published. The first: in/a.csv: line 3, record 2: expected 2 fields (as in the header), found 3
"
            ));
            assert_eq!(sandbox.files(""), ["in/a.csv", "p.toml"], "{limit}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// --dry-run
// ---------------------------------------------------------------------------------------------

/// `--dry-run` prints what would be written where, writes nothing, creates no state, and
/// leaves the ledger alone: a real run afterwards delivers everything.
#[test]
fn dry_run_prints_the_plan_and_writes_nothing() {
    let sandbox = drop_folder("");
    sandbox.write(
        "p.toml",
        pipeline(
            "path = \"in/*.csv\"",
            &[
                "path = \"out/{source_stem}.ndjson\"",
                "path = \"out/all.csv\"",
            ],
        ),
    );
    let dry = run(&sandbox, ["run", "--dry-run", "p.toml"]);
    dry.assert_success().assert_stderr("");
    assert_eq!(
        dry.stdout(),
        "dry run of pipeline `p`: 4 records read from 2 files (0 already delivered, skipped); nothing was written
  sink 1 (file) would write 2 records to out/a.ndjson
  sink 1 (file) would write 2 records to out/b.ndjson
  sink 2 (file) would write 4 records to out/all.csv
"
    );
    assert_eq!(sandbox.files(""), ["in/a.csv", "in/b.csv", "p.toml"]);
    assert!(!sandbox.exists("out"), "out/ was created");
    assert!(!sandbox.exists(".longshore"), ".longshore/ was created");

    let (outcome, report) = run_reporting(&sandbox, &["run", "p.toml"]);
    outcome.assert_success();
    assert_eq!(paths(&report, "files_read"), ["in/a.csv", "in/b.csv"]);
    assert_eq!(sandbox.read("out/a.ndjson"), A_NDJSON);
    assert_eq!(
        sandbox.read("out/all.csv"),
        "id,name\n1,ant\n2,bee\n3,cat\n4,dog\n"
    );
}

/// With a ledger, a dry run skips what was delivered, and records nothing: neither the files
/// it read nor a run in the history.
#[test]
fn dry_run_does_not_move_the_ledger() {
    let sandbox = Sandbox::new();
    sandbox.write("p.toml", drop_folder_pipeline("", ""));
    sandbox.write("in/a.csv", A_CSV);
    run(&sandbox, ["-q", "run", "p.toml"]).assert_success();
    sandbox.write("in/b.csv", B_CSV);
    sandbox.write("in/c.csv", C_CSV);
    let state_before = sandbox.read_bytes(".longshore/state.db");
    let dry = run(&sandbox, ["run", "--dry-run", "p.toml"]);
    dry.assert_success().assert_stderr("");
    assert_eq!(
        dry.stdout(),
        "dry run of pipeline `p`: 4 records read from 2 files (1 already delivered, skipped); nothing was written
  sink 1 (file) would write 2 records to out/b.ndjson
  sink 1 (file) would write 2 records to out/c.ndjson
"
    );
    assert!(
        sandbox.read_bytes(".longshore/state.db") == state_before,
        "the dry run changed the state file"
    );
    assert_eq!(sandbox.files("out"), ["out/a.ndjson"]);
    assert_eq!(
        run(&sandbox, ["runs", "p.toml"]).stdout().lines().count(),
        1
    );

    let (outcome, report) = run_reporting(&sandbox, &["run", "p.toml"]);
    outcome.assert_success();
    assert_eq!(paths(&report, "files_read"), ["in/b.csv", "in/c.csv"]);
    assert_eq!(sandbox.read("out/b.ndjson"), B_NDJSON);
    assert_eq!(sandbox.read("out/c.ndjson"), C_NDJSON);
}

/// A dry run's report lists the files it would have written, as the report's documentation
/// says (`files_written`: "Files published (or, in a dry run, that would have been)").
#[test]
fn dry_run_report_lists_the_files_it_would_write() {
    let sandbox = drop_folder("");
    let outcome = run(&sandbox, ["run", "--dry-run", "p.toml", "--report", REPORT]);
    outcome.assert_success();
    let report = read_json(&sandbox, REPORT);
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["outcome"], "success");
    assert_eq!(report["files_written"], json!([]));
    assert_eq!(
        report["planned"],
        json!([
            {"sink": "sink 1 (file)", "destination": "out/a.ndjson", "records": 2},
            {"sink": "sink 1 (file)", "destination": "out/b.ndjson", "records": 2},
        ])
    );
}

// ---------------------------------------------------------------------------------------------
// --report
// ---------------------------------------------------------------------------------------------

/// The report of a successful run: outcome, counts, every file read (size, SHA-256) and
/// written (path, size, SHA-256 of what is on disk), and per-stage counts.
#[test]
fn report_describes_a_successful_run() {
    let sandbox = drop_folder("");
    let (outcome, report) = run_reporting(&sandbox, &["run", "p.toml"]);
    outcome.assert_success();
    assert_eq!(report["pipeline"], "p");
    assert_eq!(report["outcome"], "success");
    assert_eq!(report["dry_run"], false);
    assert_eq!(report["records_read"], 4);
    assert!(
        is_run_id(report["run_id"].as_str().unwrap_or("")),
        "{report:#}"
    );
    let digest = |relative: &str| {
        let bytes = sandbox.read_bytes(relative);
        json!({"path": relative, "size": bytes.len(), "sha256": sha256_hex(&bytes)})
    };
    assert_eq!(
        report["files_read"],
        json!([digest("in/a.csv"), digest("in/b.csv")])
    );
    assert_eq!(
        report["files_written"],
        json!([digest("out/a.ndjson"), digest("out/b.ndjson")])
    );
    assert_eq!(report["files_already_processed"], json!([]));
    assert_eq!(
        report["stages"],
        json!([
            {"stage": "source (file)", "records_in": 4, "records_out": 4, "bytes": 40},
            {"stage": "sink 1 (file)", "records_in": 4, "records_out": 4, "bytes": 96},
        ])
    );
    assert_eq!(report["error"], json!([]));
    assert_eq!(report["warnings"], json!([]));
}

/// The report of a failed run: outcome "failure", the error and its causes, nothing written.
#[test]
fn report_of_a_failed_run_has_the_error_chain() {
    let sandbox = drop_folder("");
    sandbox.write("in/b.csv", "id,name\n3,cat,extra\n");
    let (outcome, report) = run_reporting(&sandbox, &["run", "p.toml"]);
    outcome.assert_code(1);
    assert_eq!(report["outcome"], "failure");
    assert_eq!(
        report["error"],
        json!([
            "pipeline `p`: source (file) failed",
            "in/b.csv: line 2, record 1: expected 2 fields (as in the header), found 3. fix the row, or set `flexible = true` in the csv format to accept ragged rows",
        ])
    );
    assert_eq!(report["files_written"], json!([]));
    // How far it got: a.csv was read completely before b.csv failed.
    assert_eq!(report["records_read"], 2);
    let read: Vec<&str> = report["files_read"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(read, ["in/a.csv"]);
    assert!(!sandbox.exists("out/a.ndjson"));
}

/// With several pipelines, `--report` needs `{pipeline}` in its path (exit 2 before any run);
/// with it, each pipeline gets its own report.
#[test]
fn report_for_several_pipelines_needs_the_placeholder() {
    let sandbox = drop_folder("");
    sandbox.write(
        "q.toml",
        pipeline("path = \"in/a.csv\"", &["path = \"out/q.ndjson\""]),
    );
    let outcome = run(&sandbox, ["run", "p.toml", "q.toml", "--report", "r.json"]);
    outcome.assert_code(2).assert_stderr(
        "error: --report r.json would hold only the last of 2 runs: put `{pipeline}` in the path\n",
    );
    assert_eq!(
        sandbox.files(""),
        ["in/a.csv", "in/b.csv", "p.toml", "q.toml"]
    );
    assert!(!sandbox.exists(".longshore"));

    run(
        &sandbox,
        [
            "-q",
            "run",
            "p.toml",
            "q.toml",
            "--report",
            "r-{pipeline}.json",
        ],
    )
    .assert_success();
    let p = read_json(&sandbox, "r-p.json");
    let q = read_json(&sandbox, "r-q.json");
    assert_eq!(
        (&p["pipeline"], &p["records_read"]),
        (&json!("p"), &json!(4))
    );
    assert_eq!(
        (&q["pipeline"], &q["records_read"]),
        (&json!("q"), &json!(2))
    );
    assert_eq!(paths(&q, "files_written"), ["out/q.ndjson"]);
}

/// A report that cannot be written is an error for that pipeline, but, like a pipeline's
/// failure, it does not stop the pipelines after it; the message names the report, not an
/// internal temporary file.
#[test]
fn a_report_that_cannot_be_written_does_not_stop_the_other_pipelines() {
    let sandbox = drop_folder("");
    sandbox.write(
        "q.toml",
        pipeline("path = \"in/a.csv\"", &["path = \"out/q.ndjson\""]),
    );
    // The report's folder would be inside a file: it cannot exist.
    let outcome = run(
        &sandbox,
        [
            "-q",
            "run",
            "p.toml",
            "q.toml",
            "--report",
            "in/a.csv/{pipeline}.json",
        ],
    );
    outcome.assert_code(1);
    assert_eq!(sandbox.read("out/a.ndjson"), A_NDJSON);
    assert!(
        sandbox.exists("out/q.ndjson"),
        "pipeline q did not run; stderr:\n{}",
        outcome.stderr
    );
    assert_eq!(sandbox.read("out/q.ndjson"), A_NDJSON);
    assert!(
        outcome
            .stderr
            .contains("error: cannot write the run report to in/a.csv/p.json\n"),
        "{}",
        outcome.stderr
    );
    assert!(
        outcome
            .stderr
            .contains("error: cannot write the run report to in/a.csv/q.json\n"),
        "{}",
        outcome.stderr
    );
    assert!(!outcome.stderr.contains(".tmp"), "{}", outcome.stderr);
}

// ---------------------------------------------------------------------------------------------
// Logs
// ---------------------------------------------------------------------------------------------

/// Parses every stderr line as a JSON object and returns the messages, durations masked.
fn json_log_messages(stderr: &str) -> Vec<String> {
    assert!(!stderr.is_empty(), "nothing was logged");
    stderr
        .lines()
        .map(|line| {
            let event: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("a stderr line is not JSON ({e}): {line:?}"));
            assert!(event.is_object(), "not an object: {line}");
            assert!(event["timestamp"].is_string(), "no timestamp: {line}");
            let level = event["level"]
                .as_str()
                .unwrap_or_else(|| panic!("no level: {line}"));
            let message = event["message"]
                .as_str()
                .unwrap_or_else(|| panic!("no message: {line}"));
            format!("{level} {}", without_duration(message))
        })
        .collect()
}

const JSON_RUN_MESSAGES: [&str; 3] = [
    "INFO pipeline `p`: published out/a.ndjson (48 bytes)",
    "INFO pipeline `p`: published out/b.ndjson (48 bytes)",
    "INFO pipeline `p`: done, 4 records read from 2 files in {secs}s",
];

/// `--log-format json`: every stderr line is a JSON object, the last saying the pipeline is
/// done.
#[test]
fn log_format_json_makes_every_line_a_json_object() {
    let sandbox = drop_folder("");
    let outcome = run(&sandbox, ["--log-format", "json", "run", "p.toml"]);
    outcome.assert_success();
    assert_eq!(json_log_messages(&outcome.stderr), JSON_RUN_MESSAGES);
    let second = run(&sandbox, ["run", "--log-format", "json", "p.toml"]);
    let event: Value = serde_json::from_str(second.stderr.trim_end()).expect("one JSON line");
    assert_eq!(
        event["message"],
        "pipeline `p`: nothing new to read, nothing written"
    );
}

/// `LONGSHORE_LOG_FORMAT=json` selects JSON when stderr is not a terminal (here a pipe), and
/// `--log-format text` overrides it.
#[test]
fn longshore_log_format_selects_json_when_stderr_is_not_a_terminal() {
    let sandbox = drop_folder("");
    let mut json_logs = command(&sandbox, ["run", "p.toml"]);
    json_logs.env("LONGSHORE_LOG_FORMAT", "json");
    let outcome = crate::support::run(json_logs);
    outcome.assert_success();
    assert_eq!(json_log_messages(&outcome.stderr), JSON_RUN_MESSAGES);

    sandbox.write("in/c.csv", C_CSV);
    let mut text_logs = command(&sandbox, ["--log-format", "text", "run", "p.toml"]);
    text_logs.env("LONGSHORE_LOG_FORMAT", "json");
    let outcome = crate::support::run(text_logs);
    outcome.assert_success();
    assert_eq!(
        log_lines(&outcome.stderr),
        [
            "INFO pipeline `p`: published out/c.ndjson (48 bytes)",
            "INFO pipeline `p`: done, 2 records read from 1 file in {secs}s",
        ]
    );
}

/// `-q`: a successful run prints nothing at all; a failed one only its error.
#[test]
fn quiet_prints_nothing_for_a_successful_run() {
    let sandbox = drop_folder("");
    let outcome = run(&sandbox, ["-q", "run", "p.toml"]);
    outcome.assert_success().assert_stderr("");
    assert_eq!(outcome.stdout(), "");
    assert_eq!(sandbox.read("out/a.ndjson"), A_NDJSON);
    let outcome = run(&sandbox, ["run", "-q", "p.toml"]);
    outcome.assert_success().assert_stderr("");

    sandbox.write("in/c.csv", "id\n1,2\n");
    run(&sandbox, ["-q", "run", "p.toml"]).assert_code(1).assert_stderr(
        "error: pipeline `p`: source (file) failed
  caused by: in/c.csv: line 2, record 1: expected 1 field (as in the header), found 2. fix the row, or set `flexible = true` in the csv format to accept ragged rows
",
    );
}

/// With JSON logs, a failed run's error reaches the log collector as a JSON object too (level
/// ERROR, with its causes), rather than as plain text lines among the JSON.
#[test]
fn json_logs_carry_the_error_of_a_failed_run() {
    let sandbox = drop_folder("");
    sandbox.write("in/b.csv", "id,name\n3,cat,extra\n");
    let outcome = run(&sandbox, ["--log-format", "json", "run", "p.toml"]);
    outcome.assert_code(1);
    let messages = json_log_messages(&outcome.stderr);
    assert!(
        messages.iter().any(|m| m.starts_with("ERROR ")
            && m.contains("pipeline `p`: source (file) failed")
            && m.contains("in/b.csv: line 2, record 1: expected 2 fields")),
        "{messages:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Wording
// ---------------------------------------------------------------------------------------------

/// `runs` and `state show` say why a run failed: the cause naming the file and line, not only
/// the stage that failed.
#[test]
fn runs_shows_why_a_run_failed() {
    let sandbox = drop_folder("");
    sandbox.write("in/b.csv", "id,name\n3,cat,extra\n");
    run(&sandbox, ["-q", "run", "p.toml"]).assert_code(1);
    for args in [&["runs", "p.toml"][..], &["state", "show", "p.toml"]] {
        let outcome = run(&sandbox, args);
        outcome.assert_success();
        let line = outcome
            .stdout()
            .lines()
            .find(|l| l.contains("failure"))
            .unwrap_or_else(|| panic!("no failed run listed:\n{}", outcome.stdout()));
        assert!(
            line.contains(
                "in/b.csv: line 2, record 1: expected 2 fields (as in the header), found 3"
            ),
            "{line}"
        );
    }
}

/// A count of one is singular: "1 record", "1 file".
#[test]
fn counts_of_one_are_singular() {
    let sandbox = Sandbox::new();
    sandbox.write("p.toml", drop_folder_pipeline("", ""));
    sandbox.write("in/a.csv", "id\n1\n");
    let dry = run(&sandbox, ["run", "--dry-run", "p.toml"]);
    dry.assert_success();
    let outcome = run(&sandbox, ["run", "p.toml"]);
    outcome.assert_success();
    let show = run(&sandbox, ["state", "show", "p.toml"]);
    let mut shown: Vec<String> = dry.stdout().lines().map(str::to_string).collect();
    shown.extend(log_lines_as_written(&outcome.stderr));
    shown.extend(
        show.stdout()
            .lines()
            .filter(|l| l.starts_with("ledger:"))
            .map(str::to_string),
    );
    assert_eq!(
        shown,
        [
            "dry run of pipeline `p`: 1 record read from 1 file (0 already delivered, skipped); nothing was written",
            "  sink 1 (file) would write 1 record to out/a.ndjson",
            "INFO pipeline `p`: published out/a.ndjson (11 bytes)",
            "INFO pipeline `p`: done, 1 record read from 1 file in {secs}s",
            "ledger: 1 file delivered",
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// The README demo
// ---------------------------------------------------------------------------------------------

/// The README's quick start, run twice as cron would: the second run has nothing new and
/// leaves the outputs alone; the state is kept beside the pipeline file.
#[test]
fn the_demo_run_twice_has_nothing_new_the_second_time() {
    let sandbox = crate::pipelines::demo_sandbox();
    let first = run(&sandbox, ["run", "pipelines/demo.toml"]);
    first.assert_success();
    assert_eq!(
        log_lines(&first.stderr),
        [
            "INFO pipeline `demo`: published out/demo-orders.ndjson (1091 bytes)",
            "INFO pipeline `demo`: published out/demo-orders-finance.csv (568 bytes)",
            "INFO pipeline `demo`: done, 6 records read from 1 file in {secs}s",
        ]
    );
    let outputs = ["out/demo-orders.ndjson", "out/demo-orders-finance.csv"];
    let contents: Vec<Vec<u8>> = outputs.iter().map(|o| sandbox.read_bytes(o)).collect();
    age(&sandbox, &outputs);

    let second = run(&sandbox, ["run", "pipelines/demo.toml"]);
    second.assert_success();
    assert_eq!(second.stdout(), "");
    assert_eq!(
        log_lines(&second.stderr),
        ["INFO pipeline `demo`: nothing new to read, nothing written"]
    );
    assert_untouched(&sandbox, &outputs);
    let after: Vec<Vec<u8>> = outputs.iter().map(|o| sandbox.read_bytes(o)).collect();
    assert!(after == contents, "the outputs changed");
    assert!(sandbox.exists("pipelines/.longshore/state.db"));
    assert!(!sandbox.exists(".longshore"));
}

/// `state forget` on a pipeline that never ran says so and creates no state.
#[test]
fn state_forget_without_state_creates_none() {
    let sandbox = drop_folder("");
    run(&sandbox, ["state", "forget", "p.toml", "in/a.csv"])
        .assert_code(2)
        .assert_stderr(
            "error: pipeline `p` has no state yet (.longshore/state.db does not exist): nothing to forget\n",
        );
    assert!(!sandbox.exists(".longshore"));
}
