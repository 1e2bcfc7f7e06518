//! `longshore run`: runs pipelines one after the other, going on past a failure, and prints
//! or logs what each did (a dry run's plan, what was published); `--report` files.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::errors::report_error;
use super::logging::JSON_LOGS;
use super::{Error, count};
use crate::pipeline::{self, Pipeline};
use crate::runner::{self, RunOptions};
use crate::state::report::{Outcome, RunReport};

pub(super) fn run(
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
        for (number, request) in planned.requests.iter().enumerate() {
            writeln!(
                out,
                "    request {}: {} {} ({})",
                number + 1,
                request.method,
                request.url,
                count(request.records, "record")
            )?;
            for header in &request.headers {
                writeln!(out, "      {header}")?;
            }
            if request.body_bytes > 0 {
                writeln!(
                    out,
                    "      body ({} bytes): {}",
                    request.body_bytes, request.body
                )?;
            }
        }
    }
    out.flush()
}

/// What the records were read from: requests to an API, or files.
fn read_from(report: &RunReport) -> String {
    match &report.requests {
        Some(requests) => count(requests.requests, "request"),
        None => count(report.files_read.len() as u64, "file"),
    }
}

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
