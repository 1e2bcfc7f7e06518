//! What the SFTP and FTP test servers share: the system user they log in (created once, as
//! root), free ports, and stopping a daemon with the sessions it forked.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command};

/// The user the test servers accept, with [`PASSWORD`] (and, for SFTP, a key).
pub const USER: &str = "longshore-test";
pub const PASSWORD: &str = "drop-box-pass-42";

/// Creates [`USER`] (no home, no shell) unless it exists, and sets its password. Needs root,
/// as the daemons do to log a user in.
pub fn ensure_test_user() {
    assert!(
        is_root(),
        "the SFTP and FTP tests start sshd and vsftpd, which log in a system user: run the tests as root (scripts/test does, on a Debian machine)"
    );
    let exists = || {
        Command::new("id")
            .arg("-u")
            .arg(USER)
            .output()
            .is_ok_and(|output| output.status.success())
    };
    if !exists() {
        // Another test process may create it at the same time: only its existence matters.
        let _ = Command::new("useradd")
            .args(["-M", "-d", "/", "-s", "/usr/sbin/nologin", USER])
            .status();
        assert!(exists(), "could not create the test user {USER} (useradd)");
    }
    let mut chpasswd = Command::new("chpasswd")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("run chpasswd");
    use std::io::Write as _;
    chpasswd
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{USER}:{PASSWORD}\n").as_bytes())
        .expect("write to chpasswd");
    assert!(
        chpasswd.wait().expect("chpasswd").success(),
        "could not set the password of {USER} (chpasswd)"
    );
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Lets the test user reach `dir` (temporary directories are private).
pub fn open_to_test_user(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
        .expect("open the directory");
}

/// Makes the test user own `dir`, so that it can write there.
pub fn give_to_test_user(dir: &Path) {
    let status = Command::new("chown")
        .arg(USER)
        .arg(dir)
        .status()
        .expect("run chown");
    assert!(status.success(), "chown {USER} {}", dir.display());
}

/// A port of 127.0.0.1 free right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// Whether `program` is on the PATH.
pub fn found(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Kills `child` and every process it forked (the daemons fork one or two a session).
pub fn kill_tree(child: &mut Child) {
    kill_sessions(child);
    // SAFETY: kill with a pid and a signal has no memory preconditions.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait();
}

/// Kills every process `child` forked, its sessions, as a network failure would end them; the
/// daemon itself goes on accepting connections.
pub fn kill_sessions(child: &Child) {
    let mut pids = children_of(child.id() as i32);
    let mut index = 0;
    while index < pids.len() {
        pids.extend(children_of(pids[index]));
        index += 1;
    }
    for pid in pids {
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

fn children_of(parent: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            // The parent pid is the fourth field, after the name in parentheses.
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<i32>().ok())
                    == Some(parent)
            })
        })
        .collect()
}
