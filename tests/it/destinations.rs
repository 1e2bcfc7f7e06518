//! Destinations a sink must not write to: a node that is not a regular file (a device, a named
//! pipe, a symbolic link), the pipeline's own input, where the source's glob reads it back,
//! and the file another sink writes. Each is refused with nothing published and the node left
//! as it was.

use std::fs;
use std::os::unix::fs::{FileTypeExt, symlink};
use std::path::Path;
use std::process::Command;

use crate::support::{Sandbox, pipeline};

const INPUT_CSV: &str = "id,name\n1,Ann\n";

/// Makes a named pipe at `path`.
fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
}

fn assert_fifo(path: &Path) {
    let file_type = fs::symlink_metadata(path).expect("the node").file_type();
    assert!(
        file_type.is_fifo(),
        "{} is no longer a FIFO",
        path.display()
    );
}

#[test]
fn convert_refuses_a_named_pipe_and_leaves_it_alone() {
    let sandbox = Sandbox::new();
    sandbox.write("in.csv", INPUT_CSV);
    mkfifo(&sandbox.join("out.ndjson"));
    sandbox
        .run(["convert", "in.csv", "out.ndjson"])
        .assert_code(1)
        .assert_stderr(
            "error: pipeline `convert`: output failed
  caused by: out.ndjson is a named pipe (FIFO), not a file: longshore replaces files atomically; write to standard output with `-`
",
        );
    assert_fifo(&sandbox.join("out.ndjson"));
    assert_eq!(sandbox.files(""), ["in.csv", "out.ndjson"]);
}

/// As root, the rename used to turn `/dev/null` into a regular file; the check comes before
/// anything is written, so it holds for any user.
#[test]
fn convert_refuses_dev_null() {
    let sandbox = Sandbox::new();
    sandbox.write("in.csv", INPUT_CSV);
    sandbox
        .run(["convert", "in.csv", "/dev/null", "--to", "csv"])
        .assert_code(1)
        .assert_stderr(
            "error: pipeline `convert`: output failed
  caused by: /dev/null is a character device, not a file: longshore replaces files atomically; write to standard output with `-`
",
        );
    let file_type = fs::symlink_metadata("/dev/null").unwrap().file_type();
    assert!(file_type.is_char_device(), "/dev/null was replaced");
    sandbox.assert_no_temp_files();
}

#[test]
fn a_file_sink_refuses_a_named_pipe_whatever_if_exists_says() {
    for if_exists in ["replace", "fail", "skip", "rename"] {
        let sandbox = Sandbox::new();
        sandbox.write(
            "p.toml",
            pipeline(
                "path = \"in.csv\"",
                &[
                    "path = \"out/first.ndjson\"",
                    &format!("path = \"out/pipe.csv\"\nif_exists = \"{if_exists}\""),
                ],
            ),
        );
        sandbox.write("in.csv", INPUT_CSV);
        fs::create_dir(sandbox.join("out")).unwrap();
        mkfifo(&sandbox.join("out/pipe.csv"));
        sandbox
            .run(["run", "p.toml"])
            .assert_code(1)
            .assert_stderr(
                "error: pipeline `p`: sink 2 (file) failed
  caused by: out/pipe.csv is a named pipe (FIFO), not a file: longshore replaces files atomically; a `type = \"stdout\"` sink writes to standard output
",
            );
        assert_fifo(&sandbox.join("out/pipe.csv"));
        sandbox.assert_not_published("out/first.ndjson");
        assert_eq!(sandbox.files(""), ["in.csv", "out/pipe.csv", "p.toml"]);
    }
}

/// The rename would replace the link, not the file it points to: refused, both left alone.
#[test]
fn a_file_sink_refuses_a_symbolic_link() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "p.toml",
        pipeline("path = \"in.csv\"", &["path = \"out/link.ndjson\""]),
    );
    sandbox.write("in.csv", INPUT_CSV);
    sandbox.write("out/real.ndjson", "previous\n");
    symlink("real.ndjson", sandbox.join("out/link.ndjson")).unwrap();
    sandbox
        .run(["run", "p.toml"])
        .assert_code(1)
        .assert_stderr(
            "error: pipeline `p`: sink 1 (file) failed
  caused by: out/link.ndjson is a symbolic link (to real.ndjson), not a file: longshore replaces files atomically, which would replace the link itself, not the file it points to; name the file itself as the output
",
        );
    let link = fs::symlink_metadata(sandbox.join("out/link.ndjson")).unwrap();
    assert!(link.file_type().is_symlink());
    assert_eq!(sandbox.read("out/real.ndjson"), "previous\n");
    sandbox.assert_no_temp_files();
}

/// The rejects file is a file sink too.
#[test]
fn the_rejects_file_refuses_a_named_pipe() {
    let sandbox = Sandbox::new();
    let mut text = pipeline("path = \"in.csv\"", &["path = \"out.ndjson\""]);
    text.push_str("\n[rejects]\npath = \"rejects.ndjson\"\n");
    sandbox.write("p.toml", text);
    sandbox.write("in.csv", "id,name\n1,Ann\n2\n");
    mkfifo(&sandbox.join("rejects.ndjson"));
    sandbox
        .run(["run", "p.toml"])
        .assert_code(1)
        .assert_stderr(
            "error: pipeline `p`: rejects failed
  caused by: rejects.ndjson is a named pipe (FIFO), not a file: longshore replaces files atomically; a `type = \"stdout\"` sink writes to standard output
",
        );
    assert_fifo(&sandbox.join("rejects.ndjson"));
    sandbox.assert_not_published("out.ndjson");
}

