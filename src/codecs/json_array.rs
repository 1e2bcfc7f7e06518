//! `json-array`: compact tabular JSON, as some vendor list APIs return it: an array of rows,
//! each an array of values, the first row holding the column names
//! (`[["id","name"],[1,"ant"],[2,"bee"]]`), optionally inside an envelope (`records`). It
//! streams like `json` (the same parser thread); only the element shape differs.

use std::io::Write;

use schemars::JsonSchema;
use serde::Deserialize;

use super::EncodedOutput;
use super::json::{JsonDecoder, JsonInput, Shape, open_envelope, pointer_path, pointer_problems};
use crate::error::{CodecError, Position};
use crate::record::json::{write_str, write_value};
use crate::record::{FieldName, Record, Value};
use crate::stage::{Decoder, Encoder};

/// Rows of values under a header row.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonArrayOptions {
    /// Where the array of rows is, as a JSON pointer (`"/rows"`; `null` there is no rows);
    /// output is written in the same envelope. Default `""`: the document is the array.
    #[serde(default)]
    pub records: String,
    /// The column names, when the document has none: every row is data, on input and output.
    /// On output, also the columns written, in this order (a record's other fields are an
    /// error). Default: the names come from the document.
    pub columns: Option<Vec<String>>,
    /// Where the column names are when the document holds them beside the rows rather than as
    /// the first row, as a JSON pointer next to `records`: `"/columns"` for
    /// `{"columns": ["id", "name"], "rows": [[1, "ant"]]}` (with `records = "/rows"`). On input
    /// they must come before the rows; output writes them there. Default: the first row.
    pub columns_at: Option<String>,
}

impl JsonArrayOptions {
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = pointer_problems(&self.records);
        if self.columns.as_ref().is_some_and(Vec::is_empty) {
            problems.push(("columns", "name at least one column".into()));
        }
        if let Some(pointer) = &self.columns_at {
            let rows = pointer_path(&self.records);
            let names = pointer_path(pointer);
            let beside = !rows.is_empty()
                && names.len() == rows.len()
                && names[..names.len() - 1] == rows[..rows.len() - 1]
                && names.last() != rows.last();
            if self.columns.is_some() {
                problems.push((
                    "columns_at",
                    "give `columns` or `columns_at`, not both".into(),
                ));
            } else if !pointer.starts_with('/') || !beside {
                problems.push((
                    "columns_at",
                    format!(
                        "`{pointer}` must be a JSON pointer beside `records` (`{}`), e.g. \"/columns\" with records = \"/rows\"",
                        self.records
                    ),
                ));
            }
        }
        problems
    }

    fn columns(&self) -> Option<Vec<FieldName>> {
        self.columns
            .as_ref()
            .map(|names| names.iter().map(|n| FieldName::from(n.as_str())).collect())
    }

    /// The key of the column names beside the rows, with `columns_at`.
    fn columns_key(&self) -> Option<String> {
        self.columns_at
            .as_deref()
            .and_then(|pointer| pointer_path(pointer).pop())
    }
}

pub(crate) fn decoder(
    input: JsonInput,
    label: &str,
    options: &JsonArrayOptions,
) -> Box<dyn Decoder> {
    let shape = Shape::Rows {
        columns: options.columns(),
        beside: options.columns_key(),
    };
    Box::new(JsonDecoder::with_shape(
        input,
        label,
        pointer_path(&options.records),
        shape,
    ))
}

/// Writes the column names (as the first row, or beside the rows), then one row per record, in
/// the columns' order.
pub struct JsonArrayEncoder {
    output: EncodedOutput,
    buffer: Vec<u8>,
    path: Vec<String>,
    /// Set by the options, or by the first record.
    columns: Option<Vec<FieldName>>,
    header: Header,
    /// Whether the envelope and the column names are written.
    started: bool,
    rows: u64,
}

/// Where the encoder writes the column names.
enum Header {
    FirstRow,
    /// Nowhere: they were given (`columns`).
    Given,
    /// Under this key beside the rows (`columns_at`).
    Beside(String),
}

impl JsonArrayEncoder {
    pub fn new(output: Box<dyn Write + Send>, label: &str, options: &JsonArrayOptions) -> Self {
        let header = match (options.columns.is_some(), options.columns_key()) {
            (true, _) => Header::Given,
            (false, Some(key)) => Header::Beside(key),
            (false, None) => Header::FirstRow,
        };
        JsonArrayEncoder {
            output: EncodedOutput::new(output, label),
            buffer: EncodedOutput::buffer(),
            path: pointer_path(&options.records),
            columns: options.columns(),
            header,
            started: false,
            rows: 0,
        }
    }

