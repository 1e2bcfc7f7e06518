//! Sources: where records come from. Each config kind builds a `Box<dyn Source>`.

pub mod file;
pub mod http;
pub mod pickup;

use crate::error::StageError;
use crate::pipeline::SourceConfig;
use crate::stage::{RunContext, Source};
use crate::state::StateStore;

impl SourceConfig {
    /// Builds the source; it reads what it needs of the pipeline's state (cursors, ledger) now.
    pub fn build(
        &self,
        cx: &RunContext,
        store: &mut dyn StateStore,
    ) -> Result<Box<dyn Source>, StageError> {
        Ok(match self {
            SourceConfig::File(config) => Box::new(file::FileSource::new(config, cx, store)?),
            SourceConfig::Http(config) => http::source(config, cx, store)?,
            SourceConfig::Sftp(config) => Box::new(pickup::PickupSource::new(config, cx, store)?),
            SourceConfig::Ftps(config) => Box::new(pickup::PickupSource::new(config, cx, store)?),
        })
    }
}
