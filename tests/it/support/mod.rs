//! Helpers shared by the integration tests: a sandbox directory per test, the real `longshore`
//! binary run inside it, and checks on what a run left behind.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub mod accounts;
pub mod api;
pub mod certs;
pub mod smtp;
pub mod sshd;
pub mod vsftpd;

/// The directory beside a pipeline file that holds its state by default.
pub const STATE_DIR: &str = ".longshore";

/// The binary under test, as cargo built it for this test run.
pub const BIN: &str = env!("CARGO_BIN_EXE_longshore");

/// A path inside the repository (for `pipelines/` and `samples/`).
pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// A fresh temporary directory, removed when the test ends. Commands run with it as their
/// working directory, so paths in messages are short and predictable.
pub struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Self {
        Sandbox {
            dir: tempfile::tempdir().expect("create a temporary directory"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn join(&self, relative: &str) -> PathBuf {
        self.path().join(relative)
    }

    /// Writes a file (creating its directories) and returns its full path.
    pub fn write(&self, relative: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.join(relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create the parent directory");
        }
        fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// Copies a file of the repository (e.g. `samples/orders.csv`) into the sandbox.
    pub fn copy_from_repo(&self, repo_relative: &str, relative: &str) -> PathBuf {
        let bytes = fs::read(repo_path(repo_relative))
            .unwrap_or_else(|e| panic!("read {repo_relative} from the repository: {e}"));
        self.write(relative, bytes)
    }

    pub fn read(&self, relative: &str) -> String {
        String::from_utf8(self.read_bytes(relative))
            .unwrap_or_else(|e| panic!("{relative} is not UTF-8: {e}"))
    }

    pub fn read_bytes(&self, relative: &str) -> Vec<u8> {
        fs::read(self.join(relative)).unwrap_or_else(|e| panic!("read {relative}: {e}"))
    }

    pub fn exists(&self, relative: &str) -> bool {
        // `symlink_metadata`: anything at all at that path counts, even a dangling link.
        fs::symlink_metadata(self.join(relative)).is_ok()
    }

    /// Every file under the sandbox (or under `relative` in it), as sorted relative paths with
    /// `/` separators. Directories are not listed, only what is in them; the state directory
    /// (`.longshore/`) is left out.
    pub fn files(&self, relative: &str) -> Vec<String> {
        let mut found = Vec::new();
        let root = self.join(relative);
        if root.exists() {
            collect_files(self.path(), &root, &mut found);
        }
        found.sort();
        found
    }

    /// The binary, with the sandbox as its working directory, no stdin, and no `RUST_LOG` from
    /// the environment (it would change what is logged on stderr).
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .current_dir(self.path())
            .env_remove("RUST_LOG")
            .env_remove("LONGSHORE_STATE")
            .env_remove("LONGSHORE_LOG_FORMAT")
            .stdin(Stdio::null());
        command
    }

    /// Runs the binary to completion.
    pub fn run<I, S>(&self, args: I) -> Outcome
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run(self.command(args))
    }

    /// Asserts that a failed run published nothing at `destination` and left no temporary
    /// `.<name>.XXXXXX.part` file anywhere in the sandbox.
    pub fn assert_not_published(&self, destination: &str) {
        assert!(
            !self.exists(destination),
            "{destination} must not exist after a failed run, but it does"
        );
        self.assert_no_temp_files();
    }

    /// Asserts that no hidden `.*.part` temporary file is left anywhere in the sandbox.
    pub fn assert_no_temp_files(&self) {
        let leftovers: Vec<String> = self
            .files("")
            .into_iter()
            .filter(|path| {
                let name = path.rsplit('/').next().unwrap_or(path);
                name.starts_with('.') && name.ends_with(".part")
            })
            .collect();
        assert!(
            leftovers.is_empty(),
            "temporary files were left behind: {leftovers:?}"
        );
    }
}

fn collect_files(base: &Path, dir: &Path, found: &mut Vec<String>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("list {}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() && path.file_name() == Some(OsStr::new(STATE_DIR)) {
            // The pipelines' state, not an output: see `Sandbox::state`.
            continue;
        }
        if path.is_dir() {
            collect_files(base, &path, found);
        } else {
            let relative = path.strip_prefix(base).expect("under the base directory");
            let parts: Vec<String> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            found.push(parts.join("/"));
        }
    }
}

