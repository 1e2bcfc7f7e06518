//! `run`: what pipelines deliver, and that a failed run delivers nothing.

use std::ffi::OsStr;

use crate::support::{Sandbox, pipeline};

/// `samples/orders.csv` through `pipelines/demo.toml` (rename `ship_city` to `city`, select
/// eight fields), as NDJSON.
const DEMO_NDJSON: &str = r#"{"order_id":"SO-1001","customer_id":"C-001","status":"completed","currency":"EUR","total":"149.90","created_at":"2024-08-01T09:15:00Z","city":"Rotterdam","note":null}
{"order_id":"SO-1002","customer_id":"C-002","status":"completed","currency":"EUR","total":"1250.00","created_at":"2024-08-01T10:02:31Z","city":"Köln","note":"Deliver to dock 4, ask for \"Jan\""}
{"order_id":"SO-1003","customer_id":"C-003","status":"cancelled","currency":"USD","total":"75.50","created_at":"2024-08-01T11:47:09Z","city":"São Paulo","note":"Customer cancelled by phone"}
{"order_id":"SO-1004","customer_id":"C-001","status":"completed","currency":"EUR","total":"12.00","created_at":"2024-08-02T07:00:00Z","city":"Rotterdam","note":null}
{"order_id":"SO-1005","customer_id":"C-004","status":"pending","currency":"GBP","total":"320.75","created_at":"2024-08-02T15:20:44Z","city":"Zürich","note":"Gift wrap; note reads \"Happy birthday, Ana!\""}
{"order_id":"SO-1006","customer_id":"C-005","status":"completed","currency":"JPY","total":"18400","created_at":"2024-08-03T01:12:00Z","city":"東京","note":null}
"#;

/// The same records as the demo's finance CSV: `;`-separated, with a BOM, nulls as empty
/// fields, fields holding `;` or `"` quoted.
const DEMO_FINANCE_CSV: &str = "\u{feff}order_id;customer_id;status;currency;total;created_at;city;note
SO-1001;C-001;completed;EUR;149.90;2024-08-01T09:15:00Z;Rotterdam;
SO-1002;C-002;completed;EUR;1250.00;2024-08-01T10:02:31Z;Köln;\"Deliver to dock 4, ask for \"\"Jan\"\"\"
SO-1003;C-003;cancelled;USD;75.50;2024-08-01T11:47:09Z;São Paulo;Customer cancelled by phone
SO-1004;C-001;completed;EUR;12.00;2024-08-02T07:00:00Z;Rotterdam;
SO-1005;C-004;pending;GBP;320.75;2024-08-02T15:20:44Z;Zürich;\"Gift wrap; note reads \"\"Happy birthday, Ana!\"\"\"
SO-1006;C-005;completed;JPY;18400;2024-08-03T01:12:00Z;東京;
";

/// A copy of the repository's demo layout (`pipelines/demo.toml` reading `../samples/`,
/// writing `../out/`), so the run never touches the repository's own `out/`.
pub fn demo_sandbox() -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.copy_from_repo("pipelines/demo.toml", "pipelines/demo.toml");
    sandbox.copy_from_repo("samples/orders.csv", "samples/orders.csv");
    sandbox
}

#[test]
fn demo_pipeline_writes_ndjson_and_finance_csv() {
    let sandbox = demo_sandbox();
    // Run from another directory, by absolute path: relative paths in the pipeline file are
    // resolved against the file's directory, not the working directory.
    sandbox.write("elsewhere/.keep", "");
    let pipeline_file = sandbox.join("pipelines/demo.toml");
    let mut command = sandbox.command([OsStr::new("run"), pipeline_file.as_os_str()]);
    command.current_dir(sandbox.join("elsewhere"));
    crate::support::run(command).assert_success();
    assert_eq!(
        sandbox.files("out"),
        ["out/demo-orders-finance.csv", "out/demo-orders.ndjson"]
    );
    assert_eq!(sandbox.read("out/demo-orders.ndjson"), DEMO_NDJSON);
    assert_eq!(
        sandbox.read("out/demo-orders-finance.csv"),
        DEMO_FINANCE_CSV
    );
    assert_eq!(sandbox.files("elsewhere"), ["elsewhere/.keep"]);
}

