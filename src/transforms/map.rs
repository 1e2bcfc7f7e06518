//! `map`: replaces coded values by what they mean (`"2"` -> `"shipped"`, `DE` -> `Germany`),
//! from a table in the pipeline file or a reference CSV file read once when the run starts.
//! A value the lookup lacks is never passed on unnoticed unless the pipeline says so
//! (`on_missing`).

use std::collections::{BTreeMap, HashMap};

use schemars::JsonSchema;
use serde::Deserialize;

use super::{Refusals, Refused};
use crate::config::{Invalid, Validate};
use crate::error::StageError;
use crate::record::{Batch, FieldName, Value};
use crate::stage::{RunContext, Transform};

/// The most rows a lookup file may have.
pub const MAX_LOOKUP_ROWS: u64 = 1_000_000;
/// The largest a lookup file may be, in bytes (256 MiB).
pub const MAX_LOOKUP_BYTES: u64 = 256 << 20;

/// Replaces values by a lookup: `fields = { status = { values = { "1" = "unshipped", "2" =
/// "shipped" }, default = "unknown" }, country = { file = "ref/countries.csv", key = "code",
/// value = "name" } }`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MapConfig {
    /// Field name = its lookup. A value is looked up by its text (the integer `1` and the
    /// string `"1"` both find the key `"1"`; a float is written `1.5`, a nested value as JSON);
    /// a null is looked up as the empty key `""`. A record without the field is left as it
    /// is: `map` changes values, it adds no fields. Required.
    pub fields: BTreeMap<String, MapField>,
}

/// How one field's values are looked up: a `values` table, or a `file` with `key` and
/// `value` columns.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MapField {
    /// The lookup written out: value as text = new value (text). Either this or `file`.
    pub values: Option<BTreeMap<String, String>>,
    /// A CSV file with a header row (comma-separated, UTF-8), relative to the pipeline file's
    /// folder, read once when the run starts and held in memory: at most 1,000,000 rows and
    /// 256 MiB, else the run fails before reading any input. A key on two rows is an error
    /// naming both lines. Either this or `values`.
    pub file: Option<String>,
    /// With `file`: the column whose cells are matched against the field's value. Required
    /// with `file`.
    pub key: Option<String>,
    /// With `file`: the column whose cell becomes the new value (text). Required with `file`.
    pub value: Option<String>,
    /// The new value (text) for a value the lookup lacks. Default: none, `on_missing` decides.
    pub default: Option<String>,
    /// What a value the lookup lacks becomes, when there is no `default`: `"keep"` (stays as
    /// it is), `"null"`, or `"reject"` (the record is refused: to the rejects with
    /// `[rejects]`, else the run fails naming the record). Default `"keep"`.
    pub on_missing: Option<OnMissing>,
}

/// What a value the lookup lacks becomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OnMissing {
    /// It stays as it is.
    #[default]
    Keep,
    /// It becomes null.
    Null,
    /// The record is refused.
    Reject,
}

impl Validate for MapConfig {
    fn problems(&self) -> Vec<Invalid> {
        let mut problems = Vec::new();
        if self.fields.is_empty() {
            problems.push(Invalid::new(
                "fields",
                "`fields` is empty: name at least one field to map",
            ));
        }
        for (name, field) in &self.fields {
            let key = format!("fields.{name}");
            let mut problem = |message: &str| problems.push(Invalid::new(&key, message));
            match (&field.values, &field.file) {
                (Some(_), Some(_)) => problem(
                    "both `values` and `file` given: write the lookup in `values` or name a CSV `file`, not both",
                ),
                (None, None) => problem(
                    "no lookup: write `values = { \"1\" = \"shipped\" }`, or `file = \"ref.csv\"` with `key` and `value` columns",
                ),
                (Some(values), None) => {
                    if values.is_empty() {
                        problem("`values` is empty: write at least one `\"code\" = \"meaning\"`");
                    }
                    if field.key.is_some() || field.value.is_some() {
                        problem(
                            "`key` and `value` name the columns of a lookup `file`; with `values`, remove them",
                        );
                    }
                }
                (None, Some(_)) => {
                    if field.key.is_none() || field.value.is_none() {
                        problem(
                            "a lookup `file` needs `key` (the column matched against the field) and `value` (the column written)",
                        );
                    }
                }
            }
            if field.default.is_some() && field.on_missing.is_some() {
                problem(
                    "`default` and `on_missing` both say what a value the lookup lacks becomes: keep one",
                );
            }
        }
        problems
    }
}

/// What a value not found becomes.
enum Missing {
    Keep,
    Null,
    Reject,
    Default(Value),
}

struct FieldLookup {
    field: FieldName,
    entries: HashMap<String, Value>,
    missing: Missing,
    /// Where the lookup was written, for refusals: `values` or the file as the pipeline names it.
    described: String,
}

