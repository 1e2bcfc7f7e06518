//! `dedupe`: delivers each key once, when a vendor sends the same record twice (an export that
//! overlaps the last one, a record edited and sent again). `keep = "first"` streams: it only
//! remembers the keys it has seen. `keep = "last"` must see the whole input before it knows
//! which record is the last of its key, so it holds the records and gives them up in
//! [`Transform::finish`]; both are bounded by counts the user sets, and fail clearly past them.

use std::collections::hash_map::Entry;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;

use super::seen::{Seen, hash_values};
use super::{Refusals, Refused};
use crate::config::{Invalid, Validate};
use crate::error::StageError;
use crate::record::{Batch, Origin, Record, Value};
use crate::stage::Transform;

/// Default for `max_keys`.
const MAX_KEYS: u64 = 10_000_000;
/// Default for `max_records`.
const MAX_RECORDS: u64 = 1_000_000;
/// Records a batch of held records gives up at most.
const BATCH_RECORDS: usize = 1024;

/// Which record of a key is delivered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Keep {
    /// The first one read; the records stream.
    #[default]
    First,
    /// The last one read: the records are held until the input ends.
    Last,
}

/// Delivers one record per key: `key = ["order_id"]`, `keep = "first"`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DedupeConfig {
    /// The fields whose values together identify a record, e.g. `["order_id"]` or
    /// `["order_id", "line"]`. Values compare by their text (`7` and `"7"` are the same key),
    /// null is a value like another; a record that lacks a key field is refused (to the
    /// rejects with `[rejects]`, else the run fails), since a misspelt key would otherwise
    /// make every record a duplicate of the first. Keys are remembered for the whole run,
    /// across files. Required.
    pub key: Vec<String>,
    /// `"first"`: the first record of each key is delivered, as it comes; `"last"`: the last
    /// one, delivered once the input ends, all records in the order of their key's last
    /// occurrence (so grouped by file as they were read). Default `"first"`.
    #[serde(default)]
    pub keep: Keep,
    /// The most distinct keys a run may hold. Each is kept as a 128-bit hash (about 40 bytes
    /// of memory with the table around it; the odds that two keys share a hash are about
    /// n²/2¹²⁹, 1 in 10²⁵ for 10 million keys). A run with more fails, saying so. Default
    /// 10,000,000 (about 400 MB).
    pub max_keys: Option<u64>,
    /// For `keep = "last"`: the most records held until the input ends. A run with more
    /// fails, saying so; memory grows with the records' size. Default 1,000,000.
    pub max_records: Option<u64>,
}

