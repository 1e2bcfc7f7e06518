//! `email`: a plain-text message over SMTP, for teams whose alerting is a mailbox. The body
//! starts with a short summary a person can act on (what failed and why, what was written) and
//! ends with the full JSON report for anything that wants details. TLS is on unless the file
//! says `tls = "none"`, and certificates are verified; a private CA is trusted with `ca_file`.

use std::fmt::Write as _;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{SmtpTransport, Transport};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::config::{Invalid, Secret, Validate};
use crate::stage::RunContext;

use super::{Notice, NotifySpec, Triggered};

notify_config! {
    /// Sends an email over SMTP: a summary of the run, then the JSON report.
    pub struct EmailConfig {
        /// The SMTP server's host name or IP address. Required.
        pub host: String,
        /// The SMTP server's port. Default: 587 for `tls = "starttls"`, 465 for `"tls"`, 25 for
        /// `"none"`.
        pub port: Option<u16>,
        /// How the connection is protected: `"starttls"` (plain connection upgraded with
        /// STARTTLS, required to succeed), `"tls"` (TLS from the start, "SMTPS"), or `"none"`
        /// (unencrypted; only for a relay on the same host or network). Default `"starttls"`.
        #[serde(default)]
        pub tls: TlsMode,
        /// A PEM file of CA certificates to trust besides the system's, for a server with a
        /// private CA or a self-signed certificate. Relative to the pipeline file's directory.
        /// Default: the system's CAs only.
        pub ca_file: Option<String>,
        /// The user name to log in with (AUTH PLAIN or LOGIN). Default: no login.
        pub username: Option<String>,
        /// The password for `username`: a secret (`${env:NAME}`, `${file:PATH}`). Required
        /// with `username`.
        pub password: Option<Secret>,
        /// The sender, e.g. `"longshore <etl@example.com>"`. Required.
        pub from: String,
        /// The recipients, e.g. `["ops@example.com"]`. Required, at least one.
        pub to: Vec<String>,
        /// The subject, its placeholders filled from the run as a webhook's `body`'s are
        /// (`{pipeline}`, `{event}`, `{outcome}`, `{run_id}`, `{records_read}`, `{summary}`,
        /// ...). Default `"[longshore] {pipeline}: {event}"`.
        pub subject: Option<String>,
        /// Seconds each step of the SMTP conversation may wait for the server. Default 30.
        #[serde(default = "default_timeout_secs")]
        pub timeout_secs: u64,
    }
}

fn default_timeout_secs() -> u64 {
    30
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    /// A plain connection upgraded with STARTTLS, which must succeed.
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS).
    Tls,
    /// No encryption.
    None,
}

const DEFAULT_SUBJECT: &str = "[longshore] {pipeline}: {event}";

impl Validate for EmailConfig {
    fn problems(&self) -> Vec<Invalid> {
        let mut problems = self.trigger().problems();
        if self.host.trim().is_empty() {
            problems.push(Invalid::new("host", "`host` is empty"));
        }
        if self.port == Some(0) {
            problems.push(Invalid::new("port", "`port` must be between 1 and 65535"));
        }
        if let Err(e) = self.from.parse::<Mailbox>() {
            problems.push(Invalid::new(
                "from",
                format!("`{}` is not an email address: {e}", self.from),
            ));
        }
        if self.to.is_empty() {
            problems.push(Invalid::new(
                "to",
                "`to` is empty: list at least one recipient",
            ));
        }
        for address in &self.to {
            if let Err(e) = address.parse::<Mailbox>() {
                problems.push(Invalid::new(
                    "to",
                    format!("`{address}` is not an email address: {e}"),
                ));
            }
        }
        match (&self.username, &self.password) {
            (Some(_), None) => {
                problems.push(Invalid::new("username", "`username` needs a `password`"))
            }
            (None, Some(_)) => {
                problems.push(Invalid::new("password", "`password` needs a `username`"))
            }
            (Some(_), Some(_)) if self.tls == TlsMode::None => problems.push(Invalid::new(
                "tls",
                "a password would be sent unencrypted: use `tls = \"starttls\"` or `\"tls\"`",
            )),
            _ => {}
        }
        if let Some(subject) = &self.subject {
            problems.extend(super::message::problems("subject", subject));
        }
        if self.timeout_secs == 0 {
            problems.push(Invalid::new(
                "timeout_secs",
                "`timeout_secs` must be at least 1",
            ));
        }
        problems
    }
}

impl NotifySpec for EmailConfig {
    fn target(&self) -> String {
        format!("email to {}", self.to.join(", "))
    }

