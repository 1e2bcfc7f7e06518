//! Who holds a pipeline's run lock, and whether that holder is still alive. The lock lives in
//! the state store (not an flock'd file) so that a shared backend can lock across machines; a
//! holder on this host is known dead when its process is gone, or when the pid now belongs to a
//! process started at another time (pids are reused), or when it is a zombie (killed, and not
//! yet reaped by a parent that may never do it: `timeout -s KILL`, a container without an
//! init). "This host" means the same host name and the same pid namespace: containers sharing
//! a host name do not see each other's processes.

use serde::{Deserialize, Serialize};

/// The run holding a pipeline's lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockOwner {
    pub run_id: String,
    pub host: String,
    pub pid: u32,
    /// The process's start time in clock ticks after boot (Linux), to tell a reused pid apart.
    pub process_start: Option<u64>,
    /// When the lock was taken, or its run started publishing, seconds since the Unix epoch.
    pub locked_at: i64,
    /// The holder's pid namespace (`pid:[4026531836]`, Linux): its pid means something only
    /// in the same one.
    pub pid_namespace: Option<String>,
}

/// The outcome of trying to take the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockAttempt {
    /// The lock is ours; `taken_over` names a stale holder it was taken from, and why.
    Acquired {
        taken_over: Option<(LockOwner, String)>,
    },
    /// A live run holds it.
    Held(LockOwner),
}

impl LockOwner {
    /// This process, running `run_id`.
    pub fn this_process(run_id: &str) -> Self {
        let pid = std::process::id();
        LockOwner {
            run_id: run_id.to_string(),
            host: host_name(),
            pid,
            process_start: process_start(pid),
            locked_at: chrono::Utc::now().timestamp(),
            pid_namespace: pid_namespace(),
        }
    }

    /// Why this holder's lock may be taken over at `now` (seconds since the epoch), or `None`
    /// while it is live.
    pub fn stale_reason(&self, now: i64, stale_after_secs: Option<u64>) -> Option<String> {
        let here = self.host == host_name() && self.pid_namespace == pid_namespace();
        if here && !self.is_alive_here() {
            return Some(format!(
                "its process {} on this host is gone (run {})",
                self.pid, self.run_id
            ));
        }
        let age = now.saturating_sub(self.locked_at);
        match stale_after_secs {
            Some(limit) if age > limit as i64 => Some(format!(
                "it was taken {age} s ago by run {} (pid {} on {}), longer than max_runtime_secs = {limit}",
                self.run_id, self.pid, self.host
            )),
            _ => None,
        }
    }

    fn is_alive_here(&self) -> bool {
        let Ok(pid) = libc::pid_t::try_from(self.pid) else {
            return false;
        };
        // SAFETY: signal 0 only checks that the process exists and may be signalled.
        let exists = unsafe { libc::kill(pid, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
        exists
            && !matches!(process_state(self.pid), Some('Z' | 'X'))
            && match (self.process_start, process_start(self.pid)) {
                (Some(recorded), Some(now)) => recorded == now,
                _ => true,
            }
    }
}

/// This machine's name, as the lock records it.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// This process's pid namespace, as `/proc/self/ns/pid` names it.
fn pid_namespace() -> Option<String> {
    std::fs::read_link("/proc/self/ns/pid")
        .ok()
        .map(|link| link.display().to_string())
}

/// The fields of `/proc/PID/stat` after the command name (field 2, in parentheses, which may
/// hold spaces): the first is field 3.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    Some(after_name.split_whitespace().map(str::to_string).collect())
}

/// Field 22 of `/proc/PID/stat`: when the process started, in clock ticks after boot.
fn process_start(pid: u32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// Field 3 of `/proc/PID/stat`: the process's state (`R`, `S`, `Z` for a zombie, ...).
fn process_state(pid: u32) -> Option<char> {
    stat_fields(pid)?.first()?.chars().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zombie_holder_is_gone() {
        // A child that exits and is not waited for stays a zombie until it is reaped.
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("run `true`");
        let pid = child.id();
        let started = std::time::Instant::now();
        while process_state(pid) != Some('Z') {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(10),
                "the child did not exit"
            );
            std::thread::yield_now();
        }
        let zombie = LockOwner {
            pid,
            process_start: process_start(pid),
            ..LockOwner::this_process("run-z")
        };
        let reason = zombie.stale_reason(zombie.locked_at, None);
        child.wait().expect("reap the child");
        assert!(reason.expect("a zombie is gone").contains("is gone"));
    }

    #[test]
    fn this_process_is_live_and_a_gone_one_is_stale() {
        let me = LockOwner::this_process("run-1");
        assert!(me.process_start.is_some());
        let now = me.locked_at;
        assert_eq!(me.stale_reason(now, Some(60)), None);
        let old = me.stale_reason(now + 61, Some(60)).expect("too old");
        assert!(old.contains("longer than max_runtime_secs = 60"), "{old}");
        let reused = LockOwner {
            process_start: me.process_start.map(|t| t + 1),
            ..me.clone()
        };
        assert!(reused.stale_reason(now, None).unwrap().contains("is gone"));
        let elsewhere = LockOwner {
            host: "another-host".into(),
            pid: u32::MAX,
            ..me
        };
        assert_eq!(elsewhere.stale_reason(now, None), None);
        let other_container = LockOwner {
            host: host_name(),
            pid_namespace: Some("pid:[1]".into()),
            ..elsewhere
        };
        assert_eq!(
            other_container.stale_reason(now, None),
            None,
            "a pid in another namespace says nothing about the process"
        );
    }
}
