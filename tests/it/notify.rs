//! Notifications (`[[notify]]`) against real receivers on 127.0.0.1: an HTTP server in this
//! process for webhooks, Python's aiosmtpd for email (see `support::smtp`), `sh` for commands.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use longshore::config::Validate;
use longshore::notify::command::CommandConfig;
use longshore::notify::email::EmailConfig;
use longshore::notify::webhook::WebhookConfig;
use longshore::notify::{NotifySpec, send_all};
use longshore::pipeline::NotifyConfig;
use longshore::stage::RunContext;
use longshore::state::report::{FileDigest, Outcome, RejectCounts, RunReport};

use crate::support::Sandbox;
use crate::support::smtp::{self, SmtpServer};

/// A failed run of `orders` (or another outcome, with the same details).
fn report(outcome: Outcome) -> RunReport {
    RunReport {
        pipeline: "orders".into(),
        run_id: "20240801T020500Z-3f9a1c".into(),
        started_at: "2024-08-01T04:05:00+02:00".into(),
        finished_at: "2024-08-01T04:05:02+02:00".into(),
        duration_secs: 2.25,
        outcome,
        dry_run: false,
        records_read: 120,
        stages: Vec::new(),
        files_read: Vec::new(),
        files_already_processed: Vec::new(),
        files_written: vec![FileDigest {
            path: "out/orders.csv".into(),
            size: 4096,
            sha256: "ab".repeat(32),
        }],
        planned: Vec::new(),
        rejects: RejectCounts {
            total: 2,
            ..RejectCounts::default()
        },
        cursor_before: BTreeMap::new(),
        cursor_after: BTreeMap::new(),
        error: if outcome == Outcome::Failure {
            vec![
                "pipeline orders: sink 1 (file) failed".into(),
                "disk full".into(),
            ]
        } else {
            Vec::new()
        },
        warnings: Vec::new(),
        requests: None,
    }
}

fn cx(dir: &Path) -> RunContext {
    RunContext::new("orders", dir)
}

/// Sends `entries` for a failed run of `orders` (with no earlier runs); the warnings.
fn send_failure(entries: &[NotifyConfig], sandbox: &Sandbox) -> Vec<String> {
    send_all(
        &specs(entries),
        &report(Outcome::Failure),
        &[],
        &cx(sandbox.path()),
    )
}

fn webhook(toml: &str) -> NotifyConfig {
    NotifyConfig::Webhook(toml::from_str::<WebhookConfig>(toml).expect("a webhook config"))
}

fn email(toml: &str) -> NotifyConfig {
    NotifyConfig::Email(toml::from_str::<EmailConfig>(toml).expect("an email config"))
}

fn command(toml: &str) -> NotifyConfig {
    NotifyConfig::Command(toml::from_str::<CommandConfig>(toml).expect("a command config"))
}

/// Sets an environment variable for a secret. Each test uses its own name.
fn set_secret(name: &str, value: &str) {
    // SAFETY: the name is unique to one test, and nothing else in this process writes it.
    unsafe { std::env::set_var(name, value) };
}

// ---------------------------------------------------------------------------------------------
// Webhooks

/// One request a [`HookServer`] received.
#[derive(Debug)]
struct Received {
    method: String,
    url: String,
    headers: BTreeMap<String, String>,
    body: String,
}

/// An HTTP server on 127.0.0.1 answering each request with the next status of a list (the last
/// one repeated), recording what it received.
/// The value of header `name` of `request`, if it has one.
fn headers_of(request: &tiny_http::Request, name: &str) -> Option<String> {
    request
        .headers()
        .iter()
        .find(|h| h.field.to_string().eq_ignore_ascii_case(name))
        .map(|h| h.value.to_string())
}

struct HookServer {
    server: Arc<tiny_http::Server>,
    handle: std::thread::JoinHandle<Vec<Received>>,
    port: u16,
}

