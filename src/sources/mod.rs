//! Sources: where records come from. Each kind's config type implements [`SourceSpec`], which
//! builds its `Box<dyn Source>`; the pipeline file's `SourceConfig` lists the kinds.

pub mod drop;
pub mod file;
pub mod http;

use crate::config::Validate;
use crate::error::StageError;
use crate::filestore::ServerConfig;
use crate::stage::{RunContext, Source};
use crate::state::StateStore;

/// What a kind of source's config does: it is checked, and it builds the source.
pub trait SourceSpec: Validate {
    /// Builds the source; it reads what it needs of the pipeline's state (cursors, ledger) now.
    fn build(
        &self,
        cx: &RunContext,
        store: &mut dyn StateStore,
    ) -> Result<Box<dyn Source>, StageError>;
}

impl SourceSpec for file::FileSourceConfig {
    fn build(
        &self,
        cx: &RunContext,
        store: &mut dyn StateStore,
    ) -> Result<Box<dyn Source>, StageError> {
        Ok(Box::new(file::FileSource::new(self, cx, store)?))
    }
}

impl SourceSpec for http::HttpSourceConfig {
    fn build(
        &self,
        cx: &RunContext,
        store: &mut dyn StateStore,
    ) -> Result<Box<dyn Source>, StageError> {
        http::source(self, cx, store)
    }
}

impl<S: ServerConfig> SourceSpec for drop::DropSourceConfig<S> {
    fn build(
        &self,
        cx: &RunContext,
        store: &mut dyn StateStore,
    ) -> Result<Box<dyn Source>, StageError> {
        Ok(Box::new(drop::DropSource::new(self, cx, store)?))
    }
}
