//! Claims (`claim = true`), for drops several consumers share: a file this run takes is first
//! renamed to a hidden name of this pipeline's (`.orders.csv.claimed-by-PIPELINE`), so that the
//! others leave it alone; a claim a failed run left is taken up again by the next run of the
//! same pipeline (see [`claimed_original`]), and a claimed file kept after delivery gets its
//! name back (see `after.rs`).

use super::Taken;
use crate::filestore::{self, Connection};
use crate::names;

/// The name a claimed file was dropped under, if `name` is one of this pipeline's claims
/// (`.NAME.claimed-by-PIPELINE`; `suffix` is from `.claimed-by-`).
pub(super) fn claimed_original<'a>(name: &'a str, suffix: &str) -> Option<&'a str> {
    name.strip_prefix('.')?
        .strip_suffix(suffix)
        .filter(|original| !original.is_empty())
}

/// Why `file` cannot be claimed whatever the server says, if it cannot: its claimed name would
/// be longer than a file name can be, so the rename would fail every run. Checked before the
/// files to take are chosen, so that it takes no place of `max_files` (and a dry run says so
/// too).
pub(super) fn unclaimable(file: &Taken, suffix: &str) -> Option<String> {
    let claimed_name = format!(".{}{suffix}", filestore::file_name(&file.path));
    (file.read_from == file.path && claimed_name.len() > names::MAX_NAME_BYTES).then(|| {
        format!(
            "{} is not taken: its claimed name `.NAME{suffix}` would be {} bytes, more than a file name can be ({}); shorten the file's name (or the pipeline's, or set `claim = false`)",
            file.shown,
            claimed_name.len(),
            names::MAX_NAME_BYTES
        )
    })
}

/// Renames `file` to its claimed name (`suffix` is this pipeline's `.claimed-by-PIPELINE`),
/// which it is then read from; false when it is not to be taken: another consumer's claim took
/// it (as it should be), or it cannot be claimed. A file
/// left alone for good says why in `warnings`.
pub(super) fn claim(
    connection: &mut Connection,
    file: &mut Taken,
    suffix: &str,
    warnings: &mut Vec<String>,
) -> bool {
    let claimed_name = format!(".{}{suffix}", filestore::file_name(&file.path));
    let claimed = filestore::join(filestore::parent(&file.path), &claimed_name);
    let renamed = connection.run("claim", |store| store.rename(&file.path, &claimed, false));
    if let Err(e) = renamed {
        // Another consumer's claim took it away: as it should be. Still there, the file cannot
        // be claimed (permissions), and would be left alone every run.
        let still_there = connection
            .run("stat", |store| store.stat(&file.path))
            .is_ok_and(|entry| entry.is_some());
        if still_there {
            let warning = format!("{} is not taken: it cannot be claimed ({e})", file.shown);
            tracing::warn!("{warning}");
            warnings.push(warning);
        } else {
            tracing::info!(file = %file.shown, "not claimed: another consumer took it");
        }
        return false;
    }
    file.read_from = claimed;
    true
}