/// Runs `command` with `LONGSHORE_CRASH_AT=point`, where the binary aborts as a crash would,
/// and checks that it stopped.
pub fn crash_at(mut command: Command, point: &str) {
    let output = command
        .env("LONGSHORE_CRASH_AT", point)
        .output()
        .unwrap_or_else(|e| panic!("start {BIN}: {e}"));
    assert!(!output.status.success(), "the run did not stop at {point}");
}

/// Starts `command` (a run of the binary) and waits until its sink writes: a hidden temporary
/// `.part` file is in `out/` (at most a minute, else the test fails). The run is then reading
/// its input, for tests that change the input under it.
pub fn start_and_wait_until_writing(
    sandbox: &Sandbox,
    mut command: Command,
) -> std::process::Child {
    let mut child = command.spawn().expect("start longshore");
    let started = std::time::Instant::now();
    let writing = loop {
        let writing = fs::read_dir(sandbox.join("out"))
            .ok()
            .is_some_and(|entries| {
                entries
                    .filter_map(Result::ok)
                    .any(|e| e.file_name().to_string_lossy().ends_with(".part"))
            });
        if writing || started.elapsed() > std::time::Duration::from_secs(60) {
            break writing;
        }
        // Polling, not waiting out a race: the loop ends on what it looks for.
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    if !writing {
        let _ = child.kill();
    }
    assert!(writing, "the run was never seen writing");
    child
}

/// Runs a command to completion and captures its output.
pub fn run(mut command: Command) -> Outcome {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("start {BIN}: {e}"));
    Outcome::from(output)
}

/// How a run of the binary ended.
#[derive(Debug)]
pub struct Outcome {
    /// The exit code; a run killed by a signal fails the test right away.
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl From<Output> for Outcome {
    fn from(output: Output) -> Self {
        let stderr = String::from_utf8(output.stderr).expect("stderr is UTF-8");
        let code = output.status.code().unwrap_or_else(|| {
            panic!(
                "the binary was killed by a signal ({:?}); stderr:\n{stderr}",
                output.status
            )
        });
        Outcome {
            code,
            stdout: output.stdout,
            stderr,
        }
    }
}

impl Outcome {
    pub fn stdout(&self) -> &str {
        std::str::from_utf8(&self.stdout).expect("stdout is UTF-8")
    }

    /// Asserts the exit code, showing everything the binary printed when it differs.
    #[track_caller]
    pub fn assert_code(&self, expected: i32) -> &Self {
        if self.code != expected {
            let mut report = String::new();
            let _ = write!(
                report,
                "expected exit code {expected}, got {}\n--- stdout:\n{}\n--- stderr:\n{}",
                self.code,
                String::from_utf8_lossy(&self.stdout),
                self.stderr
            );
            panic!("{report}");
        }
        self
    }

    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        self.assert_code(0)
    }

    /// Asserts stderr is exactly `expected`.
    #[track_caller]
    pub fn assert_stderr(&self, expected: &str) -> &Self {
        assert_eq!(self.stderr, expected, "stderr differs");
        self
    }

    /// Asserts stderr starts with `prefix` (for messages ending in an OS error text, which
    /// differs between systems).
    #[track_caller]
    pub fn assert_stderr_starts_with(&self, prefix: &str) -> &Self {
        assert!(
            self.stderr.starts_with(prefix),
            "stderr does not start with\n{prefix}\n--- stderr:\n{}",
            self.stderr
        );
        self
    }

    /// Asserts stderr contains `part` (a message among others, or with a temporary path).
    #[track_caller]
    pub fn assert_stderr_contains(&self, part: &str) -> &Self {
        assert!(
            self.stderr.contains(part),
            "stderr does not contain\n{part}\n--- stderr:\n{}",
            self.stderr
        );
        self
    }
}

/// A pipeline file reading `source` and writing one file sink per entry of `sinks` (TOML
/// lines of the sink table after `type = "file"`).
pub fn pipeline(source: &str, sinks: &[&str]) -> String {
    let mut text = format!("[source]\ntype = \"file\"\n{source}\n");
    for sink in sinks {
        let _ = write!(text, "\n[[sinks]]\ntype = \"file\"\n{sink}\n");
    }
    text
}

/// Whether `python3` runs here, for checks that compute expectations independently with its
/// standard library; under CI (`CI=true`) it must.
pub fn python_available() -> bool {
    let found = std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "python3 is needed in CI"
        );
        eprintln!("python3 is not installed: skipping the independent check");
    }
    found
}
