//! `money`: amounts between integer minor units (`450` cents, as payment APIs send them) and
//! exact decimals (`4.50`, as finance files want them). Done on the digits, never through a
//! float, so it is exact for every amount within 64-bit minor units; an amount with more
//! fraction digits than its currency has is refused, never rounded.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use super::{Refusals, Refused};
use crate::config::{Invalid, Validate};
use crate::error::StageError;
use crate::record::{Batch, FieldName, Record, Text, Value};
use crate::stage::Transform;

/// Converts money fields: `fields = { total_cents = { to = "decimal", exponent = 2, target =
/// "total" } }`, or `{ to = "decimal", currency_field = "currency" }` to take each record's
/// exponent from its ISO 4217 code.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MoneyConfig {
    /// Field = how to convert it. A record without the field is left as it is; null stays
    /// null. A value that does not convert refuses its record (into the rejects with
    /// `[rejects]`, naming the record number, the field and why; else the run fails).
    /// Required.
    pub fields: BTreeMap<String, MoneyField>,
}

/// How one field converts.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MoneyField {
    /// `"decimal"`: from an integer of minor units (an integer, or text of one) to an exact
    /// decimal (`450` -> `4.50`, `-5` -> `-0.05`; exponent 0: `450`, 3: `0.450`). `"minor"`:
    /// from a decimal amount (a decimal, an integer, a float by its shortest text, or text of
    /// one) to an integer of minor units (`4.5` -> `450`); more fraction digits than the
    /// exponent allows are refused unless they are zeros (`4.505` with exponent 2), never
    /// rounded. Required.
    pub to: MoneyTo,
    /// The number of fraction digits of the currency's minor unit, 0 to 18 (2 for cents).
    /// Set this or `currency_field`.
    pub exponent: Option<u32>,
    /// The field holding each record's currency as an ISO 4217 code (`"EUR"`, `"JPY"`; any
    /// case), whose exponent is used: 2 for most, 0 for JPY, KRW, CLP, ISK, ..., 3 for BHD,
    /// IQD, JOD, KWD, LYD, OMR, TND, 4 for CLF and UYW. A missing, null or unknown code
    /// refuses the record. Set this or `exponent`.
    pub currency_field: Option<String>,
    /// The field to write the result to (added at the end when the record lacks it). Default:
    /// the field itself, in place.
    pub target: Option<String>,
}

/// Which way an amount converts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MoneyTo {
    /// Minor units to an exact decimal amount.
    Decimal,
    /// A decimal amount to integer minor units.
    Minor,
}

/// The largest exponent: 10^18 minor units still fit an i64.
const MAX_EXPONENT: u32 = 18;

impl Validate for MoneyConfig {
    fn problems(&self) -> Vec<Invalid> {
        let mut problems = Vec::new();
        if self.fields.is_empty() {
            problems.push(Invalid::new(
                "fields",
                "`fields` is empty: name a field, e.g. `fields = { total_cents = { to = \"decimal\", exponent = 2 } }`",
            ));
        }
        let mut targets = std::collections::HashSet::new();
        for (name, field) in &self.fields {
            let key = format!("fields.{name}");
            match (field.exponent, &field.currency_field) {
                (None, None) => problems.push(Invalid::new(
                    &key,
                    "say how many fraction digits the amounts have: `exponent = 2`, or `currency_field = \"currency\"` to read each record's currency",
                )),
                (Some(_), Some(_)) => problems.push(Invalid::new(
                    &key,
                    "set `exponent` or `currency_field`, not both",
                )),
                (Some(exponent), None) if exponent > MAX_EXPONENT => problems.push(Invalid::new(
                    format!("{key}.exponent"),
                    format!("must be at most {MAX_EXPONENT}"),
                )),
                _ => {}
            }
            if !targets.insert(field.target.as_deref().unwrap_or(name)) {
                problems.push(Invalid::new(
                    &key,
                    format!(
                        "two fields are written to `{}`: give each its own `target`",
                        field.target.as_deref().unwrap_or(name)
                    ),
                ));
            }
        }
        problems
    }
}

/// Where a field's exponent comes from.
enum Exponent {
    Fixed(u32),
    /// Each record's currency code, in this field.
    CurrencyIn(String),
}

struct FieldConversion {
    name: String,
    target: FieldName,
    to: MoneyTo,
    exponent: Exponent,
}

pub struct Money {
    fields: Vec<FieldConversion>,
    refusals: Refusals,
}

