//! `longshore convert`: one file to another through the same streaming as a run, without a
//! pipeline file, state or lock.

use std::path::Path;

use super::stages::Chain;
use super::stream::stream;
use crate::codecs::{FormatConfig, TextEncoding};
use crate::error::RunError;
use crate::sinks::file::FileSink;
use crate::sinks::publish;
use crate::sources::file::{FileSource, ReadOptions};
use crate::stage::{RunContext, Sink, SinkReport, Source};

/// Converts one file to another (`longshore convert`): a one-file source, a `sql` transform
/// when `sql` has a query, and a file sink (or standard output for `-`). No state, no lock: a
/// one-off.
pub fn convert(
    input: &Path,
    output: &Path,
    read: ReadOptions,
    to: FormatConfig,
    to_encoding: Option<TextEncoding>,
    sql: Option<String>,
) -> Result<SinkReport, RunError> {
    let cx = RunContext::new("convert", Path::new(""));
    let fail = |stage: &str, source| RunError::new(&cx.pipeline, stage, source);
    let mut transforms = Vec::new();
    if let Some(query) = sql {
        use crate::transforms::TransformSpec;
        let transform = crate::transforms::sql::SqlConfig::over_input(query)
            .build(&cx)
            .map_err(|e| fail("--sql", e))?;
        transforms.push(("--sql".to_string(), transform));
    }
    let source = FileSource::from_path(input.to_path_buf(), read).map_err(|e| fail("input", e))?;
    let sink: Box<dyn Sink> = if output == Path::new("-") {
        let config = crate::sinks::stdout::StdoutSinkConfig {
            format: to,
            encoding: to_encoding,
        };
        Box::new(crate::sinks::stdout::StdoutSink::new(&config).map_err(|e| fail("output", e))?)
    } else {
        Box::new(FileSink::to_path(output, to, to_encoding, &cx))
    };
    let mut chain = Chain {
        pipeline: cx.pipeline.clone(),
        source_label: "input".into(),
        transforms,
        sinks: vec![("output".into(), sink)],
        rejects: None,
    };
    stream(
        &mut (Box::new(source) as Box<dyn Source>),
        &mut chain,
        &cx,
        false,
    )
    .1?;
    let (label, mut sink) = chain.sinks.pop().expect("one sink");
    let outputs = sink.prepare().map_err(|e| fail(&label, e))?;
    sink.commit().map_err(|e| {
        publish::Destinations::new(Vec::new(), &cx).discard(&outputs);
        fail(&label, e)
    })
}