impl HookServer {
    fn start(statuses: &[u16]) -> HookServer {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("start tiny_http"));
        let port = server.server_addr().to_ip().expect("an IP address").port();
        let statuses = statuses.to_vec();
        let serving = Arc::clone(&server);
        let handle = std::thread::spawn(move || {
            let mut received = Vec::new();
            // Bounded: at most 20 requests, none more than 30 s apart; `finish` unblocks it.
            while received.len() < 20 {
                let Ok(Some(mut request)) = serving.recv_timeout(Duration::from_secs(30)) else {
                    break;
                };
                let mut body = String::new();
                request
                    .as_reader()
                    .read_to_string(&mut body)
                    .expect("read the request body");
                let headers = request
                    .headers()
                    .iter()
                    .map(|h| (h.field.to_string().to_lowercase(), h.value.to_string()))
                    .collect();
                let status = statuses[received.len().min(statuses.len() - 1)];
                // 403: a receiver that echoes what it was sent, credentials included.
                let echo = format!(
                    "rejected {:?} at {}",
                    headers_of(&request, "authorization"),
                    request.url()
                );
                received.push(Received {
                    method: request.method().to_string(),
                    url: request.url().to_string(),
                    headers,
                    body,
                });
                let response = tiny_http::Response::from_string(match status {
                    200 => "ok".to_string(),
                    403 => echo,
                    _ => "down for maintenance\nmore".to_string(),
                })
                .with_status_code(status);
                let _ = request.respond(response);
            }
            received
        });
        HookServer {
            server,
            handle,
            port,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Stops the server and returns what it received.
    fn finish(self) -> Vec<Received> {
        self.server.unblock();
        self.handle.join().expect("the server thread")
    }
}

/// The entries as `send_all` takes them, as the runner hands them over.
fn specs(entries: &[NotifyConfig]) -> Vec<&dyn NotifySpec> {
    entries.iter().map(NotifyConfig::spec).collect()
}

#[test]
fn webhook_posts_the_report_with_a_secret_header() {
    let sandbox = Sandbox::new();
    set_secret("LONGSHORE_TEST_HOOK_TOKEN_POST", "Bearer tok-123");
    let server = HookServer::start(&[200]);
    let entries = [
        webhook(&format!(
            "on = [\"failure\"]\nurl = \"{}\"\nheaders = {{ Authorization = \"${{env:LONGSHORE_TEST_HOOK_TOKEN_POST}}\" }}",
            server.url("/hook")
        )),
        // Not for failures: sends nothing.
        webhook(&format!(
            "on = [\"success\"]\nurl = \"{}\"",
            server.url("/other")
        )),
    ];
    let report = report(Outcome::Failure);
    let warnings = send_all(&specs(&entries), &report, &[], &cx(sandbox.path()));
    let received = server.finish();
    assert_eq!(warnings, Vec::<String>::new());
    assert_eq!(received.len(), 1, "{received:?}");
    let request = &received[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.url, "/hook");
    assert_eq!(request.body, report.to_json());
    assert_eq!(request.headers["authorization"], "Bearer tok-123");
    assert_eq!(request.headers["content-type"], "application/json");
    assert_eq!(request.headers["x-longshore-event"], "failure");
}

#[test]
fn webhook_body_is_shaped_for_slack_and_a_notification_api_with_one_key_per_notice() {
    let sandbox = Sandbox::new();
    set_secret("LONGSHORE_TEST_NOTIFY_API_TOKEN", "ntk-777");
    let server = HookServer::start(&[500, 200, 200]);
    let entries = [
        webhook(&format!(
            "on = [\"failure\"]\nurl = \"{}\"\nretry_delay_ms = 5\nbody = {{ text = \":red_circle: {{summary}}\", blocks = [{{ type = \"section\", fields = [\"run {{run_id}}\", \"{{records_read}} read\"] }}] }}",
            server.url("/slack")
        )),
        webhook(&format!(
            "on = [\"failure\"]\nurl = \"{}\"\nauth = {{ type = \"bearer\", token = \"${{env:LONGSHORE_TEST_NOTIFY_API_TOKEN}}\" }}\nbody = {{ channel = \"ops\", subject = \"{{pipeline}}: {{event}}\", details = \"{{report}}\" }}",
            server.url("/notifications/send")
        )),
    ];
    let report = report(Outcome::Failure);
    let warnings = send_all(&specs(&entries), &report, &[], &cx(sandbox.path()));
    let received = server.finish();
    assert_eq!(warnings, Vec::<String>::new());
    assert_eq!(received.len(), 3, "{received:?}");
    // Slack: retried after the 500 with the same body and key.
    let slack: serde_json::Value = serde_json::from_str(&received[1].body).unwrap();
    assert_eq!(
        slack,
        serde_json::json!({
            "text": ":red_circle: orders: failure after 2.2 s, 120 records read, 2 rejected: pipeline orders: sink 1 (file) failed: disk full",
            "blocks": [{"type": "section", "fields": ["run 20240801T020500Z-3f9a1c", "120 read"]}],
        })
    );
    assert_eq!(received[0].body, received[1].body);
    let key = &received[0].headers["idempotency-key"];
    assert_eq!(key.len(), 64);
    assert_eq!(&received[1].headers["idempotency-key"], key);
    // The notification API: its own fields, the report as an object, the bearer token.
    let api = &received[2];
    assert_eq!(api.url, "/notifications/send");
    assert_eq!(api.headers["authorization"], "Bearer ntk-777");
    assert_ne!(&api.headers["idempotency-key"], key);
    let body: serde_json::Value = serde_json::from_str(&api.body).unwrap();
    assert_eq!(body["channel"], "ops");
    assert_eq!(body["subject"], "orders: failure");
    assert_eq!(
        body["details"],
        serde_json::from_str::<serde_json::Value>(&report.to_json()).unwrap()
    );
}

#[test]
fn webhook_retries_server_errors_with_backoff() {
    let sandbox = Sandbox::new();
    let server = HookServer::start(&[500, 500, 200]);
    let entries = [webhook(&format!(
        "on = [\"success\"]\nurl = \"{}\"\nretry_delay_ms = 5",
        server.url("/hook")
    ))];
    let warnings = send_all(
        &specs(&entries),
        &report(Outcome::Success),
        &[],
        &cx(sandbox.path()),
    );
    let received = server.finish();
    assert_eq!(warnings, Vec::<String>::new());
    assert_eq!(received.len(), 3);
    assert!(
        received
            .iter()
            .all(|r| r.headers["x-longshore-event"] == "success")
    );
}

#[test]
fn webhook_that_keeps_failing_is_a_warning_with_the_url_redacted() {
    let sandbox = Sandbox::new();
    let server = HookServer::start(&[503]);
    let port = server.port;
    let entries = [webhook(&format!(
        "on = [\"failure\"]\nurl = \"{}\"\nattempts = 3\nretry_delay_ms = 1",
        server.url("/hook?token=abc123secret&channel=ops")
    ))];
    let warnings = send_failure(&entries, &sandbox);
    assert_eq!(server.finish().len(), 3);
    assert_eq!(
        warnings,
        [format!(
            "notification 1 (webhook http://127.0.0.1:{port}/hook?token=***&channel=***) for \
             failure not sent: answered HTTP 503: down for maintenance more (after 3 attempts)"
        )]
    );
}

#[test]
fn webhook_client_errors_are_not_retried() {
    let sandbox = Sandbox::new();
    let server = HookServer::start(&[401]);
    let url = server.url("/hook");
    let entries = [webhook(&format!(
        "on = [\"failure\"]\nurl = \"{url}\"\nretry_delay_ms = 1"
    ))];
    let warnings = send_failure(&entries, &sandbox);
    assert_eq!(server.finish().len(), 1);
    assert_eq!(
        warnings,
        [format!(
            "notification 1 (webhook {url}) for failure not sent: answered HTTP 401: down for maintenance more"
        )]
    );
}

#[test]
fn webhook_connection_errors_are_retried_then_reported() {
    let sandbox = Sandbox::new();
    // A port nobody listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let entries = [webhook(&format!(
        "on = [\"failure\"]\nurl = \"http://127.0.0.1:{port}/hook?key=k-999\"\nattempts = 2\nretry_delay_ms = 1"
    ))];
    let warnings = send_failure(&entries, &sandbox);
    assert_eq!(warnings.len(), 1);
    let prefix = format!(
        "notification 1 (webhook http://127.0.0.1:{port}/hook?key=***) for failure not sent: "
    );
    assert!(warnings[0].starts_with(&prefix), "{}", warnings[0]);
    assert!(
        warnings[0].ends_with("(after 2 attempts)"),
        "{}",
        warnings[0]
    );
    assert!(!warnings[0].contains("k-999"), "{}", warnings[0]);
}