impl Money {
    pub fn new(config: &MoneyConfig, refusals: Refusals) -> Self {
        Money {
            fields: config
                .fields
                .iter()
                .map(|(name, field)| FieldConversion {
                    name: name.clone(),
                    target: FieldName::from(field.target.as_deref().unwrap_or(name)),
                    to: field.to,
                    exponent: match &field.currency_field {
                        Some(currency) => Exponent::CurrencyIn(currency.clone()),
                        None => Exponent::Fixed(field.exponent.unwrap_or(2)),
                    },
                })
                .collect(),
            refusals,
        }
    }
}

impl Transform for Money {
    fn apply(&mut self, batch: &mut Batch) -> Result<(), StageError> {
        let mut refused = Vec::new();
        let mut results: Vec<(FieldName, Value)> = Vec::new();
        for (index, record) in batch.records.iter_mut().enumerate() {
            results.clear();
            let mut refusal = None;
            for field in &self.fields {
                let Some(value) = record.get(&field.name) else {
                    continue;
                };
                match convert(record, value, field) {
                    Ok(result) => results.push((field.target.clone(), result)),
                    Err(reason) => {
                        refusal = Some(Refused {
                            index,
                            field: Some(field.name.clone()),
                            reason: format!("`{}`: {reason}", field.name),
                        });
                        break;
                    }
                }
            }
            match refusal {
                Some(refusal) => refused.push(refusal),
                None => {
                    for (target, result) in results.drain(..) {
                        record.insert(target, result);
                    }
                }
            }
        }
        self.refusals.set_aside(batch, refused)
    }
}

/// `value` (of `record`'s field) converted as `field` says, or why it cannot be.
fn convert(record: &Record, value: &Value, field: &FieldConversion) -> Result<Value, String> {
    if *value == Value::Null {
        return Ok(Value::Null);
    }
    let exponent = match &field.exponent {
        Exponent::Fixed(exponent) => *exponent,
        Exponent::CurrencyIn(currency_field) => currency_exponent(record, currency_field)?,
    };
    let shown = value.to_text().unwrap_or_default();
    match field.to {
        MoneyTo::Decimal => {
            let minor = match value {
                Value::Integer(minor) => Ok(*minor),
                Value::String(text) | Value::Decimal(text) => minor_units_of_text(text.trim()),
                _ => Err("is not a whole number of minor units"),
            };
            let minor = minor.map_err(|why| format!("`{shown}` {why}"))?;
            Ok(Value::Decimal(decimal_of_minor(minor, exponent)))
        }
        MoneyTo::Minor => {
            let text = match value {
                Value::Float(f) if !f.is_finite() => None,
                Value::Integer(_) | Value::Float(_) => Some(shown.to_string()),
                Value::String(text) | Value::Decimal(text) => Some(text.trim().to_string()),
                _ => None,
            };
            let text = text.ok_or_else(|| format!("`{shown}` is not a decimal amount"))?;
            minor_of_decimal(&text, exponent)
                .map(Value::Integer)
                .map_err(|why| format!("`{shown}` {why}"))
        }
    }
}

/// The exponent of the record's currency, read from `currency_field`.
fn currency_exponent(record: &Record, currency_field: &str) -> Result<u32, String> {
    let code = match record.get(currency_field) {
        Some(Value::String(code)) => code.trim().to_ascii_uppercase(),
        Some(Value::Null) | None => {
            return Err(format!(
                "the currency field `{currency_field}` is missing or null, so the amount's exponent is unknown"
            ));
        }
        Some(other) => other.to_text().unwrap_or_default().to_string(),
    };
    iso_4217_exponent(&code).ok_or_else(|| {
        format!(
            "`{code}` in `{currency_field}` is not an ISO 4217 currency code this knows: set `exponent` if all amounts share one"
        )
    })
}

/// Text of a whole number of minor units (`-450`), or why it is not one.
fn minor_units_of_text(text: &str) -> Result<i64, &'static str> {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("is not a whole number of minor units");
    }
    // Only a sign and digits: a failure to parse is an overflow.
    text.parse()
        .map_err(|_| "is too large for 64-bit minor units")
}

/// `minor` units as a decimal with `exponent` fraction digits: `-5`, 2 -> `-0.05`.
fn decimal_of_minor(minor: i64, exponent: u32) -> Text {
    let digits = minor.unsigned_abs().to_string();
    let exponent = exponent as usize;
    let mut text = String::with_capacity(digits.len() + exponent + 3);
    if minor < 0 {
        text.push('-');
    }
    if exponent == 0 {
        text.push_str(&digits);
        return Text::from(text);
    }
    let padded = format!("{digits:0>width$}", width = exponent + 1);
    let (whole, fraction) = padded.split_at(padded.len() - exponent);
    text.push_str(whole);
    text.push('.');
    text.push_str(fraction);
    Text::from(text)
}

