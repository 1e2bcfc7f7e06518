//! `validate`: checks records against what the partner expects (a required id, a decimal
//! amount within bounds, an email that looks like one, rules across fields) and sets aside,
//! through [`Refusals`], each record that fails, with the check it failed in the reason, so a
//! run delivers only good records and says which were not (`max_rejects` bounds how many may
//! fail before the run does).
//!
//! One reject a record, for the first check it fails: the fields in alphabetical order, each
//! field's checks in the order `required`, `type`, `min`, `max`, `min_length`, `max_length`,
//! `pattern`, `one_of`; then the `rules` in order; `unique` last, so a record refused for
//! another reason does not claim its value.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use regex::Regex;
use schemars::JsonSchema;
use serde::Deserialize;

use super::expr::{self, Expected, Expression, Literal};
use super::seen::{Seen, hash_values};
use super::{Refusals, Refused};
use crate::config::{Invalid, Validate};
use crate::error::StageError;
use crate::record::{Batch, Record, Text, Value};
use crate::stage::Transform;

/// Default for `max_unique_values`.
const MAX_UNIQUE_VALUES: u64 = 10_000_000;

/// Checks records; those that fail go to the rejects with the check they failed:
/// `fields.total = { required = true, type = "decimal", min = 0 }`,
/// `rules = [{ name = "paid after ordered", expression = "paid_at >= ordered_at" }]`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateConfig {
    /// Checks per field, by field name. A null or missing value passes every check but
    /// `required`. Fields are checked in alphabetical order. Default: none.
    #[serde(default)]
    pub fields: BTreeMap<String, FieldChecks>,
    /// Conditions every record must meet, each named for the reason of its rejects, checked in
    /// order after the fields. Default: none.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// For `unique`: the most distinct values a field may have in a run. Each is kept as a
    /// 128-bit hash (about 40 bytes of memory; two values share one with odds of about
    /// n²/2¹²⁹). A run with more fails, saying so. Default 10,000,000 a field.
    pub max_unique_values: Option<u64>,
}

/// What one field's values must be. Every key is optional; give at least one.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldChecks {
    /// The field must be present and not null (an empty CSV cell is null). Default `false`.
    #[serde(default)]
    pub required: bool,
    /// What the value must be, or be text that reads as: `"integer"`, `"decimal"` (exact,
    /// `12.50`), `"number"` (also `1e3`), `"bool"` (`true`/`false`, `yes`/`no`, `y`/`n`,
    /// `t`/`f`, `1`/`0`, any case), `"date"` (`2024-08-01`), `"timestamp"` (ISO 8601, with
    /// or without an offset). Default: any.
    #[serde(rename = "type")]
    pub value_type: Option<ValueType>,
    /// The smallest value allowed: a number (compared exactly, text read as a number: `0`,
    /// `"0.01"`), or an ISO 8601 date or timestamp as text (`"2024-01-01"`). Default: none.
    pub min: Option<LiteralValue>,
    /// The largest value allowed, like `min`. Default: none.
    pub max: Option<LiteralValue>,
    /// The fewest characters the value's text may have. Default: none.
    pub min_length: Option<u64>,
    /// The most characters the value's text may have. Default: none.
    pub max_length: Option<u64>,
    /// A regular expression (Rust `regex` syntax) the whole text must match: `"[A-Z]{3}"`
    /// accepts `ABC`, not `ABCD` (write `.*` to allow more). Default: none.
    pub pattern: Option<String>,
    /// The values allowed, compared like `==` in an expression (`[1, 2]` accepts the text
    /// `"2"`). Default: any.
    pub one_of: Option<Vec<LiteralValue>>,
    /// No two records of the run may have the same value (compared by text; nulls are not
    /// compared): the second and later are refused. Bounded by `max_unique_values`.
    /// Default `false`.
    #[serde(default)]
    pub unique: bool,
}

/// The kinds of value `type` can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ValueType {
    Integer,
    Decimal,
    Number,
    Bool,
    Date,
    Timestamp,
}

/// A value written in the pipeline file: text, a number or a boolean.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum LiteralValue {
    Bool(bool),
    Integer(i64),
    Float(f64),
    Text(String),
}

impl LiteralValue {
    fn literal(&self) -> Literal {
        Literal::new(match self {
            LiteralValue::Bool(b) => Value::Bool(*b),
            LiteralValue::Integer(i) => Value::Integer(*i),
            LiteralValue::Float(f) => Value::Decimal(Text::from(crate::record::format_float(*f))),
            LiteralValue::Text(text) => Value::String(Text::from(text.as_str())),
        })
    }

