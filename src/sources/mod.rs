//! Sources: where records come from. Each config kind builds a `Box<dyn Source>`.

pub mod file;

use crate::config::SourceConfig;
use crate::error::StageError;
use crate::stage::{RunContext, Source};

impl SourceConfig {
    pub fn build(&self, cx: &RunContext) -> Result<Box<dyn Source>, StageError> {
        Ok(match self {
            SourceConfig::File(config) => Box::new(file::FileSource::new(config, cx)?),
        })
    }
}
