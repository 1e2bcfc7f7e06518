//! Publishing a prepared output: the one rename that makes a finished temporary file visible
//! under its final name. A sink's commit and the next run's recovery of an interrupted commit
//! both publish through [`PreparedOutput::publish`] (local files) or
//! [`PreparedOutput::publish_remote`] (files on a server), so they honour `if_exists` the same
//! way and both make the rename durable.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use super::SinkSpec;
use super::temp_journal;
use crate::filestore::{Connection, FileStore, StoreError};
use crate::stage::RunContext;
use crate::state::{IfExists, PreparedOutput};

/// The most numbered names `if_exists = "rename"` tries.
const MAX_RENAMES: u32 = 1000;

/// What publishing did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Publication {
    /// Published under this name: `path`, or a numbered one (`if_exists = "rename"`).
    Published(PathBuf),
    /// The final file existed and `if_exists = "skip"`: it was left alone and the temporary
    /// file removed.
    Skipped,
}

impl PreparedOutput {
    /// Renames the temporary file to the final name (never over an existing file unless
    /// `if_exists = "replace"`) and makes the rename durable. On an error the temporary file
    /// stays, so that publishing can be tried again.
    pub fn publish(&self) -> io::Result<Publication> {
        // Checked at prepare already; again here, for an interrupted commit's recovery and for
        // what appeared since: a rename over it would replace a device, a pipe or a link.
        if let Some(obstacle) = Obstacle::at(&self.path) {
            return Err(io::Error::other(
                obstacle.message(&self.path.display().to_string(), STDOUT_SINK),
            ));
        }
        if self.if_exists == IfExists::Replace {
            std::fs::rename(&self.temp, &self.path)?;
            sync_dir(parent_dir(&self.path))?;
            return Ok(Publication::Published(self.path.clone()));
        }
        let candidates = self.candidates();
        for candidate in candidates {
            // `from_path` does not own the file until the rename: `keep` it on failure.
            let temp = tempfile::TempPath::try_from_path(&self.temp)?;
            match temp.persist_noclobber(&candidate) {
                Ok(_) => {
                    sync_dir(parent_dir(&candidate))?;
                    return Ok(Publication::Published(candidate));
                }
                Err(e) => {
                    let kind = e.error.kind();
                    let _ = e.path.keep();
                    match (kind, self.if_exists) {
                        (io::ErrorKind::AlreadyExists, IfExists::Skip) => {
                            std::fs::remove_file(&self.temp)?;
                            return Ok(Publication::Skipped);
                        }
                        (io::ErrorKind::AlreadyExists, IfExists::Rename) => continue,
                        _ => return Err(e.error),
                    }
                }
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{MAX_RENAMES} numbered names are taken"),
        ))
    }

    /// The names to publish under, in order: the final one, then numbered ones for
    /// `if_exists = "rename"`.
    fn candidates(&self) -> Vec<PathBuf> {
        let mut names = vec![self.path.clone()];
        if self.if_exists == IfExists::Rename {
            let shown = self.path.to_string_lossy();
            names.extend((1..=MAX_RENAMES).map(|n| PathBuf::from(numbered(&shown, n))));
        }
        names
    }

