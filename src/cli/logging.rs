//! Logging: text or JSON lines on stderr, at the level `-v`/`-q`/`RUST_LOG` ask for, except
//! for the crates that would log secrets.

use std::io::IsTerminal;

use super::LogFormat;

/// Crates whose debug and trace logs can show secrets; they log at info at most.
const LEAKY_CRATES: [&str; 5] = ["ureq", "ureq_proto", "rustls", "lettre", "suppaftp"];

pub(super) fn init_logging(verbose: u8, quiet: bool, format: Option<LogFormat>) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("longshore={level}")));
    // Secrets never reach a log, whatever `RUST_LOG` asks (a directive for a crate's module
    // included): the HTTP client logs request URLs (which may carry an API key) at debug and
    // the raw bytes sent and received (headers, tokens) at trace, the TLS, SMTP and FTP layers
    // likewise (FTP's `PASS` command).
    let capped = tracing_subscriber::filter::filter_fn(|meta| {
        *meta.level() <= tracing::Level::INFO
            || !LEAKY_CRATES.iter().any(|name| {
                meta.target()
                    .strip_prefix(name)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
            })
    })
    // No level of its own: the environment's decides how much is even looked at.
    .with_max_level_hint(tracing::level_filters::LevelFilter::TRACE);
    let terminal = std::io::stderr().is_terminal();
    let format = format.unwrap_or_else(|| {
        let wanted = std::env::var("LONGSHORE_LOG_FORMAT").is_ok_and(|f| f == "json");
        if wanted && !terminal {
            LogFormat::Json
        } else {
            LogFormat::Text
        }
    });
    use tracing_subscriber::filter::FilterExt as _;
    use tracing_subscriber::prelude::*;
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(crate::progress::LogWriter)
        .with_target(false);
    let _ = JSON_LOGS.set(format == LogFormat::Json);
    let registry = tracing_subscriber::registry();
    match format {
        LogFormat::Json => registry
            .with(
                logs.json()
                    .flatten_event(true)
                    .with_filter(filter.and(capped)),
            )
            .init(),
        LogFormat::Text => registry
            .with(logs.with_ansi(terminal).with_filter(filter.and(capped)))
            .init(),
    }
}

/// Whether logs are JSON, as chosen at start-up.
pub(super) static JSON_LOGS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