    /// For `min` and `max`: text that reads as a number is one (`"1000.00"`), so values
    /// compare with it by value, not as text.
    fn bound(&self) -> Literal {
        match self {
            LiteralValue::Text(text)
                if expr::reads_as_decimal(&Value::String(Text::from(text.as_str()))) =>
            {
                Literal::new(Value::Decimal(Text::from(text.as_str())))
            }
            _ => self.literal(),
        }
    }
}

/// A named condition every record must meet.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// What the rule is called in the reason of a reject: `rule "positive total" failed`.
    /// Required.
    pub name: String,
    /// The condition, in the language of the `filter` transform's `expression`. A record for
    /// which it cannot be decided is refused with the reason why. Required.
    pub expression: String,
}

impl ValueType {
    fn describe(self) -> &'static str {
        match self {
            ValueType::Integer => "an integer",
            ValueType::Decimal => "a decimal number",
            ValueType::Number => "a number",
            ValueType::Bool => "a boolean (true or false)",
            ValueType::Date => "a date (YYYY-MM-DD)",
            ValueType::Timestamp => "a timestamp (ISO 8601)",
        }
    }

    fn accepts(self, value: &Value) -> bool {
        match self {
            ValueType::Integer => match value {
                Value::Integer(_) => true,
                Value::String(text) | Value::Decimal(text) => {
                    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
                    !digits.is_empty()
                        && digits.bytes().all(|b| b.is_ascii_digit())
                        && text.parse::<i64>().is_ok()
                }
                _ => false,
            },
            ValueType::Decimal => expr::reads_as_decimal(value),
            ValueType::Number => expr::reads_as_number(value),
            ValueType::Bool => match value {
                Value::Bool(_) => true,
                Value::String(text) => matches!(
                    text.to_ascii_lowercase().as_str(),
                    "true" | "false" | "yes" | "no" | "y" | "n" | "t" | "f" | "1" | "0"
                ),
                _ => false,
            },
            ValueType::Date => expr::reads_as_date(value),
            ValueType::Timestamp => expr::reads_as_timestamp(value),
        }
    }
}

/// `pattern` made to match the whole text.
fn whole_text_regex(pattern: &str) -> Result<Regex, regex::Error> {
    Regex::new(&format!("^(?:{pattern})$"))
}

impl Validate for ValidateConfig {
    fn problems(&self) -> Vec<Invalid> {
        let mut problems = Vec::new();
        if self.fields.is_empty() && self.rules.is_empty() {
            problems.push(Invalid::new(
                "fields",
                "nothing to check: give `fields` (e.g. `fields.id = { required = true }`) or `rules`",
            ));
        }
        for (name, checks) in &self.fields {
            let key = |check: &str| format!("fields.{name}.{check}");
            if !checks.checks_something() {
                problems.push(Invalid::new(
                    format!("fields.{name}"),
                    format!("`fields.{name}` checks nothing: give it `required`, `type`, `min`, `max`, `min_length`, `max_length`, `pattern`, `one_of` or `unique`"),
                ));
            }
            for (check, bound) in [("min", &checks.min), ("max", &checks.max)] {
                if let Some(bound) = bound {
                    let literal = bound.bound();
                    if !literal.is_number() && !literal.is_time() {
                        problems.push(Invalid::new(
                            key(check),
                            format!("`{}` = {} is neither a number nor an ISO 8601 date or timestamp (e.g. \"2024-01-01\")", key(check), literal.text()),
                        ));
                    }
                }
            }
            if let (Some(min), Some(max)) = (&checks.min, &checks.max)
                && let Some(Ok(Ordering::Greater)) = min_over_max(min, max)
            {
                problems.push(Invalid::new(
                    key("min"),
                    format!(
                        "`{}` is more than `{}`: no value could pass",
                        key("min"),
                        key("max")
                    ),
                ));
            }
            if let (Some(min), Some(max)) = (checks.min_length, checks.max_length)
                && min > max
            {
                problems.push(Invalid::new(
                    key("min_length"),
                    format!(
                        "`{}` = {min} is more than `{}` = {max}: no value could pass",
                        key("min_length"),
                        key("max_length")
                    ),
                ));
            }
            if let Some(pattern) = &checks.pattern
                && let Err(e) = whole_text_regex(pattern)
            {
                problems.push(Invalid::new(
                    key("pattern"),
                    format!(
                        "`{}`: `{pattern}` is not a valid regular expression: {}",
                        key("pattern"),
                        expr::regex_problem(&e)
                    ),
                ));
            }
            if checks.one_of.as_ref().is_some_and(Vec::is_empty) {
                problems.push(Invalid::new(
                    key("one_of"),
                    format!("`{}` is empty: list the values allowed", key("one_of")),
                ));
            }
        }
        let mut names = std::collections::HashSet::new();
        for (index, rule) in self.rules.iter().enumerate() {
            if rule.name.trim().is_empty() {
                problems.push(Invalid::new(
                    format!("rules[{index}].name"),
                    format!(
                        "`rules[{index}].name` is empty: name the rule for its rejects' reason"
                    ),
                ));
            } else if !names.insert(&rule.name) {
                problems.push(Invalid::new(
                    format!("rules[{index}].name"),
                    format!(
                        "two rules are named \"{}\": name each for what it checks",
                        rule.name
                    ),
                ));
            }
            if let Err(e) = Expression::parse(&rule.expression) {
                problems.push(Invalid::new(
                    format!("rules[{index}].expression"),
                    format!("`rules[{index}].expression`: {e}"),
                ));
            }
        }
        if self.max_unique_values == Some(0) {
            problems.push(Invalid::new(
                "max_unique_values",
                "`max_unique_values` = 0 lets no value through: leave it out for the default",
            ));
        }
        problems
    }
}