pub struct Map {
    lookups: Vec<FieldLookup>,
    refusals: Refusals,
}

impl Map {
    /// Reads the lookup files.
    pub fn new(config: &MapConfig, cx: &RunContext) -> Result<Self, StageError> {
        let mut lookups = Vec::with_capacity(config.fields.len());
        for (name, field) in &config.fields {
            let (entries, described) = match (&field.values, &field.file) {
                (Some(values), _) => (
                    values
                        .iter()
                        .map(|(key, value)| (key.clone(), Value::String(value.as_str().into())))
                        .collect(),
                    format!("the `values` of `{name}`"),
                ),
                (None, Some(file)) => {
                    let (key, value) = field
                        .key
                        .as_deref()
                        .zip(field.value.as_deref())
                        .expect("validated: a lookup file has key and value columns");
                    let path = cx.resolve(file);
                    (
                        read_lookup(&path, key, value, LookupBounds::DEFAULT)?,
                        file.clone(),
                    )
                }
                (None, None) => unreachable!("validated: a lookup has values or a file"),
            };
            let missing = match (&field.default, field.on_missing.unwrap_or_default()) {
                (Some(default), _) => Missing::Default(Value::String(default.as_str().into())),
                (None, OnMissing::Keep) => Missing::Keep,
                (None, OnMissing::Null) => Missing::Null,
                (None, OnMissing::Reject) => Missing::Reject,
            };
            lookups.push(FieldLookup {
                field: FieldName::from(name.as_str()),
                entries,
                missing,
                described,
            });
        }
        Ok(Map {
            lookups,
            refusals: Refusals::new(cx),
        })
    }
}

/// How much of a lookup file is held in memory at most.
#[derive(Debug, Clone, Copy)]
struct LookupBounds {
    rows: u64,
    bytes: u64,
}

impl LookupBounds {
    const DEFAULT: LookupBounds = LookupBounds {
        rows: MAX_LOOKUP_ROWS,
        bytes: MAX_LOOKUP_BYTES,
    };
}

/// The `key` column = `value` column pairs of the CSV file at `path`.
fn read_lookup(
    path: &std::path::Path,
    key: &str,
    value: &str,
    bounds: LookupBounds,
) -> Result<HashMap<String, Value>, StageError> {
    let shown = path.display();
    let file =
        std::fs::File::open(path).map_err(|e| StageError::io(&shown, "open the lookup file", e))?;
    let size = file
        .metadata()
        .map_err(|e| StageError::io(&shown, "read the lookup file", e))?
        .len();
    if size > bounds.bytes {
        return Err(StageError::Refused(format!(
            "{shown}: the lookup file has {size} bytes, more than a lookup may hold in memory ({} bytes): narrow it to the keys the pipeline needs",
            bounds.bytes
        )));
    }
    let mut reader = csv::Reader::from_reader(std::io::BufReader::new(file));
    let bad = |e: csv::Error| {
        let line = e
            .position()
            .map(|position| format!("line {}: ", position.line()))
            .unwrap_or_default();
        StageError::Refused(format!("{shown}: {line}cannot read the lookup file: {e}"))
    };
    let headers = reader.headers().map_err(bad)?.clone();
    let column = |name: &str, role: &str| {
        headers.iter().position(|h| h == name).ok_or_else(|| {
            let columns: Vec<String> = headers.iter().map(|h| format!("`{h}`")).collect();
            StageError::Refused(format!(
                "{shown}: no column `{name}` (the `{role}` column); its columns are {}",
                columns.join(", ")
            ))
        })
    };
    let (key_column, value_column) = (column(key, "key")?, column(value, "value")?);
    let mut entries: HashMap<String, Value> = HashMap::new();
    let mut lines: HashMap<String, u64> = HashMap::new();
    let mut row = csv::StringRecord::new();
    let mut rows = 0u64;
    while reader.read_record(&mut row).map_err(bad)? {
        rows += 1;
        if rows > bounds.rows {
            return Err(StageError::Refused(format!(
                "{shown}: the lookup file has more than {} rows, more than a lookup may hold in memory: narrow it to the keys the pipeline needs",
                bounds.rows
            )));
        }
        let line = row.position().map_or(0, |position| position.line());
        let cell = row[key_column].to_string();
        if let Some(first) = lines.get(&cell) {
            return Err(StageError::Refused(format!(
                "{shown}: line {line}: the key `{cell}` is also on line {first}: each key of a lookup file must be on one row"
            )));
        }
        entries.insert(cell.clone(), Value::String(row[value_column].into()));
        lines.insert(cell, line);
    }
    Ok(entries)
}

