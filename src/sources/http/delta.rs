//! Delta pulls: the cursor (the largest value of a field such as `updated_at` delivered so far)
//! is read from the state store when the run starts and saved back only when the sinks have
//! published, so a failed run asks again for the same records. Records the last run delivered
//! are remembered by key within the look-back, so asking for `>=` the cursor, or `lag_secs`
//! before it, delivers nothing twice.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, FixedOffset, NaiveDateTime};

use super::config::IncrementalConfig;
use crate::record::Record;
use crate::state::StateChange;

/// The delta state of one run.
pub(super) struct Delta {
    field: String,
    key: Option<String>,
    lag_secs: u64,
    /// The cursor the run started from (saved, else the initial value).
    start: Option<String>,
    /// Key -> cursor value of the records delivered within the look-back of `start`.
    seen: HashMap<String, String>,
    /// The largest cursor value delivered this run.
    max: Option<CursorValue>,
    /// Key -> cursor value of the records delivered this run (with `key`).
    delivered: HashMap<String, String>,
    /// The size of `delivered` at which it is pruned next.
    prune_at: usize,
    /// Whether the values came in ascending order (then a run cut short may still move the
    /// cursor to the largest).
    ascending: bool,
    last: Option<CursorValue>,
    /// Records skipped as delivered before.
    pub(super) skipped: u64,
    /// The end of the last time window delivered whole, when the pull is windowed.
    delivered_until: Option<String>,
}

impl Delta {
    /// The state of `config`'s cursor among the pipeline's saved `cursors`.
    pub(super) fn new(
        config: &IncrementalConfig,
        cursors: &BTreeMap<String, String>,
    ) -> Result<Self, String> {
        let start = cursors
            .get(&config.field)
            .cloned()
            .or_else(|| config.initial.clone());
        if config.lag_secs > 0
            && let Some(start) = &start
            && parse_time(start).is_none()
        {
            return Err(format!(
                "`lag_secs` needs a timestamp cursor, and `{start}` is not one (RFC 3339 or ISO 8601)"
            ));
        }
        let seen = match cursors.get(&delivered_name(&config.field)) {
            Some(json) => serde_json::from_str(json).map_err(|e| {
                format!(
                    "the saved keys of cursor `{}` are damaged ({e}): run `longshore state reset`",
                    config.field
                )
            })?,
            None => HashMap::new(),
        };
        Ok(Delta {
            field: config.field.clone(),
            key: config.key.clone(),
            lag_secs: config.lag_secs,
            start,
            seen,
            max: None,
            delivered: HashMap::new(),
            prune_at: KEYS_BEFORE_PRUNING,
            ascending: true,
            last: None,
            skipped: 0,
            delivered_until: None,
        })
    }

    /// Where a windowed pull ends: the configured `end`, else now, written like the cursor.
    pub(super) fn end_value(&self, end: Option<&str>) -> Result<Option<String>, String> {
        if let Some(end) = end {
            return Ok(Some(end.to_string()));
        }
        let Some(start) = &self.start else {
            return Ok(None);
        };
        let Some(from) = parse_time(start) else {
            return Err(format!(
                "a windowed pull needs a timestamp cursor, and `{start}` is not one"
            ));
        };
        let now = chrono::Utc::now().naive_utc();
        Ok(shift_time(start, (now - from).num_seconds()))
    }

    /// The value sent for `{cursor}`: the start, less the look-back; `None` on a first run
    /// without an initial value.
    pub(super) fn sent_value(&self) -> Option<String> {
        self.start.as_deref().map(|start| self.look_back(start))
    }

    /// `value` less the look-back (`lag_secs`; a timestamp, as `new` checked).
    fn look_back(&self, value: &str) -> String {
        if self.lag_secs == 0 {
            return value.to_string();
        }
        shift_time(value, -(self.lag_secs as i64)).unwrap_or_else(|| value.to_string())
    }

    /// Whether the last run delivered `record` (the same key with the same cursor value): what
    /// [`Delta::filter`] drops, asked before the record is delivered.
    pub(super) fn delivered_before(&self, record: &Record) -> bool {
        let text = |name: &str| record.get(name).and_then(|v| v.to_text());
        match (self.key.as_deref().and_then(text), text(&self.field)) {
            (Some(key), Some(value)) => self.seen.get(key.as_ref()) == Some(&value.into_owned()),
            _ => false,
        }
    }