#[test]
fn webhook_with_a_missing_secret_sends_nothing() {
    let sandbox = Sandbox::new();
    let server = HookServer::start(&[200]);
    let entries = [webhook(&format!(
        "on = [\"failure\"]\nurl = \"{}\"\nheaders = {{ Authorization = \"${{env:LONGSHORE_TEST_SURELY_UNSET_HOOK}}\" }}",
        server.url("/hook")
    ))];
    let warnings = send_failure(&entries, &sandbox);
    assert_eq!(server.finish().len(), 0);
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0].ends_with(
            "not sent: header `Authorization`: environment variable \
             `LONGSHORE_TEST_SURELY_UNSET_HOOK` is not set (or not UTF-8)"
        ),
        "{}",
        warnings[0]
    );
}

// ---------------------------------------------------------------------------------------------
// Email

/// The body the email notification of `report(Outcome::Failure)` must have.
fn expected_failure_body(report: &RunReport) -> String {
    format!(
        "Pipeline: orders\n\
         Outcome: failure\n\
         Run: 20240801T020500Z-3f9a1c\n\
         Started: 2024-08-01T04:05:00+02:00 (2.2 s)\n\
         Records read: 120\n\
         Records rejected: 2\n\
         Error:\n  \
           pipeline orders: sink 1 (file) failed\n  \
           disk full\n\
         Files written:\n  \
           out/orders.csv (4096 bytes)\n\
         \n\
         Run report (JSON):\n{}",
        report.to_json()
    )
}