#[test]
fn validate_refuses_a_sink_writing_over_its_input() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "p.toml",
        pipeline(
            "path = \"in.csv\"",
            &["path = \"out.ndjson\"", "path = \"./{source_stem}.csv\""],
        ),
    );
    let outcome = sandbox.run(["validate", "p.toml"]);
    outcome.assert_code(2).assert_stderr(
        "error: p.toml has 1 problem:
  p.toml:11:8: sink 2: writes over the source's input `in.csv`
      help: write the output elsewhere: the run would replace the file it reads
",
    );
}

/// Only the resolved path shows it: `alias` is a link to the pipeline's own directory.
#[test]
fn a_run_refuses_a_sink_writing_over_its_input_through_a_link() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "p.toml",
        pipeline("path = \"in.csv\"", &["path = \"alias/in.csv\""]),
    );
    sandbox.write("in.csv", INPUT_CSV);
    symlink(".", sandbox.join("alias")).unwrap();
    sandbox.run(["validate", "p.toml"]).assert_success();
    sandbox
        .run(["run", "p.toml"])
        .assert_code(1)
        .assert_stderr(
            "error: pipeline `p`: sink 1 (file) failed
  caused by: alias/in.csv is in.csv, which this run read: the output would replace the pipeline's own input; nothing was published. Write the output elsewhere
",
        );
    assert_eq!(sandbox.read("in.csv"), INPUT_CSV);
    sandbox.assert_no_temp_files();
    // Not delivered: the next run reads it again.
    sandbox.run(["run", "p.toml"]).assert_code(1);
}

#[test]
fn validate_refuses_a_glob_that_would_read_the_sinks_output() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "p.toml",
        pipeline(
            "path = \"data/**/*.csv\"",
            &["path = \"data/out/{source_stem}.csv\""],
        ),
    );
    sandbox.run(["validate", "p.toml"]).assert_code(2).assert_stderr(
        "error: p.toml has 1 problem:
  p.toml:7:8: sink 1: its outputs match the source's `path` `data/**/*.csv`
      help: every run would read the outputs of the run before: write outside the pattern, or narrow it
",
    );
}

/// Only the resolved path shows it: the glob reaches the sink's folder through a link.
#[test]
fn a_run_refuses_a_glob_that_reaches_the_sinks_output_through_a_link() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "p.toml",
        pipeline(
            "path = \"data/**/*.csv\"",
            &["path = \"out/{source_stem}.csv\""],
        ),
    );
    sandbox.write("data/in.csv", INPUT_CSV);
    std::fs::create_dir(sandbox.join("out")).unwrap();
    symlink("../out", sandbox.join("data/feed")).unwrap();
    sandbox.run(["validate", "p.toml"]).assert_success();
    sandbox
        .run(["run", "p.toml"])
        .assert_code(1)
        .assert_stderr(
            "error: pipeline `p`: sink 1 (file) failed
  caused by: out/in.csv matches the source's pattern data/**/*.csv through a link to its folder: the next run would read this output as input; nothing was published. Write the output outside the pattern
",
        );
    assert_eq!(sandbox.files("out"), Vec::<String>::new());
    sandbox.assert_no_temp_files();
}

#[test]
fn validate_refuses_two_sinks_rendering_to_the_same_file() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "p.toml",
        pipeline(
            "path = \"in.csv\"",
            &[
                "path = \"same/{pipeline}.ndjson\"",
                "path = \"./same/p.ndjson\"",
            ],
        ),
    );
    sandbox
        .run(["validate", "p.toml"])
        .assert_code(2)
        .assert_stderr(
            "error: p.toml has 1 problem:
  p.toml:11:8: sink 2: writes to the same file as sink 1 (`same/{pipeline}.ndjson`)
      help: give each sink its own path: one would overwrite the other
",
        );
}

/// `alias` is a link to `same`: only the resolved directories show that both sinks write one
/// file. Both used to report it published, and one output was lost.
#[test]
fn a_run_refuses_two_sinks_writing_the_same_file_and_publishes_nothing() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "p.toml",
        pipeline(
            "path = \"in.csv\"",
            &[
                "path = \"same/{pipeline}.ndjson\"",
                "path = \"alias/p.ndjson\"\nformat = { type = \"ndjson\" }",
            ],
        ),
    );
    sandbox.write("in.csv", INPUT_CSV);
    fs::create_dir(sandbox.join("same")).unwrap();
    symlink("same", sandbox.join("alias")).unwrap();
    sandbox
        .run(["run", "p.toml"])
        .assert_code(1)
        .assert_stderr(
            "error: pipeline `p`: sink 2 (file) failed
  caused by: alias/p.ndjson is the same file as same/p.ndjson, the output of sink 1 (file): one would overwrite the other and both be reported published; nothing was published. Give each sink its own `path`
",
        );
    sandbox.assert_not_published("same/p.ndjson");
    assert_eq!(sandbox.files(""), ["in.csv", "p.toml"]);
}
