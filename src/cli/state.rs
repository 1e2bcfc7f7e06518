//! `longshore state show|reset|forget` and `longshore runs`: what a pipeline remembers between
//! runs, and its run history, read from (or, for `reset` and `forget`, changed in) its state
//! store.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::{Error, StateCommand, count};
use crate::pipeline::{self, Pipeline};
use crate::runner;
use crate::state::report::RunReport;
use crate::state::{SqliteStore, StateStore, StateSummary};

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

pub(super) fn state_command(
    command: StateCommand,
    loading: &pipeline::Loading,
) -> Result<ExitCode, Error> {
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

pub(super) fn runs(
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