#[test]
fn email_over_plain_smtp_carries_the_summary_and_the_report() {
    let Some(server) = SmtpServer::start() else {
        return;
    };
    let sandbox = Sandbox::new();
    let entries = [email(&format!(
        "on = [\"failure\"]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n\
         from = \"longshore <etl@example.com>\"\nto = [\"ops@example.com\", \"data@example.com\"]",
        server.port
    ))];
    let report = report(Outcome::Failure);
    let warnings = send_all(&specs(&entries), &report, &[], &cx(sandbox.path()));
    assert_eq!(warnings, Vec::<String>::new(), "{}", server.log());
    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    let message = &messages[0];
    assert_eq!(message["mail_from"], "etl@example.com");
    assert_eq!(
        message["rcpt_tos"],
        serde_json::json!(["ops@example.com", "data@example.com"])
    );
    assert_eq!(message["from"], "longshore <etl@example.com>");
    assert_eq!(message["to"], "ops@example.com, data@example.com");
    assert_eq!(message["subject"], "[longshore] orders: failure");
    assert_eq!(message["body"], expected_failure_body(&report));
    assert_eq!(message["tls"], false);
    assert_eq!(message["login"], serde_json::Value::Null);
}

#[test]
fn email_over_starttls_and_tls_logs_in_and_trusts_the_ca_file() {
    let Some(server) = SmtpServer::start() else {
        return;
    };
    let sandbox = Sandbox::new();
    set_secret("LONGSHORE_TEST_SMTP_PASSWORD_TLS", smtp::PASSWORD);
    let entry = |tls: &str, port: u16| {
        email(&format!(
            "on = [\"success\"]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"{tls}\"\n\
             ca_file = \"{}\"\nusername = \"{}\"\npassword = \"${{env:LONGSHORE_TEST_SMTP_PASSWORD_TLS}}\"\n\
             from = \"etl@example.com\"\nto = [\"ops@example.com\"]\n\
             subject = \"{{pipeline}} {{event}} {{outcome}} {{run_id}} via {tls}\"",
            server.cert().display(),
            smtp::USER
        ))
    };
    let entries = [
        entry("starttls", server.port),
        entry("tls", server.tls_port),
    ];
    let warnings = send_all(
        &specs(&entries),
        &report(Outcome::NothingNew),
        &[],
        &cx(sandbox.path()),
    );
    assert_eq!(warnings, Vec::<String>::new(), "{}", server.log());
    let messages = server.messages();
    assert_eq!(messages.len(), 2);
    for (message, tls) in messages.iter().zip(["starttls", "tls"]) {
        assert_eq!(
            message["subject"],
            format!("orders success nothing_new 20240801T020500Z-3f9a1c via {tls}")
        );
        assert_eq!(message["tls"], true);
        assert_eq!(message["login"], smtp::USER);
    }
}