#[test]
fn rerunning_the_demo_replaces_its_outputs_with_the_same_bytes() {
    let sandbox = demo_sandbox();
    sandbox.write("out/demo-orders.ndjson", "stale\n");
    sandbox.run(["run", "pipelines/demo.toml"]).assert_success();
    sandbox.run(["run", "pipelines/demo.toml"]).assert_success();
    assert_eq!(sandbox.read("out/demo-orders.ndjson"), DEMO_NDJSON);
    assert_eq!(
        sandbox.read("out/demo-orders-finance.csv"),
        DEMO_FINANCE_CSV
    );
    sandbox.assert_no_temp_files();
}

const INPUT_CSV: &str = "id,name\n1,Ann\n2,\"Bo, Jr.\"\n3,\n";
const INPUT_AS_NDJSON: &str = "{\"id\":\"1\",\"name\":\"Ann\"}\n{\"id\":\"2\",\"name\":\"Bo, Jr.\"}\n{\"id\":\"3\",\"name\":null}\n";
const INPUT_AS_TSV: &str = "id\tname\n1\tAnn\n2\tBo, Jr.\n3\t\n";

/// More records than one batch (1024), then a row with a missing field: the sinks have
/// started writing their temporary files when the bad row arrives.
fn bad_input_csv() -> String {
    let mut text = String::from("id,name\n");
    for i in 1..=1500 {
        text.push_str(&format!("{i},name {i}\n"));
    }
    text.push_str("1501\n");
    text
}

const BAD_INPUT_ERROR: &str = "error: pipeline `p`: source (file) failed
  caused by: in.csv: line 1502, record 1501: expected 2 fields (as in the header), found 1. fix the row, or set `flexible = true` in the csv format to accept ragged rows
";

fn single_sink(if_exists: Option<&str>) -> String {
    let mut sink = String::from("path = \"out/result.ndjson\"");
    if let Some(mode) = if_exists {
        sink.push_str(&format!("\nif_exists = \"{mode}\""));
    }
    pipeline("path = \"in.csv\"", &[&sink])
}

#[test]
fn replace_is_the_default_and_replaces_on_success() {
    let sandbox = Sandbox::new();
    sandbox.write("p.toml", single_sink(None));
    sandbox.write("in.csv", INPUT_CSV);
    sandbox.write("out/result.ndjson", "previous\n");
    sandbox.run(["run", "p.toml"]).assert_success();
    assert_eq!(sandbox.read("out/result.ndjson"), INPUT_AS_NDJSON);
    assert_eq!(sandbox.files(""), ["in.csv", "out/result.ndjson", "p.toml"]);
}

#[test]
fn replace_leaves_the_existing_file_untouched_when_the_run_fails() {
    for if_exists in [None, Some("replace")] {
        let sandbox = Sandbox::new();
        sandbox.write("p.toml", single_sink(if_exists));
        sandbox.write("in.csv", bad_input_csv());
        sandbox.write("out/result.ndjson", "previous\n");
        sandbox
            .run(["run", "p.toml"])
            .assert_code(1)
            .assert_stderr(BAD_INPUT_ERROR);
        assert_eq!(sandbox.read("out/result.ndjson"), "previous\n");
        sandbox.assert_no_temp_files();
    }
}

#[test]
fn if_exists_fail_refuses_an_existing_destination() {
    let sandbox = Sandbox::new();
    sandbox.write("p.toml", single_sink(Some("fail")));
    sandbox.write("in.csv", INPUT_CSV);
    sandbox.write("out/result.ndjson", "previous\n");
    sandbox
        .run(["run", "p.toml"])
        .assert_code(1)
        .assert_stderr(
            "error: pipeline `p`: sink 1 (file) failed
  caused by: out/result.ndjson already exists and the sink has `if_exists = \"fail\"`: move the file away, or set `if_exists` to \"replace\" or \"skip\"
",
        );
    assert_eq!(sandbox.read("out/result.ndjson"), "previous\n");
    assert_eq!(sandbox.files(""), ["in.csv", "out/result.ndjson", "p.toml"]);
}

/// Without an existing destination, `fail` and `skip` write it like `replace`.
#[test]
fn if_exists_fail_and_skip_write_a_new_destination() {
    for mode in ["fail", "skip"] {
        let sandbox = Sandbox::new();
        sandbox.write("p.toml", single_sink(Some(mode)));
        sandbox.write("in.csv", INPUT_CSV);
        sandbox.run(["run", "p.toml"]).assert_success();
        assert_eq!(sandbox.read("out/result.ndjson"), INPUT_AS_NDJSON, "{mode}");
    }
}