    /// Publishes an uploaded output on its server, as [`PreparedOutput::publish`] does a local
    /// one, then uploads its marker file. Safe to repeat: when the temporary upload is gone, a
    /// try before this one (whose answer was lost), or a run that crashed, published it.
    pub fn publish_remote(&self, store: &mut dyn FileStore) -> Result<Publication, StoreError> {
        let temp = self.temp.to_string_lossy();
        let location = || {
            self.remote
                .as_ref()
                .map_or_else(String::new, |r| r.location.clone())
        };
        let candidates: Vec<String> = self
            .candidates()
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect();
        if store.stat(&temp)?.is_none() {
            // Skipped, or published: ours is then the last name taken that has our size (the
            // final name may have been taken away since; numbered names follow each other). A
            // consumer may have taken it away too, and then there is nothing to mark.
            if self.if_exists == IfExists::Skip {
                return Ok(Publication::Skipped);
            }
            let mut ours = None;
            for (index, candidate) in candidates.iter().enumerate() {
                match store.stat(candidate)? {
                    Some(entry) if entry.size == self.size => ours = Some(candidate.clone()),
                    Some(_) => {}
                    None if index == 0 => {}
                    None => break,
                }
            }
            return match ours {
                Some(path) => {
                    self.upload_marker(store, &path)?;
                    Ok(Publication::Published(PathBuf::from(path)))
                }
                None => Ok(Publication::Skipped),
            };
        }
        let replace = self.if_exists == IfExists::Replace;
        for candidate in candidates {
            if !replace && store.stat(&candidate)?.is_some() {
                match self.if_exists {
                    IfExists::Skip => {
                        store.remove(&temp)?;
                        return Ok(Publication::Skipped);
                    }
                    IfExists::Rename => continue,
                    IfExists::Fail | IfExists::Replace => {
                        return Err(StoreError {
                            location: location(),
                            message: format!(
                                "{candidate} appeared on the server while the run was writing it and the sink has `if_exists = \"fail\"`"
                            ),
                            transient: false,
                        });
                    }
                }
            }
            store.rename(&temp, &candidate, replace)?;
            self.upload_marker(store, &candidate)?;
            return Ok(Publication::Published(PathBuf::from(candidate)));
        }
        Err(StoreError {
            location: location(),
            message: format!(
                "cannot publish {}: {MAX_RENAMES} numbered names are taken",
                self.path.display()
            ),
            transient: false,
        })
    }

    /// Uploads the (empty) marker file beside `published`, if the output has one.
    fn upload_marker(&self, store: &mut dyn FileStore, published: &str) -> Result<(), StoreError> {
        if let Some(pattern) = self.remote.as_ref().and_then(|r| r.marker.as_deref()) {
            let name = pattern.replace("{name}", crate::filestore::file_name(published));
            let marker = crate::filestore::join(crate::filestore::parent(published), &name);
            store.upload(&marker, &mut io::empty())?;
        }
        Ok(())
    }

    /// The same output with absolute paths, as a commit intent records it: the run that
    /// recovers it may run from another working directory. A server's paths stay as they are.
    pub fn absolute(&self) -> io::Result<Self> {
        if self.remote.is_some() {
            return Ok(self.clone());
        }
        Ok(PreparedOutput {
            path: std::path::absolute(&self.path)?,
            temp: std::path::absolute(&self.temp)?,
            ..self.clone()
        })
    }
}

/// Publishes and discards prepared outputs wherever they are, for the runner's steps that
/// outlive the sink that made them: discarding what will not be published, and finishing the
/// commit of an interrupted run. Local files are handled directly; an upload on the server of
/// the pipeline's sink that names that server (`location`), connected when first needed.
pub struct Destinations<'a> {
    sinks: Vec<&'a dyn SinkSpec>,
    cx: &'a RunContext,
    connections: Vec<Connection>,
    /// Servers that could not be reached: not tried again by the same run.
    unreachable: Vec<StoreError>,
}

impl<'a> Destinations<'a> {
    /// Over the pipeline's sinks (`Pipeline::sink_specs`).
    pub fn new(sinks: Vec<&'a dyn SinkSpec>, cx: &'a RunContext) -> Self {
        Destinations {
            sinks,
            cx,
            connections: Vec::new(),
            unreachable: Vec::new(),
        }
    }

