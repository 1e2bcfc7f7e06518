use crate::record::FieldName;

use super::*;

fn text(s: &str) -> Value {
    Value::String(s.into())
}

fn record(fields: &[(&str, Value)]) -> Record {
    let mut record = Record::new();
    for (name, value) in fields {
        record.push(FieldName::from(*name), value.clone());
    }
    record
}

fn eval(expression: &str, record: &Record) -> Result<bool, Refusal> {
    Expression::parse(expression)
        .unwrap_or_else(|e| panic!("{expression}: {e}"))
        .is_true(record)
}

fn is(expression: &str, record: &Record) -> bool {
    eval(expression, record).unwrap_or_else(|e| panic!("{expression}: {}", e.reason))
}

fn parse_error(expression: &str) -> String {
    Expression::parse(expression).unwrap_err().to_string()
}

fn order() -> Record {
    record(&[
        ("status", text("completed")),
        ("amount", text("150")),
        ("total", Value::Decimal("100.10".into())),
        ("count", Value::Integer(3)),
        ("ratio", Value::Float(0.5)),
        ("paid", Value::Bool(true)),
        ("flag", text("false")),
        ("note", Value::Null),
        ("name", text("Zoë Ünal")),
        ("customer name", text("ACME")),
        ("customer.city", text("Lyon")),
        ("address", Value::Object(record(&[("zip", text("69001"))]))),
        ("tags", Value::Array(vec![text("a"), text("b")])),
    ])
}