#[test]
fn if_exists_skip_leaves_an_existing_destination_alone() {
    let sandbox = Sandbox::new();
    sandbox.write("p.toml", single_sink(Some("skip")));
    sandbox.write("in.csv", INPUT_CSV);
    sandbox.write("out/result.ndjson", "previous\n");
    sandbox
        .run(["-q", "run", "p.toml"])
        .assert_success()
        .assert_stderr("");
    assert_eq!(sandbox.read("out/result.ndjson"), "previous\n");
    assert_eq!(sandbox.files(""), ["in.csv", "out/result.ndjson", "p.toml"]);
}

/// An input without records publishes nothing, unless a sink asks for its empty file
/// (`tests/it/empty_runs.rs` has the rest).
#[test]
fn an_empty_input_delivers_an_empty_file_only_with_if_empty_write() {
    for (if_empty, published) in [("", false), ("\nif_empty = \"write\"", true)] {
        let sandbox = Sandbox::new();
        let sinks = [
            format!("path = \"out/result.ndjson\"{if_empty}"),
            format!("path = \"out/result.csv\"{if_empty}"),
        ];
        let sinks: Vec<&str> = sinks.iter().map(String::as_str).collect();
        sandbox.write("p.toml", pipeline("path = \"in.csv\"", &sinks));
        sandbox.write("in.csv", "id,name\n");
        sandbox.run(["run", "p.toml"]).assert_success();
        if published {
            assert_eq!(sandbox.read("out/result.ndjson"), "");
            assert_eq!(sandbox.read("out/result.csv"), "");
        } else {
            assert!(!sandbox.exists("out"), "an empty file was published");
        }
    }
}

#[test]
fn fan_out_gives_every_sink_every_record() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "p.toml",
        pipeline(
            "path = \"in.csv\"",
            &[
                "path = \"out/{pipeline}.ndjson\"",
                "path = \"out/{pipeline}.csv\"",
                "path = \"out/{pipeline}.tsv\"",
            ],
        ),
    );
    sandbox.write("in.csv", INPUT_CSV);
    sandbox.run(["run", "p.toml"]).assert_success();
    assert_eq!(sandbox.read("out/p.ndjson"), INPUT_AS_NDJSON);
    assert_eq!(sandbox.read("out/p.csv"), INPUT_CSV);
    assert_eq!(sandbox.read("out/p.tsv"), INPUT_AS_TSV);
    assert_eq!(
        sandbox.files(""),
        ["in.csv", "out/p.csv", "out/p.ndjson", "out/p.tsv", "p.toml"]
    );
}

/// The second sink cannot write the records (a CSV whose `columns` lack a field): the first
/// sink, which had already written them to its temporary file, publishes nothing either.
#[test]
fn fan_out_publishes_nothing_when_a_later_sink_fails() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "p.toml",
        pipeline(
            "path = \"in.csv\"",
            &[
                "path = \"out/first.ndjson\"",
                "path = \"out/second.csv\"\nformat = { type = \"csv\", columns = [\"id\"] }",
            ],
        ),
    );
    sandbox.write("in.csv", INPUT_CSV);
    sandbox
        .run(["run", "p.toml"])
        .assert_code(1)
        .assert_stderr(
            "error: pipeline `p`: sink 2 (file) failed
  caused by: out/second.csv: record 1, field `name`: the record has a field that is not one of the csv format's `columns`. add it to `columns`, or drop it with a `select` transform
",
        );
    sandbox.assert_not_published("out/first.ndjson");
    sandbox.assert_not_published("out/second.csv");
    assert_eq!(sandbox.files(""), ["in.csv", "p.toml"]);
}

/// The second sink refuses its existing destination: the first does not publish.
#[test]
fn fan_out_publishes_nothing_when_a_later_sink_refuses_its_destination() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "p.toml",
        pipeline(
            "path = \"in.csv\"",
            &[
                "path = \"out/first.ndjson\"",
                "path = \"out/second.csv\"\nif_exists = \"fail\"",
            ],
        ),
    );
    sandbox.write("in.csv", INPUT_CSV);
    sandbox.write("out/second.csv", "previous\n");
    sandbox.run(["run", "p.toml"]).assert_code(1);
    sandbox.assert_not_published("out/first.ndjson");
    assert_eq!(sandbox.read("out/second.csv"), "previous\n");
}