    /// Writes the envelope up to the rows' `[`, with the column names where they go.
    fn start(&mut self, columns: Vec<FieldName>) {
        self.started = true;
        let names = |buffer: &mut Vec<u8>| {
            buffer.push(b'[');
            for (index, name) in columns.iter().enumerate() {
                if index > 0 {
                    buffer.push(b',');
                }
                write_str(buffer, name);
            }
            buffer.push(b']');
        };
        match &self.header {
            Header::Beside(key) => {
                let (rows_key, parents) = self.path.split_last().expect("validated: beside rows");
                self.buffer = open_envelope(parents);
                self.buffer.pop();
                self.buffer.push(b'{');
                write_str(&mut self.buffer, key);
                self.buffer.push(b':');
                names(&mut self.buffer);
                self.buffer.push(b',');
                write_str(&mut self.buffer, rows_key);
                self.buffer.extend_from_slice(b":[");
            }
            Header::FirstRow if !columns.is_empty() => {
                self.buffer = open_envelope(&self.path);
                names(&mut self.buffer);
                self.rows = 1;
            }
            // Given columns, or no records and no names (an empty array, not an empty header
            // row): no header row.
            Header::FirstRow | Header::Given => self.buffer = open_envelope(&self.path),
        }
        self.columns = Some(columns);
    }

    fn write_row(&mut self, record: &Record) -> Result<(), CodecError> {
        let columns = self.columns.as_ref().expect("started first");
        if let Some(extra) = record.names().find(|name| !columns.contains(name)) {
            return Err(CodecError::malformed(
                self.output.label.clone(),
                Position {
                    record: Some(self.rows + 1),
                    field: Some(format!("`{extra}`")),
                    ..Position::default()
                },
                "the record has a field that is not one of the columns",
                Some("set the format's `columns` to every field to write".into()),
            ));
        }
        if self.rows > 0 {
            self.buffer.extend_from_slice(b",\n");
        }
        self.rows += 1;
        self.buffer.push(b'[');
        for (index, column) in columns.iter().enumerate() {
            if index > 0 {
                self.buffer.push(b',');
            }
            write_value(&mut self.buffer, record.get(column).unwrap_or(&Value::Null));
        }
        self.buffer.push(b']');
        Ok(())
    }
}

