//! Transforms: reshaping steps between the source and the sinks, applied to each batch in the
//! order the pipeline file lists them.

pub mod rename;
pub mod select;

use crate::config::Validate;
use crate::stage::Transform;

/// What a kind of transform's config does: it is checked, and it builds the transform.
pub trait TransformSpec: Validate {
    fn build(&self) -> Box<dyn Transform>;
}

impl TransformSpec for rename::RenameConfig {
    fn build(&self) -> Box<dyn Transform> {
        Box::new(rename::Rename::new(self))
    }
}

impl TransformSpec for select::SelectConfig {
    fn build(&self) -> Box<dyn Transform> {
        Box::new(select::Select::new(self))
    }
}

/// Where a record of a batch came from, for error messages.
fn describe_record(batch: &crate::record::Batch, index: usize) -> String {
    match &batch.origin {
        Some(origin) => format!("a record from {}", origin.path),
        None => format!("record {} of its batch", index + 1),
    }
}