/// The second sink's destination is a directory, so its rename would fail: `prepare` finds
/// that out before any sink commits, so the first sink publishes nothing either.
#[test]
fn fan_out_publishes_nothing_when_a_later_sink_cannot_publish() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "p.toml",
        pipeline(
            "path = \"in.csv\"",
            &["path = \"out/first.ndjson\"", "path = \"out/second.csv\""],
        ),
    );
    sandbox.write("in.csv", INPUT_CSV);
    sandbox.write("out/second.csv/keep", "");
    sandbox
        .run(["-q", "run", "p.toml"])
        .assert_code(1)
        .assert_stderr_starts_with(
            "error: pipeline `p`: sink 2 (file) failed\n  caused by: out/second.csv is a directory: \
             the output file cannot take its place\n",
        );
    sandbox.assert_not_published("out/first.ndjson");
}

/// A failure after both sinks wrote a full batch: neither publishes.
#[test]
fn fan_out_publishes_nothing_when_the_source_fails_late() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "p.toml",
        pipeline(
            "path = \"in.csv\"",
            &["path = \"out/a.ndjson\"", "path = \"out/b.csv\""],
        ),
    );
    sandbox.write("in.csv", bad_input_csv());
    sandbox
        .run(["run", "p.toml"])
        .assert_code(1)
        .assert_stderr(BAD_INPUT_ERROR);
    sandbox.assert_not_published("out/a.ndjson");
    sandbox.assert_not_published("out/b.csv");
}

/// `{source_stem}`: one output per source file; files are read in the lexical order of their
/// paths, whatever order they were created in.
#[test]
fn source_stem_gives_one_output_per_source_file_in_lexical_order() {
    let sandbox = Sandbox::new();
    sandbox.write("in/b.csv", "id,from\n1,b\n");
    sandbox.write("in/a.csv", "id,from\n1,a\n2,a\n");
    sandbox.write("in/notes.txt", "not matched\n");
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
    sandbox.run(["run", "p.toml"]).assert_success();
    assert_eq!(
        sandbox.files("out"),
        ["out/a.ndjson", "out/all.csv", "out/b.ndjson"]
    );
    assert_eq!(
        sandbox.read("out/a.ndjson"),
        "{\"id\":\"1\",\"from\":\"a\"}\n{\"id\":\"2\",\"from\":\"a\"}\n"
    );
    assert_eq!(
        sandbox.read("out/b.ndjson"),
        "{\"id\":\"1\",\"from\":\"b\"}\n"
    );
    assert_eq!(sandbox.read("out/all.csv"), "id,from\n1,a\n2,a\n1,b\n");
}

/// A failure in the second source file publishes none of the outputs, not even the first
/// file's, which was complete.
#[test]
fn source_stem_outputs_are_all_or_nothing() {
    let sandbox = Sandbox::new();
    sandbox.write("in/a.csv", "id\n1\n");
    sandbox.write("in/b.csv", "id\n1\n2,extra\n");
    sandbox.write(
        "p.toml",
        pipeline(
            "path = \"in/*.csv\"",
            &["path = \"out/{source_stem}.ndjson\""],
        ),
    );
    sandbox
        .run(["run", "p.toml"])
        .assert_code(1)
        .assert_stderr(
            "error: pipeline `p`: source (file) failed
  caused by: in/b.csv: line 3, record 2: expected 1 field (as in the header), found 2. fix the row, or set `flexible = true` in the csv format to accept ragged rows
",
        );
    sandbox.assert_not_published("out/a.ndjson");
    sandbox.assert_not_published("out/b.ndjson");
}

/// One pipeline's failure does not stop the next one; the exit code still reports it.
#[test]
fn a_failing_pipeline_does_not_stop_the_others() {
    let sandbox = Sandbox::new();
    sandbox.write("in.csv", INPUT_CSV);
    sandbox.write("bad.csv", "id\n1,2\n");
    sandbox.write(
        "broken.toml",
        pipeline("path = \"bad.csv\"", &["path = \"out/broken.ndjson\""]),
    );
    sandbox.write(
        "good.toml",
        pipeline("path = \"in.csv\"", &["path = \"out/good.ndjson\""]),
    );
    sandbox
        .run(["-q", "run", "broken.toml", "good.toml"])
        .assert_code(1)
        .assert_stderr(
            "error: pipeline `broken`: source (file) failed
  caused by: bad.csv: line 2, record 1: expected 1 field (as in the header), found 2. fix the row, or set `flexible = true` in the csv format to accept ragged rows
",
        );
    sandbox.assert_not_published("out/broken.ndjson");
    assert_eq!(sandbox.read("out/good.ndjson"), INPUT_AS_NDJSON);
}

