//! Progress display for people at a terminal: a line per running pipeline with records read,
//! bytes read, rate and the file being read. Nothing is drawn when stderr is not a terminal
//! (cron, pipes, CI) or with `-q`. Log lines go through [`LogWriter`], which clears the
//! progress line while it writes, so the two never garble each other.

use std::io::{self, IsTerminal, Write};
use std::sync::OnceLock;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

static DISPLAY: OnceLock<MultiProgress> = OnceLock::new();

/// Turns the display on, when stderr is a terminal and `enabled`. Call once, at start-up.
pub fn init(enabled: bool) {
    let target = if enabled && io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let _ = DISPLAY.set(MultiProgress::with_draw_target(target));
}

fn display() -> &'static MultiProgress {
    DISPLAY.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::hidden()))
}

/// A spinner line for one run, removed when dropped.
pub struct RunProgress {
    bar: ProgressBar,
}

impl RunProgress {
    pub fn start(pipeline: &str) -> Self {
        let bar = display().add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix}: {msg} [{elapsed}]")
                .expect("a valid template"),
        );
        bar.set_prefix(pipeline.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        RunProgress { bar }
    }

    /// Shows the counts so far and the file being read.
    pub fn update(&self, records: u64, bytes: u64, file: Option<&str>) {
        let rate = records as f64 / self.bar.elapsed().as_secs_f64().max(0.001);
        self.bar.set_message(format!(
            "{records} records, {} read, {:.0} records/s{}",
            indicatif::HumanBytes(bytes),
            rate,
            file.map(|f| format!(", {f}")).unwrap_or_default()
        ));
    }
}

impl Drop for RunProgress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
        display().remove(&self.bar);
    }
}

/// Standard error for log lines, with the progress display suspended while a line is written.
#[derive(Clone, Copy)]
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        display().suspend(|| io::stderr().write_all(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;
    fn make_writer(&'a self) -> LogWriter {
        *self
    }
}
