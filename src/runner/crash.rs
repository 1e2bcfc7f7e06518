//! Crash points for the crash tests (`LONGSHORE_CRASH_AT`): the process stops where a `kill -9`
//! or a power cut could stop it, and the tests check that the next run loses nothing and
//! delivers nothing twice.

/// For crash tests: when `LONGSHORE_CRASH_AT` names this point, the process aborts here, as a
/// `kill -9` or a power cut would stop it (no destructor runs, nothing is cleaned up).
pub(super) fn crash_point(point: &str) {
    static CRASH_AT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let at = CRASH_AT.get_or_init(|| std::env::var("LONGSHORE_CRASH_AT").ok());
    if at.as_deref() == Some(point) {
        #[allow(clippy::print_stderr)] // the crash tests read it; logging may not be set up
        {
            eprintln!("LONGSHORE_CRASH_AT={point}: aborting");
        }
        std::process::abort();
    }
}