    /// Runs `operation` on the server `location`; once one fails there on the connection, the
    /// others fail at once with the same error.
    fn run<T>(
        &mut self,
        location: &str,
        what: &str,
        operation: impl FnMut(&mut dyn FileStore) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if let Some(error) = self.unreachable.iter().find(|e| e.location == location) {
            return Err(StoreError {
                location: error.location.clone(),
                message: error.message.clone(),
                transient: error.transient,
            });
        }
        let result = self
            .connection(location)
            .and_then(|c| c.run(what, operation));
        if let Err(error) = &result
            && error.transient
        {
            self.unreachable.push(StoreError {
                location: location.to_string(),
                message: error.message.clone(),
                transient: true,
            });
        }
        result
    }

    fn connection(&mut self, location: &str) -> Result<&mut Connection, StoreError> {
        if let Some(index) = self
            .connections
            .iter()
            .position(|c| c.location() == location)
        {
            return Ok(&mut self.connections[index]);
        }
        let server = self
            .sinks
            .iter()
            .filter_map(|sink| sink.server())
            .find(|server| server.location() == location)
            .ok_or_else(|| StoreError {
                location: location.to_string(),
                message: "no sink of the pipeline uploads to this server any more: put the sink back to finish publishing, or `longshore state reset` to give up on it".into(),
                transient: false,
            })?;
        let connection = server.connection(self.cx)?;
        self.connections.push(connection);
        Ok(self.connections.last_mut().expect("just added"))
    }

    /// Publishes `output` if its temporary file is still there (a crash came before its
    /// rename); an upload whose rename happened gets the marker file it may have missed.
    pub fn finish(&mut self, output: &PreparedOutput) -> io::Result<()> {
        let Some(remote) = &output.remote else {
            if output.temp.exists() {
                output.publish()?;
            }
            return Ok(());
        };
        let published = self
            .run(&remote.location, "publish", |store| {
                output.publish_remote(store)
            })
            .map_err(io::Error::other)?;
        if published == Publication::Skipped && output.if_exists != IfExists::Skip {
            tracing::warn!(
                server = %remote.location,
                file = %output.path.display(),
                "the temporary upload of an interrupted run is gone and the file is not on the server: taken as published (a consumer may have taken it away)"
            );
        }
        Ok(())
    }

    /// Removes the file at `path` on the server `location` (a temporary upload an interrupted
    /// run left). Whether there was one.
    pub fn remove(&mut self, location: &str, path: &str) -> io::Result<bool> {
        self.run(location, "remove", |store| {
            let found = store.stat(path)?.is_some();
            store.remove(path)?;
            Ok(found)
        })
        .map_err(io::Error::other)
    }

    /// Removes the temporary upload `path` on the server `location` that the temporary-file
    /// journal lists, if its name is one a sink uploading there gives its temporary uploads
    /// (`temp_name`): a damaged or forged entry never removes a partner's file. An entry for a
    /// server no sink uploads to any more, or that cannot be reached, stays listed.
    pub fn remove_temp(&mut self, location: &str, path: &str) -> temp_journal::Removal {
        let patterns: Vec<&str> = self
            .sinks
            .iter()
            .filter(|sink| sink.server().is_some_and(|s| s.location() == location))
            .filter_map(|sink| sink.temp_name())
            .collect();
        let name = crate::filestore::file_name(path);
        if !patterns.is_empty()
            && !patterns
                .iter()
                .any(|pattern| super::upload::is_temp_name(pattern, name))
        {
            return temp_journal::Removal::Refused(format!(
                "not a name `temp_name` gives ({})",
                patterns.join(", ")
            ));
        }
        match self.remove(location, path) {
            Ok(true) => temp_journal::Removal::Removed,
            Ok(false) => temp_journal::Removal::Absent,
            Err(_) => temp_journal::Removal::Kept,
        }
    }

    /// Removes the temporary files of outputs that will not be published (their run failed
    /// before recording its intent). Best effort: the temporary-file journal catches what is
    /// left, for the next run.
    pub fn discard(&mut self, outputs: &[PreparedOutput]) {
        for output in outputs {
            match &output.remote {
                None => {
                    let _ = std::fs::remove_file(&output.temp);
                }
                Some(remote) => {
                    let temp = output.temp.to_string_lossy();
                    if let Err(e) = self.remove(&remote.location, &temp) {
                        tracing::warn!(file = %temp, error = %e, "cannot remove a temporary upload now: the next run does");
                    }
                }
            }
        }
    }
}