#[test]
fn email_with_a_wrong_password_is_a_warning_without_the_password() {
    let Some(server) = SmtpServer::start() else {
        return;
    };
    let sandbox = Sandbox::new();
    let entries = [email(&format!(
        "on = [\"failure\"]\nhost = \"127.0.0.1\"\nport = {}\nca_file = \"{}\"\n\
         username = \"{}\"\npassword = \"wrong-pass-4711\"\n\
         from = \"etl@example.com\"\nto = [\"ops@example.com\"]",
        server.port,
        server.cert().display(),
        smtp::USER
    ))];
    let warnings = send_failure(&entries, &sandbox);
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0].starts_with(
            "notification 1 (email to ops@example.com) for failure not sent: permanent error (535)"
        ),
        "{}",
        warnings[0]
    );
    assert!(!warnings[0].contains("wrong-pass-4711"), "{}", warnings[0]);
    assert_eq!(server.messages().len(), 0);
}

#[test]
fn email_to_a_server_with_an_untrusted_certificate_is_refused() {
    let Some(server) = SmtpServer::start() else {
        return;
    };
    let sandbox = Sandbox::new();
    let entries = [email(&format!(
        "on = [\"failure\"]\nhost = \"127.0.0.1\"\nport = {}\n\
         from = \"etl@example.com\"\nto = [\"ops@example.com\"]",
        server.port
    ))];
    let warnings = send_failure(&entries, &sandbox);
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0].ends_with("network error: invalid peer certificate: UnknownIssuer"),
        "{}",
        warnings[0]
    );
    assert_eq!(server.messages().len(), 0);
}

// ---------------------------------------------------------------------------------------------
// Commands

#[test]
fn command_gets_the_report_on_stdin_and_the_run_in_its_environment() {
    let sandbox = Sandbox::new();
    // A relative program path is taken from the pipeline file's directory, which is also the
    // program's working directory.
    let script = sandbox.write(
        "hooks/notify.sh",
        "#!/bin/sh\ncat > report.json\n\
         printf '%s|%s|%s|%s|%s' \"$LONGSHORE_PIPELINE\" \"$LONGSHORE_OUTCOME\" \
         \"$LONGSHORE_EVENT\" \"$LONGSHORE_RUN_ID\" \"$1\" > env.txt\n",
    );
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
        .expect("make the script executable");
    let entries = [command(
        "on = [\"stale\"]\nstale_after_runs = 2\nprogram = \"hooks/notify.sh\"\nargs = [\"an arg\"]",
    )];
    let report = RunReport {
        records_read: 0,
        ..report(Outcome::NothingNew)
    };
    let previous = [RunReport {
        run_id: "earlier".into(),
        ..report.clone()
    }];
    let warnings = send_all(&specs(&entries), &report, &previous, &cx(sandbox.path()));
    assert_eq!(warnings, Vec::<String>::new());
    assert_eq!(sandbox.read("report.json"), report.to_json());
    assert_eq!(
        sandbox.read("env.txt"),
        "orders|nothing_new|stale|20240801T020500Z-3f9a1c|an arg"
    );
}