impl Transform for Map {
    fn apply(&mut self, batch: &mut Batch) -> Result<(), StageError> {
        let mut refused = Vec::new();
        'records: for (index, record) in batch.records.iter_mut().enumerate() {
            // Refused records go to the rejects as they came in: check before changing any.
            for lookup in self
                .lookups
                .iter()
                .filter(|l| matches!(l.missing, Missing::Reject))
            {
                if let Some(value) = record.get(&lookup.field) {
                    let key = value.to_text().unwrap_or_default();
                    if !lookup.entries.contains_key(key.as_ref()) {
                        let shown = match value {
                            Value::Null => "null".to_string(),
                            _ => format!("`{key}`"),
                        };
                        refused.push(Refused {
                            index,
                            field: Some(lookup.field.to_string()),
                            reason: format!(
                                "`{}`: {shown} is not a key of {}",
                                lookup.field, lookup.described
                            ),
                        });
                        continue 'records;
                    }
                }
            }
            for (name, value) in record.fields_mut() {
                let Some(lookup) = self.lookups.iter().find(|l| l.field == *name) else {
                    continue;
                };
                let key = value.to_text().unwrap_or_default();
                let found = match lookup.entries.get(key.as_ref()) {
                    Some(found) => found.clone(),
                    None => match &lookup.missing {
                        Missing::Keep | Missing::Reject => continue,
                        Missing::Null => Value::Null,
                        Missing::Default(default) => default.clone(),
                    },
                };
                *value = found;
            }
        }
        self.refusals.set_aside(batch, refused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use crate::record::{Origin, Record};
    use crate::transforms::testing::*;

    fn context(dir: &std::path::Path, quarantine: bool) -> RunContext {
        RunContext {
            quarantine,
            ..RunContext::new("p", dir)
        }
    }

    fn config(toml_text: &str) -> MapConfig {
        let config: MapConfig = toml::from_str(toml_text).unwrap();
        assert_eq!(config.problems(), []);
        config
    }

    fn batch(records: Vec<Record>) -> Batch {
        let numbers = (1..=records.len() as u64).map(|n| n * 10).collect();
        Batch {
            records,
            origin: Some(Arc::new(Origin {
                path: "in/orders.csv".into(),
            })),
            numbers,
            ..Batch::default()
        }
    }

    #[test]
    fn values_match_by_text_and_default_or_keep_decide_the_rest() {
        let config = config(
            r#"fields = { status = { values = { "1" = "unshipped", "2" = "shipped", "" = "none" }, default = "unknown" }, "größe" = { values = { "L" = "groß" } } }"#,
        );
        let mut map = Map::new(&config, &context(std::path::Path::new("."), false)).unwrap();
        let mut batch = batch(vec![
            record(&[("status", Value::Integer(1)), ("größe", text("L"))]),
            record(&[("status", text("2")), ("größe", text("XL"))]),
            record(&[("status", Value::Integer(7)), ("größe", Value::Null)]),
            record(&[("status", Value::Null)]),
            record(&[("other", Value::Integer(1))]),
            record(&[("status", Value::Float(1.0))]),
        ]);
        map.apply(&mut batch).unwrap();
        assert_eq!(
            batch.records,
            [
                record(&[("status", text("unshipped")), ("größe", text("groß"))]),
                record(&[("status", text("shipped")), ("größe", text("XL"))]),
                record(&[("status", text("unknown")), ("größe", Value::Null)]),
                record(&[("status", text("none"))]),
                record(&[("other", Value::Integer(1))]),
                record(&[("status", text("unknown"))]),
            ]
        );
    }

    #[test]
    fn on_missing_null_and_reject() {
        let config = config(
            r#"fields = { a = { values = { "x" = "X" }, on_missing = "null" }, b = { values = { "y" = "Y" }, on_missing = "reject" } }"#,
        );
        let mut map = Map::new(&config, &context(std::path::Path::new("."), true)).unwrap();
        let mut batch = batch(vec![
            record(&[("a", text("q")), ("b", text("y"))]),
            record(&[("a", text("x")), ("b", text("z"))]),
            record(&[("a", text("x")), ("b", Value::Null)]),
            record(&[("a", text("x"))]),
        ]);
        map.apply(&mut batch).unwrap();
        assert_eq!(
            batch.records,
            [
                record(&[("a", Value::Null), ("b", text("Y"))]),
                record(&[("a", text("X"))]),
            ]
        );
        assert_eq!(batch.numbers, [10, 40]);
        let rejects: Vec<String> = batch
            .rejects
            .iter()
            .map(|r| {
                format!(
                    "record {:?}, field {:?}: {} | {}",
                    r.position.record,
                    r.position.field.as_deref(),
                    r.reason,
                    r.raw.as_deref().unwrap_or("")
                )
            })
            .collect();
        assert_eq!(
            rejects,
            [
                r#"record Some(20), field Some("`b`"): `b`: `z` is not a key of the `values` of `b` | {"a":"x","b":"z"}"#,
                r#"record Some(30), field Some("`b`"): `b`: null is not a key of the `values` of `b` | {"a":"x","b":null}"#,
            ]
        );
    }

    #[test]
    fn without_rejects_a_missing_key_fails_naming_file_and_record() {
        let config =
            config(r#"fields = { b = { values = { "y" = "Y" }, on_missing = "reject" } }"#);
        let mut map = Map::new(&config, &context(std::path::Path::new("."), false)).unwrap();
        let mut batch = batch(vec![
            record(&[("b", text("y"))]),
            record(&[("b", text("ü"))]),
        ]);
        assert_eq!(
            map.apply(&mut batch).unwrap_err().to_string(),
            "in/orders.csv: record 20: `b`: `ü` is not a key of the `values` of `b`; a `[rejects]` table sets such records aside and lets the run go on"
        );
    }

    #[test]
    fn a_lookup_file_is_read_relative_to_the_pipeline() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("ref")).unwrap();
        std::fs::write(
            dir.path().join("ref/countries.csv"),
            "\u{feff}code,name,note\nDE,Deutschland,x\nCI,Côte d'Ivoire,\n",
        )
        .unwrap();
        let config = config(
            r#"fields = { country = { file = "ref/countries.csv", key = "code", value = "name", on_missing = "null" } }"#,
        );
        let mut map = Map::new(&config, &context(dir.path(), false)).unwrap();
        let mut batch = batch(vec![
            record(&[("country", text("CI"))]),
            record(&[("country", text("FR"))]),
        ]);
        map.apply(&mut batch).unwrap();
        assert_eq!(
            batch.records,
            [
                record(&[("country", text("Côte d'Ivoire"))]),
                record(&[("country", Value::Null)]),
            ]
        );
    }