/// `path` with `-N` before its extension (`.gz` looked through): `orders-2.csv`,
/// `orders-2.csv.gz`, `README-2`.
fn numbered(path: &str, n: u32) -> String {
    let (dir, name) = match path.rsplit_once('/') {
        Some((dir, name)) => (format!("{dir}/"), name),
        None => (String::new(), path),
    };
    let (base, gz) = match name.strip_suffix(".gz") {
        Some(base) => (base, ".gz"),
        None => (name, ""),
    };
    match base.rsplit_once('.') {
        Some((stem, extension)) if !stem.is_empty() => format!("{dir}{stem}-{n}.{extension}{gz}"),
        _ => format!("{dir}{base}-{n}{gz}"),
    }
}

/// How a pipeline writes to standard output, for messages refusing a device or a pipe.
pub const STDOUT_SINK: &str = "a `type = \"stdout\"` sink writes to standard output";

/// Something at an output's path that is not a regular file. Publishing renames a file over
/// the path, which would put a regular file in place of a device (`/dev/null`), a named pipe
/// or a socket, and in place of a symbolic link rather than the file it points to: each is
/// refused instead, before anything is written and again before publishing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Obstacle {
    Directory,
    /// A symbolic link, and where it points.
    Link(PathBuf),
    /// A device, a named pipe or a socket, as messages name it.
    Special(&'static str),
}

impl Obstacle {
    /// What is at `path`, when something other than a regular file is (the path itself, not
    /// what a link there points to).
    pub fn at(path: &Path) -> Option<Obstacle> {
        let file_type = std::fs::symlink_metadata(path).ok()?.file_type();
        if file_type.is_file() {
            return None;
        }
        if file_type.is_dir() {
            return Some(Obstacle::Directory);
        }
        if file_type.is_symlink() {
            return Some(Obstacle::Link(std::fs::read_link(path).unwrap_or_default()));
        }
        Some(Obstacle::Special(special_kind(&file_type)))
    }

    /// The error message for an output at `shown`; `to_stdout` says how to write to standard
    /// output instead, for devices and pipes.
    pub fn message(&self, shown: &str, to_stdout: &str) -> String {
        match self {
            Obstacle::Directory => {
                format!("{shown} is a directory: the output file cannot take its place")
            }
            Obstacle::Link(target) => format!(
                "{shown} is a symbolic link (to {}), not a file: longshore replaces files atomically, which would replace the link itself, not the file it points to; name the file itself as the output",
                target.display()
            ),
            Obstacle::Special(kind) => format!(
                "{shown} is a {kind}, not a file: longshore replaces files atomically; {to_stdout}"
            ),
        }
    }
}

#[cfg(unix)]
fn special_kind(file_type: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_char_device() {
        "character device"
    } else if file_type.is_block_device() {
        "block device"
    } else if file_type.is_fifo() {
        "named pipe (FIFO)"
    } else if file_type.is_socket() {
        "socket"
    } else {
        "special file"
    }
}

