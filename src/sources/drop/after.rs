//! After the run committed (`Source::after_commit`): each delivered file is kept (given its
//! name back, if claimed), deleted or archived (`after`), its marker first. Delivered files an
//! earlier run did not finish (it stopped between its commit and this) are finished too; a
//! file that changed since it was read is left for the next run.

use super::config::AfterPickup;
use super::{DropSource, Taken};
use crate::filestore::{self, Connection};
use crate::template::TemplateValues;

impl DropSource {
    /// Finishes the files delivered by earlier runs and those this run read to the end; the
    /// warnings of those it could not finish (the next run tries again).
    pub(super) fn finish_delivered(&mut self) -> Vec<String> {
        let mut files: Vec<Taken> = std::mem::take(&mut self.leftovers);
        files.extend(
            std::mem::take(&mut self.taken)
                .into_iter()
                .filter(|file| self.delivered.contains(&file.shown)),
        );
        let mut warnings = Vec::new();
        for file in files {
            if let Err(e) = self.finish(&file) {
                warnings.push(format!(
                    "{} was delivered, but `after = \"{}\"` failed: {e}; the next run tries again",
                    file.shown, self.after
                ));
            }
        }
        warnings
    }

    /// Keeps (with its name back, if claimed), deletes or archives one delivered file, and its
    /// marker first (so that a marker never announces a file that is gone). Each step is safe
    /// to repeat: a step whose answer was lost is found done.
    fn finish(&mut self, file: &Taken) -> Result<(), filestore::StoreError> {
        let archive = self.archive_dir.as_ref().map(|template| {
            template.render(&TemplateValues {
                pipeline: &self.cx.pipeline,
                started_at: self.cx.started_at,
                source_stem: None,
                part: 1,
            })
        });
        let after = self.after;
        if after == AfterPickup::Keep && file.read_from == file.path {
            return Ok(());
        }
        let connection = self
            .inner
            .connection()
            .expect("a pickup source reads from a server");
        // Dropped again since it was read: the new file is the next run's.
        let now = connection.run("look up", |store| store.stat(&file.read_from))?;
        if let Some(now) = now
            && (now.size != file.size || now.mtime != file.mtime)
        {
            return Err(filestore::StoreError {
                location: connection.location().to_string(),
                message: format!(
                    "{} changed after it was read: left for the next run",
                    file.read_from
                ),
                transient: false,
            });
        }
        // (where it is now, where it was dropped, its path below `dir`)
        let mut steps = Vec::new();
        if let Some(marker) = &file.marker {
            let relative = filestore::join(
                filestore::parent(&file.relative),
                filestore::file_name(marker),
            );
            steps.push((marker.clone(), marker.clone(), relative));
        }
        steps.push((
            file.read_from.clone(),
            file.path.clone(),
            file.relative.clone(),
        ));
        for (now_at, dropped_as, relative) in steps {
            match after {
                AfterPickup::Keep if now_at != dropped_as => {
                    move_once(connection, &now_at, &dropped_as, false)?
                }
                AfterPickup::Keep => {}
                AfterPickup::Delete => connection.run("remove", |store| store.remove(&now_at))?,
                AfterPickup::Move => {
                    let dir = archive
                        .as_deref()
                        .expect("validated: archive_dir with move");
                    let to = filestore::join(dir, &relative);
                    connection.run("create the archive directory", |store| {
                        store.create_dir_all(filestore::parent(&to))
                    })?;
                    move_once(connection, &now_at, &to, true)?;
                }
            }
        }
        Ok(())
    }
}

/// Renames `from` to `to`, or finds it done (`from` gone, `to` there) by a try whose answer was
/// lost: never replaces `to` with nothing.
fn move_once(
    connection: &mut Connection,
    from: &str,
    to: &str,
    replace: bool,
) -> Result<(), filestore::StoreError> {
    connection.run("move", |store| {
        if store.stat(from)?.is_none() && store.stat(to)?.is_some() {
            return Ok(());
        }
        store.rename(from, to, replace)
    })
}
