//! The record model every stage speaks: a [`Value`] is one typed datum, a [`Record`] an ordered
//! list of named values, a [`Batch`] a run of records moved between stages at once.
//!
//! Field names are interned ([`FieldName`]) so a decoder allocates each column name once, not once
//! per row, and cloning one costs a pointer copy. Records keep their fields in order (the order of the source's columns or keys), which
//! is what users expect to see in the output; lookups by name are linear, which beats hashing for
//! the tens of fields a business record has.

pub(crate) mod json;
mod name;

use std::fmt;
use std::sync::Arc;

pub use name::FieldName;

/// Text values: strings up to 24 bytes (most ids, codes, dates, names) are stored inline,
/// without a heap allocation, which roughly halves the allocator work of a typical batch.
pub type Text = compact_str::CompactString;

/// One typed value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Integer(i64),
    Float(f64),
    /// An exact decimal number kept as its canonical text (e.g. `"1234.50"`), so no digit is lost
    /// on the way from a vendor's amount to a partner's file.
    Decimal(Text),
    String(Text),
    /// A point in time with its UTC offset; written as RFC 3339.
    Timestamp(chrono::DateTime<chrono::FixedOffset>),
    /// A date and time of day without an offset (a spreadsheet cell, `01/08/2024 10:30` in a
    /// CSV): written as ISO 8601 without one (`2024-08-01T10:30:00`), since inventing one would
    /// be wrong.
    DateTime(chrono::NaiveDateTime),
    /// A calendar date (`2024-08-01`).
    Date(chrono::NaiveDate),
    Array(Vec<Value>),
    Object(Record),
}

impl Value {
    /// The value as text for flat formats (CSV cells, tables): strings as they are, nested
    /// values as compact JSON, `None` for null.
    pub fn to_text(&self) -> Option<std::borrow::Cow<'_, str>> {
        use std::borrow::Cow;
        Some(match self {
            Value::Null => return None,
            Value::String(s) | Value::Decimal(s) => Cow::Borrowed(s.as_str()),
            Value::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
            Value::Integer(i) => Cow::Owned(i.to_string()),
            Value::Float(f) => Cow::Owned(format_float(*f)),
            Value::Timestamp(t) => Cow::Owned(t.to_rfc3339()),
            Value::DateTime(t) => Cow::Owned(t.format("%Y-%m-%dT%H:%M:%S%.f").to_string()),
            Value::Date(d) => Cow::Owned(d.format("%Y-%m-%d").to_string()),
            Value::Array(_) | Value::Object(_) => {
                let mut json = Vec::new();
                crate::record::json::write_value(&mut json, self);
                Cow::Owned(String::from_utf8(json).expect("JSON text from UTF-8 values is UTF-8"))
            }
        })
    }
}

/// Shortest text that reads back as the same float (`132.12`, `3.0`, `1e21`).
pub(crate) fn format_float(f: f64) -> String {
    if f.is_finite() {
        ryu::Buffer::new().format_finite(f).to_owned()
    } else {
        f.to_string()
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_text() {
            Some(text) => f.write_str(&text),
            None => Ok(()),
        }
    }
}

/// An ordered list of named values. Names are unique within a record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Record {
    fields: Vec<(FieldName, Value)>,
}

impl Record {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_capacity(capacity: usize) -> Self {
        Record {
            fields: Vec::with_capacity(capacity),
        }
    }

    /// Appends a field without checking for an existing one of the same name: for decoders whose
    /// names are already known to be unique (a CSV header, a JSON object's keys).
    pub fn push(&mut self, name: FieldName, value: Value) {
        self.fields.push((name, value));
    }

    /// Sets a field, replacing the value of an existing one of the same name in place.
    pub fn insert(&mut self, name: FieldName, value: Value) {
        match self.fields.iter_mut().find(|(n, _)| **n == *name) {
            Some((_, slot)) => *slot = value,
            None => self.fields.push((name, value)),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.fields
            .iter()
            .find(|(n, _)| &**n == name)
            .map(|(_, v)| v)
    }

    /// The field at `index`, in the record's order.
    pub fn entry(&self, index: usize) -> Option<(&FieldName, &Value)> {
        self.fields.get(index).map(|(n, v)| (n, v))
    }

    pub fn remove(&mut self, name: &str) -> Option<Value> {
        let index = self.fields.iter().position(|(n, _)| &**n == name)?;
        Some(self.fields.remove(index).1)
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&FieldName, &Value)> {
        self.fields.iter().map(|(n, v)| (n, v))
    }

    pub fn names(&self) -> impl Iterator<Item = &FieldName> {
        self.fields.iter().map(|(n, _)| n)
    }

    /// Mutable access to the fields, for transforms that rename or reorder them.
    pub fn fields_mut(&mut self) -> &mut Vec<(FieldName, Value)> {
        &mut self.fields
    }
}

impl FromIterator<(FieldName, Value)> for Record {
    fn from_iter<I: IntoIterator<Item = (FieldName, Value)>>(iter: I) -> Self {
        let mut record = Record::new();
        for (name, value) in iter {
            record.insert(name, value);
        }
        record
    }
}

/// Where the records of a batch came from, for path templates (`{source_stem}`) and messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The source file's path as the source names it; for a member of a zip archive, the
    /// archive's path and the member's (`in/batch.zip/orders.csv`).
    pub path: String,
}

