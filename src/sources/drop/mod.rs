//! The `sftp` and `ftps` sources: files partners drop on a server, picked up once each. A file
//! is taken only when it is complete (old enough, a minute by default; unchanged between two
//! listings; or announced by a marker file), read straight from the server into its decoder,
//! and remembered in the ledger (its URL, size, modification time, SHA-256) when the run
//! commits, so that a rerun takes what was not delivered and nothing twice. What happens to a file after that (kept,
//! deleted, moved to an archive) happens only once the run has committed; a run that stops
//! before leaves it where it was, and the next run does it for delivered files still there.
//!
//! Only regular files are data: a link in the drop (`passwd.csv -> /etc/passwd`) is skipped
//! with a warning unless `follow_symlinks` says the partner's links are to be read.
//!
//! Several consumers sharing a drop can claim files first: a taken file is renamed to a hidden
//! name of this pipeline's (`.orders.csv.claimed-by-PIPELINE`) before it is read, and a claim a
//! failed run left is taken up again by the next run of the same pipeline.
//!
//! A file or directory whose name has a control character (a newline, a tab, an escape) is not
//! taken: it is left on the server with a warning naming it escaped (see [`crate::names`]).
//!
//! The files here: `config.rs` (the configuration), `listing.rs` (listing the drop; which
//! files are candidates by their names and kinds), `ready.rs` (which candidates are read this
//! run: the ledger, markers, `min_age_secs`, `stable_secs`, `order`, `max_files`), `claim.rs`
//! (claiming), `after.rs` (`after`, once the run committed); this file builds the source from
//! those steps and reads the files with the `file` source's reading code. The protocols are in
//! `crate::filestore`.

mod after;
mod claim;
mod config;
mod listing;
mod ready;

use std::collections::HashSet;
use std::time::Duration;

pub use self::config::{AfterPickup, DropSourceConfig, PickupOrder};
use self::listing::{Candidate, Rules, mtime_ns};
use self::ready::Chosen;
use super::file::{FileSource, Listed, ReadOptions, Reprocess};
use crate::codecs::limit::DEFAULT_MAX_RECORD_BYTES;
use crate::codecs::types::Typing;
use crate::error::StageError;
use crate::filestore::{Connection, ServerConfig};
use crate::record::Batch;
use crate::stage::{RunContext, Source, SourceProgress};
use crate::state::StateStore;
use crate::template::PathTemplate;

/// A file this run takes, or one an earlier run delivered that is still to be finished.
#[derive(Debug, Clone)]
struct Taken {
    /// Its path on the server as dropped, and where it is read from (its claimed name, when
    /// claiming).
    path: String,
    read_from: String,
    /// Its path below `dir`, kept in the archive.
    relative: String,
    /// How the source names it (the server's URL and the path): the ledger's key.
    shown: String,
    marker: Option<String>,
    /// As listed, to tell whether it changed before it is deleted or moved.
    size: u64,
    mtime: Option<i64>,
}

/// The `sftp` or `ftps` source: the files of one drop, read by the `file` source's code.
pub struct DropSource {
    inner: FileSource,
    /// The files taken, and those delivered by earlier runs still waiting for `after`.
    taken: Vec<Taken>,
    leftovers: Vec<Taken>,
    /// The files read to the end (by how they are shown), once the reading is over.
    delivered: HashSet<String>,
    after: AfterPickup,
    archive_dir: Option<PathTemplate>,
    cx: RunContext,
}

