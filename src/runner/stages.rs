//! A pipeline's stages as the runner holds them: the source, and the chain after it
//! (transforms, sinks, the rejects file), each stage with the label its messages use.

use crate::error::{RunError, StageError};
use crate::pipeline::Pipeline;
use crate::record::Batch;
use crate::sinks::rejects::RejectsFile;
use crate::stage::{RunContext, Sink, Source, Transform};
use crate::state::StateStore;

/// A pipeline's stages, built and ready to run: the source, which runs on its own thread, and
/// the rest of the chain.
pub(super) struct Stages {
    pub(super) source: Box<dyn Source>,
    pub(super) chain: Chain,
}

/// Everything after the source, each stage with the label messages use for it.
pub(super) struct Chain {
    pub(super) pipeline: String,
    pub(super) source_label: String,
    pub(super) transforms: Vec<(String, Box<dyn Transform>)>,
    pub(super) sinks: Vec<(String, Box<dyn Sink>)>,
    pub(super) rejects: Option<RejectsFile>,
}

impl Stages {
    /// Builds the source and transforms, and the sinks too when `with_sinks` (not for preview).
    pub(super) fn build(
        pipeline: &Pipeline,
        cx: &RunContext,
        store: &mut dyn StateStore,
        with_sinks: bool,
    ) -> Result<Stages, RunError> {
        let fail = |stage: &str, source| RunError::new(&pipeline.name, stage, source);
        let source_label = format!("source ({})", pipeline.config.source.kind());
        let source = pipeline
            .config
            .source
            .spec()
            .build(cx, store)
            .map_err(|e| fail(&source_label, e))?;
        let mut transforms = Vec::new();
        for (i, config) in pipeline.config.transforms.iter().enumerate() {
            let label = format!("transform {} ({})", i + 1, config.kind());
            let transform = config.spec().build(cx).map_err(|e| fail(&label, e))?;
            transforms.push((label, transform));
        }
        let mut sinks = Vec::new();
        for (i, config) in pipeline
            .config
            .sinks
            .iter()
            .enumerate()
            .filter(|_| with_sinks)
        {
            let label = format!("sink {} ({})", i + 1, config.kind());
            let sink = config.spec().build(cx).map_err(|e| fail(&label, e))?;
            sinks.push((label, sink));
        }
        let rejects = match (&pipeline.config.rejects, with_sinks) {
            (Some(config), true) => {
                Some(RejectsFile::new(config, cx).map_err(|e| fail("rejects", e))?)
            }
            _ => None,
        };
        Ok(Stages {
            source,
            chain: Chain {
                pipeline: pipeline.name.clone(),
                source_label,
                transforms,
                sinks,
                rejects,
            },
        })
    }
}

impl Chain {
    pub(super) fn fail(&self, stage: &str, source: StageError) -> RunError {
        RunError::new(&self.pipeline, stage, source)
    }

    /// Runs every transform over `batch`, in order.
    pub(super) fn transform(&mut self, batch: &mut Batch) -> Result<(), RunError> {
        for (label, transform) in &mut self.transforms {
            transform
                .apply(batch)
                .map_err(|e| RunError::new(&self.pipeline, label, e))?;
        }
        Ok(())
    }

    /// Once the source is exhausted: the records the transforms held back (`dedupe` with
    /// `keep = "last"`), each run through the transforms after the one that held it.
    pub(super) fn finish_transforms(&mut self) -> Result<Vec<Batch>, RunError> {
        let mut batches = Vec::new();
        for index in 0..self.transforms.len() {
            let (label, transform) = &mut self.transforms[index];
            let held = transform
                .finish()
                .map_err(|e| RunError::new(&self.pipeline, label, e))?;
            for mut batch in held {
                for (label, transform) in self.transforms.iter_mut().skip(index + 1) {
                    transform
                        .apply(&mut batch)
                        .map_err(|e| RunError::new(&self.pipeline, label, e))?;
                }
                batches.push(batch);
            }
        }
        Ok(batches)
    }

    /// Every sink, and the rejects file last.
    pub(super) fn all_sinks(&mut self) -> impl Iterator<Item = (&str, &mut dyn Sink)> {
        let sinks = self
            .sinks
            .iter_mut()
            .map(|(label, sink)| (label.as_str(), sink.as_mut() as &mut dyn Sink));
        let rejects = self
            .rejects
            .iter_mut()
            .map(|r| ("rejects", &mut r.sink as &mut dyn Sink));
        sinks.chain(rejects)
    }
}
