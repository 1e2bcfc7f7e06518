//! Transforms: reshaping steps between the source and the sinks, applied to each batch in the
//! order the pipeline file lists them. A transform that refuses a record (a value that does
//! not cast, a rule it breaks) sets it aside through [`Refusals`]: to the rejects file with
//! `[rejects]`, where `max_rejects` counts it, else the run fails naming the record.

pub mod cast;
pub mod dedupe;
pub mod drop;
pub mod expr;
mod field_pattern;
pub mod filter;
pub mod flatten;
pub mod map;
pub mod money;
pub mod rename;
pub mod reorder;
pub mod seen;
pub mod select;
pub mod set;
pub mod sql;
#[cfg(test)]
mod testing;
pub mod unnest;
pub mod validate;

use crate::config::Validate;
use crate::error::{Position, StageError};
use crate::record::{Batch, Reject};
use crate::stage::{RunContext, Transform};

/// What a kind of transform's config does: it is checked, and it builds the transform (which
/// may read what it needs first: a lookup file).
pub trait TransformSpec: Validate {
    fn build(&self, cx: &RunContext) -> Result<Box<dyn Transform>, StageError>;

    /// Whether the records it hands on are made from all the source's files at once (a `sql`
    /// result), so that they come from no one file:
    /// a sink path's `{source_stem}` has nothing to name after it.
    fn mixes_files(&self) -> bool {
        false
    }
}

impl TransformSpec for cast::CastConfig {
    fn build(&self, cx: &RunContext) -> Result<Box<dyn Transform>, StageError> {
        Ok(Box::new(cast::Cast::new(self, Refusals::new(cx))))
    }
}

impl TransformSpec for money::MoneyConfig {
    fn build(&self, cx: &RunContext) -> Result<Box<dyn Transform>, StageError> {
        Ok(Box::new(money::Money::new(self, Refusals::new(cx))))
    }
}

impl TransformSpec for rename::RenameConfig {
    fn build(&self, _cx: &RunContext) -> Result<Box<dyn Transform>, StageError> {
        Ok(Box::new(rename::Rename::new(self)))
    }
}

impl TransformSpec for select::SelectConfig {
    fn build(&self, _cx: &RunContext) -> Result<Box<dyn Transform>, StageError> {
        Ok(Box::new(select::Select::new(self)))
    }
}

impl TransformSpec for drop::DropConfig {
    fn build(&self, _cx: &RunContext) -> Result<Box<dyn Transform>, StageError> {
        Ok(Box::new(drop::Drop::new(self)))
    }
}

impl TransformSpec for reorder::ReorderConfig {
    fn build(&self, _cx: &RunContext) -> Result<Box<dyn Transform>, StageError> {
        Ok(Box::new(reorder::Reorder::new(self)))
    }
}

impl TransformSpec for set::SetConfig {
    fn build(&self, cx: &RunContext) -> Result<Box<dyn Transform>, StageError> {
        Ok(Box::new(set::Set::new(self, cx)))
    }
}

impl TransformSpec for map::MapConfig {
    fn build(&self, cx: &RunContext) -> Result<Box<dyn Transform>, StageError> {
        Ok(Box::new(map::Map::new(self, cx)?))
    }
}

impl TransformSpec for flatten::FlattenConfig {
    fn build(&self, cx: &RunContext) -> Result<Box<dyn Transform>, StageError> {
        Ok(Box::new(flatten::Flatten::new(self, cx)))
    }
}

impl TransformSpec for unnest::UnnestConfig {
    fn build(&self, cx: &RunContext) -> Result<Box<dyn Transform>, StageError> {
        Ok(Box::new(unnest::Unnest::new(self, cx)))
    }
}

impl TransformSpec for filter::FilterConfig {
    fn build(&self, cx: &RunContext) -> Result<Box<dyn Transform>, StageError> {
        Ok(Box::new(filter::Filter::new(self, Refusals::new(cx))?))
    }
}

impl TransformSpec for validate::ValidateConfig {
    fn build(&self, cx: &RunContext) -> Result<Box<dyn Transform>, StageError> {
        Ok(Box::new(validate::Validator::new(self, Refusals::new(cx))?))
    }
}

impl TransformSpec for dedupe::DedupeConfig {
    fn build(&self, cx: &RunContext) -> Result<Box<dyn Transform>, StageError> {
        Ok(Box::new(dedupe::Dedupe::new(self, Refusals::new(cx))))
    }
}

impl TransformSpec for sql::SqlConfig {
    fn mixes_files(&self) -> bool {
        true
    }

    #[cfg(feature = "polars")]
    fn build(&self, cx: &RunContext) -> Result<Box<dyn Transform>, StageError> {
        Ok(Box::new(sql::Sql::new(self, cx)?))
    }

    #[cfg(not(feature = "polars"))]
    fn build(&self, _cx: &RunContext) -> Result<Box<dyn Transform>, StageError> {
        Err(StageError::Refused(format!("`sql` {}", sql::NOT_BUILT)))
    }
}

/// A record a transform refuses: which, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    /// Its index in the batch.
    pub index: usize,
    /// The field at fault, if one is.
    pub field: Option<String>,
    /// What is wrong, without the position, e.g. `` `total`: `12,5` is not a decimal ``.
    pub reason: String,
}

/// Where refused records go: the rejects (`[rejects]`: `RunContext::quarantine`), or the run
/// fails.
#[derive(Debug, Clone, Copy)]
pub struct Refusals {
    quarantine: bool,
}

impl Refusals {
    pub fn new(cx: &RunContext) -> Self {
        Refusals {
            quarantine: cx.quarantine,
        }
    }

    /// Takes the `refused` records (indices ascending, each once) out of `batch` into its
    /// rejects, each with the record as JSON; without `[rejects]`, the error for the first.
    pub fn set_aside(&self, batch: &mut Batch, refused: Vec<Refused>) -> Result<(), StageError> {
        let Some(first) = refused.first() else {
            return Ok(());
        };
        let file = batch
            .origin
            .as_ref()
            .map_or_else(String::new, |origin| origin.path.clone());
        let position = |refused: &Refused| Position {
            record: batch.number(refused.index),
            field: refused.field.as_ref().map(|field| format!("`{field}`")),
            ..Position::default()
        };
        if !self.quarantine {
            let at = position(first);
            let place = match (file.as_str(), at.record) {
                ("", None) => describe_record(batch, first.index),
                ("", Some(number)) => format!("record {number}"),
                (file, None) => format!("a record of {file}"),
                (file, Some(number)) => format!("{file}: record {number}"),
            };
            return Err(StageError::Refused(format!(
                "{place}: {}; a `[rejects]` table sets such records aside and lets the run go on",
                first.reason
            )));
        }
        let mut rejects = Vec::with_capacity(refused.len());
        for refused in &refused {
            let mut raw = Vec::new();
            crate::record::json::write_nested_record(&mut raw, &batch.records[refused.index]);
            rejects.push(Reject {
                file: file.clone(),
                position: position(refused),
                reason: refused.reason.clone(),
                raw: Some(String::from_utf8_lossy(&raw).into_owned()),
            });
        }
        batch.rejects.extend(rejects);
        let mut refused = refused.iter().map(|r| r.index).peekable();
        batch.retain(|index, _| {
            let out = refused.peek() == Some(&index);
            if out {
                refused.next();
            }
            !out
        });
        Ok(())
    }
}

/// Where a record of a batch came from, for error messages.
fn describe_record(batch: &crate::record::Batch, index: usize) -> String {
    match &batch.origin {
        Some(origin) => format!("a record from {}", origin.path),
        None => format!("record {} of its batch", index + 1),
    }
}
