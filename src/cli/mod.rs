//! The command line: parses arguments, calls the library, prints results and errors, and turns
//! the outcome into an exit code (0 success, 1 run or data failure, 2 configuration or usage
//! error; a closed output pipe, as in `longshore preview p.toml | head`, counts as success).
// Messages for people go to stderr from here; stdout is written through handles that report a
// closed pipe.
#![allow(clippy::print_stderr)]

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::codecs::limit::DEFAULT_MAX_RECORD_BYTES;
use crate::codecs::types::Typing;
use crate::codecs::unpack::{self, UnpackLimits};
use crate::codecs::{FormatConfig, TextEncoding};
use crate::error::{RunError, is_broken_pipe};
use crate::pipeline::{self, ConfigError, Pipeline};
use crate::runner::{self, RunOptions};
use crate::sources::file::ReadOptions;
use crate::state::report::{Outcome, RunReport};
use crate::state::{SqliteStore, StateStore, StateSummary};

/// Declarative batch pipelines: records from APIs and file drops to files and pushes, safe to
/// rerun from cron.
#[derive(Debug, Parser)]
#[command(
    name = "longshore",
    version,
    max_term_width = 100,
    after_help = "Exit codes: 0 success, 1 a run failed (bad data, unreadable input, unwritable output), \
                  2 a pipeline file or the command line is wrong."
)]
pub struct Cli {
    /// More log output (-v: debug, -vv: trace). `RUST_LOG` overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Only log errors, and show no progress.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Log format: `text` for people, `json` (one object per line) for log collectors.
    /// Default: text, or json when stderr is not a terminal and `LONGSHORE_LOG_FORMAT=json`.
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    /// A value for `${var:NAME}` in pipeline files, e.g. `--var from=2024-01-01`; repeat for
    /// more.
    #[arg(long = "var", global = true, value_name = "NAME=VALUE", value_parser = crate::config::interpolate::parse_variable)]
    vars: Vec<(String, String)>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Where a pipeline's state is, when not where its pipeline file says.
#[derive(Debug, clap::Args)]
struct StateArg {
    /// The state file (SQLite), instead of the pipeline's `[state]` or
    /// `.longshore/state.db` beside the pipeline file.
    #[arg(long, env = "LONGSHORE_STATE", value_name = "PATH")]
    state: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run pipelines, one after the other. Every pipeline file is checked before any runs.
    Run {
        /// Pipeline files (TOML).
        #[arg(required = true)]
        pipelines: Vec<PathBuf>,
        #[command(flatten)]
        state: StateArg,
        /// Read and transform everything, but write nothing and move no state; print what
        /// would have been written where.
        #[arg(long)]
        dry_run: bool,
        /// Write the run report (JSON) to this file; `{pipeline}` in it is replaced by the
        /// pipeline's name (needed when running several).
        #[arg(long, value_name = "PATH")]
        report: Option<String>,
    },
    /// Show or change what a pipeline remembers between runs.
    #[command(subcommand)]
    State(StateCommand),
    /// List a pipeline's recent runs, newest first.
    Runs {
        /// A pipeline file (TOML).
        pipeline: PathBuf,
        #[command(flatten)]
        state: StateArg,
        /// How many runs to list.
        #[arg(short = 'n', long, default_value_t = 20)]
        limit: usize,
        /// Print the full run reports as a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Check pipeline files and report every problem, without reading or writing any data.
    Validate {
        /// Pipeline files (TOML).
        #[arg(required = true)]
        pipelines: Vec<PathBuf>,
    },
    /// Print the first records of a pipeline, after its transforms, as a table. Writes nothing.
    Preview {
        /// A pipeline file (TOML).
        pipeline: PathBuf,
        /// How many records to show.
        #[arg(short = 'n', long, default_value_t = 20)]
        limit: usize,
    },
    /// Convert a file to another format, e.g. `longshore convert orders.csv orders.ndjson`.
    /// The output is written atomically; `-` writes to standard output.
    Convert {
        /// The file to read.
        input: PathBuf,
        /// The file to write, or `-` for standard output. It is replaced atomically, so it must
        /// be a regular file or not exist: a device (`/dev/null`), a named pipe or a symbolic
        /// link is refused.
        output: PathBuf,
        #[arg(long, help = format!("The input format ({}). Default: from the input's extension", FormatConfig::names()))]
        from: Option<String>,
        #[arg(long, help = format!("The output format ({}). Default: from the output's extension", FormatConfig::names()))]
        to: Option<String>,
        /// The input's text encoding when it has no byte-order mark, e.g. windows-1252. Default: UTF-8.
        #[arg(long, value_parser = TextEncoding::parse)]
        encoding: Option<TextEncoding>,
        /// The output's text encoding, e.g. windows-1252 or utf-16le. Default: UTF-8.
        #[arg(long, value_parser = TextEncoding::parse)]
        to_encoding: Option<TextEncoding>,
        /// Give text values the type they read as (integers, decimals, booleans, dates), e.g.
        /// for typed spreadsheet cells from a CSV.
        #[arg(long)]
        infer_types: bool,
        /// The most bytes one record (a CSV row, an NDJSON line, an array element) may take;
        /// a larger one fails the conversion.
        #[arg(long, default_value_t = DEFAULT_MAX_RECORD_BYTES, value_parser = clap::value_parser!(u64).range(1..))]
        max_record_bytes: u64,
    },
    /// Print the JSON Schema of pipeline files, for editor completion and checks.
    Schema {
        /// Print the reference of every key in Markdown instead.
        #[arg(long)]
        markdown: bool,
    },
}

#[derive(Debug, Subcommand)]
enum StateCommand {
    /// Print the cursors, the ledger size, the lock and the last runs.
    Show {
        /// A pipeline file (TOML).
        pipeline: PathBuf,
        #[command(flatten)]
        state: StateArg,
    },
    /// Forget the cursors, the ledger of delivered files and the outbox, so the next run
    /// starts from scratch (or from `--cursor`). The run history stays.
    Reset {
        /// A pipeline file (TOML).
        pipeline: PathBuf,
        #[command(flatten)]
        state: StateArg,
        /// Set the incremental cursor to this value instead of leaving none.
        #[arg(long, value_name = "VALUE")]
        cursor: Option<String>,
        /// The cursor `--cursor` sets.
        #[arg(
            long,
            value_name = "NAME",
            default_value = "cursor",
            requires = "cursor"
        )]
        cursor_name: String,
        /// Really reset: without it, nothing changes.
        #[arg(long)]
        yes: bool,
    },
    /// Remove one file from the ledger, so the next run reads it again.
    Forget {
        /// A pipeline file (TOML).
        pipeline: PathBuf,
        /// The source file, as a path from the current directory; for a file picked up from a
        /// server, its URL as the run's messages show it
        /// (`sftp://user@host:22/inbound/orders.csv`).
        file: PathBuf,
        #[command(flatten)]
        state: StateArg,
    },
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with 0; usage errors to stderr with 2.
            let _ = e.print();
            return ExitCode::from(e.exit_code().clamp(0, 255) as u8);
        }
    };
    init_logging(cli.verbose, cli.quiet, cli.log_format);
    crate::progress::init(!cli.quiet);
    let loading = pipeline::Loading {
        vars: cli.vars.into_iter().collect(),
        lenient: false,
    };
    match execute(cli.command, &loading) {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            report_error(&e);
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

/// Crates whose debug and trace logs can show secrets; they log at info at most.
const LEAKY_CRATES: [&str; 5] = ["ureq", "ureq_proto", "rustls", "lettre", "suppaftp"];

fn init_logging(verbose: u8, quiet: bool, format: Option<LogFormat>) {
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

/// `error: <what failed>` followed by each cause on its own line.
fn render_error(error: &Error) -> String {
    let mut lines = runner::error_chain(error).into_iter();
    let mut text = format!("error: {}", lines.next().unwrap_or_default());
    for cause in lines {
        text.push_str(&format!("\n  caused by: {cause}"));
    }
    text
}

fn execute(command: Command, loading: &pipeline::Loading) -> Result<ExitCode, Error> {
    // `runs` and `state` look only at a pipeline's name and state: they work without the
    // run's environment.
    let lenient = pipeline::Loading {
        lenient: true,
        ..loading.clone()
    };
    match command {
        Command::Run {
            pipelines,
            state,
            dry_run,
            report,
        } => run(&pipelines, loading, state.state, dry_run, report.as_deref()),
        Command::State(command) => state_command(command, &lenient),
        Command::Runs {
            pipeline,
            state,
            limit,
            json,
        } => runs(&pipeline, &lenient, state.state, limit, json),
        Command::Validate { pipelines } => validate(&pipelines, loading),
        Command::Preview { pipeline, limit } => {
            let pipeline = pipeline::load(&pipeline, loading)?;
            let records = runner::preview(&pipeline, limit)?;
            let mut out = std::io::stdout().lock();
            runner::write_table(&mut out, &records)
                .and_then(|()| out.flush())
                .map_err(Error::Output)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Convert {
            input,
            output,
            from,
            to,
            encoding,
            to_encoding,
            infer_types,
            max_record_bytes,
        } => {
            // A zip archive's members are each of the format their names imply.
            let archive = from.is_none() && unpack::is_zip_name(&input.to_string_lossy());
            let from = match archive {
                true => None,
                false => Some(format_for(&input, from.as_deref(), "--from")?),
            };
            if let Some(message) = from.as_ref().and_then(|f| f.encoding_problem(encoding)) {
                return Err(Error::Usage(format!("--encoding: {message}")));
            }
            let read = ReadOptions {
                format: from,
                encoding,
                limits: UnpackLimits::default(),
                max_record_bytes,
                typing: Typing::new(infer_types, None),
                file_fields: false,
            };
            let to = format_for(&output, to.as_deref(), "--to")?;
            if output != Path::new("-")
                && let Some(message) = to.output_problem(&output.to_string_lossy())
            {
                return Err(Error::Usage(message));
            }
            if let Some(message) = to.encoding_problem(to_encoding) {
                return Err(Error::Usage(format!("--to-encoding: {message}")));
            }
            let report = runner::convert(&input, &output, read, to, to_encoding)?;
            tracing::info!(
                "wrote {} records to {}",
                report.records,
                report.published.join(", ")
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema { markdown } => {
            let text = if markdown {
                pipeline::reference::markdown()
            } else {
                pipeline::json_schema()
            };
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())
                .and_then(|()| out.flush())
                .map_err(Error::Output)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn run(
    files: &[PathBuf],
    loading: &pipeline::Loading,
    state_path: Option<PathBuf>,
    dry_run: bool,
    report_path: Option<&str>,
) -> Result<ExitCode, Error> {
    let pipelines = files
        .iter()
        .map(|file| pipeline::load(file, loading))
        .collect::<Result<Vec<Pipeline>, _>>()?;
    if let Some(path) = report_path
        && pipelines.len() > 1
        && !path.contains("{pipeline}")
    {
        return Err(Error::Usage(format!(
            "--report {path} would hold only the last of {} runs: put `{{pipeline}}` in the path",
            pipelines.len()
        )));
    }
    let options = RunOptions {
        state_path,
        dry_run,
    };
    let mut failed = None;
    for pipeline in &pipelines {
        let finished = runner::run(pipeline, &options);
        if dry_run {
            print_plan(&finished.report).map_err(Error::Output)?;
        }
        // Report each failure and go on: one vendor's bad file must not stop the others.
        match finished.error {
            None => log_outcome(&finished.report),
            Some(e) => {
                let e = Error::from(e);
                report_error(&e);
                // The alert about this failure did not go out: say it where the failure is
                // (JSON logs have it as a warning already).
                if !JSON_LOGS.get().copied().unwrap_or(false) {
                    for warning in &finished.not_notified {
                        eprintln!("  and: {warning}");
                    }
                }
                failed = Some(ExitCode::from(e.exit_code() as u8));
            }
        }
        if let Some(path) = report_path {
            let path = PathBuf::from(path.replace("{pipeline}", &pipeline.name));
            if let Err(e) = write_report(&path, &finished.report.to_json()) {
                report_error(&e);
                failed = Some(ExitCode::from(e.exit_code() as u8));
            }
        }
    }
    Ok(failed.unwrap_or(ExitCode::SUCCESS))
}

/// Writes the run report atomically, so a monitor never reads half of one.
fn write_report(path: &Path, json: &str) -> Result<(), Error> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let mut temp = tempfile::NamedTempFile::new_in(dir)
            // tempfile names its own random file in the message: the report path says enough.
            .map_err(|e| std::io::Error::new(e.kind(), e.kind().to_string()))?;
        temp.write_all(json.as_bytes())?;
        temp.persist(path).map_err(|e| e.error)?;
        Ok(())
    };
    write().map_err(|source| Error::Report {
        path: path.to_path_buf(),
        source,
    })
}

fn print_plan(report: &RunReport) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "dry run of pipeline `{}`: {} read from {} ({} already delivered, skipped); nothing was written",
        report.pipeline,
        count(report.records_read, "record"),
        read_from(report),
        report.files_already_processed.len()
    )?;
    for planned in &report.planned {
        let sink = &planned.sink;
        match (&planned.destination, planned.if_empty.as_deref()) {
            (Some(destination), None) => writeln!(
                out,
                "  {sink} would write {} to {destination}",
                count(planned.records, "record"),
            )?,
            (Some(destination), Some(if_empty)) => writeln!(
                out,
                "  {sink} would write an empty file to {destination}: no records (if_empty = \"{if_empty}\")",
            )?,
            (None, if_empty) => writeln!(
                out,
                "  {sink}: nothing to write: no records (if_empty = \"{}\")",
                if_empty.unwrap_or("skip")
            )?,
        }
    }
    out.flush()
}

/// `1 record`, `2 records`.
/// What the records were read from: requests to an API, or files.
fn read_from(report: &RunReport) -> String {
    match &report.requests {
        Some(requests) => count(requests.requests, "request"),
        None => count(report.files_read.len() as u64, "file"),
    }
}

fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Prints an error for people (`error: ...` and its causes), or, with JSON logs, logs it as one
/// JSON object so that a log collector sees it.
fn report_error(error: &Error) {
    if JSON_LOGS.get().copied().unwrap_or(false) {
        let chain = runner::error_chain(error);
        tracing::error!(causes = ?&chain[1..], "{}", chain.join(": "));
    } else {
        eprintln!("{}", render_error(error));
    }
}

/// Whether logs are JSON, as chosen at start-up.
static JSON_LOGS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

fn log_outcome(report: &RunReport) {
    let pipeline = &report.pipeline;
    match report.outcome {
        Outcome::Skipped | Outcome::NothingNew | Outcome::Failure => {}
        Outcome::Success if report.dry_run => {}
        Outcome::Success => {
            for file in &report.files_written {
                tracing::info!(
                    "pipeline `{pipeline}`: published {} ({} bytes)",
                    file.path,
                    file.size
                );
            }
            let rejects = match report.rejects.total {
                0 => String::new(),
                n => format!(
                    ", {n} rejected to {}",
                    report.rejects.file.as_deref().unwrap_or("-")
                ),
            };
            tracing::info!(
                "pipeline `{pipeline}`: done, {} read from {}{rejects} in {:.2}s",
                count(report.records_read, "record"),
                read_from(report),
                report.duration_secs
            );
        }
    }
}

/// Opens the state of the pipeline in `file` without changing it; `None` when it has none yet.
fn open_state(
    file: &Path,
    loading: &pipeline::Loading,
    state_path: Option<PathBuf>,
) -> Result<(Pipeline, PathBuf, Option<SqliteStore>), Error> {
    let pipeline = pipeline::load(file, loading)?;
    let path = runner::state_path(&pipeline, state_path);
    let store = SqliteStore::open_read_only(&path)?;
    Ok((pipeline, path, store))
}

fn state_command(command: StateCommand, loading: &pipeline::Loading) -> Result<ExitCode, Error> {
    let mut out = std::io::stdout().lock();
    match command {
        StateCommand::Show { pipeline, state } => {
            let (pipeline, path, store) = open_state(&pipeline, loading, state.state)?;
            let name = &pipeline.name;
            let Some(mut store) = store else {
                writeln!(
                    out,
                    "pipeline `{name}` has no state yet ({} does not exist)",
                    path.display()
                )
                .map_err(Error::Output)?;
                return Ok(ExitCode::SUCCESS);
            };
            let summary = store.summary(name)?;
            let runs = store.runs(name, 5)?;
            show_state(&mut out, name, &path, &summary, &runs).map_err(Error::Output)?;
        }
        StateCommand::Reset {
            pipeline,
            state,
            cursor,
            cursor_name,
            yes,
        } => {
            let pipeline = pipeline::load(&pipeline, loading)?;
            let path = runner::state_path(&pipeline, state.state);
            let name = &pipeline.name;
            if !yes {
                return Err(Error::Usage(format!(
                    "this forgets which files and records pipeline `{name}` delivered, so its next run delivers them again: add --yes to do it"
                )));
            }
            let mut store = SqliteStore::open(&path)?;
            store.reset(
                name,
                cursor.as_deref().map(|value| (cursor_name.as_str(), value)),
            )?;
            match cursor {
                Some(value) => writeln!(out, "reset pipeline `{name}`: {cursor_name} = {value}"),
                None => writeln!(
                    out,
                    "reset pipeline `{name}`: its next run starts from scratch"
                ),
            }
            .map_err(Error::Output)?;
        }
        StateCommand::Forget {
            pipeline,
            file,
            state,
        } => {
            let pipeline = pipeline::load(&pipeline, loading)?;
            let path = runner::state_path(&pipeline, state.state);
            let shown = file.display().to_string();
            let key = if shown.contains("://") {
                shown
            } else {
                std::fs::canonicalize(&file)
                    .or_else(|_| std::path::absolute(&file))
                    .map_err(|e| Error::Usage(format!("{shown}: {e}")))?
                    .display()
                    .to_string()
            };
            if !path.exists() {
                return Err(Error::Usage(format!(
                    "pipeline `{}` has no state yet ({} does not exist): nothing to forget",
                    pipeline.name,
                    path.display()
                )));
            }
            let mut store = SqliteStore::open(&path)?;
            if !store.forget(&pipeline.name, &key)? {
                return Err(Error::Usage(format!(
                    "{key} is not in the ledger of pipeline `{}`: it was never delivered, or was forgotten already",
                    pipeline.name
                )));
            }
            writeln!(
                out,
                "forgot {key}: the next run of `{}` reads it again",
                pipeline.name
            )
            .map_err(Error::Output)?;
        }
    }
    out.flush().map_err(Error::Output)?;
    Ok(ExitCode::SUCCESS)
}

fn show_state(
    out: &mut dyn Write,
    name: &str,
    path: &Path,
    summary: &StateSummary,
    runs: &[RunReport],
) -> std::io::Result<()> {
    writeln!(out, "pipeline `{name}` (state in {})", path.display())?;
    if summary.cursors.is_empty() {
        writeln!(out, "cursors: none")?;
    }
    for (cursor, value) in &summary.cursors {
        writeln!(out, "cursor {cursor}: {value}")?;
    }
    writeln!(
        out,
        "ledger: {} delivered",
        count(summary.ledger_files, "file")
    )?;
    writeln!(
        out,
        "outbox: {} sent and not acknowledged, {} acknowledged",
        summary.outbox_pending, summary.outbox_acknowledged
    )?;
    match &summary.lock {
        None => writeln!(out, "lock: free")?,
        Some(owner) => writeln!(
            out,
            "lock: held by run {} (pid {} on {}) since {}",
            owner.run_id,
            owner.pid,
            owner.host,
            chrono::DateTime::from_timestamp(owner.locked_at, 0)
                .map_or_else(|| owner.locked_at.to_string(), |t| t.to_rfc3339())
        )?,
    }
    if let Some(run_id) = &summary.pending_commit {
        writeln!(
            out,
            "interrupted commit: run {run_id} (the next run finishes publishing it)"
        )?;
    }
    writeln!(out, "last runs:")?;
    write_runs(out, runs)
}

fn write_runs(out: &mut dyn Write, runs: &[RunReport]) -> std::io::Result<()> {
    if runs.is_empty() {
        return writeln!(out, "  (none)");
    }
    for run in runs {
        let error = match run.error.as_slice() {
            [] => String::new(),
            chain => format!("  {}", chain.join(": ")),
        };
        writeln!(
            out,
            "  {}  {}  {:<11}  {} read, {} written, {} rejected, {:.1}s{error}",
            run.run_id,
            run.started_at,
            run.outcome.as_str(),
            count(run.records_read, "record"),
            count(run.files_written.len() as u64, "file"),
            run.rejects.total,
            run.duration_secs
        )?;
    }
    Ok(())
}

fn runs(
    file: &Path,
    loading: &pipeline::Loading,
    state_path: Option<PathBuf>,
    limit: usize,
    json: bool,
) -> Result<ExitCode, Error> {
    let (pipeline, _, store) = open_state(file, loading, state_path)?;
    let runs = match store {
        Some(mut store) => store.runs(&pipeline.name, limit)?,
        None => Vec::new(),
    };
    let mut out = std::io::stdout().lock();
    let written = if json {
        let text = serde_json::to_string_pretty(&runs).expect("reports serialize");
        writeln!(out, "{text}")
    } else {
        write_runs(&mut out, &runs)
    };
    written.and_then(|()| out.flush()).map_err(Error::Output)?;
    Ok(ExitCode::SUCCESS)
}

fn validate(files: &[PathBuf], loading: &pipeline::Loading) -> Result<ExitCode, Error> {
    let mut all_valid = true;
    let mut out = std::io::stdout().lock();
    for file in files {
        match pipeline::load(file, loading) {
            Ok(pipeline) => {
                writeln!(out, "{}: ok", file.display())
                    .and_then(|()| out.flush())
                    .map_err(Error::Output)?;
                for warning in &pipeline.warnings {
                    eprintln!("warning: {warning}");
                }
            }
            Err(e) => {
                all_valid = false;
                eprintln!("{}", render_error(&e.into()));
            }
        }
    }
    Ok(if all_valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

fn format_for(path: &Path, given: Option<&str>, flag: &str) -> Result<FormatConfig, Error> {
    match given {
        Some(name) => FormatConfig::from_name(name).ok_or_else(|| {
            Error::Usage(format!(
                "unknown format `{name}` for {flag}: use one of {}",
                FormatConfig::names()
            ))
        }),
        None => FormatConfig::infer(&path.to_string_lossy()).ok_or_else(|| {
            Error::Usage(format!(
                "cannot tell the format of `{}` from its extension: pass {flag} (one of {})",
                path.display(),
                FormatConfig::names()
            ))
        }),
    }
}

/// Every error the library reports, classified for exit codes.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Run(#[from] RunError),
    /// A command line that cannot be carried out as given.
    #[error("{0}")]
    Usage(String),
    /// Writing the command's own output (a table, a schema) failed.
    #[error("cannot write to standard output")]
    Output(#[source] std::io::Error),
    /// The state store could not be read or changed (`longshore state`, `runs`).
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    /// The run report could not be written (`--report`).
    #[error("cannot write the run report to {}", .path.display())]
    Report {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// 2 for configuration and usage errors (fix the pipeline file or the command), 1 for a run
    /// that failed on its data or its environment (look at the input or the destination).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) | Error::Usage(_) => 2,
            Error::Run(_) | Error::Output(_) | Error::State(_) | Error::Report { .. } => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every command's `--help`, subcommands' too (`state reset`), as the README's CLI
    /// reference shows it.
    fn reference() -> String {
        let mut command = Cli::command().term_width(100);
        command.build();
        let mut out = format!(
            "```text\n$ longshore --help\n{}```\n",
            command.render_long_help()
        );
        write_subcommands(&mut out, &command, "longshore");
        out
    }

    fn write_subcommands(out: &mut String, command: &clap::Command, path: &str) {
        for sub in command.get_subcommands().filter(|c| c.get_name() != "help") {
            let name = format!("{path} {}", sub.get_name());
            let help = sub.clone().bin_name(&name).render_long_help();
            out.push_str(&format!("\n```text\n$ {name} --help\n{help}```\n"));
            write_subcommands(out, sub, &name);
        }
    }

    #[test]
    fn every_subcommand_is_in_the_cli_reference() {
        let text = reference();
        for command in ["state reset", "state forget", "state show"] {
            assert!(
                text.contains(&format!("$ longshore {command} --help")),
                "{command}"
            );
        }
    }

    #[test]
    fn readme_cli_reference_is_current() {
        crate::pipeline::reference::check_generated_block(
            "README.md",
            "cli-reference",
            &format!("\n{}\n", reference()),
        );
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
