//! What the transforms' unit tests build their input from.

use std::sync::Arc;

use crate::record::{Batch, FieldName, Origin, Record, Value};

/// A record of `fields`, in this order.
pub fn record(fields: &[(&str, Value)]) -> Record {
    fields
        .iter()
        .map(|(name, value)| (FieldName::from(*name), value.clone()))
        .collect()
}

pub fn text(s: &str) -> Value {
    Value::String(s.into())
}

/// `records` as one batch read from `path`, numbered from 1 as the runner numbers them.
pub fn batch_from(path: &str, records: Vec<Record>) -> Batch {
    Batch {
        numbers: (1..=records.len() as u64).collect(),
        records,
        origin: Some(Arc::new(Origin { path: path.into() })),
        ..Batch::default()
    }
}