#[test]
fn command_failing_is_a_warning_with_the_end_of_its_stderr() {
    let sandbox = Sandbox::new();
    let entries = [command(
        "on = [\"failure\"]\nprogram = \"sh\"\n\
         args = [\"-c\", \"cat > /dev/null; echo 'first line' >&2; echo 'quota exceeded' >&2; exit 3\"]",
    )];
    let warnings = send_failure(&entries, &sandbox);
    assert_eq!(
        warnings,
        [
            "notification 1 (command sh) for failure not sent: sh exited with exit status: 3; \
          stderr: first line | quota exceeded"
        ]
    );
}

#[test]
fn command_past_its_timeout_is_killed_with_what_it_started() {
    let sandbox = Sandbox::new();
    let pid_file = sandbox.join("sleeper.pid");
    let entries = [command(&format!(
        "on = [\"failure\"]\nprogram = \"sh\"\ntimeout_secs = 1\n\
         args = [\"-c\", \"sleep 30 & echo $! > '{}'; wait\"]",
        pid_file.display()
    ))];
    let started = Instant::now();
    let warnings = send_failure(&entries, &sandbox);
    let elapsed = started.elapsed();
    assert_eq!(
        warnings,
        ["notification 1 (command sh) for failure not sent: sh timed out after 1 s and was killed"]
    );
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    // The background `sleep` was in the program's process group: it is gone too (or a zombie
    // about to be reaped). SIGKILL takes effect asynchronously, so look a bounded number of times.
    let pid = sandbox.read("sleeper.pid").trim().to_string();
    let stat = format!("/proc/{pid}/stat");
    let deadline = Instant::now() + Duration::from_secs(5);
    let gone = || match std::fs::read_to_string(&stat) {
        Err(_) => true,
        Ok(text) => text
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    };
    while !gone() && Instant::now() < deadline {
        std::thread::yield_now();
    }
    assert!(gone(), "the background sleep {pid} survived the timeout");
}

