//! The command line itself: help, usage errors, `schema` and `validate`.

use std::fs;

use crate::support::{Sandbox, pipeline, repo_path};

#[test]
fn help_exits_0_and_lists_every_command() {
    let sandbox = Sandbox::new();
    let outcome = sandbox.run(["--help"]);
    outcome.assert_success().assert_stderr("");
    let help = outcome.stdout();
    assert!(
        help.contains("Usage: longshore [OPTIONS] <COMMAND>"),
        "{help}"
    );
    let commands: Vec<&str> = help
        .split_once("Commands:\n")
        .expect("a Commands section")
        .1
        .lines()
        .take_while(|line| !line.is_empty())
        .filter(|line| line.starts_with("  ") && !line.starts_with("   "))
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    for command in ["run", "validate", "preview", "convert", "schema"] {
        assert!(
            commands.contains(&command),
            "`{command}` is not among {commands:?}"
        );
    }
}

#[test]
fn version_exits_0() {
    let outcome = Sandbox::new().run(["--version"]);
    outcome.assert_success().assert_stderr("");
    assert_eq!(
        outcome.stdout(),
        format!("longshore {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn no_command_is_a_usage_error() {
    let outcome = Sandbox::new().run(std::iter::empty::<&str>());
    outcome.assert_code(2);
    assert!(outcome.stderr.contains("Usage: longshore"), "{outcome:?}");
    assert_eq!(outcome.stdout(), "");
}

#[test]
fn unknown_subcommand_exits_2() {
    let outcome = Sandbox::new().run(["frobnicate"]);
    outcome
        .assert_code(2)
        .assert_stderr_starts_with("error: unrecognized subcommand 'frobnicate'\n");
    assert_eq!(outcome.stdout(), "");
}

#[test]
fn missing_arguments_exit_2() {
    let sandbox = Sandbox::new();
    for (args, missing) in [
        (&["run"][..], "<PIPELINES>..."),
        (&["validate"][..], "<PIPELINES>..."),
        (&["preview"][..], "<PIPELINE>"),
        (&["convert", "in.csv"][..], "<OUTPUT>"),
    ] {
        let outcome = sandbox.run(args);
        outcome.assert_code(2).assert_stderr_starts_with(&format!(
            "error: the following required arguments were not provided:\n  {missing}\n"
        ));
        assert_eq!(outcome.stdout(), "", "{args:?}");
    }
}

#[test]
fn quiet_and_verbose_conflict() {
    let outcome = Sandbox::new().run(["-q", "-v", "schema"]);
    outcome.assert_code(2).assert_stderr_starts_with("error: ");
    assert_eq!(outcome.stdout(), "");
}

#[test]
fn schema_prints_a_json_schema_of_pipeline_files() {
    let outcome = Sandbox::new().run(["schema"]);
    outcome.assert_success().assert_stderr("");
    let schema: serde_json::Value =
        serde_json::from_str(outcome.stdout()).expect("the schema is valid JSON");
    assert_eq!(schema["type"], "object");
    let properties = schema["properties"]
        .as_object()
        .expect("top-level `properties`");
    for key in ["source", "sinks", "transforms", "name"] {
        assert!(
            properties.contains_key(key),
            "`{key}` is not a top-level property: {:?}",
            properties.keys().collect::<Vec<_>>()
        );
    }
    let mut required: Vec<&str> = schema["required"]
        .as_array()
        .expect("a `required` list")
        .iter()
        .map(|v| v.as_str().expect("a key name"))
        .collect();
    required.sort_unstable();
    assert_eq!(required, ["sinks", "source"]);
}

/// Every pipeline file shipped in `pipelines/` (listed now, so new ones are covered) validates.
#[test]
fn every_pipeline_in_the_repository_validates() {
    let mut files: Vec<String> = fs::read_dir(repo_path("pipelines"))
        .expect("list pipelines/")
        .map(|entry| entry.expect("a directory entry").file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".toml"))
        .map(|name| format!("pipelines/{name}"))
        .collect();
    files.sort();
    assert!(
        files.contains(&"pipelines/demo.toml".to_string()),
        "{files:?}"
    );
    // `validate` reads no data and writes nothing, so it can run on the repository itself.
    let sandbox = Sandbox::new();
    let mut command = sandbox.command(
        ["validate"]
            .into_iter()
            .chain(files.iter().map(String::as_str)),
    );
    command.current_dir(repo_path(""));
    let outcome = crate::support::run(command);
    outcome.assert_success().assert_stderr("");
    let expected: String = files.iter().map(|f| format!("{f}: ok\n")).collect();
    assert_eq!(outcome.stdout(), expected);
}

/// One problem of each kind, each reported at its line and column.
const MANY_PROBLEMS: &str = r#"nmae = "orders"

[source]
type = "file"
path = "in.csv"
format = { type = "csv", delimiter = "é" }

[[transforms]]
type = "selekt"
fields = ["a"]

[[sinks]]
type = "file"
pth = "out.csv"

[[sinks]]
type = "file"
path = "out/{run_dat}.csv"
if_exist = "fail"
"#;

const MANY_PROBLEMS_REPORT: &str = "\
error: bad.toml has 7 problems:
  bad.toml:1:1: unknown top-level key `nmae`
      help: did you mean `name`?
  bad.toml:6:38: source (file): `delimiter` must be one ASCII character, not `é`
  bad.toml:9:8: unknown transform type `selekt`
      help: did you mean `select`?
  bad.toml:12:1: sink 1 (file): missing field `path`
  bad.toml:14:1: unknown key `pth` in sink 1 (file)
      help: did you mean `path`?
  bad.toml:18:8: sink 2 (file): unknown placeholder `{run_dat}` in path; known: {pipeline}, {run_date}, {run_ts}, {source_stem}, {part}
  bad.toml:19:1: unknown key `if_exist` in sink 2 (file)
      help: did you mean `if_exists`?
";

#[test]
fn validate_reports_every_problem_with_position_and_hint() {
    let sandbox = Sandbox::new();
    sandbox.write("bad.toml", MANY_PROBLEMS);
    let outcome = sandbox.run(["validate", "bad.toml"]);
    outcome.assert_code(2).assert_stderr(MANY_PROBLEMS_REPORT);
    assert_eq!(outcome.stdout(), "");
}

#[test]
fn validate_checks_every_file_and_fails_if_any_is_bad() {
    let sandbox = Sandbox::new();
    sandbox.write("bad.toml", MANY_PROBLEMS);
    sandbox.write(
        "good.toml",
        pipeline("path = \"in.csv\"", &["path = \"out.ndjson\""]),
    );
    let outcome = sandbox.run(["validate", "good.toml", "bad.toml"]);
    outcome.assert_code(2).assert_stderr(MANY_PROBLEMS_REPORT);
    assert_eq!(outcome.stdout(), "good.toml: ok\n");
}

#[test]
fn validate_a_missing_file_exits_2() {
    let sandbox = Sandbox::new();
    let outcome = sandbox.run(["validate", "missing.toml"]);
    outcome
        .assert_code(2)
        .assert_stderr_starts_with("error: cannot read pipeline file missing.toml\n  caused by: ");
    assert_eq!(outcome.stdout(), "");
}

#[test]
fn run_and_preview_of_a_missing_pipeline_file_exit_2() {
    let sandbox = Sandbox::new();
    for command in ["run", "preview"] {
        let outcome = sandbox.run([command, "missing.toml"]);
        outcome.assert_code(2).assert_stderr_starts_with(
            "error: cannot read pipeline file missing.toml\n  caused by: ",
        );
        assert_eq!(outcome.stdout(), "", "{command}");
    }
    assert_eq!(sandbox.files(""), Vec::<String>::new());
}

#[test]
fn validate_reports_toml_syntax_errors_with_position() {
    let sandbox = Sandbox::new();
    sandbox.write("broken.toml", "[source\ntype = \"file\"\n");
    let outcome = sandbox.run(["validate", "broken.toml"]);
    outcome.assert_code(2).assert_stderr_starts_with(
        "error: broken.toml has 1 problem:\n  broken.toml:1:8: invalid TOML: ",
    );
}

#[test]
fn run_refuses_an_invalid_pipeline_with_the_same_report() {
    let sandbox = Sandbox::new();
    sandbox.write("bad.toml", MANY_PROBLEMS);
    sandbox.write("in.csv", "a\n1\n");
    let outcome = sandbox.run(["run", "bad.toml"]);
    outcome.assert_code(2).assert_stderr(MANY_PROBLEMS_REPORT);
    assert_eq!(sandbox.files(""), ["bad.toml", "in.csv"]);
}

/// "Every pipeline file is checked before any runs": a good pipeline listed before a bad one
/// does not run either.
#[test]
fn run_checks_every_pipeline_before_running_any() {
    let sandbox = Sandbox::new();
    sandbox.write("in.csv", "a\n1\n");
    sandbox.write(
        "good.toml",
        pipeline("path = \"in.csv\"", &["path = \"out/good.ndjson\""]),
    );
    sandbox.write("bad.toml", MANY_PROBLEMS);
    let outcome = sandbox.run(["run", "good.toml", "bad.toml"]);
    outcome.assert_code(2).assert_stderr(MANY_PROBLEMS_REPORT);
    assert!(!sandbox.exists("out"), "{:?}", sandbox.files(""));
}
