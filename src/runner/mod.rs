//! Running a pipeline: build every stage from its config, stream batches from the source through
//! the transforms to every sink, then finish the sinks in two phases (prepare all, commit all),
//! so a failure anywhere before the commit leaves every destination untouched.
//!
//! The source (reading and decoding) runs on its own thread and hands batches over a bounded
//! channel, so decoding and encoding overlap on two cores while memory stays at a few batches.

mod table;

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::codecs::FormatConfig;
use crate::config::Pipeline;
use crate::error::{RunError, StageError};
use crate::record::{Batch, Record};
use crate::sinks::file::FileSink;
use crate::sources::file::FileSource;
use crate::stage::{RunContext, Sink, SinkReport, Source, Transform};

pub use table::write_table;

/// Records per batch: large enough to amortize per-batch work, small enough that a few batches
/// in flight stay within a few megabytes.
pub const BATCH_RECORDS: usize = 1024;
/// Batches buffered between the source thread and the sinks.
const BATCHES_IN_FLIGHT: usize = 4;

/// What a successful run did.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub pipeline: String,
    pub records_read: u64,
    /// One report per sink, in pipeline order.
    pub sinks: Vec<SinkReport>,
    pub elapsed: Duration,
}

/// A pipeline's stages, built and ready to run: the source, which runs on its own thread, and
/// the rest of the chain.
struct Stages {
    source: Box<dyn Source>,
    chain: Chain,
}

/// Everything after the source, each stage with the label messages use for it.
struct Chain {
    pipeline: String,
    source_label: String,
    transforms: Vec<(String, Box<dyn Transform>)>,
    sinks: Vec<(String, Box<dyn Sink>)>,
}

impl Stages {
    /// Builds the source and transforms, and the sinks too when `with_sinks` (not for preview).
    fn build(pipeline: &Pipeline, with_sinks: bool) -> Result<Stages, RunError> {
        let cx = RunContext {
            pipeline: pipeline.name.clone(),
            base_dir: pipeline.base_dir().to_path_buf(),
            started_at: chrono::Local::now(),
        };
        let fail = |stage: &str, source| RunError::new(&pipeline.name, stage, source);
        let source_label = format!("source ({})", pipeline.source.kind());
        let source = pipeline
            .source
            .build(&cx)
            .map_err(|e| fail(&source_label, e))?;
        let transforms = pipeline
            .transforms
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("transform {} ({})", i + 1, t.kind()), t.build()))
            .collect();
        let mut sinks = Vec::new();
        for (i, config) in pipeline.sinks.iter().enumerate().filter(|_| with_sinks) {
            let label = format!("sink {} ({})", i + 1, config.kind());
            let sink = config.build(&cx).map_err(|e| fail(&label, e))?;
            sinks.push((label, sink));
        }
        Ok(Stages {
            source,
            chain: Chain {
                pipeline: pipeline.name.clone(),
                source_label,
                transforms,
                sinks,
            },
        })
    }
}

impl Chain {
    fn fail(&self, stage: &str, source: StageError) -> RunError {
        RunError::new(&self.pipeline, stage, source)
    }

    /// Runs every transform over `batch`, in order.
    fn transform(&mut self, batch: &mut Batch) -> Result<(), RunError> {
        for (label, transform) in &mut self.transforms {
            transform
                .apply(batch)
                .map_err(|e| RunError::new(&self.pipeline, label, e))?;
        }
        Ok(())
    }
}

/// Runs a pipeline to the end: every record to every sink, or nothing visible anywhere.
pub fn run(pipeline: &Pipeline) -> Result<RunSummary, RunError> {
    execute(Stages::build(pipeline, true)?)
}

/// Converts one file to another (`longshore convert`): a one-file source, no transforms and a
/// file sink (or standard output for `-`), run like any pipeline.
pub fn convert(
    input: &Path,
    output: &Path,
    from: FormatConfig,
    to: FormatConfig,
) -> Result<RunSummary, RunError> {
    let cx = RunContext {
        pipeline: "convert".into(),
        base_dir: Default::default(),
        started_at: chrono::Local::now(),
    };
    let fail = |stage: &str, source| RunError::new(&cx.pipeline, stage, source);
    let source = FileSource::from_path(input.to_path_buf(), from).map_err(|e| fail("input", e))?;
    let sink: Box<dyn Sink> = if output == Path::new("-") {
        let config = crate::sinks::stdout::StdoutSinkConfig { format: to };
        Box::new(crate::sinks::stdout::StdoutSink::new(&config).map_err(|e| fail("output", e))?)
    } else {
        Box::new(FileSink::to_path(output, to, &cx))
    };
    execute(Stages {
        source: Box::new(source),
        chain: Chain {
            pipeline: cx.pipeline.clone(),
            source_label: "input".into(),
            transforms: Vec::new(),
            sinks: vec![("output".into(), sink)],
        },
    })
}

fn execute(stages: Stages) -> Result<RunSummary, RunError> {
    let started = Instant::now();
    let mut records_read = 0;
    let Stages {
        mut source,
        mut chain,
    } = stages;
    std::thread::scope(|scope| -> Result<(), RunError> {
        let (sender, receiver) = mpsc::sync_channel::<Result<Batch, StageError>>(BATCHES_IN_FLIGHT);
        let source = &mut source;
        let reader = std::thread::Builder::new().name("source".into());
        let spawned = reader.spawn_scoped(scope, move || {
            loop {
                let mut batch = Batch::default();
                let next = match source.next_batch(&mut batch, BATCH_RECORDS) {
                    Ok(true) => Ok(batch),
                    Ok(false) => return,
                    Err(e) => Err(e),
                };
                let failed = next.is_err();
                // A closed channel means the receiving side failed and stopped: stop too.
                if sender.send(next).is_err() || failed {
                    return;
                }
            }
        });
        if let Err(e) = spawned {
            return Err(chain.fail(
                &chain.source_label,
                StageError::io("the source", "start a thread", e),
            ));
        }
        for next in receiver {
            let mut batch = next.map_err(|e| chain.fail(&chain.source_label, e))?;
            records_read += batch.len() as u64;
            chain.transform(&mut batch)?;
            for (label, sink) in &mut chain.sinks {
                sink.write_batch(&batch)
                    .map_err(|e| RunError::new(&chain.pipeline, label, e))?;
            }
        }
        Ok(())
    })?;
    for (label, sink) in &mut chain.sinks {
        sink.prepare()
            .map_err(|e| RunError::new(&chain.pipeline, label, e))?;
    }
    let mut reports = Vec::with_capacity(chain.sinks.len());
    for (label, sink) in chain.sinks {
        reports.push(
            sink.commit()
                .map_err(|e| RunError::new(&chain.pipeline, &label, e))?,
        );
    }
    Ok(RunSummary {
        pipeline: chain.pipeline,
        records_read,
        sinks: reports,
        elapsed: started.elapsed(),
    })
}

/// The first `limit` records after the transforms, with nothing written anywhere.
pub fn preview(pipeline: &Pipeline, limit: usize) -> Result<Vec<Record>, RunError> {
    let Stages {
        mut source,
        mut chain,
    } = Stages::build(pipeline, false)?;
    let mut records = Vec::new();
    let mut batch = Batch::default();
    while records.len() < limit {
        let wanted = (limit - records.len()).min(BATCH_RECORDS);
        match source.next_batch(&mut batch, wanted) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(chain.fail(&chain.source_label, e)),
        }
        chain.transform(&mut batch)?;
        records.append(&mut batch.records);
    }
    records.truncate(limit);
    Ok(records)
}