#[cfg(not(unix))]
fn special_kind(_: &std::fs::FileType) -> &'static str {
    "special file"
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::RemoteOutput;

    #[test]
    fn numbered_names_keep_the_extension() {
        assert_eq!(numbered("/out/orders.csv", 2), "/out/orders-2.csv");
        assert_eq!(numbered("orders.csv.gz", 1), "orders-1.csv.gz");
        assert_eq!(numbered("/out/README", 3), "/out/README-3");
        assert_eq!(numbered("/out.d/.hidden", 1), "/out.d/.hidden-1");
    }

    /// Files in memory, for the publishing logic alone.
    #[derive(Default)]
    struct MemoryStore(std::collections::BTreeMap<String, Vec<u8>>);

    impl FileStore for MemoryStore {
        fn list(&mut self, dir: &str) -> Result<Vec<crate::filestore::RemoteEntry>, StoreError> {
            let paths: Vec<String> = self
                .0
                .keys()
                .filter(|path| crate::filestore::parent(path) == dir)
                .cloned()
                .collect();
            paths
                .iter()
                .map(|path| self.stat(path).map(|entry| entry.expect("listed")))
                .collect()
        }
        fn stat(
            &mut self,
            path: &str,
        ) -> Result<Option<crate::filestore::RemoteEntry>, StoreError> {
            Ok(self.0.get(path).map(|bytes| crate::filestore::RemoteEntry {
                path: path.into(),
                name: crate::filestore::file_name(path).into(),
                size: bytes.len() as u64,
                mtime: None,
                kind: crate::filestore::EntryKind::File,
            }))
        }
        fn open(&mut self, path: &str) -> Result<Box<dyn std::io::Read + Send>, StoreError> {
            let bytes = self.0.get(path).cloned().unwrap_or_default();
            Ok(Box::new(std::io::Cursor::new(bytes)))
        }
        fn upload(&mut self, path: &str, from: &mut dyn std::io::Read) -> Result<u64, StoreError> {
            let mut bytes = Vec::new();
            from.read_to_end(&mut bytes).unwrap();
            self.0.insert(path.into(), bytes);
            Ok(self.0[path].len() as u64)
        }
        fn rename(&mut self, from: &str, to: &str, replace: bool) -> Result<(), StoreError> {
            assert!(replace || !self.0.contains_key(to));
            let bytes = self.0.remove(from).expect("the file to rename");
            self.0.insert(to.into(), bytes);
            Ok(())
        }
        fn remove(&mut self, path: &str) -> Result<(), StoreError> {
            self.0.remove(path);
            Ok(())
        }
        fn create_dir_all(&mut self, _: &str) -> Result<(), StoreError> {
            Ok(())
        }
    }

    #[test]
    fn publishing_an_upload_again_after_a_lost_answer_keeps_it() {
        let mut store = MemoryStore::default();
        store.0.insert("out/a.csv".into(), b"old".to_vec());
        store.0.insert("out/.a.csv.part".into(), b"new".to_vec());
        let output = PreparedOutput {
            path: "out/a.csv".into(),
            temp: "out/.a.csv.part".into(),
            size: 3,
            sha256: String::new(),
            if_exists: IfExists::Replace,
            remote: Some(RemoteOutput {
                location: "sftp://u@h:22".into(),
                marker: Some("{name}.done".into()),
            }),
        };
        let published = Publication::Published("out/a.csv".into());
        assert_eq!(output.publish_remote(&mut store).unwrap(), published);
        // The answer was lost: the same publishing again finds its work done.
        assert_eq!(output.publish_remote(&mut store).unwrap(), published);
        assert_eq!(
            store.0.into_iter().collect::<Vec<_>>(),
            [
                ("out/a.csv".to_string(), b"new".to_vec()),
                ("out/a.csv.done".to_string(), Vec::new()),
            ]
        );
    }

    #[test]
    fn rename_publishes_beside_what_exists() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.csv"), "old").unwrap();
        std::fs::write(dir.path().join("a-1.csv"), "older").unwrap();
        std::fs::write(dir.path().join(".a.csv.part"), "new").unwrap();
        let output = PreparedOutput {
            path: dir.path().join("a.csv"),
            temp: dir.path().join(".a.csv.part"),
            size: 3,
            sha256: String::new(),
            if_exists: IfExists::Rename,
            remote: None,
        };
        assert_eq!(
            output.publish().unwrap(),
            Publication::Published(dir.path().join("a-2.csv"))
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("a-2.csv")).unwrap(),
            "new"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("a.csv")).unwrap(),
            "old"
        );
        assert!(!dir.path().join(".a.csv.part").exists());
    }
}
