//! `command`: runs a program with the run report on its standard input, for anything the other
//! kinds do not cover (a pager CLI, a script writing to a queue). The program is run directly,
//! not through a shell, in its own process group so that a timeout kills everything it started.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::config::{Invalid, Validate};
use crate::stage::RunContext;

use super::{Notice, NotifySpec, Triggered};

notify_config! {
    /// Runs a program with the run report (JSON) on its standard input and the environment
    /// variables `LONGSHORE_PIPELINE`, `LONGSHORE_OUTCOME`, `LONGSHORE_EVENT` and
    /// `LONGSHORE_RUN_ID`, in the pipeline file's directory. A non-zero exit status fails the
    /// notification.
    pub struct CommandConfig {
        /// The program: a name looked up in `PATH`, or a path containing `/` (relative to the
        /// pipeline file's directory). Not run through a shell. Required.
        pub program: String,
        /// Its arguments, passed as they are (no shell expansion). Default: none.
        #[serde(default)]
        pub args: Vec<String>,
        /// Seconds it may run; then it and every process it started are killed and the
        /// notification fails. Default 60.
        #[serde(default = "default_timeout_secs")]
        pub timeout_secs: u64,
    }
}

fn default_timeout_secs() -> u64 {
    60
}

/// How much of the program's standard error a failure message quotes, in bytes.
const STDERR_TAIL: usize = 1000;

impl Validate for CommandConfig {
    fn problems(&self) -> Vec<Invalid> {
        let mut problems = self.trigger().problems();
        if self.program.trim().is_empty() {
            problems.push(Invalid::new("program", "`program` is empty"));
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

impl NotifySpec for CommandConfig {
    fn target(&self) -> String {
        format!("command {}", self.program)
    }

    /// The program, found in PATH or at its path from the pipeline file's folder.
    fn missing_files(&self, base_dir: &std::path::Path) -> Vec<Invalid> {
        let program = &self.program;
        let found = if program.contains('/') {
            crate::config::join_clean(base_dir, program).is_file()
        } else {
            std::env::var_os("PATH").is_some_and(|path| {
                std::env::split_paths(&path).any(|dir| dir.join(program).is_file())
            })
        };
        match found {
            true => Vec::new(),
            false => vec![Invalid::new(
                "program",
                format!(
                    "the program `{program}` is not found (a name is looked up in PATH, a path starts at the pipeline file's folder)"
                ),
            )],
        }
    }

    fn send(&self, notice: &Notice, cx: &RunContext) -> Result<(), String> {
        send(self, notice, cx)
    }
}

fn send(config: &CommandConfig, notice: &Notice, cx: &RunContext) -> Result<(), String> {
    let program = if config.program.contains('/') {
        cx.resolve(&config.program)
    } else {
        PathBuf::from(&config.program)
    };
    let report = notice.report;
    let mut command = Command::new(&program);
    command
        .args(&config.args)
        .env("LONGSHORE_PIPELINE", &report.pipeline)
        .env("LONGSHORE_OUTCOME", report.outcome.as_str())
        .env("LONGSHORE_EVENT", notice.event.as_str())
        .env("LONGSHORE_RUN_ID", &report.run_id)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
    if !cx.base_dir.as_os_str().is_empty() {
        command.current_dir(&cx.base_dir);
    }
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", program.display()))?;

    // Both pipes are served from their own threads, so a program that reads nothing or writes a
    // lot cannot block the wait. A program that exits without reading its input is fine.
    if let Some(mut stdin) = child.stdin.take() {
        let json = notice.json.to_string();
        std::thread::spawn(move || drop(stdin.write_all(json.as_bytes())));
    }
    let (stderr_tx, stderr_rx) = mpsc::channel();
    if let Some(mut stderr) = child.stderr.take() {
        std::thread::spawn(move || {
            let mut kept = Vec::new();
            let mut chunk = [0; 8192];
            while let Ok(read @ 1..) = stderr.read(&mut chunk) {
                kept.extend_from_slice(&chunk[..read]);
                if kept.len() > 2 * STDERR_TAIL {
                    kept.drain(..kept.len() - STDERR_TAIL);
                }
            }
            let _ = stderr_tx.send(kept);
        });
    }

    let timeout = Duration::from_secs(config.timeout_secs);
    let deadline = Instant::now() + timeout;
    let mut poll = Duration::from_millis(1);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(poll.min(deadline.saturating_duration_since(Instant::now())));
                poll = (poll * 2).min(Duration::from_millis(50));
            }
            Ok(None) => {
                kill_group(&mut child);
                break None;
            }
            Err(e) => {
                kill_group(&mut child);
                return Err(format!("cannot wait for {}: {e}", program.display()));
            }
        }
    };
    // The reader ends when the last process holding the pipe does; one left running in the
    // background must not hold up the run.
    let stderr = stderr_rx
        .recv_timeout(Duration::from_secs(1))
        .unwrap_or_default();
    // One line in the warning: the program's lines joined with ` | `.
    let stderr = super::tail(&String::from_utf8_lossy(&stderr), STDERR_TAIL)
        .lines()
        .map(str::trim_end)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" | ");
    let failure = match status {
        Some(status) if status.success() => return Ok(()),
        Some(status) => format!("{} exited with {status}", program.display()),
        None => format!(
            "{} timed out after {} s and was killed",
            program.display(),
            config.timeout_secs
        ),
    };
    Err(if stderr.is_empty() {
        failure
    } else {
        format!("{failure}; stderr: {stderr}")
    })
}

/// Kills the child and everything in its process group, and reaps it.
fn kill_group(child: &mut std::process::Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) takes no pointers; the group is the one the child leads.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
    }
    let _ = child.kill();
    let _ = child.wait();
}