    #[test]
    fn a_bad_lookup_file_fails_naming_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ref.csv");
        let read = |text: &str, bounds: LookupBounds| {
            std::fs::write(&path, text).unwrap();
            read_lookup(&path, "code", "name", bounds)
                .unwrap_err()
                .to_string()
                .replace(&path.display().to_string(), "ref.csv")
        };
        let bounds = LookupBounds::DEFAULT;
        assert_eq!(
            read("code,name\nDE,Germany\nFR,France\nDE,Deutschland\n", bounds),
            "ref.csv: line 4: the key `DE` is also on line 2: each key of a lookup file must be on one row"
        );
        assert_eq!(
            read("id,name\nDE,Germany\n", bounds),
            "ref.csv: no column `code` (the `key` column); its columns are `id`, `name`"
        );
        assert_eq!(
            read("code,name\nDE\n", bounds),
            "ref.csv: line 2: cannot read the lookup file: CSV error: record 1 (line: 2, byte: 10): found record with 1 fields, but the previous record has 2 fields"
        );
        let small = LookupBounds { rows: 2, bytes: 64 };
        assert_eq!(
            read("code,name\na,1\nb,2\nc,3\n", small),
            "ref.csv: the lookup file has more than 2 rows, more than a lookup may hold in memory: narrow it to the keys the pipeline needs"
        );
        assert_eq!(
            read(&format!("code,name\n{}\n", "x".repeat(60)), small),
            "ref.csv: the lookup file has 71 bytes, more than a lookup may hold in memory (64 bytes): narrow it to the keys the pipeline needs"
        );
    }

    #[test]
    fn a_lookup_is_values_or_a_file_with_its_columns() {
        let problems = |text: &str| -> Vec<String> {
            toml::from_str::<MapConfig>(text)
                .unwrap()
                .problems()
                .into_iter()
                .map(|p| p.to_string())
                .collect()
        };
        assert_eq!(
            problems(
                r#"fields = { a = { values = { "1" = "x" }, file = "r.csv" }, b = {}, c = { file = "r.csv", key = "k" }, d = { values = {}, key = "k" }, e = { values = { "1" = "x" }, default = "?", on_missing = "null" } }"#
            ),
            [
                "fields.a: both `values` and `file` given: write the lookup in `values` or name a CSV `file`, not both",
                "fields.b: no lookup: write `values = { \"1\" = \"shipped\" }`, or `file = \"ref.csv\"` with `key` and `value` columns",
                "fields.c: a lookup `file` needs `key` (the column matched against the field) and `value` (the column written)",
                "fields.d: `values` is empty: write at least one `\"code\" = \"meaning\"`",
                "fields.d: `key` and `value` name the columns of a lookup `file`; with `values`, remove them",
                "fields.e: `default` and `on_missing` both say what a value the lookup lacks becomes: keep one",
            ]
        );
    }
}
