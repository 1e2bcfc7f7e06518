//! Runs without records: a source that finds only input without rows (a file with just its
//! header) publishes nothing by default, ends `nothing_new` and still records the input as
//! delivered; `if_empty = "write"` publishes an empty file in the format's own form instead;
//! `--dry-run` says which each sink would do.

use serde_json::{Value, json};

use crate::operate::paths;
use crate::support::{Outcome, Sandbox, pipeline};

/// Where `run_reporting` writes the report; removed once read, so file listings stay clean.
const REPORT: &str = "report.json";

/// A CSV with its header and no row.
const HEADER_ONLY: &str = "id,name\n";

/// `longshore <args> --report report.json`: the outcome and the parsed report.
fn run_reporting(sandbox: &Sandbox, args: &[&str]) -> (Outcome, Value) {
    let outcome = sandbox.run(args.iter().copied().chain(["--report", REPORT]));
    let report = serde_json::from_str(&sandbox.read(REPORT)).expect("a JSON report");
    std::fs::remove_file(sandbox.join(REPORT)).expect("remove the report");
    (outcome, report)
}

/// The log lines on stderr without their timestamps.
fn log_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .map(|line| {
            line.split_once(' ')
                .map_or(line, |(_, rest)| rest.trim_start())
        })
        .collect()
}

/// `in/*.csv` to the given sinks (lines of `[[sinks]]` tables of type `file`).
fn drop_to(sinks: &[&str]) -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.write("p.toml", pipeline("path = \"in/*.csv\"", sinks));
    sandbox
}

#[test]
fn a_new_file_without_rows_publishes_nothing_and_is_not_read_again() {
    let sandbox = drop_to(&["path = \"out/orders.csv\""]);
    sandbox.write("in/a.csv", HEADER_ONLY);

    let (outcome, report) = run_reporting(&sandbox, &["run", "p.toml"]);
    outcome.assert_success();
    assert_eq!(report["outcome"], "nothing_new");
    assert_eq!(report["records_read"], 0);
    assert_eq!(paths(&report, "files_read"), ["in/a.csv"]);
    assert_eq!(report["files_written"], json!([]));
    assert_eq!(
        log_lines(&outcome.stderr),
        ["INFO pipeline `p`: nothing new: no records, nothing written"]
    );
    assert!(!sandbox.exists("out"), "an output was written");
    sandbox.assert_no_temp_files();

    // The ledger has it: the next run reads nothing.
    let (outcome, report) = run_reporting(&sandbox, &["run", "p.toml"]);
    outcome.assert_success();
    assert_eq!(report["outcome"], "nothing_new");
    assert_eq!(report["files_read"], json!([]));
    assert_eq!(paths(&report, "files_already_processed"), ["in/a.csv"]);
    assert_eq!(
        log_lines(&outcome.stderr),
        ["INFO pipeline `p`: nothing new to read, nothing written"]
    );
    assert!(!sandbox.exists("out"));

    // Records that come later are delivered as usual.
    sandbox.write("in/b.csv", "id,name\n1,ant\n");
    let (outcome, report) = run_reporting(&sandbox, &["-q", "run", "p.toml"]);
    outcome.assert_success();
    assert_eq!(report["outcome"], "success");
    assert_eq!(paths(&report, "files_read"), ["in/b.csv"]);
    assert_eq!(sandbox.read("out/orders.csv"), "id,name\n1,ant\n");
    let runs = sandbox.run(["runs", "p.toml"]);
    let outcomes: Vec<&str> = runs
        .stdout()
        .lines()
        .filter_map(|line| line.split_whitespace().nth(2))
        .collect();
    assert_eq!(outcomes, ["success", "nothing_new", "nothing_new"]);
}

