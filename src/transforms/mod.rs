//! Transforms: reshaping steps between the source and the sinks, applied to each batch in the
//! order the pipeline file lists them.

pub mod rename;
pub mod select;

use crate::pipeline::TransformConfig;
use crate::stage::Transform;

impl TransformConfig {
    pub fn build(&self) -> Box<dyn Transform> {
        match self {
            TransformConfig::Rename(config) => Box::new(rename::Rename::new(config)),
            TransformConfig::Select(config) => Box::new(select::Select::new(config)),
        }
    }
}

/// Where a record of a batch came from, for error messages.
fn describe_record(batch: &crate::record::Batch, index: usize) -> String {
    match &batch.origin {
        Some(origin) => format!("a record from {}", origin.path),
        None => format!("record {} of its batch", index + 1),
    }
}
