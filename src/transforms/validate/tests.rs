use std::sync::Arc;

use super::*;
use crate::record::{FieldName, Origin};
use crate::stage::RunContext;

fn text(s: &str) -> Value {
    Value::String(s.into())
}

fn config(toml_text: &str) -> ValidateConfig {
    toml::from_str(toml_text).unwrap()
}

fn validator(config: &ValidateConfig) -> Validator {
    assert_eq!(config.problems(), []);
    let mut cx = RunContext::new("p", std::path::Path::new("."));
    cx.quarantine = true;
    Validator::new(config, Refusals::new(&cx)).unwrap()
}

/// The reasons `config` refuses each record for (`None`: passed), in order.
fn reasons(config: &ValidateConfig, rows: Vec<Vec<(&str, Value)>>) -> Vec<Option<String>> {
    let records: Vec<Record> = rows
        .into_iter()
        .map(|fields| {
            let mut record = Record::new();
            for (name, value) in fields {
                record.push(FieldName::from(name), value);
            }
            record
        })
        .collect();
    let count = records.len();
    let mut batch = Batch {
        numbers: (1..=count as u64).collect(),
        records,
        origin: Some(Arc::new(Origin {
            path: "in/a.csv".into(),
        })),
        ..Batch::default()
    };
    validator(config).apply(&mut batch).unwrap();
    let mut out = vec![None; count];
    for reject in &batch.rejects {
        out[reject.position.record.unwrap() as usize - 1] = Some(reject.reason.clone());
    }
    assert_eq!(batch.numbers.len() + batch.rejects.len(), count);
    out
}

fn one(config: &ValidateConfig, value: Value) -> Option<String> {
    reasons(config, vec![vec![("v", value)]]).remove(0)
}

#[test]
fn required_refuses_missing_and_null_and_other_checks_pass_null() {
    let c = config("fields.v = { required = true }\nfields.w = { type = \"integer\" }");
    assert_eq!(
        reasons(
            &c,
            vec![
                vec![("v", text("x"))],
                vec![("w", text("1"))],
                vec![("v", Value::Null), ("w", Value::Null)],
            ]
        ),
        [
            None,
            Some("`v`: required, but missing".into()),
            Some("`v`: required, but null".into()),
        ]
    );
}

#[test]
fn types_accept_values_and_text_that_reads_as_them() {
    for (kind, good, bad, described) in [
        (
            "integer",
            vec![text("-12"), Value::Integer(3)],
            text("1.5"),
            "an integer",
        ),
        (
            "decimal",
            vec![text("12.50"), Value::Decimal("1.2".into())],
            text("12,50"),
            "a decimal number",
        ),
        (
            "number",
            vec![text("1e3"), Value::Float(0.5)],
            text("ten"),
            "a number",
        ),
        (
            "bool",
            vec![text("Yes"), Value::Bool(false)],
            text("maybe"),
            "a boolean (true or false)",
        ),
        (
            "date",
            vec![text("2024-02-29")],
            text("2023-02-29"),
            "a date (YYYY-MM-DD)",
        ),
        (
            "timestamp",
            vec![
                text("2024-08-01T10:30:00+02:00"),
                text("2024-08-01 10:30:00"),
            ],
            text("2024-08-01"),
            "a timestamp (ISO 8601)",
        ),
    ] {
        let c = config(&format!("fields.v = {{ type = \"{kind}\" }}"));
        for value in good {
            assert_eq!(one(&c, value.clone()), None, "{kind}: {value:?}");
        }
        assert_eq!(
            one(&c, bad.clone()),
            Some(format!(
                "`v`: `{}` is not {described}",
                bad.to_text().unwrap()
            )),
            "{kind}"
        );
    }
}

#[test]
fn min_and_max_compare_numbers_exactly_and_dates_in_time() {
    let c = config("fields.v = { min = 0, max = \"1000.00\" }");
    assert_eq!(one(&c, text("1000.000")), None);
    assert_eq!(one(&c, text("0")), None);
    assert_eq!(
        one(&c, text("1000.0001")),
        Some("`v`: `1000.0001` is more than max 1000.00".into())
    );
    assert_eq!(
        one(&c, Value::Integer(-1)),
        Some("`v`: `-1` is less than min 0".into())
    );
    assert_eq!(
        one(&c, text("lots")),
        Some("`v`: `lots` is not a number, for min 0".into())
    );
    let c = config("fields.v = { min = 0.1 }");
    assert_eq!(one(&c, text("0.10")), None);
    assert_eq!(
        one(&c, text("0.0999999999999999999")),
        Some("`v`: `0.0999999999999999999` is less than min 0.1".into())
    );
    let c = config("fields.v = { min = \"2024-01-01\", max = \"2024-12-31T23:59:59\" }");
    assert_eq!(one(&c, text("2024-06-01")), None);
    assert_eq!(
        one(&c, text("2023-12-31T23:00:00")),
        Some("`v`: `2023-12-31T23:00:00` is before min \"2024-01-01\"".into())
    );
    assert_eq!(
        one(
            &c,
            Value::Timestamp(
                DateTimeOffset::parse_from_rfc3339("2025-01-01T00:30:00+01:00").unwrap()
            )
        ),
        Some("`v`: `2025-01-01T00:30:00+01:00` is after max \"2024-12-31T23:59:59\"".into())
    );
}