impl Encoder for JsonArrayEncoder {
    fn write_batch(&mut self, records: &[Record]) -> Result<(), CodecError> {
        for record in records {
            if !self.started {
                let columns = self
                    .columns
                    .take()
                    .unwrap_or_else(|| record.names().cloned().collect());
                self.start(columns);
            }
            self.write_row(record)?;
            self.output.write_if_full(&mut self.buffer)?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<(), CodecError> {
        if !self.started {
            let columns = self.columns.take().unwrap_or_default();
            self.start(columns);
        }
        self.buffer.push(b']');
        self.buffer
            .extend(std::iter::repeat_n(b'}', self.path.len()));
        self.buffer.push(b'\n');
        self.output.finish(&mut self.buffer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codecs::limit::DEFAULT_MAX_RECORD_BYTES;
    use crate::codecs::testing::{gist, read_all, written};

    /// Decodes `input` streamed and in memory (the two ways a document is parsed), which must
    /// give the same records and errors (serde_json places some errors a character apart
    /// in a slice and in a stream).
    fn decode(input: &str, options: &JsonArrayOptions) -> Result<Vec<Record>, CodecError> {
        let streamed = read_all(
            decoder(
                JsonInput::Stream(
                    Box::new(std::io::Cursor::new(input.to_string())),
                    DEFAULT_MAX_RECORD_BYTES,
                ),
                "t.json",
                options,
            )
            .as_mut(),
        );
        let in_memory = read_all(
            decoder(
                JsonInput::Bytes(input.as_bytes().to_vec()),
                "t.json",
                options,
            )
            .as_mut(),
        );
        assert_eq!(
            gist(&streamed),
            gist(&in_memory),
            "streamed and in memory differ"
        );
        streamed
    }

    fn encode(records: &[Record], options: &JsonArrayOptions) -> String {
        written(records, |output| {
            Box::new(JsonArrayEncoder::new(output, "t.json", options))
        })
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
            columns_at: None,
        };
        let records = decode(
            r#"{"total": 2, "rows": [[1, "ant"], [2, "bee"]]}"#,
            &options,
        )
        .unwrap();
        assert_eq!(records.len(), 2);
        // No header row: the columns are given, on output as on input.
        let written = encode(&records, &options);
        assert_eq!(written, "{\"rows\":[[1,\"ant\"],\n[2,\"bee\"]]}\n");
        assert_eq!(decode(&written, &options).unwrap(), records);
    }

    #[test]
    fn columns_beside_the_rows_round_trip() {
        let options = JsonArrayOptions {
            records: "/data/rows".into(),
            columns: None,
            columns_at: Some("/data/columns".into()),
        };
        assert_eq!(options.problems(), []);
        let input =
            r#"{"data": {"total": 2, "columns": ["id", "name"], "rows": [[1, "ant"], [2, null]]}}"#;
        let records = decode(input, &options).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].get("name"), Some(&Value::Null));
        let written = encode(&records, &options);
        assert_eq!(
            written,
            "{\"data\":{\"columns\":[\"id\",\"name\"],\"rows\":[[1,\"ant\"],\n[2,null]]}}\n"
        );
        assert_eq!(decode(&written, &options).unwrap(), records);
        assert_eq!(
            encode(&[], &options),
            "{\"data\":{\"columns\":[],\"rows\":[]}}\n"
        );
        let late = decode(r#"{"data": {"rows": [[1]], "columns": ["id"]}}"#, &options).unwrap_err();
        assert!(
            late.to_string()
                .contains("the column names at `columns` must come before the rows"),
            "{late}"
        );
        let elsewhere = JsonArrayOptions {
            columns_at: Some("/columns".into()),
            ..options
        };
        assert_eq!(
            elsewhere.problems(),
            [(
                "columns_at",
                "`/columns` must be a JSON pointer beside `records` (`/data/rows`), e.g. \"/columns\" with records = \"/rows\"".to_string()
            )]
        );
    }

    #[test]
    fn a_row_or_header_larger_than_the_limit_fails() {
        let limited = |input: String| {
            let mut decoder = decoder(
                JsonInput::Stream(Box::new(std::io::Cursor::new(input)), 100),
                "t.json",
                &JsonArrayOptions::default(),
            );
            let mut out = Vec::new();
            let error = loop {
                match decoder.next_batch(&mut out, 1000) {
                    Ok(true) => {}
                    Ok(false) => panic!("no error"),
                    Err(e) => break e.to_string(),
                }
            };
            (out.len(), error)
        };
        let big = "x".repeat(1 << 20);
        assert_eq!(
            limited(format!("[[\"id\",\"note\"],[1,\"a\"],[2,\"{big}\"]]")),
            (
                1,
                "t.json: record 2: a record is larger than `max_record_bytes` = 100 (100 bytes). raise the source's `max_record_bytes` if such records are expected".to_string()
            )
        );
        assert_eq!(
            limited(format!("[[\"id\",\"{big}\"],[1,\"a\"]]")),
            (
                0,
                "t.json: the header row is larger than `max_record_bytes` = 100 (100 bytes). raise the source's `max_record_bytes` if such documents are expected".to_string()
            )
        );
    }

    #[test]
    fn a_row_of_the_wrong_width_is_a_bad_record_and_reading_goes_on() {
        let input = "[[\"a\",\"b\"],[1,2],[3],[4,5,6],[7,8]]";
        let mut decoder = decoder(
            JsonInput::Bytes(input.as_bytes().to_vec()),
            "t.json",
            &JsonArrayOptions::default(),
        );
        let mut records = Vec::new();
        let mut bad = Vec::new();
        loop {
            match decoder.next_batch(&mut records, 10) {
                Ok(true) => {}
                Ok(false) => break,
                Err(CodecError::BadRecord { malformed, raw }) => {
                    bad.push(format!("{malformed} | {}", raw.unwrap()))
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].get("a"), Some(&Value::Integer(7)));
        assert_eq!(
            bad,
            [
                "t.json: record 2: the row has 1 value, not one for each of the 2 columns | [3]",
                "t.json: record 3: the row has 3 values, not one for each of the 2 columns | [4,5,6]",
            ]
        );
    }
}
