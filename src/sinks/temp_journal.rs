//! The list of temporary files a pipeline's runs created. A run killed before it commits leaves
//! its hidden `.NAME.XXXXXX.part` files behind, under names the next run cannot guess (they
//! carry the old run's `{run_ts}`), so every temporary file is listed here before anything is
//! written to it, and the next run of the pipeline (holding its lock) removes what is listed.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::error::StageError;

/// Adds `temp` to the journal, durably, before anything is written to it.
pub fn record(journal: &Path, temp: &Path) -> Result<(), StageError> {
    let shown = journal.display();
    let write = || -> std::io::Result<()> {
        if let Some(dir) = journal.parent() {
            fs::create_dir_all(dir)?;
        }
        let mut file = OpenOptions::new().create(true).append(true).open(journal)?;
        let absolute = std::path::absolute(temp)?;
        writeln!(file, "{}", absolute.display())?;
        file.sync_data()
    };
    write().map_err(|e| StageError::io(shown, "record a temporary file in", e))
}

/// Removes every temporary file the journal lists that still exists, then empties it. Returns
/// the files removed. Call only while holding the pipeline's lock, after recovering an
/// interrupted commit (whose temporary files are still to be published).
pub fn clean(journal: &Path) -> std::io::Result<Vec<String>> {
    let text = match fs::read_to_string(journal) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut removed = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        match fs::remove_file(line) {
            Ok(()) => removed.push(line.to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    fs::remove_file(journal)?;
    Ok(removed)
}