impl Validate for DedupeConfig {
    fn problems(&self) -> Vec<Invalid> {
        let mut problems = Vec::new();
        if self.key.is_empty() {
            problems.push(Invalid::new(
                "key",
                "`key` is empty: name the fields that identify a record, e.g. `key = [\"order_id\"]`",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for field in &self.key {
            if !seen.insert(field) {
                problems.push(Invalid::new("key", format!("`{field}` is listed twice")));
            }
        }
        if self.max_records.is_some() && self.keep == Keep::First {
            problems.push(Invalid::new(
                "max_records",
                "`max_records` bounds the records `keep = \"last\"` holds; `keep = \"first\"` holds none: remove it",
            ));
        }
        if self.max_keys == Some(0) || self.max_records == Some(0) {
            problems.push(Invalid::new(
                if self.max_keys == Some(0) {
                    "max_keys"
                } else {
                    "max_records"
                },
                "a bound of 0 lets no record through: leave it out for the default",
            ));
        }
        problems
    }
}

pub struct Dedupe {
    key: Vec<String>,
    refusals: Refusals,
    max_keys: u64,
    held: Option<Held>,
    /// For `keep = "first"`.
    seen: Seen,
}

/// What `keep = "last"` holds until the input ends.
struct Held {
    /// In the order of their key's last occurrence; `None` where a later record of the same
    /// key replaced one.
    records: Vec<Option<HeldRecord>>,
    /// Where each key's record is in `records`.
    at: foldhash::HashMap<u128, usize>,
    live: u64,
    max_records: u64,
}

struct HeldRecord {
    hash: u128,
    origin: Option<Arc<Origin>>,
    number: Option<u64>,
    record: Record,
}

impl Dedupe {
    pub fn new(config: &DedupeConfig, refusals: Refusals) -> Self {
        let max_keys = config.max_keys.unwrap_or(MAX_KEYS);
        Dedupe {
            key: config.key.clone(),
            refusals,
            max_keys,
            held: (config.keep == Keep::Last).then(|| Held {
                records: Vec::new(),
                at: foldhash::HashMap::default(),
                live: 0,
                max_records: config.max_records.unwrap_or(MAX_RECORDS),
            }),
            seen: Seen::new(max_keys),
        }
    }

    /// Each record's key hash, or `None` for those refused (which are set aside).
    fn hashes(&self, batch: &mut Batch) -> Result<Vec<Option<u128>>, StageError> {
        let mut refused = Vec::new();
        let mut hashes = Vec::with_capacity(batch.len());
        for (index, record) in batch.records.iter().enumerate() {
            let mut values: Vec<&Value> = Vec::with_capacity(self.key.len());
            for field in &self.key {
                match record.get(field) {
                    Some(value) => values.push(value),
                    None => {
                        refused.push(Refused {
                            index,
                            field: Some(field.clone()),
                            reason: format!(
                                "`{field}`: the record has no such field, so no key to deduplicate by"
                            ),
                        });
                        break;
                    }
                }
            }
            hashes.push((values.len() == self.key.len()).then(|| hash_values(values)));
        }
        self.refusals.set_aside(batch, refused)?;
        Ok(hashes)
    }

    fn too_many_keys(&self, batch: &Batch, index: usize) -> StageError {
        StageError::Refused(format!(
            "{}: more than max_keys = {} distinct keys; raise `max_keys` (a key takes about 40 bytes of memory) or deduplicate fewer records a run",
            place(batch, index),
            self.max_keys
        ))
    }
}

/// Where the record at `index` of `batch` is, for errors.
fn place(batch: &Batch, index: usize) -> String {
    let file = batch.origin.as_ref().map(|o| o.path.as_str());
    match (file, batch.number(index)) {
        (Some(file), Some(number)) => format!("{file}: record {number}"),
        (Some(file), None) => format!("a record of {file}"),
        (None, Some(number)) => format!("record {number}"),
        (None, None) => format!("record {} of its batch", index + 1),
    }
}

impl Transform for Dedupe {
    fn apply(&mut self, batch: &mut Batch) -> Result<(), StageError> {
        let hashes = self.hashes(batch)?;
        let mut hashes = hashes.into_iter().flatten();
        if self.held.is_none() {
            let mut keep = Vec::with_capacity(batch.len());
            for index in 0..batch.len() {
                let hash = hashes.next().expect("one hash a kept record");
                match self.seen.insert(hash) {
                    Ok(seen) => keep.push(!seen),
                    Err(_) => return Err(self.too_many_keys(batch, index)),
                }
            }
            batch.retain(|index, _| keep[index]);
            return Ok(());
        }
        let numbered = batch.numbers.len() == batch.len();
        for index in 0..batch.len() {
            let hash = hashes.next().expect("one hash a kept record");
            let held = self.held.as_mut().expect("keep = \"last\"");
            let next = held.records.len();
            match held.at.entry(hash) {
                Entry::Occupied(mut entry) => {
                    held.records[*entry.get()] = None;
                    entry.insert(next);
                }
                Entry::Vacant(entry) => {
                    entry.insert(next);
                    held.live += 1;
                }
            }
            if held.at.len() as u64 > self.max_keys {
                return Err(self.too_many_keys(batch, index));
            }
            if held.live > held.max_records {
                return Err(StageError::Refused(format!(
                    "{}: more than max_records = {} records held for keep = \"last\"; raise `max_records` (memory grows with it) or use keep = \"first\", which streams",
                    place(batch, index),
                    held.max_records
                )));
            }
            held.records.push(Some(HeldRecord {
                hash,
                origin: batch.origin.clone(),
                number: numbered.then(|| batch.numbers[index]),
                record: std::mem::take(&mut batch.records[index]),
            }));
        }
        batch.records.clear();
        batch.numbers.clear();
        if let Some(held) = &mut self.held {
            held.compact();
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<Vec<Batch>, StageError> {
        let Some(held) = &mut self.held else {
            return Ok(Vec::new());
        };
        held.at = foldhash::HashMap::default();
        held.live = 0;
        let mut batches: Vec<Batch> = Vec::new();
        for held in std::mem::take(&mut held.records).into_iter().flatten() {
            let same_origin = batches
                .last()
                .is_some_and(|batch| batch.len() < BATCH_RECORDS && batch.origin == held.origin);
            if !same_origin {
                batches.push(Batch {
                    origin: held.origin.clone(),
                    ..Batch::default()
                });
            }
            let batch = batches.last_mut().expect("pushed above");
            batch.records.push(held.record);
            batch.numbers.extend(held.number);
        }
        for batch in &mut batches {
            if batch.numbers.len() != batch.records.len() {
                batch.numbers.clear();
            }
        }
        Ok(batches)
    }
}

impl Held {
    /// Drops the places of replaced records once they outnumber the records held.
    fn compact(&mut self) {
        if (self.records.len() as u64) < 2 * self.live + BATCH_RECORDS as u64 {
            return;
        }
        self.records.retain(Option::is_some);
        for (position, held) in self.records.iter().enumerate() {
            let held = held.as_ref().expect("retained");
            self.at.insert(held.hash, position);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::FieldName;
    use crate::stage::RunContext;

    fn origin(path: &str) -> Option<Arc<Origin>> {
        Some(Arc::new(Origin { path: path.into() }))
    }

    /// A batch of records `{id, v}` read from `path`, numbered from 1.
    fn batch(path: &str, rows: &[(&str, &str)]) -> Batch {
        let records: Vec<Record> = rows
            .iter()
            .map(|(id, v)| {
                let mut record = Record::new();
                record.push(FieldName::from("id"), Value::String((*id).into()));
                record.push(FieldName::from("v"), Value::String((*v).into()));
                record
            })
            .collect();
        Batch {
            numbers: (1..=records.len() as u64).collect(),
            records,
            origin: origin(path),
            ..Batch::default()
        }
    }

    fn dedupe(keep: Keep, max_keys: Option<u64>, max_records: Option<u64>) -> Dedupe {
        let mut cx = RunContext::new("p", std::path::Path::new("."));
        cx.quarantine = true;
        Dedupe::new(
            &DedupeConfig {
                key: vec!["id".into()],
                keep,
                max_keys,
                max_records,
            },
            Refusals::new(&cx),
        )
    }

    fn values(batch: &Batch) -> Vec<String> {
        batch
            .records
            .iter()
            .map(|r| format!("{}={}", r.get("id").unwrap(), r.get("v").unwrap()))
            .collect()
    }

    #[test]
    fn first_streams_the_first_of_each_key_across_batches() {
        let mut dedupe = dedupe(Keep::First, None, None);
        let mut a = batch("a.csv", &[("1", "a1"), ("2", "a2"), ("1", "a3")]);
        dedupe.apply(&mut a).unwrap();
        assert_eq!(values(&a), ["1=a1", "2=a2"]);
        assert_eq!(a.numbers, [1, 2]);
        let mut b = batch("b.csv", &[("2", "b1"), ("3", "b2")]);
        dedupe.apply(&mut b).unwrap();
        assert_eq!(values(&b), ["3=b2"]);
        assert_eq!(b.numbers, [2]);
        assert!(dedupe.finish().unwrap().is_empty());
    }

    #[test]
    fn last_gives_up_the_last_of_each_key_by_origin_at_the_end() {
        let mut dedupe = dedupe(Keep::Last, None, None);
        let mut a = batch("a.csv", &[("1", "a1"), ("2", "a2"), ("3", "a3")]);
        dedupe.apply(&mut a).unwrap();
        assert!(a.is_empty() && a.numbers.is_empty());
        let mut b = batch("b.csv", &[("2", "b1"), ("4", "b2"), ("2", "b3")]);
        dedupe.apply(&mut b).unwrap();
        let batches = dedupe.finish().unwrap();
        let out: Vec<(String, Vec<String>, Vec<u64>)> = batches
            .iter()
            .map(|b| {
                (
                    b.origin.as_ref().unwrap().path.clone(),
                    values(b),
                    b.numbers.clone(),
                )
            })
            .collect();
        assert_eq!(
            out,
            [
                (
                    "a.csv".into(),
                    vec!["1=a1".into(), "3=a3".into()],
                    vec![1, 3]
                ),
                (
                    "b.csv".into(),
                    vec!["4=b2".into(), "2=b3".into()],
                    vec![2, 3]
                ),
            ]
        );
        assert!(dedupe.finish().unwrap().is_empty(), "given up once");
    }

    #[test]
    fn a_record_without_its_key_is_refused() {
        let mut dedupe = dedupe(Keep::First, None, None);
        let mut a = batch("a.csv", &[("1", "a1"), ("2", "a2")]);
        a.records[1].remove("id");
        dedupe.apply(&mut a).unwrap();
        assert_eq!(values(&a), ["1=a1"]);
        assert_eq!(a.rejects.len(), 1);
        assert_eq!(a.rejects[0].position.record, Some(2));
        assert_eq!(
            a.rejects[0].reason,
            "`id`: the record has no such field, so no key to deduplicate by"
        );
    }

    #[test]
    fn past_its_bounds_it_fails_naming_the_record() {
        let mut first = dedupe(Keep::First, Some(2), None);
        let mut a = batch("a.csv", &[("1", "x"), ("1", "x"), ("2", "x"), ("3", "x")]);
        assert_eq!(
            first.apply(&mut a).unwrap_err().to_string(),
            "a.csv: record 4: more than max_keys = 2 distinct keys; raise `max_keys` (a key takes about 40 bytes of memory) or deduplicate fewer records a run"
        );
        let mut last = dedupe(Keep::Last, None, Some(2));
        let mut a = batch("a.csv", &[("1", "x"), ("1", "y"), ("2", "x"), ("3", "x")]);
        assert_eq!(
            last.apply(&mut a).unwrap_err().to_string(),
            "a.csv: record 4: more than max_records = 2 records held for keep = \"last\"; raise `max_records` (memory grows with it) or use keep = \"first\", which streams"
        );
    }

    #[test]
    fn many_replacements_are_compacted_and_keep_their_order() {
        let mut dedupe = dedupe(Keep::Last, None, None);
        for round in 0..5 {
            let rows: Vec<(String, String)> = (0..1000)
                .map(|i| ((i % 10).to_string(), format!("{round}-{i}")))
                .collect();
            let rows: Vec<(&str, &str)> =
                rows.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
            let mut b = batch("a.csv", &rows);
            dedupe.apply(&mut b).unwrap();
        }
        let held = dedupe.held.as_ref().unwrap();
        assert!(held.records.len() < 2 * 10 + BATCH_RECORDS + 1000);
        let batches = dedupe.finish().unwrap();
        assert_eq!(batches.len(), 1);
        let expected: Vec<String> = (990..1000).map(|i| format!("{}=4-{i}", i % 10)).collect();
        assert_eq!(values(&batches[0]), expected);
        assert_eq!(batches[0].numbers, (991..=1000).collect::<Vec<u64>>());
    }

    #[test]
    fn config_problems_say_what_to_write() {
        let config = DedupeConfig {
            key: vec![],
            keep: Keep::First,
            max_keys: None,
            max_records: Some(5),
        };
        let messages: Vec<String> = config.problems().into_iter().map(|p| p.message).collect();
        assert_eq!(
            messages,
            [
                "`key` is empty: name the fields that identify a record, e.g. `key = [\"order_id\"]`",
                "`max_records` bounds the records `keep = \"last\"` holds; `keep = \"first\"` holds none: remove it",
            ]
        );
    }
}
