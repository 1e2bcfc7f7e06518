//! `filter`: keeps the records that meet a condition written in the expression language of
//! [`super::expr`], so a pipeline delivers only what its partner wants. A record whose
//! condition cannot be decided (text that is not a number ordered against one, a field it
//! lacks) is refused, not dropped: dropping it would lose it in silence.

use schemars::JsonSchema;
use serde::Deserialize;

use super::expr::Expression;
use super::{Refusals, Refused};
use crate::config::{Invalid, Validate};
use crate::error::StageError;
use crate::record::Batch;
use crate::stage::Transform;

/// Keeps the records that meet a condition: `expression = 'status == "completed" && amount >
/// 100'`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// The condition a record must meet to be kept. Fields by name (`status`,
    /// `customer.name`, or `` `any name` `` in backticks); literals `"text"` (escapes `\"`
    /// `\\` `\n` `\t` `\r` `\u{e9}`), numbers (`100`, `-2.50`: exact), `true`, `false`,
    /// `null`; operators `==` `!=` `<` `<=` `>` `>=`, `&&`, `||`, `!`, parentheses,
    /// `x in [..]`, `x not in [..]`; functions `is_null(x)`, `contains(x, "s")`,
    /// `starts_with(x, "s")`, `ends_with(x, "s")`, `matches(x, "regex")` (found anywhere in
    /// the text: anchor with `^...$`), `len(x)` (characters), `lower(x)`, `upper(x)`. Text
    /// compared with a number reads as one (`"150" > 100`); dates and timestamps compare with
    /// ISO 8601 text (`updated_at >= "2024-01-01"`: with offsets on both sides as instants,
    /// else as written wall-clock times). A comparison with null is false (`!=` too) except
    /// `== null`, `!= null`. A record the condition cannot be decided for (`amount > 100` with
    /// `amount` = `"n/a"`, or a field the record lacks) is refused: to the rejects with
    /// `[rejects]`, else the run fails. Checked by `longshore validate`. Required.
    pub expression: String,
}

impl Validate for FilterConfig {
    fn problems(&self) -> Vec<Invalid> {
        match Expression::parse(&self.expression) {
            Ok(_) => Vec::new(),
            Err(e) => vec![Invalid::new("expression", format!("`expression`: {e}"))],
        }
    }
}

pub struct Filter {
    expression: Expression,
    refusals: Refusals,
    /// Per record of a batch: kept, dropped, or refused; reused between batches.
    outcomes: Vec<Outcome>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Kept,
    Dropped,
    Refused,
}

impl Filter {
    pub fn new(config: &FilterConfig, refusals: Refusals) -> Result<Self, StageError> {
        let expression = Expression::parse(&config.expression)
            .map_err(|e| StageError::Refused(format!("`expression`: {e}")))?;
        Ok(Filter {
            expression,
            refusals,
            outcomes: Vec::new(),
        })
    }
}

impl Transform for Filter {
    fn apply(&mut self, batch: &mut Batch) -> Result<(), StageError> {
        self.outcomes.clear();
        let mut refused = Vec::new();
        for (index, record) in batch.records.iter().enumerate() {
            self.outcomes.push(match self.expression.is_true(record) {
                Ok(true) => Outcome::Kept,
                Ok(false) => Outcome::Dropped,
                Err(refusal) => {
                    refused.push(Refused {
                        index,
                        field: refusal.field,
                        reason: refusal.reason,
                    });
                    Outcome::Refused
                }
            });
        }
        self.refusals.set_aside(batch, refused)?;
        let mut kept = self
            .outcomes
            .iter()
            .filter(|outcome| **outcome != Outcome::Refused)
            .map(|outcome| *outcome == Outcome::Kept);
        batch.retain(|_, _| kept.next().expect("one outcome a record"));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::record::{FieldName, Origin, Record, Value};
    use crate::stage::RunContext;

    fn batch(rows: &[(&str, &str)]) -> Batch {
        let records = rows
            .iter()
            .map(|(status, amount)| {
                let mut record = Record::new();
                record.push(FieldName::from("status"), Value::String((*status).into()));
                record.push(FieldName::from("amount"), Value::String((*amount).into()));
                record
            })
            .collect::<Vec<_>>();
        Batch {
            numbers: (1..=records.len() as u64).collect(),
            records,
            origin: Some(Arc::new(Origin {
                path: "in/orders.csv".into(),
            })),
            ..Batch::default()
        }
    }

    fn filter(expression: &str, quarantine: bool) -> Filter {
        let mut cx = RunContext::new("p", std::path::Path::new("."));
        cx.quarantine = quarantine;
        Filter::new(
            &FilterConfig {
                expression: expression.into(),
            },
            Refusals::new(&cx),
        )
        .unwrap()
    }

    #[test]
    fn keeps_matching_records_with_their_numbers_and_refuses_the_undecidable() {
        let mut batch = batch(&[
            ("completed", "150"),
            ("completed", "50"),
            ("open", "500"),
            ("completed", "n/a"),
            ("completed", "100.01"),
        ]);
        filter(r#"status == "completed" && amount > 100"#, true)
            .apply(&mut batch)
            .unwrap();
        let kept: Vec<String> = batch
            .records
            .iter()
            .map(|r| r.get("amount").unwrap().to_string())
            .collect();
        assert_eq!(kept, ["150", "100.01"]);
        assert_eq!(batch.numbers, [1, 5]);
        assert_eq!(batch.rejects.len(), 1);
        let reject = &batch.rejects[0];
        assert_eq!(reject.position.record, Some(4));
        assert_eq!(reject.position.field.as_deref(), Some("`amount`"));
        assert_eq!(
            reject.reason,
            "`amount`: `n/a` is not a number, in `amount > 100`"
        );
    }

    #[test]
    fn without_rejects_an_undecidable_record_fails_the_run() {
        let mut batch = batch(&[("completed", "150"), ("completed", "n/a")]);
        let err = filter("amount > 100", false).apply(&mut batch).unwrap_err();
        assert_eq!(
            err.to_string(),
            "in/orders.csv: record 2: `amount`: `n/a` is not a number, in `amount > 100`; a `[rejects]` table sets such records aside and lets the run go on"
        );
    }

    #[test]
    fn a_bad_expression_is_a_problem_with_its_column() {
        let config = FilterConfig {
            expression: r#"status == "x" && "#.into(),
        };
        assert_eq!(
            config.problems(),
            [Invalid::new(
                "expression",
                "`expression`: column 18: expected a value after `&&`"
            )]
        );
    }
}
