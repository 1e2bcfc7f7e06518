//! The default state store: one SQLite file (bundled SQLite, no server), by default
//! `.longshore/state.db` beside the pipeline file. Every write is a transaction with
//! `synchronous = FULL`, so a power loss keeps either the old state or the new one. The schema
//! is versioned with `PRAGMA user_version`; migrations run in order when a store is opened.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{
    Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior, params,
};

use super::{
    CommitIntent, LedgerEntry, LockAttempt, LockOwner, OutboxStatus, StateChange, StateError,
    StateStore, StateSummary,
};
use crate::state::report::RunReport;

/// Schema migrations, in order; the store's `user_version` is how many have run.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE cursors (
    pipeline TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL, updated_at TEXT NOT NULL,
    PRIMARY KEY (pipeline, name));
CREATE TABLE ledger (
    pipeline TEXT NOT NULL, path TEXT NOT NULL, size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL, sha256 TEXT NOT NULL, processed_at TEXT NOT NULL,
    run_id TEXT NOT NULL,
    PRIMARY KEY (pipeline, path));
CREATE TABLE outbox (
    pipeline TEXT NOT NULL, key TEXT NOT NULL, status TEXT NOT NULL, updated_at TEXT NOT NULL,
    PRIMARY KEY (pipeline, key));
CREATE TABLE runs (
    pipeline TEXT NOT NULL, run_id TEXT NOT NULL, started_unix INTEGER NOT NULL,
    outcome TEXT NOT NULL, records_read INTEGER NOT NULL, report TEXT NOT NULL,
    PRIMARY KEY (pipeline, run_id));
CREATE INDEX runs_by_start ON runs (pipeline, started_unix);
CREATE TABLE locks (
    pipeline TEXT PRIMARY KEY, run_id TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL,
    process_start INTEGER, locked_at INTEGER NOT NULL);
CREATE TABLE pending_commits (
    pipeline TEXT PRIMARY KEY, run_id TEXT NOT NULL, intent TEXT NOT NULL);
"#,
    // Containers sharing a host name (host networking) have their own pids.
    "ALTER TABLE locks ADD COLUMN pid_namespace TEXT;",
    // Which pipeline file a name belongs to, per host: two files of one name would share a
    // lock, a ledger and a history.
    "CREATE TABLE pipelines (pipeline TEXT NOT NULL, host TEXT NOT NULL, file TEXT NOT NULL, PRIMARY KEY (pipeline, host));",
];

/// Refuses a store file of 0 bytes, which SQLite would take for a new, empty store.
fn refuse_empty(path: &Path) -> Result<(), StateError> {
    match std::fs::metadata(path) {
        Ok(metadata) if metadata.is_file() && metadata.len() == 0 => Err(StateError::Empty {
            path: path.to_path_buf(),
        }),
        _ => Ok(()),
    }
}

/// How long a statement waits for another process's write transaction to finish.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

pub struct SqliteStore {
    connection: Connection,
    path: PathBuf,
    /// The file opened (device, inode), to tell when the file at `path` is not it any more;
    /// `None` in memory.
    opened: Option<(u64, u64)>,
}

/// The device and inode of the file at `path`.
fn identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

