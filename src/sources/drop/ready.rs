//! Which candidates this run reads: those the ledger has not seen delivered (or, as
//! `reprocess` says, whose content changed since), once they are complete by the readiness
//! rules (a marker file beside them, a minimum age, the same size and modification time
//! `stable_secs` later), in `order`, at most `max_files`. Delivered files still in the drop
//! are not read again, but may still be waiting for `after`.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Taken;
use super::config::{AfterPickup, DropSourceConfig, PickupOrder};
use super::listing::{Candidate, Dropped, Rules, followed, mtime_ns};
use crate::error::StageError;
use crate::filestore::{self, Connection, EntryKind, RemoteEntry};
use crate::sources::file::Reprocess;
use crate::stage::{RunContext, SourceProgress};
use crate::state::{LedgerEntry, StateStore};

/// `min_age_secs` when neither it, `marker` nor `stable_secs` is set: a file modified within
/// the last minute may still be being written.
const DEFAULT_MIN_AGE_SECS: u64 = 60;

/// The candidates to read, and the delivered files still to be finished.
pub(super) struct Chosen {
    pub(super) ready: Vec<Candidate>,
    /// Delivered files still to be deleted, archived, or given their names back.
    pub(super) leftovers: Vec<Taken>,
}

/// Of the `candidates` (claims first), those not delivered, or changed since as `reprocess`
/// says, that are ready (a claim is: it was taken), and the delivered ones `after` or a claim
/// still has something to do with. `dropped` is the whole listing, where markers are looked
/// for; files already delivered are noted in `progress`.
pub(super) fn choose<S>(
    connection: &mut Connection,
    config: &DropSourceConfig<S>,
    cx: &RunContext,
    store: &mut dyn StateStore,
    dropped: &[Dropped],
    candidates: Vec<Candidate>,
    progress: &mut SourceProgress,
) -> Result<Chosen, StageError> {
    let names: HashSet<&str> = dropped.iter().map(|d| d.entry.path.as_str()).collect();
    let mut leftovers = Vec::new();
    let mut ready = Vec::new();
    for (file, taken) in candidates {
        let is_claim = taken.read_from != taken.path;
        let delivered = match config.reprocess {
            Reprocess::Always => None,
            Reprocess::Changed | Reprocess::Never => store
                .ledger_entry(&cx.pipeline, &taken.shown)
                .map_err(StageError::from)?,
        };
        if let Some(delivered) = delivered {
            // `never` reads nothing again, not even to hash it.
            let unchanged = match config.reprocess {
                Reprocess::Never => {
                    file.entry.size == delivered.size && mtime_ns(&file.entry) == delivered.mtime_ns
                }
                _ => is_unchanged(connection, &file.entry, &taken, &delivered)?,
            };
            if unchanged {
                tracing::debug!(file = %taken.shown, run = %delivered.run_id, "already delivered, skipped");
                progress.already_processed.push(taken.shown.clone());
                // Still to be deleted, archived, or given its name back.
                if config.after != AfterPickup::Keep || is_claim {
                    leftovers.push(taken);
                }
                continue;
            }
            if config.reprocess == Reprocess::Never {
                tracing::info!(file = %taken.shown, "changed since it was delivered, left alone (reprocess = \"never\")");
                continue;
            }
            tracing::info!(file = %taken.shown, "changed since it was delivered, reading it again");
        }
        if is_claim || is_ready(config, &file.entry, &names, &taken) {
            ready.push((file, taken));
        }
    }
    Ok(Chosen { ready, leftovers })
}

/// Whether a file not delivered yet is complete by the readiness rules: its marker is there,
/// and it is old enough.
fn is_ready<S>(
    config: &DropSourceConfig<S>,
    entry: &RemoteEntry,
    names: &HashSet<&str>,
    taken: &Taken,
) -> bool {
    if let Some(marker) = &taken.marker
        && !names.contains(marker.as_str())
    {
        tracing::debug!(file = %entry.path, "no marker file yet, left for a later run");
        return false;
    }
    let min_age =
        config
            .min_age_secs
            .unwrap_or(if config.marker.is_some() || config.stable_secs.is_some() {
                0
            } else {
                DEFAULT_MIN_AGE_SECS
            });
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    if min_age > 0 && entry.mtime.is_none_or(|mtime| now - mtime < min_age as i64) {
        tracing::debug!(file = %entry.path, "too recent, left for a later run");
        return false;
    }
    true
}

/// Whether a listed file still has the content the ledger recorded: the same size and
/// modification time, or else (uploaded again, touched) the same SHA-256, read from the server.
fn is_unchanged(
    connection: &mut Connection,
    entry: &RemoteEntry,
    file: &Taken,
    delivered: &LedgerEntry,
) -> Result<bool, StageError> {
    if entry.size != delivered.size {
        return Ok(false);
    }
    if mtime_ns(entry) == delivered.mtime_ns {
        return Ok(true);
    }
    let sha256 = connection.run("read", |store| {
        let reader = store.open(&file.read_from)?;
        crate::digest::sha256_reader(reader).map_err(|e| filestore::StoreError {
            location: String::new(),
            message: format!("cannot read {}: {e}", file.read_from),
            transient: true,
        })
    })?;
    Ok(sha256.1 == delivered.sha256)
}

/// The candidates whose size and modification time are the same on a second listing of the
/// drop `wait` later (`stable_secs`; less when the run's time runs out first).
pub(super) fn keep_stable(
    connection: &mut Connection,
    candidates: Vec<Candidate>,
    rules: &Rules,
    wait: Duration,
    cx: &RunContext,
) -> Result<Vec<Candidate>, StageError> {
    if candidates.is_empty() {
        return Ok(candidates);
    }
    let wait = match cx.deadline {
        Some(deadline) => wait.min(deadline.saturating_duration_since(std::time::Instant::now())),
        None => wait,
    };
    tracing::info!(
        seconds = wait.as_secs(),
        "waiting to see which dropped files are complete"
    );
    std::thread::sleep(wait);
    let mut again: BTreeMap<String, RemoteEntry> = rules
        .entries(connection)?
        .0
        .into_iter()
        .map(|file| (file.entry.path.clone(), file.entry))
        .collect();
    let mut stable = Vec::new();
    for (file, taken) in candidates {
        let now = match again.remove(&file.entry.path) {
            // A link taken is followed: its file is compared.
            Some(link) if link.kind == EntryKind::Symlink => followed(connection, &link)?,
            now => now,
        };
        let same =
            now.is_some_and(|now| now.size == file.entry.size && now.mtime == file.entry.mtime);
        if same {
            stable.push((file, taken));
        } else {
            tracing::info!(file = %taken.shown, "still changing, left for a later run");
        }
    }
    Ok(stable)
}

/// Sorts the files to read in `order` (the first `max_files` of them are taken).
pub(super) fn order(ready: &mut [Candidate], order: PickupOrder) {
    match order {
        PickupOrder::Name => ready.sort_by(|a, b| a.1.path.cmp(&b.1.path)),
        PickupOrder::Mtime => {
            ready.sort_by(|a, b| (a.0.entry.mtime, &a.1.path).cmp(&(b.0.entry.mtime, &b.1.path)))
        }
    }
}
