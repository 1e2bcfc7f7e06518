//! A run's commit as the state store keeps it: what is about to be published and the state
//! changes that come with it. Recorded before any sink publishes, so that a crashed run's
//! commit can be finished by the next one; a persisted format (in `pending_commits`).

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::StateChange;

/// A run's commit, recorded before its sinks publish anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitIntent {
    pub run_id: String,
    pub outputs: Vec<PreparedOutput>,
    pub changes: Vec<StateChange>,
}

/// A finished, durable output waiting to be published: `temp` is renamed to `path`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreparedOutput {
    /// The final name; on a server when `remote` is set.
    pub path: PathBuf,
    pub temp: PathBuf,
    pub size: u64,
    pub sha256: String,
    /// What publishing does when `path` exists by then.
    #[serde(default)]
    pub if_exists: IfExists,
    /// Set for a file uploaded to a server, whose rename happens there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<RemoteOutput>,
}

/// Where an uploaded output is, and what follows its rename.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteOutput {
    /// The server, as `sftp://user@host:port`: the pipeline's sink with this server publishes
    /// it.
    pub location: String,
    /// The name of an empty file uploaded beside the output once it is in place, for partners
    /// who wait for one, with `{name}` for the name the output was published under
    /// (`{name}.done`).
    pub marker: Option<String>,
}

/// What to do when an output file already exists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum IfExists {
    #[default]
    Replace,
    Fail,
    Skip,
    /// Publish under the first free name with a number before the extension:
    /// `orders-1.csv`, `orders-2.csv`, ...
    Rename,
}
