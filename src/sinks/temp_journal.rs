//! The list of temporary files a pipeline's runs created. A run killed before it commits leaves
//! its hidden `.NAME.XXXXXX.part` files behind, under names the next run cannot guess (they
//! carry the old run's `{run_ts}`), so every temporary file is listed here before anything is
//! written to it, and the next run of the pipeline (holding its lock) removes what is listed.
//! Temporary uploads on a server are listed too, as the server's URL, the path and the run's
//! id separated by tabs; the caller of [`clean`] removes those.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::error::StageError;

/// Adds `temp` to the journal, durably, before anything is written to it.
pub fn record(journal: &Path, temp: &Path) -> Result<(), StageError> {
    let absolute = std::path::absolute(temp)
        .map_err(|e| StageError::io(temp.display(), "find the absolute path of", e))?;
    append(journal, &absolute.display().to_string())
}

/// Adds the temporary upload `path` on the server `location` of run `run_id` to the journal,
/// before the upload starts.
pub fn record_remote(
    journal: &Path,
    location: &str,
    path: &str,
    run_id: &str,
) -> Result<(), StageError> {
    append(journal, &format!("{location}\t{path}\t{run_id}"))
}

/// A temporary upload the journal lists.
pub struct RemoteTemp<'a> {
    pub location: &'a str,
    pub path: &'a str,
    /// The run that uploaded it.
    pub run_id: &'a str,
}

fn append(journal: &Path, line: &str) -> Result<(), StageError> {
    let write = || -> std::io::Result<()> {
        if let Some(dir) = journal.parent() {
            fs::create_dir_all(dir)?;
        }
        let mut file = OpenOptions::new().create(true).append(true).open(journal)?;
        writeln!(file, "{line}")?;
        file.sync_data()
    };
    write().map_err(|e| StageError::io(journal.display(), "record a temporary file in", e))
}

/// Removes every temporary file the journal lists that still exists, then empties it; a
/// temporary upload is handed to `remove_remote`, which says whether it removed one, or fails
/// to keep it listed. Returns the files removed. Call only while holding the pipeline's lock,
/// after recovering an interrupted commit (whose temporary files are still to be published).
pub fn clean(
    journal: &Path,
    remove_remote: &mut dyn FnMut(RemoteTemp) -> std::io::Result<bool>,
) -> std::io::Result<Vec<String>> {
    let text = match fs::read_to_string(journal) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut removed = Vec::new();
    let mut kept = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let mut fields = line.split('\t');
        if let (Some(location), Some(path), Some(run_id)) =
            (fields.next(), fields.next(), fields.next())
        {
            match remove_remote(RemoteTemp {
                location,
                path,
                run_id,
            }) {
                Ok(true) => removed.push(format!("{path} on {location}")),
                Ok(false) => {}
                Err(_) => kept.push(line),
            }
            continue;
        }
        match fs::remove_file(line) {
            Ok(()) => removed.push(line.to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    if kept.is_empty() {
        fs::remove_file(journal)?;
    } else {
        fs::write(journal, kept.join("\n") + "\n")?;
    }
    Ok(removed)
}
