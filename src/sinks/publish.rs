//! Publishing a prepared output: the one rename that makes a finished temporary file visible
//! under its final name. A sink's commit and the next run's recovery of an interrupted commit
//! both publish through [`PreparedOutput::publish`], so they honour `if_exists` the same way and
//! both make the rename durable.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What to do when an output file already exists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum IfExists {
    #[default]
    Replace,
    Fail,
    Skip,
}

/// A finished, durable output waiting to be published: `temp` is renamed to `path`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreparedOutput {
    pub path: PathBuf,
    pub temp: PathBuf,
    pub size: u64,
    pub sha256: String,
    /// What publishing does when `path` exists by then.
    #[serde(default)]
    pub if_exists: IfExists,
}

/// What [`PreparedOutput::publish`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publication {
    Published,
    /// The final file existed and `if_exists = "skip"`: it was left alone and the temporary
    /// file removed.
    Skipped,
}

impl PreparedOutput {
    /// Renames the temporary file to the final name (never over an existing file unless
    /// `if_exists = "replace"`) and makes the rename durable. On an error the temporary file
    /// stays, so that publishing can be tried again.
    pub fn publish(&self) -> io::Result<Publication> {
        if self.if_exists == IfExists::Replace {
            std::fs::rename(&self.temp, &self.path)?;
        } else {
            // `from_path` does not own the file until the rename: `keep` it on failure.
            let temp = tempfile::TempPath::try_from_path(&self.temp)?;
            if let Err(e) = temp.persist_noclobber(&self.path) {
                let kind = e.error.kind();
                let _ = e.path.keep();
                if kind == io::ErrorKind::AlreadyExists && self.if_exists == IfExists::Skip {
                    std::fs::remove_file(&self.temp)?;
                    return Ok(Publication::Skipped);
                }
                return Err(e.error);
            }
        }
        sync_dir(parent_dir(&self.path))?;
        Ok(Publication::Published)
    }

    /// The same output with absolute paths, as a commit intent records it: the run that
    /// recovers it may run from another working directory.
    pub fn absolute(&self) -> io::Result<Self> {
        Ok(PreparedOutput {
            path: std::path::absolute(&self.path)?,
            temp: std::path::absolute(&self.temp)?,
            ..self.clone()
        })
    }
}

/// Removes the temporary files of outputs that will not be published (their run failed before
/// recording its intent). Best effort: the temporary-file journal catches what is left.
pub fn discard(outputs: &[PreparedOutput]) {
    for output in outputs {
        let _ = std::fs::remove_file(&output.temp);
    }
}

/// The directory a file is in; `.` for a bare file name.
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Makes the creation, rename or removal of entries in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