    /// Drops the records delivered before and notes the cursor values of the others.
    pub(super) fn filter(&mut self, records: &mut Vec<Record>) {
        records.retain(|record| {
            let Some(value) = record.get(&self.field).and_then(|v| v.to_text()) else {
                // Without the field the record cannot move the cursor; it is delivered.
                return true;
            };
            let value = CursorValue::new(value.into_owned());
            let key = self
                .key
                .as_ref()
                .and_then(|key| record.get(key))
                .and_then(|v| v.to_text())
                .map(|k| k.into_owned());
            if let Some(key) = &key
                && self.seen.get(key) == Some(&value.text)
            {
                self.skipped += 1;
                return false;
            }
            if let Some(last) = &self.last
                && value.cmp(last) == Ordering::Less
            {
                self.ascending = false;
            }
            if self
                .max
                .as_ref()
                .is_none_or(|max| value.cmp(max) == Ordering::Greater)
            {
                self.max = Some(value.clone());
            }
            if let Some(key) = key {
                self.delivered.insert(key, value.text.clone());
            }
            self.last = Some(value);
            true
        });
        self.forget_passed_keys();
    }

    /// Keeps the keys of the records delivered this run bounded: once many, those the next
    /// run cannot ask for again (before the look-back of the largest value) are dropped, as
    /// long as the values come in order (else the cursor may stay put, and all are needed).
    fn forget_passed_keys(&mut self) {
        if self.delivered.len() < self.prune_at || !self.ascending {
            return;
        }
        let Some(max) = &self.max else { return };
        let from = self.look_back(&max.text);
        self.delivered
            .retain(|_, value| compare(value, &from) != Ordering::Less);
        // What is left is all needed: look again only once it has doubled.
        self.prune_at = KEYS_BEFORE_PRUNING.max(2 * self.delivered.len());
    }

    /// A time window was delivered whole: the cursor may move to its end.
    pub(super) fn window_delivered(&mut self, until: &str) {
        self.delivered_until = Some(until.to_string());
    }

    /// The state changes that go with publishing what was delivered. `complete`: the whole
    /// list was read (not cut short by the time limit or a cap).
    pub(super) fn changes(&self, complete: bool) -> (Vec<StateChange>, Option<String>) {
        let mut warning = None;
        let moves = complete || self.ascending;
        let cursor = match (&self.start, &self.max) {
            // Windowed: the end of the last window delivered whole.
            _ if self.delivered_until.is_some() => self.delivered_until.clone(),
            (Some(start), Some(max)) if moves && compare(&max.text, start) == Ordering::Greater => {
                Some(max.text.clone())
            }
            (None, Some(max)) if moves => Some(max.text.clone()),
            (start, _) => start.clone(),
        };
        if self.delivered_until.is_none() && !moves && self.key.is_none() && self.max.is_some() {
            warning = Some(format!(
                "the pull was cut short and its `{}` values did not come in order, so the cursor stays where it was: the next run asks for these records again (set `incremental.key` to skip the ones delivered)",
                self.field
            ));
        }
        let mut changes = Vec::new();
        if let Some(cursor) = &cursor {
            changes.push(StateChange::Cursor {
                name: self.field.clone(),
                value: cursor.clone(),
            });
            if self.key.is_some() {
                // The keys the next run may see again: those within its look-back.
                let from = self.look_back(cursor);
                let keep: BTreeMap<&String, &String> = self
                    .seen
                    .iter()
                    .chain(&self.delivered)
                    .filter(|(_, value)| compare(value, &from) != Ordering::Less)
                    .collect();
                changes.push(StateChange::Cursor {
                    name: delivered_name(&self.field),
                    value: serde_json::to_string(&keep).expect("strings serialize"),
                });
            }
        }
        (changes, warning)
    }
}

/// Keys of delivered records held before the ones behind the look-back are dropped.
const KEYS_BEFORE_PRUNING: usize = 100_000;

/// The state entry holding the keys delivered at the cursor.
fn delivered_name(field: &str) -> String {
    format!("{field}#delivered")
}

/// A cursor value as a point in time: RFC 3339 (with an offset, in UTC), or ISO 8601 without
/// one (taken as it is).
pub(super) fn parse_time(text: &str) -> Option<NaiveDateTime> {
    if let Ok(aware) = DateTime::parse_from_rfc3339(text) {
        return Some(aware.naive_utc());
    }
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
}