impl Origin {
    /// The file name without directories, a `.gz`, and its last extension (`orders` for
    /// `in/orders.csv`, `in/orders.csv.gz` and `in/batch.zip/orders.csv`), as the name has it:
    /// path templates render it through `template::safe_stem` (`..`, of `...csv`,
    /// becomes `__`).
    pub fn stem(&self) -> &str {
        let name = self.path.rsplit(['/', '\\']).next().unwrap_or(&self.path);
        let name = crate::names::strip_gzip_suffix(name).unwrap_or(name);
        match name.rfind('.') {
            Some(dot) if dot > 0 => &name[..dot],
            _ => name,
        }
    }
}

/// Records moved between stages together. A batch never mixes records of two source files.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub records: Vec<Record>,
    /// The file the records were read from, when the source reads files.
    pub origin: Option<Arc<Origin>>,
    /// Records of the same stretch of input that could not be read, for the rejects file.
    pub rejects: Vec<Reject>,
    /// Each record's number (from 1) among the records read from `origin`, for the rejects a
    /// transform sets aside: set by the runner before the transforms, kept in step by
    /// [`Batch::retain`] and by transforms that add records. Empty when not known (outside
    /// the runner).
    pub numbers: Vec<u64>,
}

/// A record quarantined instead of delivered: where it was and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Reject {
    pub file: String,
    pub position: crate::error::Position,
    /// What is wrong, without the position (also the key rejects are counted by).
    pub reason: String,
    /// The record's raw text, when the format has one.
    pub raw: Option<String>,
}

impl Reject {
    /// The reject for a record a decoder could not read (`CodecError::BadRecord`).
    pub fn of_bad_record(malformed: crate::error::Malformed, raw: Option<String>) -> Self {
        Reject {
            file: malformed.file,
            position: malformed.position,
            reason: malformed.message,
            raw,
        }
    }
}

impl Batch {
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn clear(&mut self) {
        self.records.clear();
        self.origin = None;
        self.rejects.clear();
        self.numbers.clear();
    }

    /// The number of the record at `index` among those read from its origin, if known.
    pub fn number(&self, index: usize) -> Option<u64> {
        self.numbers.get(index).copied()
    }

    /// Keeps the records for which `keep` (given each record's index) says so, their
    /// numbers in step.
    pub fn retain(&mut self, mut keep: impl FnMut(usize, &Record) -> bool) {
        let keeps: Vec<bool> = self
            .records
            .iter()
            .enumerate()
            .map(|(index, record)| keep(index, record))
            .collect();
        let mut flags = keeps.iter();
        self.records
            .retain(|_| *flags.next().expect("one flag a record"));
        if self.numbers.len() == keeps.len() {
            let mut flags = keeps.iter();
            self.numbers
                .retain(|_| *flags.next().expect("one flag a number"));
        } else {
            self.numbers.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> FieldName {
        FieldName::from(s)
    }

    #[test]
    fn insert_replaces_in_place_and_keeps_order() {
        let mut r = Record::new();
        r.insert(name("a"), Value::Integer(1));
        r.insert(name("b"), Value::Integer(2));
        r.insert(name("a"), Value::Integer(3));
        let names: Vec<&str> = r.names().map(|n| &**n).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(r.get("a"), Some(&Value::Integer(3)));
    }

    #[test]
    fn text_form_of_values() {
        assert_eq!(Value::Float(3.0).to_text().unwrap(), "3.0");
        assert_eq!(Value::Integer(-7).to_text().unwrap(), "-7");
        assert_eq!(Value::Null.to_text(), None);
        let nested = Value::Array(vec![Value::Integer(1), Value::String("a\"b".into())]);
        assert_eq!(nested.to_text().unwrap(), r#"[1,"a\"b"]"#);
        let ts = chrono::DateTime::parse_from_rfc3339("2024-08-01T10:00:00+02:00").unwrap();
        assert_eq!(
            Value::Timestamp(ts).to_text().unwrap(),
            "2024-08-01T10:00:00+02:00"
        );
        let naive = chrono::NaiveDate::from_ymd_opt(2024, 8, 1).unwrap();
        assert_eq!(Value::Date(naive).to_text().unwrap(), "2024-08-01");
        let at = naive.and_hms_milli_opt(10, 30, 0, 250).unwrap();
        assert_eq!(
            Value::DateTime(at).to_text().unwrap(),
            "2024-08-01T10:30:00.250"
        );
        let whole = naive.and_hms_opt(10, 30, 0).unwrap();
        assert_eq!(
            Value::DateTime(whole).to_text().unwrap(),
            "2024-08-01T10:30:00"
        );
    }

    #[test]
    fn origin_stem_drops_directories_and_last_extension() {
        let o = |p: &str| Origin { path: p.into() };
        assert_eq!(o("in/orders.csv").stem(), "orders");
        assert_eq!(o("orders.csv.gz").stem(), "orders");
        assert_eq!(o("in/batch.zip/orders.csv").stem(), "orders");
        assert_eq!(o("/x/.hidden").stem(), ".hidden");
        assert_eq!(o("noext").stem(), "noext");
    }
}