/// A decimal amount's text as minor units with `exponent` fraction digits: `4.5`, 2 -> 450.
/// The error completes "`4.505` ...".
fn minor_of_decimal(text: &str, exponent: u32) -> Result<i64, String> {
    let not_decimal = || "is not a decimal amount".to_string();
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let all_digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) || unsigned.ends_with('.') {
        return Err(not_decimal());
    }
    let exponent = exponent as usize;
    let (kept, beyond) = fraction.split_at(fraction.len().min(exponent));
    if beyond.bytes().any(|b| b != b'0') {
        return Err(format!(
            "has more than {exponent} fraction digits: it would have to be rounded"
        ));
    }
    let digits = format!("{whole}{kept:0<exponent$}");
    let too_large = || "is too large for 64-bit minor units".to_string();
    // Only digits are left, so a failure to parse is an overflow.
    let magnitude: i128 = digits.parse().map_err(|_| too_large())?;
    let minor = if negative { -magnitude } else { magnitude };
    i64::try_from(minor).map_err(|_| too_large())
}

/// The exponent of an ISO 4217 currency (its minor unit's digits), for the codes in use.
fn iso_4217_exponent(code: &str) -> Option<u32> {
    const ZERO: &[&str] = &[
        "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND",
        "VUV", "XAF", "XOF", "XPF",
    ];
    const THREE: &[&str] = &["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];
    const FOUR: &[&str] = &["CLF", "UYW"];
    const TWO: &[&str] = &[
        "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
        "BGN", "BMD", "BND", "BOB", "BOV", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF",
        "CHE", "CHF", "CHW", "CNY", "COP", "COU", "CRC", "CUP", "CVE", "CZK", "DKK", "DOP", "DZD",
        "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GTQ", "GYD",
        "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IRR", "JMD", "KES", "KGS", "KHR", "KPW",
        "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT",
        "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MXV", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK",
        "NPR", "NZD", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "QAR", "RON", "RSD", "RUB", "SAR",
        "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP",
        "SZL", "THB", "TJS", "TMT", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "USD", "USN", "UYU",
        "UZS", "VED", "VES", "WST", "XCD", "XCG", "YER", "ZAR", "ZMW", "ZWG",
    ];
    [(ZERO, 0), (TWO, 2), (THREE, 3), (FOUR, 4)]
        .into_iter()
        .find(|(codes, _)| codes.contains(&code))
        .map(|(_, exponent)| exponent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage::RunContext;
    use crate::transforms::testing::*;

    fn money(toml_text: &str) -> Money {
        let config: MoneyConfig = toml::from_str(toml_text).unwrap();
        assert!(config.problems().is_empty());
        let mut cx = RunContext::new("p", std::path::Path::new("."));
        cx.quarantine = true;
        Money::new(&config, Refusals::new(&cx))
    }

    fn batch(records: Vec<Vec<(&str, Value)>>) -> Batch {
        let records = records.iter().map(|fields| record(fields)).collect();
        batch_from("orders.json", records)
    }

    fn decimal(text: &str) -> Value {
        Value::Decimal(text.into())
    }

    #[test]
    fn minor_units_to_decimals_at_every_exponent() {
        for (minor, exponent, expected) in [
            (450, 2, "4.50"),
            (-5, 2, "-0.05"),
            (0, 2, "0.00"),
            (450, 0, "450"),
            (450, 3, "0.450"),
            (-450, 3, "-0.450"),
            (i64::MAX, 2, "92233720368547758.07"),
            (i64::MIN, 2, "-92233720368547758.08"),
            (1, 18, "0.000000000000000001"),
        ] {
            assert_eq!(
                decimal_of_minor(minor, exponent),
                expected,
                "{minor} at {exponent}"
            );
        }
    }

    #[test]
    fn decimals_to_minor_units_exactly_or_refused() {
        assert_eq!(minor_of_decimal("4.5", 2), Ok(450));
        assert_eq!(minor_of_decimal("-0.05", 2), Ok(-5));
        assert_eq!(minor_of_decimal("+12", 2), Ok(1200));
        assert_eq!(minor_of_decimal("4.500", 2), Ok(450), "zeros lose nothing");
        assert_eq!(minor_of_decimal("450", 0), Ok(450));
        assert_eq!(minor_of_decimal("0.450", 3), Ok(450));
        assert_eq!(minor_of_decimal("92233720368547758.07", 2), Ok(i64::MAX));
        assert_eq!(
            minor_of_decimal("99999999999999999.99", 2),
            Err("is too large for 64-bit minor units".into())
        );
        assert_eq!(
            minor_of_decimal("4.505", 2),
            Err("has more than 2 fraction digits: it would have to be rounded".into())
        );
        assert_eq!(
            minor_of_decimal("4.5", 0),
            Err("has more than 0 fraction digits: it would have to be rounded".into())
        );
        for bad in ["", "-", "4.", ".5", "4,50", "1e3", "4.5.0", "--1", "١٢"] {
            assert_eq!(
                minor_of_decimal(bad, 2),
                Err("is not a decimal amount".into()),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn currencies_give_the_exponent_and_unknown_ones_refuse_the_record() {
        let mut money = money(
            r#"fields = { amount = { to = "decimal", currency_field = "currency", target = "total" } }"#,
        );
        let mut batch = batch(vec![
            vec![
                ("amount", Value::Integer(450)),
                ("currency", Value::String("usd".into())),
            ],
            vec![
                ("amount", Value::Integer(450)),
                ("currency", Value::String("JPY".into())),
            ],
            vec![
                ("amount", Value::Integer(450)),
                ("currency", Value::String("KWD".into())),
            ],
            vec![
                ("amount", Value::Integer(450)),
                ("currency", Value::String("XYZ".into())),
            ],
            vec![("amount", Value::Integer(450))],
            vec![
                ("amount", Value::Null),
                ("currency", Value::String("EUR".into())),
            ],
        ]);
        money.apply(&mut batch).unwrap();
        let totals: Vec<Option<&Value>> = batch.records.iter().map(|r| r.get("total")).collect();
        assert_eq!(
            totals,
            [
                Some(&decimal("4.50")),
                Some(&decimal("450")),
                Some(&decimal("0.450")),
                Some(&Value::Null)
            ]
        );
        assert_eq!(batch.records[0].get("amount"), Some(&Value::Integer(450)));
        let rejects: Vec<(Option<u64>, &str)> = batch
            .rejects
            .iter()
            .map(|r| (r.position.record, r.reason.as_str()))
            .collect();
        assert_eq!(
            rejects,
            [
                (
                    Some(4),
                    "`amount`: `XYZ` in `currency` is not an ISO 4217 currency code this knows: set `exponent` if all amounts share one"
                ),
                (
                    Some(5),
                    "`amount`: the currency field `currency` is missing or null, so the amount's exponent is unknown"
                ),
            ]
        );
    }

    #[test]
    fn both_ways_in_place_with_what_does_not_convert_refused() {
        let mut money = money(
            r#"fields = { cents = { to = "decimal", exponent = 2 }, price = { to = "minor", exponent = 2 } }"#,
        );
        let mut batch = batch(vec![
            vec![
                ("cents", Value::String("-5".into())),
                ("price", decimal("19.99")),
            ],
            vec![("cents", Value::Integer(1)), ("price", Value::Float(0.1))],
            vec![("cents", Value::Float(4.5)), ("price", decimal("1"))],
            vec![
                ("cents", Value::Integer(1)),
                ("price", Value::String("1.999".into())),
            ],
            vec![
                ("cents", Value::Integer(1)),
                ("price", Value::String("free".into())),
            ],
        ]);
        money.apply(&mut batch).unwrap();
        assert_eq!(batch.records.len(), 2);
        assert_eq!(batch.records[0].get("cents"), Some(&decimal("-0.05")));
        assert_eq!(batch.records[0].get("price"), Some(&Value::Integer(1999)));
        assert_eq!(batch.records[1].get("price"), Some(&Value::Integer(10)));
        let reasons: Vec<&str> = batch.rejects.iter().map(|r| r.reason.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "`cents`: `4.5` is not a whole number of minor units",
                "`price`: `1.999` has more than 2 fraction digits: it would have to be rounded",
                "`price`: `free` is not a decimal amount",
            ]
        );
        assert_eq!(
            batch.rejects[0].raw.as_deref(),
            Some(r#"{"cents":4.5,"price":1}"#)
        );
    }

    #[test]
    fn config_problems() {
        let problems = |text: &str| -> Vec<String> {
            toml::from_str::<MoneyConfig>(text)
                .unwrap()
                .problems()
                .into_iter()
                .map(|p| p.to_string())
                .collect()
        };
        assert_eq!(
            problems(r#"fields = { a = { to = "decimal" } }"#),
            [
                "fields.a: say how many fraction digits the amounts have: `exponent = 2`, or `currency_field = \"currency\"` to read each record's currency"
            ]
        );
        assert_eq!(
            problems(r#"fields = { a = { to = "decimal", exponent = 19 } }"#),
            ["fields.a.exponent: must be at most 18"]
        );
        assert_eq!(
            problems(
                r#"fields = { a = { to = "decimal", exponent = 2, target = "x" }, b = { to = "decimal", exponent = 2, target = "x" } }"#
            ),
            ["fields.b: two fields are written to `x`: give each its own `target`"]
        );
    }
}