#[test]
fn transforms_rename_and_select() {
    let sandbox = Sandbox::new();
    sandbox.write("in.csv", "a,b,c\n1,2,3\n");
    sandbox.write(
        "p.toml",
        "[source]
type = \"file\"
path = \"in.csv\"

[[transforms]]
type = \"rename\"
fields = { a = \"b\", b = \"a\" }

[[transforms]]
type = \"select\"
fields = [\"c\", \"a\", \"missing\"]

[[sinks]]
type = \"file\"
path = \"out.ndjson\"
",
    );
    sandbox.run(["run", "p.toml"]).assert_success();
    assert_eq!(
        sandbox.read("out.ndjson"),
        "{\"c\":\"3\",\"a\":\"2\",\"missing\":null}\n"
    );
}

/// Every pipeline directly in `pipelines/` runs offline on `samples/` (pipelines that need a
/// server belong in `pipelines/examples/`, which this does not run). The repository's folders
/// are copied into a sandbox, so nothing is written into the checkout.
#[test]
fn every_offline_pipeline_in_the_repository_runs() {
    let sandbox = Sandbox::new();
    let mut pipelines = Vec::new();
    for folder in ["pipelines", "samples", "samples/formats"] {
        for entry in std::fs::read_dir(crate::support::repo_path(folder)).expect("list the folder")
        {
            let path = entry.expect("a directory entry").path();
            if path.is_file() {
                let name = path
                    .file_name()
                    .and_then(OsStr::to_str)
                    .expect("a UTF-8 name");
                let relative = format!("{folder}/{name}");
                sandbox.copy_from_repo(&relative, &relative);
                if folder == "pipelines" && name.ends_with(".toml") {
                    pipelines.push(relative);
                }
            }
        }
    }
    assert!(!pipelines.is_empty());
    for pipeline in &pipelines {
        sandbox
            .run(["-q", "run", pipeline.as_str()])
            .assert_success();
    }
    assert!(
        !sandbox.files("out").is_empty(),
        "the pipelines wrote into out/"
    );
    sandbox.assert_no_temp_files();
}

/// A stdout sink whose reader goes away (`| head`) does not cost the other sinks their output.
#[test]
fn a_closed_stdout_does_not_stop_the_file_sink() {
    let sandbox = Sandbox::new();
    let mut csv = String::from("id,name\n");
    for i in 0..50_000 {
        csv.push_str(&format!("{i},customer {i}\n"));
    }
    sandbox.write("in.csv", &csv);
    sandbox.write(
        "p.toml",
        "[source]\ntype = \"file\"\npath = \"in.csv\"\n\n[[sinks]]\ntype = \"stdout\"\nformat = { type = \"ndjson\" }\n\n[[sinks]]\ntype = \"file\"\npath = \"out/all.csv\"\n",
    );
    let mut command = sandbox.command(["-q", "run", "p.toml"]);
    command.stdout(std::process::Stdio::piped());
    let mut child = command.spawn().expect("start the binary");
    drop(child.stdout.take());
    let status = child.wait().expect("wait for the binary");
    assert!(status.success(), "{status}");
    assert_eq!(sandbox.read("out/all.csv"), csv);
}

/// A glob does not pick up hidden files, such as an upload still in progress.
#[test]
fn a_glob_skips_hidden_files() {
    let sandbox = Sandbox::new();
    sandbox.write("in/a.csv", "id\n1\n");
    sandbox.write("in/.b.csv", "id\n2\n");
    sandbox.write(
        "p.toml",
        pipeline("path = \"in/*.csv\"", &["path = \"out/all.ndjson\""]),
    );
    sandbox.run(["-q", "run", "p.toml"]).assert_success();
    assert_eq!(sandbox.read("out/all.ndjson"), "{\"id\":\"1\"}\n");
}

#[test]
fn a_pattern_whose_folder_does_not_exist_is_a_warning() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "p.toml",
        "[source]\ntype = \"file\"\npath = \"/mnt/partner-share/orders/*.csv\"\n[[sinks]]\ntype = \"file\"\npath = \"out/orders.csv\"\n",
    );
    let outcome = sandbox.run(["run", "p.toml", "--report", "report.json"]);
    outcome.assert_success();
    let report: serde_json::Value = serde_json::from_str(&sandbox.read("report.json")).unwrap();
    assert_eq!(report["outcome"], "nothing_new");
    assert_eq!(
        report["warnings"],
        serde_json::json!([
            "the folder /mnt/partner-share/orders of the source's `path` does not exist (a share that is not mounted, or a mistyped path?)"
        ])
    );
}