#[test]
fn precedence_and_binds_tighter_than_or_and_not_covers_a_comparison() {
    let r = order();
    // `||` is looser than `&&`: true || (false && false).
    assert!(is(
        r#"status == "completed" || count == 9 && paid == false"#,
        &r
    ));
    assert!(!is(
        r#"(status == "completed" || count == 9) && paid == false"#,
        &r
    ));
    // `!` covers the comparison after it.
    assert!(is(r#"!status == "open""#, &r));
    assert!(is(r#"!(count > 5) && !is_null(status)"#, &r));
    assert!(is("paid && !flag", &r));
}

#[test]
fn every_comparison_operator_on_numbers() {
    let r = order();
    for (expression, expected) in [
        ("count == 3", true),
        ("count != 3", false),
        ("count < 4", true),
        ("count <= 3", true),
        ("count > 3", false),
        ("count >= 3", true),
        ("count > -1", true),
        ("ratio < 1", true),
        ("ratio == 0.5", true),
    ] {
        assert_eq!(is(expression, &r), expected, "{expression}");
    }
}

#[test]
fn decimals_compare_exactly() {
    let r = order();
    assert!(is("total == 100.1", &r));
    assert!(is("total > 100.09999999999999999999", &r));
    assert!(is("total < 100.100000000000000000001", &r));
    let big = record(&[(
        "v",
        Value::Decimal("123456789012345678901234567890.5".into()),
    )]);
    assert!(is("v > 123456789012345678901234567890.4999", &big));
    assert!(is("v < 123456789012345678901234567891", &big));
    let negative = record(&[("v", text("-0.50"))]);
    assert!(is("v < -0.4 && v > -0.6 && v == -0.5", &negative));
    assert!(is("v < 0", &negative));
    let zero = record(&[("v", text("-0.0"))]);
    assert!(is("v == 0", &zero));
}

#[test]
fn text_that_reads_as_a_number_compares_with_numbers() {
    let r = order();
    assert!(is("amount > 100", &r));
    assert!(is("amount == 150.00", &r));
    assert!(is(r#"count == "3""#, &r));
    // Text with text compares as text.
    assert!(!is(r#"amount == "150.0""#, &r));
    assert!(is(r#"amount < "9""#, &r));
}

#[test]
fn text_that_is_not_a_number_refuses_an_order_but_is_unequal() {
    let r = record(&[("amount", text("n/a"))]);
    assert_eq!(
        eval("amount > 100", &r),
        Err(Refusal {
            field: Some("amount".into()),
            reason: "`amount`: `n/a` is not a number, in `amount > 100`".into()
        })
    );
    assert_eq!(
        eval("100 <= amount", &r).unwrap_err().reason,
        "`amount`: `n/a` is not a number, in `100 <= amount`"
    );
    assert!(!is("amount == 100", &r));
    assert!(is("amount != 100", &r));
}

#[test]
fn null_compares_false_except_by_null_tests() {
    let r = order();
    assert!(!is(r#"note == "x""#, &r));
    assert!(!is(r#"note != "x""#, &r));
    assert!(!is("note > 1", &r));
    assert!(!is(r#"note in ["x"]"#, &r));
    assert!(!is(r#"note not in ["x"]"#, &r));
    assert!(is("note == null", &r));
    assert!(is("null == note", &r));
    assert!(!is("note != null", &r));
    assert!(is("is_null(note)", &r));
    assert!(!is("is_null(status)", &r));
    assert!(!is(r#"contains(note, "x")"#, &r));
    assert!(is("!(note > 1)", &r), "`!` of a false comparison is true");
}

#[test]
fn a_missing_field_refuses_except_in_null_tests() {
    let r = order();
    assert!(is("stauts == null", &r));
    assert!(is("is_null(stauts)", &r));
    assert!(is(r#"stauts != null && stauts == "x" || true"#, &r));
    assert_eq!(
        eval(r#"stauts == "completed""#, &r),
        Err(Refusal {
            field: Some("stauts".into()),
            reason: "`stauts`: the record has no such field (test `stauts != null` first where it may be absent)".into()
        })
    );
}

#[test]
fn dates_and_timestamps_compare_with_iso_text() {
    let day = |s: &str| Value::Date(NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap());
    let at = |s: &str| Value::Timestamp(DateTime::parse_from_rfc3339(s).unwrap());
    let r = record(&[
        ("day", day("2024-03-05")),
        ("at", at("2024-01-01T00:30:00+01:00")),
        ("text_day", text("2024-03-05")),
        (
            "naive",
            Value::DateTime(
                NaiveDateTime::parse_from_str("2024-03-05T10:00:00", "%Y-%m-%dT%H:%M:%S").unwrap(),
            ),
        ),
    ]);
    assert!(is(r#"day >= "2024-01-01""#, &r));
    assert!(is(r#"day == "2024-03-05""#, &r));
    assert!(is(r#"day < "2024-03-05T00:00:01""#, &r));
    // Without an offset on one side: as written (00:30 on the 1st).
    assert!(is(r#"at >= "2024-01-01""#, &r));
    // With offsets on both: instants (23:30 UTC on Dec 31st).
    assert!(is(r#"at < "2024-01-01T00:00:00Z""#, &r));
    assert!(is(r#"text_day > "2024-03-04""#, &r));
    assert!(is(
        r#"naive > "2024-03-05T09:59:59" && naive < "2024-03-05 10:00:01""#,
        &r
    ));
    assert_eq!(
        eval(r#"day > "soon""#, &r).unwrap_err().reason,
        "`soon` is not a date or timestamp (ISO 8601), in `day > \"soon\"`"
    );
}

#[test]
fn instants_compare_across_a_daylight_saving_change() {
    // Paris, 27 October 2024: 02:30+02:00 (summer) comes before 02:15+01:00 (winter).
    let at = |s: &str| Value::Timestamp(DateTime::parse_from_rfc3339(s).unwrap());
    let summer = record(&[("at", at("2024-10-27T02:30:00+02:00"))]);
    assert!(is(r#"at < "2024-10-27T02:15:00+01:00""#, &summer));
    assert!(is(r#"at == "2024-10-27T00:30:00Z""#, &summer));
    let winter = record(&[("at", text("2024-10-27T02:15:00+01:00"))]);
    assert!(is(r#"at > "2024-10-27T02:30:00+02:00""#, &winter));
}

#[test]
fn in_and_not_in() {
    let r = order();
    assert!(is(r#"status in ["open", "completed"]"#, &r));
    assert!(!is(r#"status not in ["open", "completed"]"#, &r));
    assert!(is("count in [1, 2, 3]", &r));
    assert!(is("amount in [150]", &r));
    assert!(is("count not in []", &r));
}

#[test]
fn functions() {
    let r = order();
    assert!(is(r#"contains(status, "plet")"#, &r));
    assert!(is(r#"starts_with(status, "comp")"#, &r));
    assert!(is(r#"ends_with(status, "ted")"#, &r));
    assert!(!is(r#"ends_with(status, "comp")"#, &r));
    assert!(is(r#"matches(status, "^c.m")"#, &r));
    assert!(is(r#"matches(status, "let")"#, &r), "found anywhere");
    assert!(is("len(status) == 9", &r));
    assert!(is("len(name) == 8", &r), "characters, not bytes");
    assert!(is("len(tags) == 2 && len(address) == 1", &r));
    assert!(is(r#"lower(`customer name`) == "acme""#, &r));
    assert!(is(r#"upper(name) == "ZOË ÜNAL""#, &r));
    assert!(is("is_null(len(note))", &r));
    assert!(is(r#"contains(count, "3")"#, &r), "numbers by their text");
}

#[test]
fn fields_by_name_backticks_and_nested_paths() {
    let r = order();
    assert!(is(r#"`customer name` == "ACME""#, &r));
    assert!(
        is(r#"customer.city == "Lyon""#, &r),
        "a flattened name first"
    );
    assert!(is(r#"address.zip == "69001""#, &r), "else inside an object");
    assert!(is(r#"name == "Zo\u{eb} \u{dc}nal""#, &r));
    assert!(is(r#""a\"b\\" == "a\"b\\""#, &r));
}

#[test]
fn booleans_and_bool_text() {
    let r = order();
    assert!(is("paid == true && flag == false", &r));
    assert!(is("paid", &r));
    assert!(!is("flag", &r));
    assert_eq!(
        eval("status", &r).unwrap_err().reason,
        "`status`: `completed` is not true or false"
    );
}

#[test]
fn a_field_is_found_where_it_was_in_the_last_record() {
    let expression = Expression::parse(r#"b == "x""#).unwrap();
    let first = record(&[("a", text("1")), ("b", text("x"))]);
    let moved = record(&[("b", text("x")), ("a", text("1"))]);
    let other = record(&[("b", text("y"))]);
    assert!(expression.is_true(&first).unwrap());
    assert!(expression.is_true(&moved).unwrap());
    assert!(!expression.is_true(&other).unwrap());
    assert!(expression.is_true(&first).unwrap());
}

#[test]
fn parse_errors_point_at_the_column() {
    for (expression, message) in [
        (
            r#"status == "x" && "#,
            "column 18: expected a value after `&&`",
        ),
        (
            "",
            "column 1: the expression is empty: write a condition such as `status == \"shipped\"`",
        ),
        (
            "status = 1",
            "column 8: `=` is not an operator: write `==` to compare",
        ),
        (
            "a & b",
            "column 3: `&` is not an operator: write `&&` for \"and\"",
        ),
        (
            "a == 'x'",
            "column 6: text goes in double quotes: write \"...\", not '...'",
        ),
        (
            r#"a == "open"#,
            "column 6: this string is not closed: end it with `\"`",
        ),
        (
            r#"a == "\q""#,
            "column 7: unknown escape `\\q`: the escapes are \\\" \\\\ \\n \\t \\r \\u{...}",
        ),
        (
            "(a == 1",
            "column 8: expected `)` to close the `(` at column 1, found the end",
        ),
        ("a == 1)", "column 7: this `)` has no `(` before it"),
        ("a == 1 and b == 2", "column 8: write `&&` for \"and\""),
        (
            "a == 1 b",
            "column 8: expected an operator (`&&`, `||`, `==`, `<`, `in`, ...), found `b`",
        ),
        (
            "1 < a < 5",
            "column 7: comparisons do not chain: join them with `&&`, e.g. `a < b && b < c`",
        ),
        (
            "lenn(a) > 1",
            "column 1: unknown function `lenn`: did you mean `len`?",
        ),
        (
            "contains(a)",
            "column 1: `contains` takes 2 arguments, not 1",
        ),
        (
            "matches(a, b)",
            "column 12: `matches` takes its pattern as a string literal, e.g. `matches(code, \"^[A-Z]{3}$\")`",
        ),
        (
            r#"matches(a, "[")"#,
            "column 12: \"[\" is not a valid regular expression: unclosed character class",
        ),
        (
            "a in b",
            "column 6: expected a list after `in`, e.g. `[\"a\", \"b\"]`, found `b`",
        ),
        (
            "a in [b]",
            "column 7: a list holds only literals: text in quotes, numbers, true or false",
        ),
        (
            "a in [null]",
            "column 7: null is in no list: test it with `is_null(...)` or `== null`",
        ),
        (
            "a not [1]",
            "column 3: expected `in` after `not` (write `!` before a condition to negate it)",
        ),
        (
            "a > null",
            "column 1: null has no order: `a > null` compares with null only by `==` or `!=`",
        ),
        (
            "len(a)",
            "column 1: `len(a)` is a value, not a condition: compare it, e.g. `len(a) == ...`",
        ),
        (
            "a && 5",
            "column 6: `5` is a value, not a condition: compare it, e.g. `5 == ...`",
        ),
        (
            "(a == 1) == true",
            "column 1: `(a == 1)` is a condition, not a value: join conditions with `&&` or `||`",
        ),
        (
            "a == -x",
            "column 6: `-` goes only before a number, as in `-5`",
        ),
        (
            "a == 1.",
            "column 7: expected digits after the decimal point",
        ),
        (
            "a == `b",
            "column 6: this `` ` `` is not closed: a field name in backticks ends with another",
        ),
        ("a == 1 #", "column 8: unexpected `#`"),
    ] {
        assert_eq!(parse_error(expression), message, "{expression}");
    }
}
