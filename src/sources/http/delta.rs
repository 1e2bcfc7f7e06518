//! Delta pulls: the cursor (the largest value of a field such as `updated_at` delivered so far)
//! is read from the state store when the run starts and saved back only when the sinks have
//! published, so a failed run asks again for the same records. Records the last run delivered
//! are remembered by key within the look-back, so asking for `>=` the cursor, or `lag_secs`
//! before it, delivers nothing twice.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, FixedOffset, NaiveDateTime};

use super::config::IncrementalConfig;
use crate::record::json::{KeyCache, write_record};
use crate::record::{Record, Value};
use crate::state::StateChange;

/// The delta state of one run.
pub(super) struct Delta {
    field: String,
    key: Option<String>,
    lag_secs: u64,
    /// Where the cursor is sent (`` `updated_since` ``), for messages.
    sent_in: String,
    /// The cursor the run started from (saved, else the initial value).
    start: Option<String>,
    /// What the API was asked for: records from here (the cursor less the look-back, or a
    /// window's start)...
    from: Option<CursorValue>,
    /// ... until before here (a window's end).
    until: Option<CursorValue>,
    /// Records before `from` and at or after `until`, not delivered: how many, and the first
    /// one's value.
    too_old: Outside,
    too_new: Outside,
    /// Records delivered without a value in the field (null): they cannot move the cursor.
    without_value: u64,
    /// Records that came twice in this pull (the same key and cursor value), delivered once.
    repeated: u64,
    /// Whether a record of this pull had the field: then one without it is taken as null (APIs
    /// leave out null fields); before, it is an error (a mistyped `field`).
    field_seen: bool,
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
        sent_in: String,
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
        let mut delta = Delta {
            field: config.field.clone(),
            key: config.key.clone(),
            lag_secs: config.lag_secs,
            sent_in,
            start,
            from: None,
            until: None,
            too_old: Outside::default(),
            too_new: Outside::default(),
            without_value: 0,
            repeated: 0,
            field_seen: false,
            seen,
            max: None,
            delivered: HashMap::new(),
            prune_at: KEYS_BEFORE_PRUNING,
            ascending: true,
            last: None,
            skipped: 0,
            delivered_until: None,
        };
        delta.from = delta.sent_value().map(CursorValue::new);
        Ok(delta)
    }

    /// The pull asks for the window `[from, until)` now: records outside it are not delivered.
    pub(super) fn set_window(&mut self, from: &str, until: &str) {
        self.from = Some(CursorValue::new(from.to_string()));
        self.ask_until(until);
    }

    /// The pull asks for records before `until` (`incremental.end`): later ones are not
    /// delivered.
    pub(super) fn ask_until(&mut self, until: &str) {
        self.until = Some(CursorValue::new(until.to_string()));
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

    /// Drops the records delivered before, and those outside what was asked for, and notes the
    /// cursor values of the others. A record without the field is an error (what is wrong,
    /// numbering the records from `first_number`).
    pub(super) fn filter(
        &mut self,
        records: &mut Vec<Record>,
        first_number: u64,
    ) -> Result<(), String> {
        self.look_for_field(records);
        let mut keys = KeyCache::default();
        let mut kept = Vec::with_capacity(records.len());
        for (index, record) in std::mem::take(records).into_iter().enumerate() {
            if let Some(delivery) = self.judge(&record, first_number + index as u64, &mut keys)? {
                self.note_delivered(delivery);
                kept.push(record);
            }
        }
        *records = kept;
        Ok(())
    }

    /// Notes whether any of `records` has the field, before they are judged one by one.
    pub(super) fn look_for_field(&mut self, records: &[Record]) {
        self.field_seen = self.field_seen || records.iter().any(|r| r.get(&self.field).is_some());
    }

    /// Whether `record` (number `number`) is to be delivered: `None` when the last run
    /// delivered it, this pull delivered it already, or it lies outside what was asked for.
    /// Once it is delivered, [`Delta::note_delivered`] counts it for the cursor (the fan-out
    /// to children does so only once the children are delivered).
    pub(super) fn judge(
        &mut self,
        record: &Record,
        number: u64,
        keys: &mut KeyCache,
    ) -> Result<Option<Delivery>, String> {
        let value = match record.get(&self.field) {
            None if !self.field_seen => return Err(self.missing_field(record, number)),
            None | Some(Value::Null) => {
                // It cannot move the cursor, and comes again if the API returns it again.
                self.without_value += 1;
                return Ok(Some(Delivery::default()));
            }
            Some(value) => match value.to_text() {
                Some(text) => CursorValue::new(text.into_owned()),
                None => {
                    return Err(format!(
                        "record {number} has `{}` = {}, which is not a timestamp or a number (`incremental.field`)",
                        self.field,
                        value_kind(value)
                    ));
                }
            },
        };
        // Only values of one kind compare: a number is not older than a timestamp.
        if self
            .from
            .as_ref()
            .is_some_and(|from| value.same_kind(from) && value.cmp(from) == Ordering::Less)
        {
            self.too_old.note(&value.text);
            return Ok(None);
        }
        if self
            .until
            .as_ref()
            .is_some_and(|until| value.same_kind(until) && value.cmp(until) != Ordering::Less)
        {
            self.too_new.note(&value.text);
            return Ok(None);
        }
        let key = match &self.key {
            Some(key) => record
                .get(key)
                .and_then(|v| v.to_text())
                .map(|k| k.into_owned()),
            None => Some(content_key(record, keys)),
        };
        if let Some(key) = &key
            && self.seen.get(key) == Some(&value.text)
        {
            self.skipped += 1;
            return Ok(None);
        }
        if self.key.is_some()
            && let Some(key) = &key
            && self.delivered.get(key) == Some(&value.text)
        {
            // Offset paging over a list that changed shifts records onto the next page. (Two
            // records alike in every field, without a key, are two records.)
            self.repeated += 1;
            return Ok(None);
        }
        Ok(Some(Delivery {
            value: Some(value),
            key,
            by_key: self.key.is_some(),
        }))
    }

    /// Counts a record that came twice in this pull, delivered once.
    pub(super) fn note_repeated(&mut self) {
        self.repeated += 1;
    }

    /// Counts a delivered record for the cursor and remembers its key.
    pub(super) fn note_delivered(&mut self, delivery: Delivery) {
        let Some(value) = delivery.value else {
            return;
        };
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
        if let Some(key) = delivery.key {
            self.delivered.insert(key, value.text.clone());
        }
        self.last = Some(value);
        self.forget_passed_keys();
    }

    /// The error for a record without the cursor field: a mistyped `field` would make every run
    /// a full pull that never moves the cursor.
    fn missing_field(&self, record: &Record, number: u64) -> String {
        let names: Vec<&str> = record.names().map(|name| &**name).collect();
        let nearest = names
            .iter()
            .map(|name| {
                let distance = if name.eq_ignore_ascii_case(&self.field) {
                    0
                } else {
                    strsim::damerau_levenshtein(name, &self.field)
                };
                (distance, *name)
            })
            .min()
            .filter(|(distance, _)| *distance <= 2.max(self.field.len() / 3));
        let hint = match nearest {
            Some((_, name)) => format!("did you mean `{name}`?"),
            None => {
                let shown: Vec<String> = names.iter().take(12).map(|n| format!("`{n}`")).collect();
                format!("its fields are {}", shown.join(", "))
            }
        };
        format!(
            "record {number} has no field `{}` (`incremental.field`): {hint}",
            self.field
        )
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
    pub(super) fn changes(&self, complete: bool) -> (Vec<StateChange>, Vec<String>) {
        let mut warnings = Vec::new();
        if let (Some(first), Some(from)) = (&self.too_old.first, &self.from) {
            warnings.push(format!(
                "{} records older than asked for came back (the first with `{}` = {first}, asked from {}) and were not delivered again: the API seems to ignore {}; check its name in the API's documentation",
                self.too_old.count, self.field, from.text, self.sent_in
            ));
        }
        if let (Some(first), Some(until)) = (&self.too_new.first, &self.until) {
            warnings.push(format!(
                "{} records newer than asked for came back (the first with `{}` = {first}, asked until before {}) and were not delivered: the API seems to ignore `{{until}}`; the run that asks for them delivers them",
                self.too_new.count, self.field, until.text
            ));
        }
        if self.repeated > 0 {
            warnings.push(format!(
                "{} records came twice in this pull and were delivered once: the list changed while it was paged",
                self.repeated
            ));
        }
        if self.without_value > 0 {
            warnings.push(format!(
                "{} records had no value in `{}` (null or left out): they were delivered, but cannot move the cursor, and are delivered again whenever the API returns them",
                self.without_value, self.field
            ));
        }
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
        if self.delivered_until.is_none() && !moves && self.max.is_some() {
            warnings.push(format!(
                "the pull was cut short and its `{}` values did not come in order, so the cursor stays where it was: the next run asks for these records again, and skips those delivered",
                self.field
            ));
        }
        let mut changes = Vec::new();
        if let Some(cursor) = &cursor {
            changes.push(StateChange::Cursor {
                name: self.field.clone(),
                value: cursor.clone(),
            });
            {
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
        (changes, warnings)
    }
}

/// A record [`Delta::judge`] let through: its cursor value (none when null) and key.
#[derive(Default)]
pub(super) struct Delivery {
    value: Option<CursorValue>,
    key: Option<String>,
    /// Whether `key` is `incremental.key`'s value (not a hash of the content).
    by_key: bool,
}

impl Delivery {
    /// Whether both are the same record by `incremental.key` with the same cursor value: one
    /// that came twice in a pull.
    pub(super) fn repeats(&self, other: &Delivery) -> bool {
        self.by_key
            && self.key.is_some()
            && self.key == other.key
            && self.value.as_ref().map(|v| &v.text) == other.value.as_ref().map(|v| &v.text)
    }
}

/// Records that came back outside what was asked for.
#[derive(Default)]
struct Outside {
    count: u64,
    /// The first one's cursor value.
    first: Option<String>,
}

impl Outside {
    fn note(&mut self, value: &str) {
        self.count += 1;
        self.first.get_or_insert_with(|| value.to_string());
    }
}

/// A record's key when `incremental.key` is not set: a hash of its content, so that a record at
/// the cursor that comes again unchanged (`>=` queries, the look-back) is not delivered twice,
/// and a changed one is.
fn content_key(record: &Record, keys: &mut KeyCache) -> String {
    let mut json = Vec::new();
    write_record(&mut json, record, keys);
    let hash = crate::digest::sha256_hex(&json);
    format!("#{}", &hash[..24])
}

/// What a value is, for messages.
fn value_kind(value: &Value) -> &'static str {
    match value {
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
        _ => "a value",
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

/// Points in time written in ways cursors are compared in but not shifted: a date alone
/// (`2024-08-01`, its midnight) and an offset without a colon (`2024-08-01T10:00:00+0000`, as
/// Salesforce writes them).
fn parse_other_time(text: &str) -> Option<NaiveDateTime> {
    if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return date.and_hms_opt(0, 0, 0);
    }
    DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z")
        .ok()
        .map(|aware| aware.naive_utc())
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
        let point = match parse_time(&text).or_else(|| parse_other_time(&text)) {
            Some(time) => Point::Time(time),
            None => text.parse().map_or(Point::Text, Point::Number),
        };
        CursorValue { text, point }
    }

    /// Whether the two compare meaningfully: not a number with a timestamp or text (epoch
    /// seconds against an ISO `initial`).
    fn same_kind(&self, other: &CursorValue) -> bool {
        matches!(self.point, Point::Number(_)) == matches!(other.point, Point::Number(_))
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
        assert_eq!(
            compare("2024-08-01", "2024-07-31T23:00:00Z"),
            Ordering::Greater
        );
        assert_eq!(
            compare("2024-08-01T10:00:00.000+0200", "2024-08-01T09:00:00Z"),
            Ordering::Less
        );
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
        let mut delta = Delta::new(&config, "`since`".into(), &BTreeMap::new()).unwrap();
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
            delta.filter(&mut records, 1).unwrap();
            assert_eq!(records.len(), 1000);
        }
        assert!(
            delta.delivered.len() < KEYS_BEFORE_PRUNING,
            "{}",
            delta.delivered.len()
        );
        let (changes, warnings) = delta.changes(true);
        assert!(warnings.is_empty(), "{warnings:?}");
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

    fn record(fields: &[(&str, crate::record::Value)]) -> Record {
        Record::from_iter(
            fields
                .iter()
                .map(|(name, value)| (crate::record::FieldName::from(*name), value.clone())),
        )
    }

    #[test]
    fn what_comes_back_is_checked_against_what_was_asked() {
        use crate::record::Value as V;
        let config = IncrementalConfig {
            field: "updated".into(),
            param: Some("since".into()),
            initial: Some("2024-08-01T00:00:00Z".into()),
            lag_secs: 0,
            key: None,
            window: None,
            end: None,
        };
        let mut delta =
            Delta::new(&config, "the parameter `since`".into(), &BTreeMap::new()).unwrap();
        let at = |text: &str| V::String(text.into());
        let mut records = vec![
            record(&[
                ("id", V::Integer(1)),
                ("updated", at("2024-07-31T23:59:59Z")),
            ]),
            record(&[
                ("id", V::Integer(2)),
                ("updated", at("2024-08-01T00:00:00Z")),
            ]),
            // A number does not compare with a timestamp: not taken as older.
            record(&[
                ("id", V::Integer(3)),
                ("updated", V::Integer(1_722_470_400)),
            ]),
            // Left out once the field was seen: taken as null.
            record(&[("id", V::Integer(4))]),
        ];
        delta.filter(&mut records, 1).unwrap();
        let ids: Vec<_> = records
            .iter()
            .map(|r| r.get("id").cloned().unwrap())
            .collect();
        assert_eq!(ids, [V::Integer(2), V::Integer(3), V::Integer(4)]);
        let (_, warnings) = delta.changes(true);
        assert_eq!(
            warnings,
            [
                "1 records older than asked for came back (the first with `updated` = 2024-07-31T23:59:59Z, asked from 2024-08-01T00:00:00Z) and were not delivered again: the API seems to ignore the parameter `since`; check its name in the API's documentation",
                "1 records had no value in `updated` (null or left out): they were delivered, but cannot move the cursor, and are delivered again whenever the API returns them",
            ]
        );
        // A pull whose records never have the field: the field's name is wrong.
        let mut fresh = Delta::new(&config, "`since`".into(), &BTreeMap::new()).unwrap();
        let mut wrong = vec![record(&[
            ("id", V::Integer(1)),
            ("Updated", at("2024-08-02T00:00:00Z")),
        ])];
        assert_eq!(
            fresh.filter(&mut wrong, 7),
            Err(
                "record 7 has no field `updated` (`incremental.field`): did you mean `Updated`?"
                    .into()
            )
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
