//! The command line: parses arguments, calls the library, prints results and errors, and turns
//! the outcome into an exit code (0 success, 1 run or data failure, 2 configuration or usage
//! error; a closed output pipe, as in `longshore preview p.toml | head`, counts as success).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::codecs::FormatConfig;
use crate::config::{self, Pipeline};
use crate::error::{Error, is_broken_pipe};
use crate::runner::{self, RunSummary};

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
    /// Only log errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run pipelines, one after the other. Every pipeline file is checked before any runs.
    Run {
        /// Pipeline files (TOML).
        #[arg(required = true)]
        pipelines: Vec<PathBuf>,
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
        /// The file to write, or `-` for standard output.
        output: PathBuf,
        /// The input format (csv, tsv, ndjson, jsonl). Default: from the input's extension.
        #[arg(long)]
        from: Option<String>,
        /// The output format (csv, tsv, ndjson, jsonl). Default: from the output's extension.
        #[arg(long)]
        to: Option<String>,
    },
    /// Print the JSON Schema of pipeline files, for editor completion and checks.
    Schema {
        /// Print the reference of every key in Markdown instead.
        #[arg(long)]
        markdown: bool,
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
    init_logging(cli.verbose, cli.quiet);
    match execute(cli.command) {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", render_error(&e));
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("longshore={level}")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// `error: <what failed>` followed by each cause on its own line.
fn render_error(error: &Error) -> String {
    let mut text = format!("error: {error}");
    let mut cause = std::error::Error::source(error);
    while let Some(e) = cause {
        text.push_str(&format!("\n  caused by: {e}"));
        cause = e.source();
    }
    text
}

fn execute(command: Command) -> Result<ExitCode, Error> {
    match command {
        Command::Run { pipelines } => run(&pipelines),
        Command::Validate { pipelines } => Ok(validate(&pipelines)),
        Command::Preview { pipeline, limit } => {
            let pipeline = config::load(&pipeline)?;
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
        } => {
            let from = format_for(&input, from.as_deref(), "--from")?;
            let to = format_for(&output, to.as_deref(), "--to")?;
            let summary = runner::convert(&input, &output, from, to)?;
            log_summary(&summary);
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema { markdown } => {
            let text = if markdown {
                config::reference::markdown()
            } else {
                config::json_schema()
            };
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())
                .and_then(|()| out.flush())
                .map_err(Error::Output)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn run(files: &[PathBuf]) -> Result<ExitCode, Error> {
    let pipelines = files
        .iter()
        .map(|file| config::load(file))
        .collect::<Result<Vec<Pipeline>, _>>()?;
    let mut failed = None;
    for pipeline in &pipelines {
        match runner::run(pipeline) {
            Ok(summary) => log_summary(&summary),
            Err(e) => {
                let e = Error::from(e);
                // Report this one and go on: one vendor's bad file must not stop the others.
                eprintln!("{}", render_error(&e));
                failed = Some(ExitCode::from(e.exit_code() as u8));
            }
        }
    }
    Ok(failed.unwrap_or(ExitCode::SUCCESS))
}

fn validate(files: &[PathBuf]) -> ExitCode {
    let mut all_valid = true;
    for file in files {
        match config::load(file) {
            Ok(_) => println!("{}: ok", file.display()),
            Err(e) => {
                all_valid = false;
                eprintln!("{}", render_error(&e.into()));
            }
        }
    }
    if all_valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}

fn format_for(path: &Path, given: Option<&str>, flag: &str) -> Result<FormatConfig, Error> {
    match given {
        Some(name) => FormatConfig::from_name(name).ok_or_else(|| {
            Error::Usage(format!(
                "unknown format `{name}` for {flag}: use one of {}",
                FormatConfig::NAMES
            ))
        }),
        None => FormatConfig::infer(&path.to_string_lossy()).ok_or_else(|| {
            Error::Usage(format!(
                "cannot tell the format of `{}` from its extension: pass {flag} (one of {})",
                path.display(),
                FormatConfig::NAMES
            ))
        }),
    }
}

fn log_summary(summary: &RunSummary) {
    for (index, sink) in summary.sinks.iter().enumerate() {
        tracing::info!(
            "pipeline `{}`: sink {} wrote {} records to {}{}",
            summary.pipeline,
            index + 1,
            sink.records,
            if sink.published.is_empty() {
                "nothing".into()
            } else {
                sink.published.join(", ")
            },
            if sink.skipped.is_empty() {
                String::new()
            } else {
                format!(" (skipped, already there: {})", sink.skipped.join(", "))
            }
        );
    }
    tracing::info!(
        "pipeline `{}`: done, {} records read in {:.2}s",
        summary.pipeline,
        summary.records_read,
        summary.elapsed.as_secs_f64()
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every command's `--help`, as the README's CLI reference shows it.
    fn reference() -> String {
        let mut command = Cli::command().term_width(100);
        let mut out = format!(
            "```text\n$ longshore --help\n{}```\n",
            command.render_long_help()
        );
        let names: Vec<String> = command
            .get_subcommands()
            .map(|c| c.get_name().to_string())
            .filter(|n| n != "help")
            .collect();
        for name in names {
            let sub = command.find_subcommand_mut(&name).expect("listed above");
            let help = sub
                .clone()
                .bin_name(format!("longshore {name}"))
                .render_long_help();
            out.push_str(&format!(
                "\n```text\n$ longshore {name} --help\n{help}```\n"
            ));
        }
        out
    }

    #[test]
    fn readme_cli_reference_is_current() {
        crate::config::reference::check_generated_block(
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