    fn missing_files(&self, base_dir: &std::path::Path) -> Vec<Invalid> {
        let resolve = |path: &str| crate::config::join_clean(base_dir, path);
        self.ca_file
            .iter()
            .filter(|file| !resolve(file).is_file())
            .map(|file| {
                Invalid::new(
                    "ca_file",
                    format!("`ca_file` {} does not exist", resolve(file).display()),
                )
            })
            .collect()
    }

    fn send(&self, notice: &Notice, cx: &RunContext) -> Result<(), String> {
        send(self, notice, cx)
    }
}

fn send(config: &EmailConfig, notice: &Notice, cx: &RunContext) -> Result<(), String> {
    let message = message(config, notice)?;
    let params = || -> Result<TlsParameters, String> {
        let mut builder = TlsParameters::builder(config.host.clone());
        if let Some(ca_file) = &config.ca_file {
            let path = cx.resolve(ca_file);
            let pem = std::fs::read(&path)
                .map_err(|e| format!("cannot read ca_file {}: {e}", path.display()))?;
            // An empty list parses too: require at least one certificate.
            let certificate = Certificate::from_pem(&pem)
                .ok()
                .filter(|_| String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----"))
                .ok_or_else(|| format!("ca_file {} holds no PEM certificate", path.display()))?;
            builder = builder.add_root_certificate(certificate);
        }
        builder
            .build()
            .map_err(|e| crate::error::error_chain_text(&e))
    };
    let (tls, default_port) = match config.tls {
        TlsMode::Starttls => (Tls::Required(params()?), 587),
        TlsMode::Tls => (Tls::Wrapper(params()?), 465),
        TlsMode::None => (Tls::None, 25),
    };
    let mut transport = SmtpTransport::builder_dangerous(&config.host)
        .port(config.port.unwrap_or(default_port))
        .tls(tls)
        .timeout(Some(Duration::from_secs(config.timeout_secs)));
    let mut password = None;
    if let (Some(username), Some(secret)) = (&config.username, &config.password) {
        let value = secret
            .resolve(&cx.references())
            .map_err(|e| format!("password: {e}"))?;
        transport = transport.credentials(Credentials::new(
            username.clone(),
            value.expose().to_string(),
        ));
        password = Some(value);
    }
    transport.build().send(&message).map(drop).map_err(|e| {
        let mut text = crate::error::error_chain_text(&e);
        // Servers do not echo passwords, but a message with one must never be logged.
        if let Some(password) = password.filter(|p| !p.expose().is_empty()) {
            text = text.replace(password.expose(), "***");
        }
        text
    })
}

/// The message: headers from the config, the summary and the JSON report as its text.
fn message(config: &EmailConfig, notice: &Notice) -> Result<Message, String> {
    let mailbox = |text: &str| {
        text.parse::<Mailbox>()
            .map_err(|e| format!("`{text}` is not an email address: {e}"))
    };
    let mut builder = Message::builder()
        .from(mailbox(&config.from)?)
        .subject(subject(config.subject.as_deref(), notice))
        .header(ContentType::TEXT_PLAIN);
    for to in &config.to {
        builder = builder.to(mailbox(to)?);
    }
    builder
        .body(body(notice))
        .map_err(|e| format!("cannot build the message: {e}"))
}

/// The subject with its placeholders replaced, on one line (an error may span several).
fn subject(template: Option<&str>, notice: &Notice) -> String {
    super::message::fill(template.unwrap_or(DEFAULT_SUBJECT), notice).replace(['\r', '\n'], " ")
}

/// The text of the message: a summary for people, then the JSON report.
fn body(notice: &Notice) -> String {
    let report = notice.report;
    let mut text = String::new();
    let _ = writeln!(text, "Pipeline: {}", report.pipeline);
    let _ = writeln!(text, "Outcome: {}", report.outcome.as_str());
    if notice.event == super::Event::Stale {
        text.push_str("Stale: no new records for longer than the pipeline allows\n");
    }
    let _ = writeln!(text, "Run: {}", report.run_id);
    let _ = writeln!(
        text,
        "Started: {} ({:.1} s)",
        report.started_at, report.duration_secs
    );
    let _ = writeln!(text, "Records read: {}", report.records_read);
    if report.rejects.total > 0 {
        let _ = writeln!(text, "Records rejected: {}", report.rejects.total);
    }
    let sections = [("Error", &report.error), ("Warnings", &report.warnings)];
    for (title, lines) in sections {
        if !lines.is_empty() {
            let _ = writeln!(text, "{title}:");
            for line in lines {
                let _ = writeln!(text, "  {line}");
            }
        }
    }
    if !report.files_written.is_empty() {
        text.push_str("Files written:\n");
        for file in &report.files_written {
            let _ = writeln!(text, "  {} ({} bytes)", file.path, file.size);
        }
    }
    text.push_str("\nRun report (JSON):\n");
    // SMTP ends the message with a line break of its own.
    text.push_str(notice.json.trim_end());
    text
}
