//! `preview`: the first records as an aligned table, nothing written.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use crate::pipelines::demo_sandbox;
use crate::support::{Sandbox, pipeline};

const DEMO_TABLE: &str = "\
order_id  customer_id  status     currency  total    created_at            city       note
--------  -----------  ---------  --------  -------  --------------------  ---------  ----------------------------------------
SO-1001   C-001        completed  EUR       149.90   2024-08-01T09:15:00Z  Rotterdam
SO-1002   C-002        completed  EUR       1250.00  2024-08-01T10:02:31Z  Köln       Deliver to dock 4, ask for \"Jan\"
SO-1003   C-003        cancelled  USD       75.50    2024-08-01T11:47:09Z  São Paulo  Customer cancelled by phone
SO-1004   C-001        completed  EUR       12.00    2024-08-02T07:00:00Z  Rotterdam
SO-1005   C-004        pending    GBP       320.75   2024-08-02T15:20:44Z  Zürich     Gift wrap; note reads \"Happy birthday, …
SO-1006   C-005        completed  JPY       18400    2024-08-03T01:12:00Z  東京
(6 records)
";

#[test]
fn preview_prints_an_aligned_table_and_writes_nothing() {
    let sandbox = demo_sandbox();
    let before = sandbox.files("");
    let outcome = sandbox.run(["preview", "pipelines/demo.toml"]);
    outcome.assert_success().assert_stderr("");
    assert_eq!(outcome.stdout(), DEMO_TABLE);
    assert_eq!(sandbox.files(""), before, "preview wrote files");
}

#[test]
fn preview_limit() {
    let sandbox = demo_sandbox();
    let before = sandbox.files("");
    for flag in ["-n", "--limit"] {
        let outcome = sandbox.run(["preview", flag, "2", "pipelines/demo.toml"]);
        outcome.assert_success().assert_stderr("");
        assert_eq!(
            outcome.stdout(),
            "\
order_id  customer_id  status     currency  total    created_at            city       note
--------  -----------  ---------  --------  -------  --------------------  ---------  --------------------------------
SO-1001   C-001        completed  EUR       149.90   2024-08-01T09:15:00Z  Rotterdam
SO-1002   C-002        completed  EUR       1250.00  2024-08-01T10:02:31Z  Köln       Deliver to dock 4, ask for \"Jan\"
(2 records)
"
        );
    }
    assert_eq!(sandbox.files(""), before, "preview wrote files");
}

#[test]
fn preview_of_a_single_record_says_record() {
    let sandbox = Sandbox::new();
    sandbox.write("in.csv", "id,name\n7,Ann\n");
    sandbox.write(
        "p.toml",
        pipeline("path = \"in.csv\"", &["path = \"out.csv\""]),
    );
    let outcome = sandbox.run(["preview", "p.toml"]);
    outcome.assert_success();
    assert_eq!(
        outcome.stdout(),
        "id  name\n--  ----\n7   Ann\n(1 record)\n"
    );
    assert!(!sandbox.exists("out.csv"));
}

#[test]
fn preview_reports_bad_input_like_run() {
    let sandbox = Sandbox::new();
    sandbox.write("in.csv", "id,name\n7\n");
    sandbox.write(
        "p.toml",
        pipeline("path = \"in.csv\"", &["path = \"out.csv\""]),
    );
    let outcome = sandbox.run(["preview", "p.toml"]);
    outcome.assert_code(1).assert_stderr(
        "error: pipeline `p`: source (file) failed
  caused by: in.csv: line 2, record 1: expected 2 fields (as in the header), found 1. fix the row, or set `flexible = true` in the csv format to accept ragged rows
",
    );
    assert_eq!(outcome.stdout(), "");
}

/// Many more bytes than a pipe holds (64 KiB on Linux), so the binary is still writing when the
/// reader goes away.
fn big_csv_sandbox() -> Sandbox {
    let sandbox = Sandbox::new();
    let mut text = String::from("id,name,note\n");
    for i in 0..20_000 {
        text.push_str(&format!(
            "{i},customer number {i},a note long enough to fill a table cell {i}\n"
        ));
    }
    sandbox.write("big.csv", text);
    sandbox.write(
        "p.toml",
        pipeline("path = \"big.csv\"", &["path = \"out.csv\""]),
    );
    sandbox
}

/// Reads one line of the command's stdout, closes the pipe (like `| head -1`), and returns the
/// line and how the command ended.
fn read_first_line_then_close(
    mut command: std::process::Command,
) -> (String, crate::support::Outcome) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the binary");
    let mut line = String::new();
    {
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        stdout.read_line(&mut line).expect("read the first line");
        // Dropped here: the read end of the pipe closes.
    }
    let outcome = child
        .wait_with_output()
        .expect("wait for the binary")
        .into();
    (line, outcome)
}

#[test]
fn preview_into_a_closed_pipe_exits_0() {
    let sandbox = big_csv_sandbox();
    let (line, outcome) =
        read_first_line_then_close(sandbox.command(["preview", "-n", "20000", "p.toml"]));
    assert_eq!(
        line.split_whitespace().collect::<Vec<_>>(),
        ["id", "name", "note"]
    );
    outcome.assert_success().assert_stderr("");
}

#[test]
fn convert_to_stdout_into_a_closed_pipe_exits_0() {
    let sandbox = big_csv_sandbox();
    let (line, outcome) = read_first_line_then_close(
        sandbox.command(["-q", "convert", "big.csv", "-", "--to", "ndjson"]),
    );
    assert_eq!(
        line,
        "{\"id\":\"0\",\"name\":\"customer number 0\",\"note\":\"a note long enough to fill a table cell 0\"}\n"
    );
    outcome.assert_success().assert_stderr("");
}

/// More lines than a pipe holds (64 KiB), so that `validate` is sure to write into the
/// closed pipe.
#[test]
fn validate_into_a_closed_pipe_exits_0() {
    let sandbox = Sandbox::new();
    let dir = "d".repeat(200);
    let mut command = sandbox.command(["validate"]);
    for i in 0..400 {
        let file = format!("{dir}/p{i}.toml");
        sandbox.write(
            &file,
            pipeline("path = \"in.csv\"", &["path = \"out/{pipeline}.csv\""]),
        );
        command.arg(file);
    }
    let (line, outcome) = read_first_line_then_close(command);
    assert_eq!(line, format!("{dir}/p0.toml: ok\n"));
    outcome.assert_success().assert_stderr("");
}
