//! `${env:NAME}`, `${env:NAME:-default}`, `${var:NAME}` and `${file:PATH}` in every string of a
//! pipeline file: what goes over the wire is the resolved value, never the reference; an
//! unresolvable reference is a problem `validate` reports at its position; secrets stay out of
//! the logs.

use serde_json::json;

use crate::support::Sandbox;
use crate::support::api::{ApiServer, Reply};

/// An API pipeline configured entirely through references.
const PIPELINE: &str = r#"name = "logs-${var:from}"

[source]
type = "http"
url = "${env:LOGS_API}/api/logs/"
query = { api_key = "${env:LOGS_KEY}", since = "${var:from}", region = "${env:LOGS_REGION:-eu}" }
headers = { Authorization = "Token ${env:LOGS_TOKEN}", X-Tenant = "${file:tenant.txt}", X-Note = "costs $${5}" }

[[sinks]]
type = "file"
path = "${env:OUT_DIR:-out}/logs-${var:from}.ndjson"
"#;

#[test]
fn references_resolve_in_urls_queries_headers_paths_and_names() {
    let sandbox = Sandbox::new();
    // Busy at first: the retry is logged, with its URL.
    let mut busy = true;
    let server = ApiServer::start(move |_| {
        if std::mem::take(&mut busy) {
            return Reply::text(503, "busy").header("retry-after", "0");
        }
        Reply::json(200, &json!([{"id": 1}, {"id": 2}]))
    });
    sandbox.write("p.toml", PIPELINE);
    sandbox.write("tenant.txt", "acme\n");
    let mut command = sandbox.command(["-v", "run", "p.toml", "--var", "from=2024-01-01"]);
    command
        .env("LOGS_API", server.url(""))
        .env("LOGS_KEY", "k-secret-1")
        .env("LOGS_TOKEN", "t-secret-2")
        .env_remove("LOGS_REGION")
        .env_remove("OUT_DIR");
    let outcome = crate::support::run(command);
    outcome.assert_success();
    let request = &server.requests()[1];
    assert_eq!(request.path, "/api/logs/");
    assert_eq!(request.param("api_key"), Some("k-secret-1"));
    assert_eq!(request.param("since"), Some("2024-01-01"));
    assert_eq!(request.param("region"), Some("eu"));
    assert_eq!(request.header("authorization"), Some("Token t-secret-2"));
    assert_eq!(request.header("x-tenant"), Some("acme"));
    assert_eq!(request.header("x-note"), Some("costs ${5}"));
    assert_eq!(
        sandbox.read("out/logs-2024-01-01.ndjson"),
        "{\"id\":1}\n{\"id\":2}\n"
    );
    // The key sits in a parameter named like a secret, the token in a secret option.
    assert!(!outcome.stderr.contains("k-secret-1"), "{}", outcome.stderr);
    assert!(!outcome.stderr.contains("t-secret-2"), "{}", outcome.stderr);
    assert!(
        outcome.stderr.contains("api_key=***"),
        "the URL is logged with the key hidden: {}",
        outcome.stderr
    );
    // The name came from `--var`: its state and history are its own.
    let runs = sandbox.run(["runs", "p.toml", "--json", "--var", "from=2024-01-01"]);
    runs.assert_success();
    let reports: serde_json::Value = serde_json::from_str(runs.stdout()).unwrap();
    assert_eq!(reports[0]["pipeline"], "logs-2024-01-01");
}

#[test]
fn validate_reports_every_unresolvable_reference_at_its_position() {
    let sandbox = Sandbox::new();
    sandbox.write("p.toml", PIPELINE);
    let mut command = sandbox.command(["validate", "p.toml"]);
    command
        .env_remove("LOGS_API")
        .env_remove("LOGS_KEY")
        .env("LOGS_TOKEN", "t")
        .env_remove("OUT_DIR");
    let outcome = crate::support::run(command);
    outcome.assert_code(2).assert_stderr(
        "error: p.toml has 6 problems:
  p.toml:1:8: `--var from=…` is not given (`${var:from}` has no default)
  p.toml:5:7: environment variable `LOGS_API` is not set (or not UTF-8)
  p.toml:6:21: environment variable `LOGS_KEY` is not set (or not UTF-8)
  p.toml:6:48: `--var from=…` is not given (`${var:from}` has no default)
  p.toml:7:67: cannot read tenant.txt: No such file or directory (os error 2)
  p.toml:11:8: `--var from=…` is not given (`${var:from}` has no default)
",
    );
}

