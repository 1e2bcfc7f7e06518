//! The list of temporary files a pipeline's runs created. A run killed before it commits leaves
//! its hidden `.NAME.XXXXXX.part` files behind, under names the next run cannot guess (they
//! carry the old run's `{run_ts}`), so every temporary file is listed here before anything is
//! written to it, and the next run of the pipeline (holding its lock) removes what is listed.
//! Temporary uploads on a server are listed too; the caller of [`clean`] removes those.
//!
//! One entry per line, as JSON: `{"location":null,"path":"/srv/out/.a.csv.AbC123.part",
//! "run_id":"..."}`, with the server's URL as `location` for an upload. JSON because a name can
//! hold a newline: with one bare path per line, a drop file named `x\n.profile\ny.csv` put
//! `.profile` on a line of its own, and the cleanup removed the working directory's `.profile`.
//!
//! Whatever a line says, it is followed only through checks: a local entry is removed only when
//! it is an absolute path without control characters whose file name has the shape of a
//! temporary file (`.NAME.XXXXXX.part`); an upload only when its path has no control character
//! and the caller finds its name of the shape the sink's `temp_name` gives. A damaged or forged
//! entry is dropped and reported, never followed.
//!
//! Journals of the versions before (one path per line; server, path and run separated by tabs)
//! that a killed run left are still read, through the same checks. That is safe: the lines an
//! injected newline made are relative paths or not shaped like temporary files, so refused. And
//! ignoring them would leave the killed run's temporary files (uploads on a partner's server
//! among them) behind for good.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::StageError;
use crate::names::has_control;

/// One line of the journal.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    /// The server's URL, for a temporary upload; `None` for a local file.
    location: Option<String>,
    /// The absolute path of a local file; the path on the server of an upload.
    path: String,
    /// The run that created it (empty in a journal of an earlier version).
    run_id: String,
}

/// Adds `temp` (made by run `run_id`) to the journal, durably, before anything is written to it.
pub fn record(journal: &Path, temp: &Path, run_id: &str) -> Result<(), StageError> {
    let absolute = std::path::absolute(temp)
        .map_err(|e| StageError::io(temp.display(), "find the absolute path of", e))?;
    let path = absolute.to_str().ok_or_else(|| {
        StageError::io(
            temp.display(),
            "record in the temporary-file journal",
            io::Error::new(io::ErrorKind::InvalidData, "the path is not UTF-8"),
        )
    })?;
    append(
        journal,
        &Entry {
            location: None,
            path: path.to_string(),
            run_id: run_id.to_string(),
        },
    )
}

/// Adds the temporary upload `path` on the server `location` of run `run_id` to the journal,
/// before the upload starts.
pub fn record_remote(
    journal: &Path,
    location: &str,
    path: &str,
    run_id: &str,
) -> Result<(), StageError> {
    append(
        journal,
        &Entry {
            location: Some(location.to_string()),
            path: path.to_string(),
            run_id: run_id.to_string(),
        },
    )
}

/// A temporary upload the journal lists.
pub struct RemoteTemp<'a> {
    pub location: &'a str,
    pub path: &'a str,
    /// The run that uploaded it.
    pub run_id: &'a str,
}

/// What the caller of [`clean`] did with a temporary upload.
pub enum Removal {
    /// It was there and is gone now.
    Removed,
    /// It is not there (published, or removed before): nothing to do.
    Absent,
    /// Not now (the server cannot be reached, or the upload is still to be published): it
    /// stays listed.
    Kept,
    /// The entry does not name a temporary upload (why): dropped, nothing removed.
    Refused(String),
}

/// What [`clean`] did.
#[derive(Debug, Default)]
pub struct Cleaned {
    /// The temporary files removed (uploads as `PATH on SERVER`).
    pub removed: Vec<String>,
    /// Entries dropped without removing anything, escaped (`{:?}`), with why.
    pub refused: Vec<String>,
}

fn append(journal: &Path, entry: &Entry) -> Result<(), StageError> {
    let line = serde_json::to_string(entry).expect("strings serialize");
    let write = || -> io::Result<()> {
        if let Some(dir) = journal.parent() {
            fs::create_dir_all(dir)?;
        }
        let mut file = OpenOptions::new().create(true).append(true).open(journal)?;
        writeln!(file, "{line}")?;
        file.sync_data()
    };
    write().map_err(|e| StageError::io(journal.display(), "record a temporary file in", e))
}

/// An entry of the journal: a JSON line, or a line of an earlier version's journal when no
/// field of it has a control character.
fn parse(line: &str) -> Option<Entry> {
    if line.starts_with('{') {
        return serde_json::from_str(line).ok();
    }
    let fields: Vec<&str> = line.split('\t').collect();
    if fields.iter().any(|field| has_control(field)) {
        return None;
    }
    match fields[..] {
        [path] => Some(Entry {
            location: None,
            path: path.to_string(),
            run_id: String::new(),
        }),
        [location, path, run_id] => Some(Entry {
            location: Some(location.to_string()),
            path: path.to_string(),
            run_id: run_id.to_string(),
        }),
        _ => None,
    }
}