impl DropSource {
    /// Lists the drop, chooses the files to read this run, claims them when claiming, and
    /// hands them to the reader.
    pub fn new<S: ServerConfig>(
        config: &DropSourceConfig<S>,
        cx: &RunContext,
        store: &mut dyn StateStore,
    ) -> Result<Self, StageError> {
        let mut connection = config.server.connection(cx)?;
        let rules = Rules::new(config, connection.location(), &cx.pipeline)?;
        let mut progress = SourceProgress::default();
        let dropped = rules.list(&mut connection, &mut progress.warnings)?;
        let candidates = rules.candidates(&mut connection, &dropped, &mut progress.warnings)?;
        let Chosen {
            mut ready,
            leftovers,
        } = ready::choose(
            &mut connection,
            config,
            cx,
            store,
            &dropped,
            candidates,
            &mut progress,
        )?;
        if let Some(seconds) = config.stable_secs {
            let wait = Duration::from_secs(seconds);
            ready = ready::keep_stable(&mut connection, ready, &rules, wait, cx)?;
        }
        if let Some(suffix) = rules.claim_suffix.as_deref() {
            ready.retain(|(_, chosen)| match claim::unclaimable(chosen, suffix) {
                Some(warning) => {
                    tracing::warn!("{warning}");
                    progress.warnings.push(warning);
                    false
                }
                None => true,
            });
        }
        ready::order(&mut ready, config.order);
        // A dry run or a preview changes nothing on the server.
        let claim_suffix = rules.claim_suffix.as_deref().filter(|_| !cx.read_only);
        let (taken, listed) = take(
            &mut connection,
            ready,
            claim_suffix,
            config.max_files,
            &mut progress.warnings,
        );
        let mut inner = reader(connection, listed, config, cx);
        inner.add_progress(progress);
        Ok(DropSource {
            inner,
            taken,
            leftovers,
            delivered: HashSet::new(),
            after: config.after,
            archive_dir: config
                .archive_dir
                .as_deref()
                .map(PathTemplate::parse)
                .transpose()
                .map_err(StageError::Refused)?,
            cx: cx.clone(),
        })
    }
}

/// Takes the `ready` files, in their order, up to `max_files`: each is claimed first when
/// `claim_suffix` is given (a file not claimed is left, and the next one takes its place), and
/// listed for the reader.
fn take(
    connection: &mut Connection,
    ready: Vec<Candidate>,
    claim_suffix: Option<&str>,
    max_files: Option<usize>,
    warnings: &mut Vec<String>,
) -> (Vec<Taken>, Vec<Listed>) {
    let mut taken = Vec::new();
    let mut listed = Vec::new();
    let ready_count = ready.len();
    for (index, (file, mut chosen)) in ready.into_iter().enumerate() {
        if max_files.is_some_and(|max| listed.len() >= max) {
            tracing::info!(
                taken = listed.len(),
                waiting = ready_count - index,
                "max_files reached: the rest wait for the next run"
            );
            break;
        }
        if let Some(suffix) = claim_suffix
            && chosen.read_from == chosen.path
            && !claim::claim(connection, &mut chosen, suffix, warnings)
        {
            continue;
        }
        listed.push(Listed {
            path: chosen.read_from.clone().into(),
            shown: chosen.shown.clone(),
            file_path: chosen.path.clone(),
            key: chosen.shown.clone(),
            mtime_ns: mtime_ns(&file.entry),
            size: file.entry.size,
            inode: None,
        });
        taken.push(chosen);
    }
    (taken, listed)
}

/// The `file` source's reading code over the `listed` files: each streamed from the server
/// through unpacking and decoding, hashed on the way.
fn reader<S>(
    connection: Connection,
    listed: Vec<Listed>,
    config: &DropSourceConfig<S>,
    cx: &RunContext,
) -> FileSource {
    let read = ReadOptions {
        format: config.format.clone(),
        encoding: config.encoding,
        limits: super::file::limits(config.max_unpacked_bytes, config.max_zip_members),
        max_record_bytes: config.max_record_bytes.unwrap_or(DEFAULT_MAX_RECORD_BYTES),
        typing: Typing::new(config.infer_types, config.schema.as_ref()),
        file_fields: config.file_fields,
    };
    FileSource::remote(
        connection,
        listed,
        read,
        cx,
        config.reprocess != Reprocess::Always,
    )
}

impl Source for DropSource {
    fn next_batch(&mut self, out: &mut Batch, max: usize) -> Result<bool, StageError> {
        self.inner.next_batch(out, max)
    }

    fn progress(&mut self) -> SourceProgress {
        let progress = self.inner.progress();
        self.delivered
            .extend(progress.files_read.iter().map(|f| f.path.clone()));
        progress
    }

    fn after_commit(&mut self) -> Vec<String> {
        self.finish_delivered()
    }
}