/// `text` moved by `seconds`, written the way it was.
pub(super) fn shift_time(text: &str, seconds: i64) -> Option<String> {
    let by = Duration::seconds(seconds);
    if let Ok(aware) = DateTime::<FixedOffset>::parse_from_rfc3339(text) {
        let shifted = aware + by;
        let zulu = text.ends_with('Z') || text.ends_with('z');
        return Some(shifted.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, zulu));
    }
    let separator = if text.contains('T') { 'T' } else { ' ' };
    let naive = parse_time(text)? + by;
    Some(
        naive
            .format(&format!("%Y-%m-%d{separator}%H:%M:%S%.f"))
            .to_string(),
    )
}

/// Cursor values in order: as points in time when both are, as numbers when both are, else
/// as text.
fn compare(a: &str, b: &str) -> Ordering {
    CursorValue::new(a.to_string()).cmp(&CursorValue::new(b.to_string()))
}

/// A cursor value, read once as what it is, for comparing it with many.
#[derive(Clone)]
struct CursorValue {
    text: String,
    point: Point,
}

#[derive(Clone, Copy)]
enum Point {
    Time(NaiveDateTime),
    Number(f64),
    Text,
}

impl CursorValue {
    fn new(text: String) -> Self {
        let point = match parse_time(&text) {
            Some(time) => Point::Time(time),
            None => text.parse().map_or(Point::Text, Point::Number),
        };
        CursorValue { text, point }
    }

    fn cmp(&self, other: &CursorValue) -> Ordering {
        match (self.point, other.point) {
            (Point::Time(a), Point::Time(b)) => a.cmp(&b),
            (Point::Number(a), Point::Number(b)) => a.total_cmp(&b),
            _ => self.text.cmp(&other.text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_compare_as_times_numbers_or_text() {
        assert_eq!(
            compare("2024-08-01T10:00:00+02:00", "2024-08-01T09:00:00Z"),
            Ordering::Less
        );
        assert_eq!(compare("9", "10"), Ordering::Less);
        assert_eq!(compare("b", "a"), Ordering::Greater);
    }

    #[test]
    fn keys_behind_the_look_back_are_forgotten_as_a_large_pull_goes() {
        let config = IncrementalConfig {
            field: "v".into(),
            param: Some("since".into()),
            initial: None,
            lag_secs: 0,
            key: Some("id".into()),
            window: None,
            end: None,
        };
        let mut delta = Delta::new(&config, &BTreeMap::new()).unwrap();
        for batch in 0..150 {
            let mut records: Vec<Record> = (0..1000)
                .map(|i| {
                    let n = batch * 1000 + i;
                    // Two records a value: the last value's pair is what the next run may see.
                    Record::from_iter([
                        (
                            crate::record::FieldName::from("id"),
                            crate::record::Value::Integer(n),
                        ),
                        (
                            crate::record::FieldName::from("v"),
                            crate::record::Value::Integer(n / 2),
                        ),
                    ])
                })
                .collect();
            delta.filter(&mut records);
            assert_eq!(records.len(), 1000);
        }
        assert!(
            delta.delivered.len() < KEYS_BEFORE_PRUNING,
            "{}",
            delta.delivered.len()
        );
        let (changes, warning) = delta.changes(true);
        assert_eq!(warning, None);
        assert_eq!(
            changes,
            [
                StateChange::Cursor {
                    name: "v".into(),
                    value: "74999".into()
                },
                StateChange::Cursor {
                    name: "v#delivered".into(),
                    value: r#"{"149998":"74999","149999":"74999"}"#.into()
                },
            ]
        );
    }

    #[test]
    fn the_look_back_keeps_the_format() {
        assert_eq!(
            shift_time("2024-08-01T00:00:00Z", -90).as_deref(),
            Some("2024-07-31T23:58:30Z")
        );
        assert_eq!(
            shift_time("2024-08-01T00:00:00+02:00", -60).as_deref(),
            Some("2024-07-31T23:59:00+02:00")
        );
        assert_eq!(
            shift_time("2024-08-01T00:00:00", -1).as_deref(),
            Some("2024-07-31T23:59:59")
        );
        assert_eq!(
            shift_time("2024-08-01 00:00:00.250", -1).as_deref(),
            Some("2024-07-31 23:59:59.250")
        );
        assert_eq!(shift_time("12345", -1), None);
    }
}