/// Why the local entry `path` is not removed, if it is not a temporary file's.
fn refusal(path: &str) -> Option<&'static str> {
    let path = Path::new(path);
    if has_control(&path.to_string_lossy()) || !path.is_absolute() {
        return Some("not an absolute path without control characters");
    }
    let is_temp = path
        .file_name()
        .and_then(|name| name.to_str())
        .is_some_and(super::file::is_temp_file_name);
    (!is_temp).then_some("not the name of a temporary file (.NAME.XXXXXX.part)")
}

/// Removes every temporary file the journal lists that still exists, then empties it; a
/// temporary upload is handed to `remove_remote`. Entries that are not temporary files (see the
/// module's documentation) are dropped without removing anything, and returned. Call only
/// while holding the pipeline's lock, after recovering an interrupted commit (whose temporary
/// files are still to be published).
pub fn clean(
    journal: &Path,
    remove_remote: &mut dyn FnMut(RemoteTemp) -> Removal,
) -> io::Result<Cleaned> {
    let text = match fs::read_to_string(journal) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Cleaned::default()),
        Err(e) => return Err(e),
    };
    let mut cleaned = Cleaned::default();
    let mut kept = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let Some(entry) = parse(line) else {
            cleaned
                .refused
                .push(format!("{line:?} (not a journal entry)"));
            continue;
        };
        let Some(location) = &entry.location else {
            if let Some(why) = refusal(&entry.path) {
                cleaned.refused.push(format!("{:?} ({why})", entry.path));
                continue;
            }
            match fs::remove_file(&entry.path) {
                Ok(()) => cleaned.removed.push(entry.path),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            continue;
        };
        if has_control(&entry.path) {
            cleaned.refused.push(format!(
                "{:?} on {location} (a control character in the path)",
                entry.path
            ));
            continue;
        }
        match remove_remote(RemoteTemp {
            location,
            path: &entry.path,
            run_id: &entry.run_id,
        }) {
            Removal::Removed => cleaned
                .removed
                .push(format!("{} on {location}", entry.path)),
            Removal::Absent => {}
            Removal::Kept => kept.push(serde_json::to_string(&entry).expect("strings serialize")),
            Removal::Refused(why) => cleaned
                .refused
                .push(format!("{:?} on {location} ({why})", entry.path)),
        }
    }
    if kept.is_empty() {
        fs::remove_file(journal)?;
    } else {
        fs::write(journal, kept.join("\n") + "\n")?;
    }
    Ok(cleaned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_json_lines_and_only_temporary_files_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("temp/p.list");
        let temp = dir.path().join(".x.csv.AbC123.part");
        let profile = dir.path().join(".profile");
        fs::write(&temp, "").unwrap();
        fs::write(&profile, "").unwrap();
        record(&journal, &temp, "run-1").unwrap();
        record_remote(&journal, "sftp://u@h:22", "out/.a\nb.part", "run-1").unwrap();
        // Forged or damaged lines: new and old forms.
        let forged = serde_json::json!({"location": null, "path": profile, "run_id": "x"});
        let old = format!("{}\n.profile\n", profile.display());
        let mut file = OpenOptions::new().append(true).open(&journal).unwrap();
        write!(file, "{forged}\n{old}").unwrap();
        drop(file);
        let text = fs::read_to_string(&journal).unwrap();
        for line in text.lines().take(2) {
            serde_json::from_str::<serde_json::Value>(line).unwrap();
        }

        let mut remote = Vec::new();
        let cleaned = clean(&journal, &mut |temp| {
            remote.push(temp.path.to_string());
            Removal::Removed
        })
        .unwrap();
        assert_eq!(cleaned.removed, [temp.display().to_string()]);
        assert!(remote.is_empty(), "{remote:?}");
        assert_eq!(cleaned.refused.len(), 4, "{:?}", cleaned.refused);
        assert!(profile.exists());
        assert!(!journal.exists());
    }

    #[test]
    fn an_earlier_versions_journal_is_read_through_the_same_checks() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("p.list");
        let temp = dir.path().join(".a.csv.XyZ789.part");
        fs::write(&temp, "").unwrap();
        fs::write(
            &journal,
            format!(
                "{}\nsftp://u@h:22\tout/.a.csv.part\trun-0\n",
                temp.display()
            ),
        )
        .unwrap();
        let cleaned = clean(&journal, &mut |_| Removal::Kept).unwrap();
        assert_eq!(cleaned.removed, [temp.display().to_string()]);
        assert!(!temp.exists());
        // The upload stays listed, now as JSON.
        let kept: serde_json::Value =
            serde_json::from_str(fs::read_to_string(&journal).unwrap().trim()).unwrap();
        assert_eq!(
            kept,
            serde_json::json!({"location": "sftp://u@h:22", "path": "out/.a.csv.part", "run_id": "run-0"})
        );
    }
}
