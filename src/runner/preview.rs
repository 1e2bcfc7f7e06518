//! `longshore preview`: the first records of a pipeline after its transforms, read without the
//! sinks or the pipeline's state. `table.rs` prints them.

use super::BATCH_RECORDS;
use super::stages::Stages;
use crate::error::RunError;
use crate::pipeline::Pipeline;
use crate::record::{Batch, Record};
use crate::stage::RunContext;
use crate::state::SqliteStore;

/// The first `limit` records after the transforms, with nothing written anywhere. Every file
/// the source names is read, delivered before or not.
pub fn preview(pipeline: &Pipeline, limit: usize) -> Result<Vec<Record>, RunError> {
    let mut cx = RunContext::new(&pipeline.name, pipeline.base_dir());
    cx.vars = std::sync::Arc::new(pipeline.vars.clone());
    cx.read_only = true;
    let mut store = SqliteStore::in_memory();
    let Stages {
        mut source,
        mut chain,
    } = Stages::build(pipeline, &cx, &mut store, false)?;
    let mut records = Vec::new();
    let mut batch = Batch::default();
    while records.len() < limit {
        let wanted = (limit - records.len()).min(BATCH_RECORDS);
        match source.next_batch(&mut batch, wanted) {
            Ok(true) => {}
            Ok(false) => {
                for mut held in chain.finish_transforms()? {
                    records.append(&mut held.records);
                }
                break;
            }
            Err(e) => return Err(chain.fail(&chain.source_label, e)),
        }
        chain.transform(&mut batch)?;
        records.append(&mut batch.records);
    }
    records.truncate(limit);
    Ok(records)
}