type DateTimeOffset = chrono::DateTime<chrono::FixedOffset>;

#[test]
fn lengths_count_characters_and_patterns_match_the_whole_text() {
    let c = config("fields.v = { min_length = 2, max_length = 4, pattern = \"[A-Zÿ]+\" }");
    assert_eq!(one(&c, text("ÿÿÿÿ")), None);
    assert_eq!(
        one(&c, text("A")),
        Some("`v`: 1 characters, fewer than min_length 2".into())
    );
    assert_eq!(
        one(&c, text("ABCDE")),
        Some("`v`: 5 characters, more than max_length 4".into())
    );
    assert_eq!(
        one(&c, text("AB1")),
        Some("`v`: does not match `[A-Zÿ]+`".into())
    );
}

#[test]
fn one_of_compares_like_equality() {
    let c = config("fields.v = { one_of = [\"open\", 2, true] }");
    assert_eq!(one(&c, text("open")), None);
    assert_eq!(one(&c, text("2.0")), None);
    assert_eq!(one(&c, Value::Bool(true)), None);
    assert_eq!(
        one(&c, text("Open")),
        Some("`v`: `Open` is not one of \"open\", 2, true".into())
    );
}

#[test]
fn unique_refuses_repeats_but_not_values_of_refused_records() {
    let c = config(
        "fields.id = { unique = true }\nrules = [{ name = \"positive total\", expression = \"total > 0\" }]",
    );
    let row = |id: &str, total: &str| vec![("id", text(id)), ("total", text(total))];
    assert_eq!(
        reasons(
            &c,
            vec![
                row("A", "-1"),
                row("A", "5"),
                row("A", "6"),
                row("B", "x"),
                vec![("id", Value::Null), ("total", text("1"))],
                vec![("id", Value::Null), ("total", text("1"))],
            ]
        ),
        [
            Some("rule \"positive total\" failed".into()),
            None,
            Some("`id`: `A` is not unique: an earlier record had it".into()),
            Some("rule \"positive total\": `total`: `x` is not a number, in `total > 0`".into()),
            None,
            None,
        ]
    );
}

#[test]
fn the_first_failing_check_is_the_reason() {
    let c = config("fields.a = { required = true }\nfields.b = { type = \"integer\", min = 5 }");
    assert_eq!(
        reasons(
            &c,
            vec![
                vec![("b", text("x"))],
                vec![("a", text("1")), ("b", text("3"))]
            ]
        ),
        [
            Some("`a`: required, but missing".into()),
            Some("`b`: `3` is less than min 5".into()),
        ]
    );
}

#[test]
fn unique_values_are_bounded() {
    let c = config("max_unique_values = 1\nfields.id = { unique = true }");
    let mut batch = Batch {
        records: ["1", "2"]
            .iter()
            .map(|id| [(FieldName::from("id"), text(id))].into_iter().collect())
            .collect(),
        numbers: vec![1, 2],
        origin: Some(Arc::new(Origin {
            path: "in/a.csv".into(),
        })),
        ..Batch::default()
    };
    assert_eq!(
        validator(&c).apply(&mut batch).unwrap_err().to_string(),
        "in/a.csv: record 2: more than max_unique_values = 1 distinct values of `id`; raise `max_unique_values` (a value takes about 40 bytes of memory)"
    );
}

#[test]
fn problems_say_what_to_write() {
    let messages = |toml_text: &str| -> Vec<String> {
        config(toml_text)
            .problems()
            .into_iter()
            .map(|p| p.to_string())
            .collect()
    };
    assert_eq!(
        messages(""),
        [
            "fields: nothing to check: give `fields` (e.g. `fields.id = { required = true }`) or `rules`"
        ]
    );
    assert_eq!(
        messages("fields.a = {}"),
        [
            "fields.a: `fields.a` checks nothing: give it `required`, `type`, `min`, `max`, `min_length`, `max_length`, `pattern`, `one_of` or `unique`"
        ]
    );
    assert_eq!(
        messages("fields.a = { min = 10, max = \"9.5\", pattern = \"(\" }"),
        [
            "fields.a.min: `fields.a.min` is more than `fields.a.max`: no value could pass",
            "fields.a.pattern: `fields.a.pattern`: `(` is not a valid regular expression: unclosed group",
        ]
    );
    assert_eq!(
        messages("fields.a = { min = \"soon\", min_length = 3, max_length = 2, one_of = [] }"),
        [
            "fields.a.min: `fields.a.min` = \"soon\" is neither a number nor an ISO 8601 date or timestamp (e.g. \"2024-01-01\")",
            "fields.a.min_length: `fields.a.min_length` = 3 is more than `fields.a.max_length` = 2: no value could pass",
            "fields.a.one_of: `fields.a.one_of` is empty: list the values allowed",
        ]
    );
    assert_eq!(
        messages(
            "rules = [{ name = \"r\", expression = \"a ==\" }, { name = \"r\", expression = \"b\" }]"
        ),
        [
            "rules[0].expression: `rules[0].expression`: column 5: expected a value after `==`",
            "rules[1].name: two rules are named \"r\": name each for what it checks",
        ]
    );
}
