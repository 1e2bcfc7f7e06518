//! Types for text: `types::infer` on any string never panics and loses nothing (a number it
//! reads writes back as the same text), and casting to every type, with any valid strftime
//! format and number separators, never panics either.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use longshore::codecs::types::{FieldType, TypeName, TypeWithFormat, Typing, infer};
use longshore::record::{Record, Value};

const TYPES: [TypeName; 7] = [
    TypeName::String,
    TypeName::Integer,
    TypeName::Float,
    TypeName::Decimal,
    TypeName::Bool,
    TypeName::Timestamp,
    TypeName::Date,
];

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    // The text, then optionally after a NUL a decimal separator, a thousands separator and a
    // strftime format.
    let (text, options) = input.split_once('\0').unwrap_or((input, ""));
    let mut options = options.chars();
    let (decimal_separator, thousands_separator) = (options.next(), options.next());
    let format = Some(options.as_str()).filter(|format| !format.is_empty());
    match infer(text) {
        Some(Value::Integer(number)) => assert_eq!(number.to_string(), text),
        Some(Value::Decimal(decimal)) => assert_eq!(&*decimal, text),
        _ => {}
    }
    let mut schema = BTreeMap::new();
    for (index, name) in TYPES.into_iter().enumerate() {
        let field_type = FieldType::WithFormat(TypeWithFormat {
            name,
            format: format.map(str::to_string),
            decimal_separator,
            thousands_separator,
        });
        let field_type = match field_type.problem() {
            None => field_type,
            Some(_) => FieldType::Plain(name),
        };
        schema.insert(format!("f{index}"), field_type);
    }
    let typing = Typing::new(true, Some(&schema)).expect("a schema");
    let mut record = Record::new();
    for index in 0..=TYPES.len() {
        record.push(format!("f{index}").into(), Value::String(text.into()));
    }
    // Each cast in turn, so that one refusal does not hide the casts after it.
    for index in 0..TYPES.len() {
        let mut one = Record::new();
        let (name, value) = record.entry(index).expect("a field");
        one.push(name.clone(), value.clone());
        let _ = typing.apply(&mut one);
    }
    let _ = typing.apply(&mut record);
});