fn min_over_max(min: &LiteralValue, max: &LiteralValue) -> Option<Result<Ordering, Expected>> {
    expr::compare_with_literal(min.bound().value(), &max.bound())
}

impl FieldChecks {
    fn checks_something(&self) -> bool {
        self.required
            || self.value_type.is_some()
            || self.min.is_some()
            || self.max.is_some()
            || self.min_length.is_some()
            || self.max_length.is_some()
            || self.pattern.is_some()
            || self.one_of.is_some()
            || self.unique
    }
}

/// A field's checks, ready to run.
struct FieldRules {
    name: String,
    required: bool,
    value_type: Option<ValueType>,
    min: Option<Literal>,
    max: Option<Literal>,
    min_length: Option<u64>,
    max_length: Option<u64>,
    pattern: Option<(String, Regex)>,
    one_of: Vec<Literal>,
    unique: Option<Seen>,
}

struct Rule {
    name: String,
    expression: Expression,
}

pub struct Validator {
    fields: Vec<FieldRules>,
    rules: Vec<Rule>,
    refusals: Refusals,
    max_unique_values: u64,
    /// The unique fields' hashes of the record being checked, reused.
    hashes: Vec<(usize, u128)>,
}

impl Validator {
    pub fn new(config: &ValidateConfig, refusals: Refusals) -> Result<Self, StageError> {
        let max_unique_values = config.max_unique_values.unwrap_or(MAX_UNIQUE_VALUES);
        let mut fields = Vec::new();
        for (name, checks) in &config.fields {
            let pattern = match &checks.pattern {
                Some(pattern) => Some((
                    pattern.clone(),
                    whole_text_regex(pattern).map_err(|e| {
                        StageError::Refused(format!(
                            "`fields.{name}.pattern`: {}",
                            expr::regex_problem(&e)
                        ))
                    })?,
                )),
                None => None,
            };
            fields.push(FieldRules {
                name: name.clone(),
                required: checks.required,
                value_type: checks.value_type,
                min: checks.min.as_ref().map(LiteralValue::bound),
                max: checks.max.as_ref().map(LiteralValue::bound),
                min_length: checks.min_length,
                max_length: checks.max_length,
                pattern,
                one_of: checks
                    .one_of
                    .iter()
                    .flatten()
                    .map(LiteralValue::literal)
                    .collect(),
                unique: checks.unique.then(|| Seen::new(max_unique_values)),
            });
        }
        let mut rules = Vec::new();
        for (index, rule) in config.rules.iter().enumerate() {
            rules.push(Rule {
                name: rule.name.clone(),
                expression: Expression::parse(&rule.expression).map_err(|e| {
                    StageError::Refused(format!("`rules[{index}].expression`: {e}"))
                })?,
            });
        }
        Ok(Validator {
            fields,
            rules,
            refusals,
            max_unique_values,
            hashes: Vec::new(),
        })
    }

    /// The first check `record` fails, if any; `unique` values are claimed when it passes.
    fn check(&mut self, record: &Record) -> Result<Option<(Option<String>, String)>, Full> {
        for rules in &self.fields {
            if let Some(reason) = rules.check(record.get(&rules.name)) {
                return Ok(Some((Some(rules.name.clone()), reason)));
            }
        }
        for rule in &self.rules {
            match rule.expression.is_true(record) {
                Ok(true) => {}
                Ok(false) => return Ok(Some((None, format!("rule \"{}\" failed", rule.name)))),
                Err(refusal) => {
                    return Ok(Some((
                        refusal.field,
                        format!("rule \"{}\": {}", rule.name, refusal.reason),
                    )));
                }
            }
        }
        self.hashes.clear();
        for (index, rules) in self.fields.iter().enumerate() {
            let (Some(seen), Some(value)) = (&rules.unique, record.get(&rules.name)) else {
                continue;
            };
            if *value == Value::Null {
                continue;
            }
            let hash = hash_values([value]);
            if seen.contains(hash) {
                return Ok(Some((
                    Some(rules.name.clone()),
                    format!(
                        "`{}`: `{}` is not unique: an earlier record had it",
                        rules.name,
                        value.to_text().unwrap_or_default()
                    ),
                )));
            }
            self.hashes.push((index, hash));
        }
        for &(index, hash) in &self.hashes {
            let seen = self.fields[index].unique.as_mut().expect("a unique field");
            seen.insert(hash).map_err(|_| Full(index))?;
        }
        Ok(None)
    }
}