#[test]
fn a_missing_program_is_a_warning() {
    let sandbox = Sandbox::new();
    let entries = [command(
        "on = [\"failure\"]\nprogram = \"longshore-test-no-such-program\"",
    )];
    let warnings = send_failure(&entries, &sandbox);
    assert_eq!(
        warnings,
        [
            "notification 1 (command longshore-test-no-such-program) for failure not sent: \
          cannot start longshore-test-no-such-program: No such file or directory (os error 2)"
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Configuration

#[test]
fn configs_report_their_problems() {
    let problems = |config: &dyn Validate| -> Vec<String> {
        config
            .problems()
            .into_iter()
            .map(|p| p.to_string())
            .collect()
    };
    let hook: WebhookConfig = toml::from_str(
        "on = [\"stale\"]\nurl = \"ftp://example.com/x?token=t0k\"\nattempts = 0\n\
         headers = { \"Bad Name\" = \"x\" }",
    )
    .unwrap();
    assert_eq!(
        problems(&hook),
        [
            "on: `stale` needs `stale_after_runs` or `stale_after_hours`",
            "url: must start with `http://` or `https://`",
            "headers: `Bad Name` is not a valid header name",
            "attempts: `attempts` must be between 1 and 10",
        ]
    );
    let hook: WebhookConfig = toml::from_str(
        "on = [\"failure\"]\nurl = \"https://x.example\"\nbody = { text = \"{summry} {{ok}}\" }",
    )
    .unwrap();
    let found = problems(&hook);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("body: unknown placeholder `{summry}`: use `{pipeline}`, `{event}`"),
        "{found:?}"
    );
    let not_a_table = toml::from_str::<WebhookConfig>(
        "on = [\"failure\"]\nurl = \"https://x.example\"\nbody = \"{summary}\"",
    )
    .unwrap_err()
    .to_string();
    assert!(not_a_table.contains("expected a map"), "{not_a_table}");
    let mail: EmailConfig = toml::from_str(
        "on = [\"failure\"]\nhost = \"smtp.example.com\"\ntls = \"none\"\nfrom = \"not an address\"\n\
         to = []\nusername = \"u\"\npassword = \"${env:SMTP_PASSWORD}\"\nsubject = \"{pipeline} {when}\"",
    )
    .unwrap();
    assert_eq!(
        problems(&mail),
        [
            "from: `not an address` is not an email address: Invalid input",
            "to: `to` is empty: list at least one recipient",
            "tls: a password would be sent unencrypted: use `tls = \"starttls\"` or `\"tls\"`",
            "subject: unknown placeholder `{when}`: use `{pipeline}`, `{event}`, `{outcome}`, `{run_id}`, `{started_at}`, `{duration_secs}`, `{records_read}`, `{rejects}`, `{files_written}`, `{error}`, `{warnings}`, `{summary}`, `{report}`",
        ]
    );
    let run: CommandConfig = toml::from_str("on = []\nprogram = \"\"").unwrap();
    assert_eq!(
        problems(&run),
        [
            "on: `on` is empty: list when to send, e.g. `on = [\"failure\"]`",
            "program: `program` is empty",
        ]
    );
    let unknown =
        toml::from_str::<CommandConfig>("on = [\"failure\"]\nprogram = \"x\"\nshell = true")
            .unwrap_err();
    assert!(
        unknown.message().contains("unknown field `shell`"),
        "{unknown}"
    );
}

/// A pipeline run end to end: each run notifies with its own report, a run with nothing new
/// counts towards `stale`, which alerts once, and a failed run notifies `failure`.
#[test]
fn a_pipeline_notifies_success_stale_and_failure_with_its_report() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "p.toml",
        r#"name = "p"
[source]
type = "file"
path = "in/*.csv"

[[sinks]]
type = "file"
path = "out/{source_stem}.ndjson"

[[notify]]
type = "command"
on = ["success", "failure", "stale"]
stale_after_runs = 2
program = "sh"
args = ["-c", "cat > notified/$LONGSHORE_RUN_ID-$LONGSHORE_EVENT.json"]
"#,
    );
    sandbox.write("notified/.keep", "");
    sandbox.write("in/a.csv", "id\n1\n");
    let events = || -> Vec<(String, serde_json::Value)> {
        let mut found: Vec<(String, serde_json::Value)> = sandbox
            .files("notified")
            .iter()
            .filter(|f| f.ends_with(".json"))
            .map(|f| {
                let report: serde_json::Value = serde_json::from_str(&sandbox.read(f)).unwrap();
                let event = f.rsplit('-').next().unwrap().trim_end_matches(".json");
                (event.to_string(), report)
            })
            .collect();
        found.sort_by(|a, b| a.1["started_at"].as_str().cmp(&b.1["started_at"].as_str()));
        found
    };
    for _ in 0..3 {
        sandbox.run(["-q", "run", "p.toml"]).assert_success();
    }
    sandbox.write("in/b.csv", "id\n2,extra\n");
    sandbox.run(["-q", "run", "p.toml"]).assert_code(1);
    let seen: Vec<(String, String, u64)> = events()
        .into_iter()
        .map(|(event, report)| {
            (
                event,
                report["outcome"].as_str().unwrap().to_string(),
                report["records_read"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("success".to_string(), "success".to_string(), 1),
            ("success".to_string(), "nothing_new".to_string(), 0),
            ("stale".to_string(), "nothing_new".to_string(), 0),
            ("failure".to_string(), "failure".to_string(), 0),
        ]
    );
    let (_, failed) = events().pop().unwrap();
    assert!(
        failed["error"][1]
            .as_str()
            .unwrap()
            .starts_with("in/b.csv: line 2, record 1: expected 1 field"),
        "{failed}"
    );
}

#[test]
fn webhook_answers_that_echo_credentials_are_redacted() {
    let sandbox = Sandbox::new();
    let server = HookServer::start(&[403]);
    set_secret("LONGSHORE_TEST_HOOK_ECHO_TOKEN", "hook-s3cr3t-42");
    let entries = [webhook(&format!(
        "on = [\"failure\"]\nurl = \"{}\"\nheaders = {{ Authorization = \"Bearer ${{env:LONGSHORE_TEST_HOOK_ECHO_TOKEN}}\" }}",
        server.url("/hook?key=q-s3cr3t-77")
    ))];
    let warnings = send_failure(&entries, &sandbox);
    assert_eq!(server.finish().len(), 1);
    let port = server_port_of(&warnings);
    assert_eq!(
        warnings,
        [format!(
            "notification 1 (webhook http://127.0.0.1:{port}/hook?key=***) for failure not sent: answered HTTP 403: rejected Some(\"***\") at /hook?key=***"
        )]
    );
}

/// The port a warning's webhook URL names.
fn server_port_of(warnings: &[String]) -> String {
    let text = &warnings[0];
    let after = text.split("127.0.0.1:").nth(1).expect("a loopback URL");
    after.chars().take_while(char::is_ascii_digit).collect()
}

#[test]
fn broken_alerting_is_found_by_validate_and_said_with_the_failure() {
    let sandbox = Sandbox::new();
    let pipeline = |notify: &str| {
        format!(
            "[source]\ntype = \"file\"\npath = \"in.csv\"\n[[sinks]]\ntype = \"file\"\npath = \"out.ndjson\"\n{notify}"
        )
    };
    sandbox.write(
        "p.toml",
        pipeline(
            "[[notify]]\ntype = \"command\"\non = [\"failure\"]\nprogram = \"no-such-pager-cli\"\n[[notify]]\ntype = \"email\"\non = [\"failure\"]\nhost = \"127.0.0.1\"\nfrom = \"a@example.com\"\nto = [\"b@example.com\"]\nca_file = \"missing-ca.pem\"\n",
        ),
    );
    sandbox.run(["validate", "p.toml"]).assert_code(2).assert_stderr(
        "error: p.toml has 2 problems:
  p.toml:10:11: notify 1 (command): the program `no-such-pager-cli` is not found (a name is looked up in PATH, a path starts at the pipeline file's folder)
  p.toml:17:11: notify 2 (email): `ca_file` missing-ca.pem does not exist
",
    );
    // A failure whose alert cannot go out says so with the failure.
    sandbox.write(
        "p.toml",
        pipeline("[[notify]]\ntype = \"command\"\non = [\"failure\"]\nprogram = \"./alert.sh\"\n"),
    );
    sandbox.write("alert.sh", "#!/bin/sh\necho 'pager down' >&2\nexit 3\n");
    std::fs::set_permissions(
        sandbox.join("alert.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let outcome = sandbox.run(["-q", "run", "p.toml"]);
    outcome.assert_code(1);
    assert!(
        outcome
            .stderr
            .contains("\n  and: notification 1 (command ./alert.sh) for failure not sent: "),
        "{}",
        outcome.stderr
    );
}

/// A Slack-style webhook URL holds its token in the path: given by reference, it is shown as
/// the reference, and an answer that echoes it is redacted.
#[test]
fn a_webhook_url_given_by_reference_is_never_shown() {
    let sandbox = Sandbox::new();
    let server = HookServer::start(&[403]);
    let url = server.url("/services/T0123/B0456/xoxb-path-token");
    sandbox.write(
        "p.toml",
        "[source]\ntype = \"file\"\npath = \"in.csv\"\n[[sinks]]\ntype = \"file\"\npath = \"out.ndjson\"\n\
         [[notify]]\ntype = \"webhook\"\non = [\"failure\"]\nurl = \"${env:HOOK_URL}\"\nbody = { text = \"{summary}\" }\n",
    );
    let outcome = crate::support::run({
        let mut command = sandbox.command(["-q", "run", "p.toml"]);
        command.env("HOOK_URL", &url);
        command
    });
    outcome.assert_code(1);
    assert_eq!(server.finish().len(), 1);
    assert!(
        outcome.stderr.contains(
            "\n  and: notification 1 (webhook ${env:HOOK_URL}) for failure not sent: answered HTTP 403: rejected None at /***"
        ),
        "{}",
        outcome.stderr
    );
    assert!(
        !outcome.stderr.contains("xoxb-path-token"),
        "{}",
        outcome.stderr
    );
}
