//! longshore: declarative batch pipelines that move records from APIs and file drops to files
//! and pushes, safe to rerun from cron. See `docs/architecture.md` for the map.

pub mod codecs;
pub mod config;
pub mod error;
pub mod record;
pub mod stage;