/// `if_empty = "write"`: the empty file in each format's own form, published through the
/// commit like any output, every run that has no record for it.
#[test]
fn if_empty_write_publishes_the_header_where_the_columns_are_known() {
    let sandbox = drop_to(&[
        "path = \"out/orders.csv\"\nformat = { type = \"csv\", columns = [\"id\", \"name\"] }\nif_empty = \"write\"",
        "path = \"out/orders.json\"\nif_empty = \"write\"",
        "path = \"out/orders.ndjson\"",
    ]);
    sandbox.write("in/a.csv", HEADER_ONLY);

    let (outcome, report) = run_reporting(&sandbox, &["run", "p.toml"]);
    outcome.assert_success();
    assert_eq!(report["outcome"], "nothing_new");
    assert_eq!(
        paths(&report, "files_written"),
        ["out/orders.csv", "out/orders.json"]
    );
    assert_eq!(sandbox.files("out"), ["out/orders.csv", "out/orders.json"]);
    assert_eq!(sandbox.read("out/orders.csv"), "id,name\n");
    assert_eq!(sandbox.read("out/orders.json"), "[]\n");
    assert_eq!(
        log_lines(&outcome.stderr),
        [
            "INFO pipeline `p`: nothing new: no records; published out/orders.csv, out/orders.json without records (if_empty = \"write\")"
        ]
    );
    sandbox.assert_no_temp_files();

    // Nothing new to read at all: the partner still gets its file, and the ledger kept a.csv.
    std::fs::remove_file(sandbox.join("out/orders.csv")).unwrap();
    let (outcome, report) = run_reporting(&sandbox, &["-q", "run", "p.toml"]);
    outcome.assert_success();
    assert_eq!(report["outcome"], "nothing_new");
    assert_eq!(paths(&report, "files_already_processed"), ["in/a.csv"]);
    assert_eq!(sandbox.read("out/orders.csv"), "id,name\n");
}

/// Without `columns` a CSV cannot know its header before a record: the empty file is empty.
#[test]
fn if_empty_write_without_columns_writes_zero_bytes() {
    let sandbox = drop_to(&["path = \"out/orders.csv\"\nif_empty = \"write\""]);
    sandbox.write("in/a.csv", HEADER_ONLY);
    sandbox.run(["-q", "run", "p.toml"]).assert_success();
    assert_eq!(sandbox.read("out/orders.csv"), "");
}

#[test]
fn dry_run_says_which_sinks_would_write_an_empty_file() {
    let sandbox = drop_to(&[
        "path = \"out/orders.ndjson\"",
        "path = \"out/orders.csv\"\nformat = { type = \"csv\", columns = [\"id\", \"name\"] }\nif_empty = \"write\"",
    ]);
    sandbox.write("in/a.csv", HEADER_ONLY);

    let (dry, report) = run_reporting(&sandbox, &["run", "--dry-run", "p.toml"]);
    dry.assert_success().assert_stderr("");
    assert_eq!(
        dry.stdout(),
        "dry run of pipeline `p`: 0 records read from 1 file (0 already delivered, skipped); nothing was written
  sink 1 (file): nothing to write: no records (if_empty = \"skip\")
  sink 2 (file) would write an empty file to out/orders.csv: no records (if_empty = \"write\")
"
    );
    assert_eq!(report["outcome"], "nothing_new");
    assert_eq!(
        report["planned"],
        json!([
            {"sink": "sink 1 (file)", "destination": null, "records": 0, "if_empty": "skip"},
            {"sink": "sink 2 (file)", "destination": "out/orders.csv", "records": 0, "if_empty": "write"},
        ])
    );
    assert_eq!(sandbox.files(""), ["in/a.csv", "p.toml"]);

    // With records, the plan is the usual one.
    sandbox.write("in/b.csv", "id,name\n1,ant\n");
    let dry = sandbox.run(["run", "--dry-run", "p.toml"]);
    assert_eq!(
        dry.stdout(),
        "dry run of pipeline `p`: 1 record read from 2 files (0 already delivered, skipped); nothing was written
  sink 1 (file) would write 1 record to out/orders.ndjson
  sink 2 (file) would write 1 record to out/orders.csv
"
    );
}

/// An empty output written for a run without records has no source file to be named after.
#[test]
fn if_empty_write_refuses_a_path_named_after_the_source_file() {
    let sandbox = drop_to(&["path = \"out/{source_stem}.csv\"\nif_empty = \"write\""]);
    let outcome = sandbox.run(["validate", "p.toml"]);
    outcome.assert_code(2);
    assert!(
        outcome.stderr.contains(
            "`if_empty = \"write\"` needs a `path` without `{source_stem}`: a run without records has no source file to name its empty output after"
        ),
        "{}",
        outcome.stderr
    );
}
