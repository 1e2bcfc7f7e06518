//! The command line: parses arguments, calls the library, prints results and errors, and turns
//! the outcome into an exit code (0 success, 1 run or data failure, 2 configuration or usage
//! error; a closed output pipe, as in `longshore preview p.toml | head`, counts as success).
//!
//! Here are the clap definitions, `main` and the dispatch, and the commands too small for a
//! file of their own (`validate`, `preview`, `schema`); `run.rs`, `state.rs` (`state`, `runs`)
//! and `convert.rs` hold the others, `errors.rs` the `Error` union, exit codes and how errors
//! are shown, `logging.rs` the logging set-up, `reference.rs` the README's CLI reference test.
// Messages for people go to stderr from here; stdout is written through handles that report a
// closed pipe.
#![allow(clippy::print_stderr)]

mod convert;
mod errors;
mod logging;
#[cfg(test)]
mod reference;
mod run;
mod state;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::error::is_broken_pipe;
use crate::pipeline;
use crate::runner;

use convert::ConvertArgs;
pub use errors::Error;
use errors::{render_error, report_error};
use logging::init_logging;

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
    Convert(ConvertArgs),
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
        } => run::run(&pipelines, loading, state.state, dry_run, report.as_deref()),
        Command::State(command) => state::state_command(command, &lenient),
        Command::Runs {
            pipeline,
            state,
            limit,
            json,
        } => state::runs(&pipeline, &lenient, state.state, limit, json),
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
        Command::Convert(args) => convert::convert(args),
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

/// `1 record`, `2 records`.
fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
