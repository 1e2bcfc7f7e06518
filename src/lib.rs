//! longshore: declarative batch pipelines that move records from APIs and file drops to files
//! and pushes, safe to rerun from cron. `docs/architecture.md` is the map; in short, a pipeline
//! file ([`config`]) names a source ([`sources`]), transforms ([`transforms`]) and sinks
//! ([`sinks`]); formats live in [`codecs`]; [`runner`] streams [`record::Batch`]es through the
//! [`stage`] trait objects.

// The library speaks through its results, logs and reports: only the command line prints, and
// stdout is the user's data (`convert x.csv -`), written where a closed pipe is handled.
#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod backoff;
pub mod cli;
pub mod codecs;
pub mod config;
pub mod digest;
pub mod error;
pub mod filestore;
pub mod names;
pub mod net;
pub mod notify;
pub mod pipeline;
pub mod progress;
pub mod record;
pub mod redact;
pub mod runner;
pub mod sinks;
pub mod sources;
pub mod stage;
pub mod state;
pub mod template;
pub mod transforms;