#[test]
fn unknown_or_unclosed_references_are_problems_that_do_not_repeat_the_text() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "p.toml",
        "[source]\ntype = \"file\"\npath = \"${vault:hunter2}.csv\"\n[[sinks]]\ntype = \"file\"\npath = \"out/${env:OUT.csv\"\n",
    );
    sandbox.run(["validate", "p.toml"]).assert_code(2).assert_stderr(
        "error: p.toml has 2 problems:
  p.toml:3:8: unknown reference: write `${env:NAME}`, `${var:NAME}` or `${file:PATH}` (and `$${` for a literal `${`)
  p.toml:6:8: `${` without its closing `}` (write `$${` for a literal `${`)
",
    );
}

#[test]
fn state_commands_work_without_the_runs_environment_but_not_without_its_name() {
    let sandbox = Sandbox::new();
    sandbox.write("p.toml", PIPELINE);
    let state = |args: &[&str]| {
        let mut command = sandbox.command(args);
        command
            .env_remove("LOGS_API")
            .env_remove("LOGS_KEY")
            .env_remove("LOGS_TOKEN");
        crate::support::run(command)
    };
    // The secrets and the API are not needed to look at the state...
    let outcome = state(&["state", "show", "p.toml", "--var", "from=2024-01-01"]);
    outcome.assert_success();
    assert!(
        outcome
            .stdout()
            .starts_with("pipeline `logs-2024-01-01` has no state yet"),
        "{}",
        outcome.stdout()
    );
    // ... but the name is: without it, `state reset` would reset another pipeline.
    state(&["state", "reset", "p.toml", "--yes"])
        .assert_code(2)
        .assert_stderr(
            "error: p.toml has 1 problem:
  p.toml:1:8: `--var from=…` is not given (`${var:from}` has no default)
",
        );
}

#[test]
fn a_reference_in_the_wrong_place_is_quoted_as_written_not_resolved() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "p.toml",
        "[source]\ntype = \"http\"\nurl = \"https://api.example.com/x\"\nheaders = \"${env:AUTH_HEADER}\"\n[[sinks]]\ntype = \"file\"\npath = \"out.ndjson\"\n",
    );
    let mut command = sandbox.command(["validate", "p.toml"]);
    command.env("AUTH_HEADER", "Bearer s3cr3t-t0ken");
    let outcome = crate::support::run(command);
    outcome.assert_code(2);
    assert!(!outcome.stderr.contains("s3cr3t"), "{}", outcome.stderr);
    assert!(
        outcome.stderr.contains("\"${env:AUTH_HEADER}\""),
        "{}",
        outcome.stderr
    );
}

#[test]
fn a_secret_written_into_the_file_is_a_warning_naming_its_key() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "p.toml",
        "[source]\ntype = \"http\"\nurl = \"https://api.example.com/x\"\nheaders = { Accept = \"application/json\", X-Api-Key = \"k-12345678\" }\nauth = { type = \"basic\", username = \"etl\", password = \"hunter2\" }\n[[sinks]]\ntype = \"file\"\npath = \"out.ndjson\"\n",
    );
    let outcome = sandbox.run(["validate", "p.toml"]);
    outcome.assert_success().assert_stderr(
        "warning: p.toml:4:54: `X-Api-Key` holds a secret written into the pipeline file: read it from the environment (`${env:NAME}`) or a file (`${file:PATH}`) instead, since pipeline files end up in version control
warning: p.toml:5:55: `password` holds a secret written into the pipeline file: read it from the environment (`${env:NAME}`) or a file (`${file:PATH}`) instead, since pipeline files end up in version control
",
    );
    assert_eq!(outcome.stdout(), "p.toml: ok\n");
}
