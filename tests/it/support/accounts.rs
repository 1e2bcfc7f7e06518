//! What the SFTP and FTP test servers share: the system user they log in (created once, as
//! root), free ports, and stopping a daemon with the sessions it forked.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command};

/// The user the test servers accept, with [`PASSWORD`] (and, for SFTP, a key).
pub const USER: &str = "longshore-test";
pub const PASSWORD: &str = "drop-box-pass-42";

/// Whether the tests that need the `servers` (`"SFTP"`) can run here, given what is `missing`
/// for them (`None`: nothing). Under CI (`CI` set, as CI services do) or with
/// `LONGSHORE_REQUIRE_SERVERS=1` (which `.ci/run` and, as root, `scripts/test` set) they must:
/// a missing piece fails the test. Elsewhere (a
/// developer's laptop, as a normal user) it skips the test, with one line on stderr, once per
/// kind of server, saying what to install.
pub fn can_start(servers: &'static str, missing: Option<String>) -> bool {
    let Some(missing) = missing else {
        return true;
    };
    // CI services set `CI` to `true` or `1`; anything but empty, `0` or `false` counts.
    let on =
        |name: &str| std::env::var(name).is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"));
    assert!(
        !(on("CI") || on("LONGSHORE_REQUIRE_SERVERS")),
        "the {servers} tests cannot run: {missing}"
    );
    static SAID: std::sync::Mutex<Vec<&str>> = std::sync::Mutex::new(Vec::new());
    let mut said = SAID.lock().unwrap_or_else(|e| e.into_inner());
    if !said.contains(&servers) {
        said.push(servers);
        // Straight to stderr: the test harness keeps what `eprintln!` prints to itself.
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "skipping the {servers} tests: {missing} (CI=true or LONGSHORE_REQUIRE_SERVERS=1 makes this a failure)"
        );
    }
    false
}

/// What the daemons that log [`USER`] in lack here: `programs` (with the package to install
/// them from), or root.
pub fn missing_for_daemon(programs: &[&str], package: &str) -> Option<String> {
    if let Some(program) = programs.iter().find(|p| !found(p)) {
        return Some(format!(
            "they need {program}: apt-get install {package} (scripts/test does)"
        ));
    }
    (!is_root()).then(|| {
        "they start daemons that log in a system user: run the tests as root (scripts/test does, on a Debian machine)".to_string()
    })
}

/// Creates [`USER`] (no home, no shell) unless it exists, and sets its password. Needs root,
/// as the daemons do to log a user in.
pub fn ensure_test_user() {
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

/// Whether `program` is on the PATH (or, for the daemons, in `/usr/sbin`, which a normal
/// user's PATH may leave out).
pub fn found(program: &str) -> bool {
    let in_path = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()));
    in_path || Path::new("/usr/sbin").join(program).is_file()
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