/// A unique field (by index) has more values than `max_unique_values`.
struct Full(usize);

impl FieldRules {
    /// Why `value` fails this field's checks, if it does.
    fn check(&self, value: Option<&Value>) -> Option<String> {
        let name = &self.name;
        let value = match value {
            None if self.required => return Some(format!("`{name}`: required, but missing")),
            Some(Value::Null) if self.required => {
                return Some(format!("`{name}`: required, but null"));
            }
            None | Some(Value::Null) => return None,
            Some(value) => value,
        };
        let shown = || value.to_text().unwrap_or_default().into_owned();
        if let Some(value_type) = self.value_type
            && !value_type.accepts(value)
        {
            return Some(format!(
                "`{name}`: `{}` is not {}",
                shown(),
                value_type.describe()
            ));
        }
        for (bound, is_min) in [(&self.min, true), (&self.max, false)] {
            let Some(bound) = bound else { continue };
            let word = if is_min { "min" } else { "max" };
            match expr::compare_with_literal(value, bound) {
                None => {}
                Some(Ok(order)) => {
                    let out = if is_min {
                        order == Ordering::Less
                    } else {
                        order == Ordering::Greater
                    };
                    if out {
                        let side = match (bound.is_time(), is_min) {
                            (true, true) => "before",
                            (true, false) => "after",
                            (false, true) => "less than",
                            (false, false) => "more than",
                        };
                        return Some(format!(
                            "`{name}`: `{}` is {side} {word} {}",
                            shown(),
                            bound.text()
                        ));
                    }
                }
                Some(Err(expected)) => {
                    let what = match expected {
                        Expected::Time => "a date or timestamp (ISO 8601)",
                        _ => "a number",
                    };
                    return Some(format!(
                        "`{name}`: `{}` is not {what}, for {word} {}",
                        shown(),
                        bound.text()
                    ));
                }
            }
        }
        if self.min_length.is_some() || self.max_length.is_some() || self.pattern.is_some() {
            let text = value.to_text().unwrap_or_default();
            let length = text.chars().count() as u64;
            if let Some(min) = self.min_length
                && length < min
            {
                return Some(format!(
                    "`{name}`: {length} characters, fewer than min_length {min}"
                ));
            }
            if let Some(max) = self.max_length
                && length > max
            {
                return Some(format!(
                    "`{name}`: {length} characters, more than max_length {max}"
                ));
            }
            if let Some((pattern, regex)) = &self.pattern
                && !regex.is_match(&text)
            {
                return Some(format!("`{name}`: does not match `{pattern}`"));
            }
        }
        if !self.one_of.is_empty()
            && !self.one_of.iter().any(|allowed| {
                expr::compare_with_literal(value, allowed) == Some(Ok(Ordering::Equal))
            })
        {
            let allowed: Vec<&str> = self.one_of.iter().map(Literal::text).collect();
            return Some(format!(
                "`{name}`: `{}` is not one of {}",
                shown(),
                allowed.join(", ")
            ));
        }
        None
    }
}

impl Transform for Validator {
    fn apply(&mut self, batch: &mut Batch) -> Result<(), StageError> {
        let mut refused = Vec::new();
        for index in 0..batch.len() {
            match self.check(&batch.records[index]) {
                Ok(None) => {}
                Ok(Some((field, reason))) => refused.push(Refused {
                    index,
                    field,
                    reason,
                }),
                Err(Full(field)) => {
                    let file = batch.origin.as_ref().map_or("", |o| o.path.as_str());
                    let at = batch
                        .number(index)
                        .map_or_else(String::new, |n| format!("record {n}: "));
                    return Err(StageError::Refused(format!(
                        "{file}{}{at}more than max_unique_values = {} distinct values of `{}`; raise `max_unique_values` (a value takes about 40 bytes of memory)",
                        if file.is_empty() { "" } else { ": " },
                        self.max_unique_values,
                        self.fields[field].name
                    )));
                }
            }
        }
        self.refusals.set_aside(batch, refused)
    }
}

#[cfg(test)]
mod tests;
