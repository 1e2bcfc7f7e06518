//! `json-array`: compact tabular JSON, as some vendor list APIs return it: an array of rows,
//! each an array of values, the first row holding the column names
//! (`[["id","name"],[1,"ant"],[2,"bee"]]`), optionally inside an envelope (`records`). It
//! streams like `json` (the same parser thread); only the element shape differs.

use std::io::{Read, Write};

use schemars::JsonSchema;
use serde::Deserialize;

use super::IO_BUFFER_BYTES;
use super::json::{JsonDecoder, Shape, open_envelope, pointer_path, pointer_problems};
use super::json_write::{write_str, write_value};
use crate::error::{CodecError, Position};
use crate::record::{FieldName, Record, Value};
use crate::stage::{Decoder, Encoder};

/// Rows of values under a header row.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonArrayOptions {
    /// Where the array of rows is, as a JSON pointer (`"/rows"`); output is written in the same
    /// envelope. Default `""`: the document is the array.
    #[serde(default)]
    pub records: String,
    /// The column names, when the rows have no header row. Input: the first row is data.
    /// Output: the columns written, in this order (a record's other fields are an error).
    /// Default: the first row's names on input, the first record's fields on output.
    pub columns: Option<Vec<String>>,
}

impl JsonArrayOptions {
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = pointer_problems(&self.records);
        if self.columns.as_ref().is_some_and(Vec::is_empty) {
            problems.push(("columns", "name at least one column".into()));
        }
        problems
    }

    fn columns(&self) -> Option<Vec<FieldName>> {
        self.columns
            .as_ref()
            .map(|names| names.iter().map(|n| FieldName::from(n.as_str())).collect())
    }
}

pub fn decoder(
    input: Box<dyn Read + Send>,
    label: &str,
    options: &JsonArrayOptions,
) -> Box<dyn Decoder> {
    let shape = Shape::Rows {
        columns: options.columns(),
    };
    Box::new(JsonDecoder::with_shape(
        input,
        label,
        pointer_path(&options.records),
        shape,
    ))
}

/// Writes a header row, then one row per record, in the columns of the header.
pub struct JsonArrayEncoder {
    output: Box<dyn Write + Send>,
    buffer: Vec<u8>,
    label: String,
    envelope_depth: usize,
    /// Set by the options, or by the first record.
    columns: Option<Vec<FieldName>>,
    rows: u64,
}

impl JsonArrayEncoder {
    pub fn new(output: Box<dyn Write + Send>, label: &str, options: &JsonArrayOptions) -> Self {
        let path = pointer_path(&options.records);
        let buffer = open_envelope(&path);
        let mut encoder = JsonArrayEncoder {
            output,
            buffer,
            label: label.to_string(),
            envelope_depth: path.len(),
            columns: None,
            rows: 0,
        };
        if let Some(columns) = options.columns() {
            encoder.write_header(columns);
        }
        encoder
    }

    fn write_header(&mut self, columns: Vec<FieldName>) {
        self.buffer.push(b'[');
        for (index, name) in columns.iter().enumerate() {
            if index > 0 {
                self.buffer.push(b',');
            }
            write_str(&mut self.buffer, name);
        }
        self.buffer.push(b']');
        self.columns = Some(columns);
    }

    fn write_row(&mut self, record: &Record) -> Result<(), CodecError> {
        let columns = self.columns.as_ref().expect("the header is written first");
        self.rows += 1;
        if let Some(extra) = record.names().find(|name| !columns.contains(name)) {
            return Err(CodecError::malformed(
                self.label.clone(),
                Position {
                    record: Some(self.rows),
                    field: Some(format!("`{extra}`")),
                    ..Position::default()
                },
                "the record has a field that is not one of the columns",
                Some("set the format's `columns` to every field to write".into()),
            ));
        }
        self.buffer.extend_from_slice(b",\n[");
        for (index, column) in columns.iter().enumerate() {
            if index > 0 {
                self.buffer.push(b',');
            }
            write_value(&mut self.buffer, record.get(column).unwrap_or(&Value::Null));
        }
        self.buffer.push(b']');
        Ok(())
    }

    fn flush_buffer(&mut self) -> Result<(), CodecError> {
        let result = self.output.write_all(&self.buffer);
        self.buffer.clear();
        result.map_err(|source| CodecError::io(&self.label, "write", source))
    }
}

impl Encoder for JsonArrayEncoder {
    fn write_batch(&mut self, records: &[Record]) -> Result<(), CodecError> {
        for record in records {
            if self.columns.is_none() {
                self.write_header(record.names().cloned().collect());
            }
            self.write_row(record)?;
            if self.buffer.len() >= IO_BUFFER_BYTES {
                self.flush_buffer()?;
            }
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<(), CodecError> {
        self.buffer.push(b']');
        self.buffer
            .extend(std::iter::repeat_n(b'}', self.envelope_depth));
        self.buffer.push(b'\n');
        self.flush_buffer()?;
        self.output
            .flush()
            .map_err(|source| CodecError::io(&self.label, "write", source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codecs::csv::tests::SharedBuffer;

    fn decode(input: &str, options: &JsonArrayOptions) -> Result<Vec<Record>, CodecError> {
        let mut decoder = decoder(
            Box::new(std::io::Cursor::new(input.to_string())),
            "t.json",
            options,
        );
        let mut out = Vec::new();
        while decoder.next_batch(&mut out, 2)? {}
        Ok(out)
    }

    fn encode(records: &[Record], options: &JsonArrayOptions) -> String {
        let buffer = SharedBuffer::default();
        let mut encoder = Box::new(JsonArrayEncoder::new(
            Box::new(buffer.clone()),
            "t.json",
            options,
        ));
        encoder.write_batch(records).unwrap();
        encoder.finish().unwrap();
        buffer.text()
    }

    #[test]
    fn rows_under_a_header_round_trip() {
        let input = "[[\"id\",\"name\",\"amount\"],\n[1,\"ant\",12.50],\n[2,null,null]]\n";
        let options = JsonArrayOptions::default();
        let records = decode(input, &options).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(
            records[0].get("amount"),
            Some(&Value::Decimal("12.50".into()))
        );
        assert_eq!(encode(&records, &options), input);
    }

    #[test]
    fn columns_given_separately_and_an_envelope() {
        let options = JsonArrayOptions {
            records: "/rows".into(),
            columns: Some(vec!["id".into(), "name".into()]),
        };
        let records = decode(
            r#"{"total": 2, "rows": [[1, "ant"], [2, "bee"]]}"#,
            &options,
        )
        .unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(
            encode(&records, &options),
            "{\"rows\":[[\"id\",\"name\"],\n[1,\"ant\"],\n[2,\"bee\"]]}\n"
        );
    }

    #[test]
    fn a_row_of_the_wrong_width_is_an_error_naming_it() {
        let error = decode("[[\"a\",\"b\"],[1,2],[3]]", &JsonArrayOptions::default()).unwrap_err();
        assert!(
            error.to_string().starts_with("t.json: line 1, column 20: invalid JSON: row 3 has 1 value, not one for each of the 2 columns"),
            "{error}"
        );
        let error = decode("[[\"a\"],[1,2]]", &JsonArrayOptions::default()).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("row 2 has more values than the 1 columns"),
            "{error}"
        );
    }
}