impl SqliteStore {
    /// Opens the store at `path`, creating it (and its directory) if needed.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StateError::Directory {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        if !path.exists() {
            Self::create(path)?;
        }
        refuse_empty(path)?;
        let open = |path: &Path| Connection::open(path);
        Self::with_connection(path, open)
    }

    /// Creates a new store at `path`, whole: its schema is written under another name and
    /// linked into place, so that no run ever finds an empty file there (SQLite would take one
    /// for a new store, and a store truncated to 0 bytes must not pass for one). A store another
    /// process created meanwhile is kept.
    fn create(path: &Path) -> Result<(), StateError> {
        let name = path.file_name().map_or_else(
            || "state.db".into(),
            |name| name.to_string_lossy().into_owned(),
        );
        let fresh = path.with_file_name(format!(".{name}.new-{}", std::process::id()));
        let _ = std::fs::remove_file(&fresh);
        drop(Self::with_connection(&fresh, |path: &Path| {
            Connection::open(path)
        })?);
        let linked = match std::fs::hard_link(&fresh, path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            // A file system without hard links (SMB, some FUSE mounts): renamed into place,
            // unless a store appeared meanwhile.
            Err(_) if !path.exists() => {
                std::fs::rename(&fresh, path).map_err(|source| StateError::Directory {
                    path: path.to_path_buf(),
                    source,
                })
            }
            Err(_) => Ok(()),
        };
        let _ = std::fs::remove_file(&fresh);
        linked
    }

    /// Opens an existing store without writing to it (`state show`, `runs`, `--dry-run`);
    /// `None` when there is no store at `path` yet.
    pub fn open_read_only(path: &Path) -> Result<Option<Self>, StateError> {
        if !path.exists() {
            return Ok(None);
        }
        refuse_empty(path)?;
        let open =
            |path: &Path| Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY);
        Self::with_connection(path, open).map(Some)
    }

    /// A store that lives only as long as this value (`convert`, previews without a store).
    pub fn in_memory() -> Self {
        let open = |_: &Path| Connection::open_in_memory();
        Self::with_connection(Path::new(":memory:"), open).expect("an in-memory store opens")
    }

    fn with_connection(
        path: &Path,
        open: impl FnOnce(&Path) -> rusqlite::Result<Connection>,
    ) -> Result<Self, StateError> {
        let opened = open(path).and_then(|connection| {
            connection.busy_timeout(BUSY_TIMEOUT)?;
            connection.pragma_update(None, "synchronous", "FULL")?;
            connection.pragma_update(None, "foreign_keys", true)?;
            Ok(connection)
        });
        let connection = opened.map_err(|source| StateError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let mut store = SqliteStore {
            connection,
            path: path.to_path_buf(),
            opened: identity(path),
        };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&mut self) -> Result<(), StateError> {
        let version: i64 = self
            .connection
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(|source| StateError::Open {
                path: self.path.clone(),
                source,
            })?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(StateError::TooNew {
                path: self.path.clone(),
                found: version,
                known,
            });
        }
        if version == known {
            return Ok(());
        }
        let path = self.path.clone();
        let tx = self.write("upgrade its schema")?;
        // Re-read inside the write lock: another process may have migrated meanwhile.
        let version: i64 = tx
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(|source| sql(&path, "upgrade its schema", source))?;
        for migration in &MIGRATIONS[version.clamp(0, known) as usize..] {
            tx.execute_batch(migration)
                .map_err(|source| sql(&path, "upgrade its schema", source))?;
        }
        tx.pragma_update(None, "user_version", known)
            .and_then(|()| tx.commit())
            .map_err(|source| sql(&path, "upgrade its schema", source))
    }

    /// Fails when the file at the store's path is not the one opened (deleted, or replaced):
    /// checked before a commit is recorded and before it is finished.
    fn check_still_there(&self) -> Result<(), StateError> {
        match self.opened {
            Some(opened) if identity(&self.path) != Some(opened) => Err(StateError::Replaced {
                path: self.path.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// A write transaction that holds SQLite's write lock from its start, so that a
    /// read-then-write (taking the run lock) cannot interleave with another process.
    fn write(&mut self, action: &'static str) -> Result<Transaction<'_>, StateError> {
        self.connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|source| sql(&self.path, action, source))
    }

    fn lock_holder(connection: &Connection, pipeline: &str) -> rusqlite::Result<Option<LockOwner>> {
        connection
            .query_row(
                "SELECT run_id, host, pid, process_start, locked_at, pid_namespace
                 FROM locks WHERE pipeline = ?1",
                [pipeline],
                |row| {
                    Ok(LockOwner {
                        run_id: row.get(0)?,
                        host: row.get(1)?,
                        pid: row.get(2)?,
                        process_start: row.get::<_, Option<i64>>(3)?.map(|t| t as u64),
                        locked_at: row.get(4)?,
                        pid_namespace: row.get(5)?,
                    })
                },
            )
            .optional()
    }

    /// Refuses to change `pipeline`'s state under a live run (its commit would undo the change)
    /// or an unfinished commit (its recovery would).
    fn check_idle(
        connection: &Connection,
        path: &Path,
        pipeline: &str,
        action: &'static str,
    ) -> Result<(), StateError> {
        let holder = Self::lock_holder(connection, pipeline).map_err(|e| sql(path, action, e))?;
        let now = chrono::Utc::now().timestamp();
        if let Some(holder) = holder.filter(|h| h.stale_reason(now, None).is_none()) {
            return Err(StateError::Busy {
                pipeline: pipeline.to_string(),
                holder: Box::new(holder),
            });
        }
        let unfinished: Option<String> = connection
            .query_row(
                "SELECT run_id FROM pending_commits WHERE pipeline = ?1",
                [pipeline],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| sql(path, action, e))?;
        match unfinished {
            Some(run_id) => Err(StateError::Unfinished {
                pipeline: pipeline.to_string(),
                run_id,
            }),
            None => Ok(()),
        }
    }

    /// The run reports a query (`?1` the pipeline, `?2` the limit) selects.
    fn reports(
        &mut self,
        query: &str,
        pipeline: &str,
        limit: usize,
    ) -> Result<Vec<RunReport>, StateError> {
        let read = || -> rusqlite::Result<Vec<String>> {
            let mut statement = self.connection.prepare_cached(query)?;
            let rows = statement.query_map(params![pipeline, limit as i64], |row| row.get(0))?;
            rows.collect()
        };
        let texts = read().map_err(|e| sql(&self.path, "read the run history", e))?;
        texts
            .iter()
            .map(|text| {
                serde_json::from_str(text).map_err(|e| self.corrupt(format!("a run report: {e}")))
            })
            .collect()
    }

    fn corrupt(&self, what: String) -> StateError {
        StateError::Corrupt {
            path: self.path.clone(),
            what,
        }
    }
}

fn sql(path: &Path, action: &'static str, source: rusqlite::Error) -> StateError {
    StateError::Sql {
        path: path.to_path_buf(),
        action,
        source,
    }
}

fn now_text() -> String {
    chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

impl StateStore for SqliteStore {
    fn location(&self) -> &Path {
        &self.path
    }

    fn try_lock(
        &mut self,
        pipeline: &str,
        owner: &LockOwner,
        stale_after_secs: Option<u64>,
    ) -> Result<LockAttempt, StateError> {
        const ACTION: &str = "take the run lock";
        let path = self.path.clone();
        let tx = self.write(ACTION)?;
        let holder = Self::lock_holder(&tx, pipeline).map_err(|e| sql(&path, ACTION, e))?;
        let mut taken_over = None;
        if let Some(holder) = holder {
            match holder.stale_reason(owner.locked_at, stale_after_secs) {
                Some(reason) => taken_over = Some((holder, reason)),
                None => return Ok(LockAttempt::Held(holder)),
            }
        }
        tx.execute(
            "INSERT OR REPLACE INTO locks
             (pipeline, run_id, host, pid, process_start, locked_at, pid_namespace)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                pipeline,
                owner.run_id,
                owner.host,
                owner.pid,
                owner.process_start.map(|t| t as i64),
                owner.locked_at,
                owner.pid_namespace
            ],
        )
        .and_then(|_| tx.commit())
        .map_err(|e| sql(&path, ACTION, e))?;
        Ok(LockAttempt::Acquired { taken_over })
    }

    fn claim_name(&mut self, pipeline: &str, file: &Path) -> Result<Option<PathBuf>, StateError> {
        const ACTION: &str = "record which pipeline file has the name";
        let path = self.path.clone();
        let host = super::lock::host_name();
        let file = file.display().to_string();
        let tx = self.write(ACTION)?;
        let owner: Option<String> = tx
            .query_row(
                "SELECT file FROM pipelines WHERE pipeline = ?1 AND host = ?2",
                [pipeline, &host],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| sql(&path, ACTION, e))?;
        // A file that is gone was moved or renamed: the name passes to the new one.
        if let Some(owner) = owner.filter(|owner| *owner != file && Path::new(owner).exists()) {
            return Ok(Some(PathBuf::from(owner)));
        }
        tx.execute(
            "INSERT INTO pipelines (pipeline, host, file) VALUES (?1, ?2, ?3)
             ON CONFLICT (pipeline, host) DO UPDATE SET file = excluded.file",
            [pipeline, &host, &file],
        )
        .and_then(|_| tx.commit())
        .map_err(|e| sql(&path, ACTION, e))?;
        Ok(None)
    }

    fn unlock(&mut self, pipeline: &str, run_id: &str) -> Result<(), StateError> {
        self.connection
            .execute(
                "DELETE FROM locks WHERE pipeline = ?1 AND run_id = ?2",
                [pipeline, run_id],
            )
            .map(|_| ())
            .map_err(|e| sql(&self.path, "release the run lock", e))
    }

    fn cursors(&mut self, pipeline: &str) -> Result<BTreeMap<String, String>, StateError> {
        let read = || -> rusqlite::Result<BTreeMap<String, String>> {
            let mut statement = self
                .connection
                .prepare_cached("SELECT name, value FROM cursors WHERE pipeline = ?1")?;
            let rows = statement.query_map([pipeline], |row| Ok((row.get(0)?, row.get(1)?)))?;
            rows.collect()
        };
        read().map_err(|e| sql(&self.path, "read the cursors", e))
    }

    fn ledger_entry(
        &mut self,
        pipeline: &str,
        path: &str,
    ) -> Result<Option<LedgerEntry>, StateError> {
        self.connection
            .prepare_cached(
                "SELECT size, mtime_ns, sha256, processed_at, run_id FROM ledger
                 WHERE pipeline = ?1 AND path = ?2",
            )
            .and_then(|mut statement| {
                statement
                    .query_row([pipeline, path], |row| {
                        Ok(LedgerEntry {
                            path: path.to_string(),
                            size: row.get::<_, i64>(0)? as u64,
                            mtime_ns: row.get(1)?,
                            sha256: row.get(2)?,
                            processed_at: row.get(3)?,
                            run_id: row.get(4)?,
                        })
                    })
                    .optional()
            })
            .map_err(|e| sql(&self.path, "read the ledger of processed files", e))
    }

    fn begin_commit(&mut self, pipeline: &str, intent: &CommitIntent) -> Result<(), StateError> {
        const ACTION: &str = "record the outputs about to be published";
        self.check_still_there()?;
        let path = self.path.clone();
        let tx = self.write(ACTION)?;
        let holder = Self::lock_holder(&tx, pipeline).map_err(|e| sql(&path, ACTION, e))?;
        match holder {
            Some(holder) if holder.run_id == intent.run_id => {}
            other => {
                return Err(StateError::LockLost {
                    pipeline: pipeline.to_string(),
                    run_id: other.map_or_else(|| "none".into(), |h| h.run_id),
                });
            }
        }
        let json = serde_json::to_string(intent).expect("an intent serializes");
        // Publishing starts now: the lock's age, which other runs judge staleness by, too.
        tx.execute(
            "UPDATE locks SET locked_at = ?1 WHERE pipeline = ?2 AND run_id = ?3",
            params![chrono::Utc::now().timestamp(), pipeline, intent.run_id],
        )
        .and_then(|_| {
            tx.execute(
                "INSERT OR REPLACE INTO pending_commits (pipeline, run_id, intent) VALUES (?1, ?2, ?3)",
                params![pipeline, intent.run_id, json],
            )
        })
        .and_then(|_| tx.commit())
        .map_err(|e| sql(&path, ACTION, e))
    }

    fn pending_commit(&mut self, pipeline: &str) -> Result<Option<CommitIntent>, StateError> {
        let json: Option<String> = self
            .connection
            .query_row(
                "SELECT intent FROM pending_commits WHERE pipeline = ?1",
                [pipeline],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| sql(&self.path, "read an interrupted commit", e))?;
        json.map(|json| {
            serde_json::from_str(&json)
                .map_err(|e| self.corrupt(format!("an interrupted commit: {e}")))
        })
        .transpose()
    }

    fn finish_commit(
        &mut self,
        pipeline: &str,
        run_id: &str,
        locked_by: &str,
        report: &RunReport,
    ) -> Result<(), StateError> {
        const ACTION: &str = "save the state of the published run";
        self.check_still_there()?;
        let path = self.path.clone();
        let tx = self.write(ACTION)?;
        // Checked inside the transaction: a run that took the lock over may be recovering
        // this very commit, and exactly one of the two may apply it.
        let holder = Self::lock_holder(&tx, pipeline).map_err(|e| sql(&path, ACTION, e))?;
        let intent: Option<String> = tx
            .query_row(
                "SELECT intent FROM pending_commits WHERE pipeline = ?1 AND run_id = ?2",
                [pipeline, run_id],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| sql(&path, ACTION, e))?;
        let (Some(intent), Some(_)) = (intent, holder.as_ref().filter(|h| h.run_id == locked_by))
        else {
            return Err(StateError::CommitLost {
                pipeline: pipeline.to_string(),
                run_id: holder.map_or_else(|| "none".into(), |h| h.run_id),
            });
        };
        let intent: CommitIntent =
            serde_json::from_str(&intent).map_err(|e| StateError::Corrupt {
                path: path.clone(),
                what: format!("an interrupted commit: {e}"),
            })?;
        let apply = || -> rusqlite::Result<()> {
            for change in &intent.changes {
                match change {
                    StateChange::Cursor { name, value } => {
                        tx.execute(
                            "INSERT OR REPLACE INTO cursors (pipeline, name, value, updated_at)
                             VALUES (?1, ?2, ?3, ?4)",
                            params![pipeline, name, value, now_text()],
                        )?;
                    }
                    StateChange::Ledger(entry) => {
                        tx.execute(
                            "INSERT OR REPLACE INTO ledger
                             (pipeline, path, size, mtime_ns, sha256, processed_at, run_id)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                            params![
                                pipeline,
                                entry.path,
                                entry.size as i64,
                                entry.mtime_ns,
                                entry.sha256,
                                entry.processed_at,
                                entry.run_id
                            ],
                        )?;
                    }
                }
            }
            tx.execute(
                "DELETE FROM pending_commits WHERE pipeline = ?1 AND run_id = ?2",
                [pipeline, run_id],
            )?;
            insert_run(&tx, pipeline, report)
        };
        apply()
            .and_then(|()| tx.commit())
            .map_err(|e| sql(&path, ACTION, e))
    }

    fn record_run(&mut self, pipeline: &str, report: &RunReport) -> Result<(), StateError> {
        insert_run(&self.connection, pipeline, report)
            .map_err(|e| sql(&self.path, "record the run in its history", e))
    }

    fn runs(&mut self, pipeline: &str, limit: usize) -> Result<Vec<RunReport>, StateError> {
        self.reports(
            "SELECT report FROM runs WHERE pipeline = ?1
             ORDER BY started_unix DESC, rowid DESC LIMIT ?2",
            pipeline,
            limit,
        )
    }

    fn runs_since_records(
        &mut self,
        pipeline: &str,
        limit: usize,
    ) -> Result<Vec<RunReport>, StateError> {
        self.reports(
            "SELECT report FROM runs WHERE pipeline = ?1 AND started_unix >= coalesce(
                 (SELECT max(started_unix) FROM runs WHERE pipeline = ?1 AND records_read > 0), 0)
             ORDER BY started_unix DESC, rowid DESC LIMIT ?2",
            pipeline,
            limit,
        )
    }

    fn summary(&mut self, pipeline: &str) -> Result<StateSummary, StateError> {
        let cursors = self.cursors(pipeline)?;
        let path = self.path.clone();
        let count = |connection: &Connection, query: &str| -> Result<u64, StateError> {
            connection
                .query_row(query, [pipeline], |row| row.get::<_, i64>(0))
                .map(|n| n as u64)
                .map_err(|e| sql(&path, "summarize the state", e))
        };
        let ledger_files = count(
            &self.connection,
            "SELECT count(*) FROM ledger WHERE pipeline = ?1",
        )?;
        let outbox_pending = count(
            &self.connection,
            "SELECT count(*) FROM outbox WHERE pipeline = ?1 AND status = 'sent'",
        )?;
        let outbox_acknowledged = count(
            &self.connection,
            "SELECT count(*) FROM outbox WHERE pipeline = ?1 AND status = 'acknowledged'",
        )?;
        let lock = Self::lock_holder(&self.connection, pipeline)
            .map_err(|e| sql(&path, "read the lock", e))?;
        let pending_commit = self.pending_commit(pipeline)?.map(|intent| intent.run_id);
        Ok(StateSummary {
            cursors,
            ledger_files,
            outbox_pending,
            outbox_acknowledged,
            lock,
            pending_commit,
        })
    }

    fn reset(&mut self, pipeline: &str, cursor: Option<(&str, &str)>) -> Result<(), StateError> {
        const ACTION: &str = "reset the state";
        let path = self.path.clone();
        let tx = self.write(ACTION)?;
        Self::check_idle(&tx, &path, pipeline, ACTION)?;
        let apply = || -> rusqlite::Result<()> {
            for table in ["cursors", "ledger", "outbox"] {
                tx.execute(
                    &format!("DELETE FROM {table} WHERE pipeline = ?1"),
                    [pipeline],
                )?;
            }
            if let Some((name, value)) = cursor {
                tx.execute(
                    "INSERT INTO cursors (pipeline, name, value, updated_at) VALUES (?1, ?2, ?3, ?4)",
                    params![pipeline, name, value, now_text()],
                )?;
            }
            Ok(())
        };
        apply()
            .and_then(|()| tx.commit())
            .map_err(|e| sql(&path, ACTION, e))
    }

    fn forget(&mut self, pipeline: &str, file: &str) -> Result<bool, StateError> {
        const ACTION: &str = "forget the file";
        let path = self.path.clone();
        let tx = self.write(ACTION)?;
        Self::check_idle(&tx, &path, pipeline, ACTION)?;
        tx.execute(
            "DELETE FROM ledger WHERE pipeline = ?1 AND path = ?2",
            [pipeline, file],
        )
        .and_then(|removed| tx.commit().map(|()| removed > 0))
        .map_err(|e| sql(&path, ACTION, e))
    }

    fn acknowledged_keys(
        &mut self,
        pipeline: &str,
    ) -> Result<std::collections::HashSet<String>, StateError> {
        let read =
            |connection: &Connection| -> rusqlite::Result<std::collections::HashSet<String>> {
                let mut statement = connection.prepare(
                    "SELECT key FROM outbox WHERE pipeline = ?1 AND status = 'acknowledged'",
                )?;
                let keys = statement.query_map([pipeline], |row| row.get(0))?;
                keys.collect()
            };
        read(&self.connection).map_err(|e| sql(&self.path, "read the outbox", e))
    }

    fn record_outbox(
        &mut self,
        pipeline: &str,
        entries: &[(String, OutboxStatus)],
    ) -> Result<(), StateError> {
        let now = now_text();
        let write = |connection: &mut Connection| -> rusqlite::Result<()> {
            let tx = connection.transaction()?;
            {
                let mut statement = tx.prepare_cached(
                    "INSERT OR REPLACE INTO outbox (pipeline, key, status, updated_at)
                     VALUES (?1, ?2, ?3, ?4)",
                )?;
                for (key, status) in entries {
                    let status = match status {
                        OutboxStatus::Sent => "sent",
                        OutboxStatus::Acknowledged => "acknowledged",
                    };
                    statement.execute(params![pipeline, key, status, now])?;
                }
            }
            tx.commit()
        };
        write(&mut self.connection).map_err(|e| sql(&self.path, "record pushes in the outbox", e))
    }

    fn last_success(&mut self, pipeline: &str) -> Result<Option<String>, StateError> {
        self.connection
            .query_row(
                "SELECT run_id FROM runs WHERE pipeline = ?1 AND outcome = 'success'
                 ORDER BY started_unix DESC, rowid DESC LIMIT 1",
                [pipeline],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| sql(&self.path, "read the run history", e))
    }
}

fn insert_run(connection: &Connection, pipeline: &str, report: &RunReport) -> rusqlite::Result<()> {
    let started_unix =
        chrono::DateTime::parse_from_rfc3339(&report.started_at).map_or(0, |t| t.timestamp());
    connection.execute(
        "INSERT OR REPLACE INTO runs (pipeline, run_id, started_unix, outcome, records_read, report)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            pipeline,
            report.run_id,
            started_unix,
            report.outcome.as_str(),
            report.records_read as i64,
            serde_json::to_string(report).expect("a report serializes")
        ],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::IfExists;
    use crate::state::PreparedOutput;
    use crate::state::report::Outcome;

    fn report(run_id: &str, started_at: &str, outcome: Outcome) -> RunReport {
        RunReport {
            finished_at: started_at.into(),
            outcome,
            ..RunReport::new("p", run_id, started_at)
        }
    }

    fn entry(path: &str, run_id: &str) -> LedgerEntry {
        LedgerEntry {
            path: path.into(),
            size: 3,
            mtime_ns: 1,
            sha256: "abc".into(),
            processed_at: "2024-08-01T02:05:00+00:00".into(),
            run_id: run_id.into(),
        }
    }

    #[test]
    fn a_live_lock_is_held_and_a_dead_one_taken_over() {
        let mut store = SqliteStore::in_memory();
        let first = LockOwner::this_process("run-1");
        assert_eq!(
            store.try_lock("p", &first, None).unwrap(),
            LockAttempt::Acquired { taken_over: None }
        );
        let second = LockOwner::this_process("run-2");
        assert_eq!(
            store.try_lock("p", &second, None).unwrap(),
            LockAttempt::Held(first.clone())
        );
        // Another pipeline has its own lock.
        assert!(matches!(
            store.try_lock("q", &second, None).unwrap(),
            LockAttempt::Acquired { taken_over: None }
        ));
        store.unlock("p", "run-1").unwrap();
        let dead = LockOwner {
            pid: u32::MAX / 2,
            ..LockOwner::this_process("run-dead")
        };
        store.try_lock("p", &dead, None).unwrap();
        match store.try_lock("p", &second, None).unwrap() {
            LockAttempt::Acquired {
                taken_over: Some((owner, reason)),
            } => {
                assert_eq!(owner, dead);
                assert!(reason.contains("is gone"), "{reason}");
            }
            other => panic!("expected a takeover, got {other:?}"),
        }
    }

    #[test]
    fn a_commit_applies_its_changes_only_when_finished() {
        let mut store = SqliteStore::in_memory();
        store
            .try_lock("p", &LockOwner::this_process("run-1"), None)
            .unwrap();
        let intent = CommitIntent {
            run_id: "run-1".into(),
            outputs: vec![PreparedOutput {
                path: "out.csv".into(),
                temp: ".out.csv.x.part".into(),
                size: 3,
                sha256: "abc".into(),
                if_exists: IfExists::Replace,
                remote: None,
            }],
            changes: vec![
                StateChange::Ledger(entry("/in/a.csv", "run-1")),
                StateChange::Cursor {
                    name: "cursor".into(),
                    value: "2024-08-01".into(),
                },
            ],
        };
        store.begin_commit("p", &intent).unwrap();
        assert_eq!(store.pending_commit("p").unwrap(), Some(intent));
        assert_eq!(store.ledger_entry("p", "/in/a.csv").unwrap(), None);
        let done = report("run-1", "2024-08-01T02:05:00+00:00", Outcome::Success);
        store.finish_commit("p", "run-1", "run-1", &done).unwrap();
        assert_eq!(store.pending_commit("p").unwrap(), None);
        assert_eq!(
            store.ledger_entry("p", "/in/a.csv").unwrap(),
            Some(entry("/in/a.csv", "run-1"))
        );
        assert_eq!(store.cursors("p").unwrap()["cursor"], "2024-08-01");
        assert_eq!(store.runs("p", 10).unwrap(), vec![done]);
    }

    #[test]
    fn a_run_that_lost_its_lock_cannot_commit() {
        let mut store = SqliteStore::in_memory();
        store
            .try_lock("p", &LockOwner::this_process("run-2"), None)
            .unwrap();
        let intent = CommitIntent {
            run_id: "run-1".into(),
            outputs: Vec::new(),
            changes: Vec::new(),
        };
        let error = store.begin_commit("p", &intent).unwrap_err();
        assert_eq!(
            error.to_string(),
            "another run (run-2) took over the lock of pipeline `p` while this one was running: nothing was published"
        );
    }

    #[test]
    fn a_commit_is_finished_once_and_only_under_the_lock() {
        let mut store = SqliteStore::in_memory();
        let owner = LockOwner::this_process("run-1");
        store.try_lock("p", &owner, None).unwrap();
        let intent = CommitIntent {
            run_id: "run-1".into(),
            outputs: Vec::new(),
            changes: vec![StateChange::Ledger(entry("/in/a.csv", "run-1"))],
        };
        store.begin_commit("p", &intent).unwrap();
        // The state cannot be reset under an unfinished commit (its recovery would undo it).
        store.unlock("p", "run-1").unwrap();
        assert_eq!(
            store.reset("p", None).unwrap_err().to_string(),
            "run run-1 of pipeline `p` was interrupted while publishing: run the pipeline once to finish publishing, then try again"
        );
        // run-2 took the lock over: run-1 may no longer finish its own commit...
        store
            .try_lock("p", &LockOwner::this_process("run-2"), None)
            .unwrap();
        let done = report("run-1", "2024-08-01T02:05:00+00:00", Outcome::Success);
        let lost = store
            .finish_commit("p", "run-1", "run-1", &done)
            .unwrap_err();
        assert_eq!(
            lost.to_string(),
            "another run (run-2) took over the lock of pipeline `p` while this one was publishing: its state was not saved by this run (the run holding the lock finishes publishing and saves it)"
        );
        assert_eq!(store.ledger_entry("p", "/in/a.csv").unwrap(), None);
        // ...run-2 recovers it, once.
        store.finish_commit("p", "run-1", "run-2", &done).unwrap();
        assert!(store.ledger_entry("p", "/in/a.csv").unwrap().is_some());
        assert!(matches!(
            store.finish_commit("p", "run-1", "run-2", &done),
            Err(StateError::CommitLost { .. })
        ));
        assert_eq!(store.runs("p", 10).unwrap(), vec![done]);
    }

    #[test]
    fn history_is_newest_first_and_reset_keeps_it() {
        let mut store = SqliteStore::in_memory();
        let older = report("a", "2024-08-01T02:05:00+02:00", Outcome::Success);
        let newer = report("b", "2024-08-01T01:05:00+00:00", Outcome::Failure);
        store.record_run("p", &older).unwrap();
        store.record_run("p", &newer).unwrap();
        assert_eq!(
            store.runs("p", 10).unwrap(),
            vec![newer.clone(), older.clone()]
        );
        assert_eq!(store.runs("p", 1).unwrap(), vec![newer.clone()]);
        // No run read records: all of them count for staleness.
        assert_eq!(store.runs_since_records("p", 10).unwrap().len(), 2);
        let with_data = RunReport {
            records_read: 5,
            ..report("c", "2024-08-01T01:30:00+00:00", Outcome::Success)
        };
        store.record_run("p", &with_data).unwrap();
        let dry = report("d", "2024-08-01T01:40:00+00:00", Outcome::Success);
        store.record_run("p", &dry).unwrap();
        assert_eq!(
            store.runs_since_records("p", 10).unwrap(),
            vec![dry, with_data]
        );
        store
            .try_lock("p", &LockOwner::this_process("a"), None)
            .unwrap();
        let intent = CommitIntent {
            run_id: "a".into(),
            outputs: Vec::new(),
            changes: vec![StateChange::Ledger(entry("/x", "a"))],
        };
        store.begin_commit("p", &intent).unwrap();
        store
            .finish_commit(
                "p",
                "a",
                "a",
                &report("a", "2024-08-01T02:05:00+02:00", Outcome::Success),
            )
            .unwrap();
        let entries = [
            ("key-1".to_string(), OutboxStatus::Sent),
            ("key-2".to_string(), OutboxStatus::Sent),
            ("key-2".to_string(), OutboxStatus::Acknowledged),
        ];
        store.record_outbox("p", &entries).unwrap();
        assert_eq!(
            store.acknowledged_keys("p").unwrap(),
            std::collections::HashSet::from(["key-2".to_string()])
        );
        // Not under a live run: its commit would undo the change.
        let busy = store.forget("p", "/x").unwrap_err();
        assert_eq!(
            busy.to_string(),
            format!(
                "run a of pipeline `p` is in progress (pid {} on {}): try again once it has finished",
                std::process::id(),
                crate::state::lock::host_name()
            )
        );
        store.unlock("p", "a").unwrap();
        assert!(store.forget("p", "/x").unwrap());
        assert!(!store.forget("p", "/x").unwrap());
        store.reset("p", Some(("cursor", "2024-01-01"))).unwrap();
        let summary = store.summary("p").unwrap();
        assert_eq!(summary.ledger_files, 0);
        assert_eq!(summary.outbox_pending, 0);
        assert_eq!(summary.cursors["cursor"], "2024-01-01");
        assert_eq!(store.runs("p", 10).unwrap().len(), 4);
    }

    #[test]
    fn a_store_of_an_older_version_is_upgraded_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let connection = Connection::open(&path).unwrap();
        connection.execute_batch(MIGRATIONS[0]).unwrap();
        connection.pragma_update(None, "user_version", 1).unwrap();
        connection
            .execute(
                "INSERT INTO locks (pipeline, run_id, host, pid, process_start, locked_at)
                 VALUES ('p', 'old-run', 'elsewhere', 7, NULL, 0)",
                [],
            )
            .unwrap();
        drop(connection);
        let mut store = SqliteStore::open(&path).unwrap();
        let lock = store.summary("p").unwrap().lock.expect("kept");
        assert_eq!(
            (lock.run_id.as_str(), lock.pid_namespace),
            ("old-run", None)
        );
        let version: i64 = store
            .connection
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
    }

    #[test]
    fn a_store_from_a_newer_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        drop(SqliteStore::open(&path).unwrap());
        let connection = Connection::open(&path).unwrap();
        connection.pragma_update(None, "user_version", 99).unwrap();
        drop(connection);
        let error = SqliteStore::open(&path).err().expect("refused");
        assert!(
            error
                .to_string()
                .ends_with("was written by a newer longshore (schema version 99, this one knows up to 3): upgrade longshore"),
            "{error}"
        );
    }
}
