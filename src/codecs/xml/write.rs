//! Encoding: records as elements inside the envelope `record_path` names, written straight
//! into a byte buffer flushed every `IO_BUFFER_BYTES`. The mapping is the decoder's, reversed,
//! so decoding the output gives back the records (text values; see `XmlOptions`).

use std::io::Write;

use super::{XmlOptions, is_xml_name};
use crate::codecs::EncodedOutput;
use crate::error::{CodecError, Position};
use crate::record::{Record, Value};
use crate::stage::Encoder;

/// Writes records as an XML document.
pub struct XmlEncoder {
    output: EncodedOutput,
    buffer: Vec<u8>,
    /// The elements around the records, root first.
    envelope: Vec<String>,
    record_element: String,
    attribute_prefix: String,
    text_key: String,
    /// Record fields written as attributes although unprefixed.
    attributes: Vec<String>,
    flatten: bool,
    pretty: bool,
    written: u64,
}

/// What went wrong with a field, before the record number is known to the message.
struct FieldProblem {
    field: String,
    message: String,
    hint: Option<String>,
}

impl XmlEncoder {
    /// `encoding` is the name the XML declaration gives (the writer under `output` encodes).
    pub fn new(
        output: Box<dyn Write + Send>,
        label: &str,
        options: &XmlOptions,
        encoding: &str,
    ) -> Self {
        let mut envelope = options
            .path()
            .unwrap_or_else(|| vec!["records".into(), "record".into()]);
        let record_element = envelope.pop().unwrap_or_default();
        let mut buffer = EncodedOutput::buffer();
        buffer.extend_from_slice(
            format!("<?xml version=\"1.0\" encoding=\"{encoding}\"?>\n").as_bytes(),
        );
        for (level, name) in envelope.iter().enumerate() {
            if options.pretty {
                indent(&mut buffer, level);
            }
            buffer.push(b'<');
            buffer.extend_from_slice(name.as_bytes());
            buffer.push(b'>');
            if options.pretty {
                buffer.push(b'\n');
            }
        }
        if !options.pretty && !envelope.is_empty() {
            buffer.push(b'\n');
        }
        XmlEncoder {
            output: EncodedOutput::new(output, label),
            buffer,
            envelope,
            record_element,
            attribute_prefix: options.attribute_prefix.clone(),
            text_key: options.text_key.clone(),
            attributes: options.attributes.clone(),
            flatten: options.flatten,
            pretty: options.pretty,
            written: 0,
        }
    }

    fn write_record(&mut self, record: &Record) -> Result<(), FieldProblem> {
        if self.envelope.is_empty() && self.written > 0 {
            return Err(FieldProblem {
                field: String::new(),
                message: format!(
                    "`record_path = \"{}\"` makes the record the root element, and a document has one: this is a second record",
                    self.record_element
                ),
                hint: Some(
                    "name a root element around the records, e.g. \"records/record\"".into(),
                ),
            });
        }
        let nested;
        let record = if self.flatten {
            nested = unflatten(record)?;
            &nested
        } else {
            record
        };
        let mut buffer = std::mem::take(&mut self.buffer);
        let indent = self.pretty.then_some(self.envelope.len());
        let result = self.write_element(&mut buffer, &self.record_element, record, true, indent);
        buffer.push(b'\n');
        self.buffer = buffer;
        result
    }

    /// Writes `<name attributes>text children</name>`, or `<name attributes/>`.
    fn write_element(
        &self,
        out: &mut Vec<u8>,
        name: &str,
        fields: &Record,
        is_record: bool,
        indent_level: Option<usize>,
    ) -> Result<(), FieldProblem> {
        if let Some(level) = indent_level {
            indent(out, level);
        }
        out.push(b'<');
        out.extend_from_slice(name.as_bytes());
        let mut text = None;
        let mut has_children = false;
        for (field, value) in fields.iter() {
            if **field == *self.text_key {
                text = Some((field, value));
                continue;
            }
            let attribute = match field.strip_prefix(self.attribute_prefix.as_str()) {
                Some(attribute) if !self.attribute_prefix.is_empty() => attribute,
                _ if is_record && self.attributes.iter().any(|a| **a == **field) => field,
                _ => {
                    has_children = true;
                    continue;
                }
            };
            let text = match value {
                Value::Null => continue,
                Value::Array(_) | Value::Object(_) => {
                    return Err(problem(
                        field,
                        "an attribute holds one value, not an array or an object",
                    ));
                }
                scalar => scalar.to_text().unwrap_or_default(),
            };
            if !is_xml_name(attribute) {
                return Err(not_a_name(field, attribute, "attribute"));
            }
            out.push(b' ');
            out.extend_from_slice(attribute.as_bytes());
            out.extend_from_slice(b"=\"");
            escape(out, &text, true).map_err(|c| bad_character(field, c))?;
            out.push(b'"');
        }
        let text = match text {
            None | Some((_, Value::Null)) => None,
            Some((field, Value::Array(_) | Value::Object(_))) => {
                return Err(problem(
                    field,
                    "the text of an element is one value, not an array or an object",
                ));
            }
            Some((field, scalar)) => Some((field, scalar.to_text().unwrap_or_default())),
        };
        if text.as_ref().is_none_or(|(_, t)| t.is_empty()) && !has_children {
            out.extend_from_slice(b"/>");
            return Ok(());
        }
        out.push(b'>');
        if let Some((field, text)) = &text {
            escape(out, text, false).map_err(|c| bad_character(field, c))?;
        }
        // Indentation would add to the text of an element that has some.
        let child_level = indent_level
            .filter(|_| text.is_none())
            .map(|level| level + 1);
        for (field, value) in fields.iter() {
            if **field == *self.text_key || self.is_attribute(field, is_record) {
                continue;
            }
            if !is_xml_name(field) {
                return Err(not_a_name(field, field, "element"));
            }
            self.write_child(out, field, value, child_level)?;
        }
        if let (Some(level), Some(_)) = (indent_level, child_level) {
            out.push(b'\n');
            indent(out, level);
        }
        out.extend_from_slice(b"</");
        out.extend_from_slice(name.as_bytes());
        out.push(b'>');
        Ok(())
    }

    fn is_attribute(&self, field: &str, is_record: bool) -> bool {
        (!self.attribute_prefix.is_empty() && field.starts_with(self.attribute_prefix.as_str()))
            || (is_record && self.attributes.iter().any(|a| **a == *field))
    }

    /// Writes one field as a child element: an array as the element repeated.
    fn write_child(
        &self,
        out: &mut Vec<u8>,
        name: &str,
        value: &Value,
        indent_level: Option<usize>,
    ) -> Result<(), FieldProblem> {
        if indent_level.is_some() {
            out.push(b'\n');
        }
        match value {
            Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    if matches!(item, Value::Array(_)) {
                        return Err(FieldProblem {
                            hint: Some("wrap the inner arrays in objects".into()),
                            ..problem(name, "an array inside an array has no XML form")
                        });
                    }
                    if index > 0 && indent_level.is_some() {
                        out.push(b'\n');
                    }
                    self.write_single(out, name, item, indent_level)?;
                }
                Ok(())
            }
            single => self.write_single(out, name, single, indent_level),
        }
    }

    fn write_single(
        &self,
        out: &mut Vec<u8>,
        name: &str,
        value: &Value,
        indent_level: Option<usize>,
    ) -> Result<(), FieldProblem> {
        match value {
            Value::Object(fields) => self.write_element(out, name, fields, false, indent_level),
            // Null, as empty text, is an empty element.
            scalar => {
                if let Some(level) = indent_level {
                    indent(out, level);
                }
                let text = scalar.to_text().unwrap_or_default();
                out.push(b'<');
                out.extend_from_slice(name.as_bytes());
                if text.is_empty() {
                    out.extend_from_slice(b"/>");
                    return Ok(());
                }
                out.push(b'>');
                escape(out, &text, false).map_err(|c| bad_character(name, c))?;
                out.extend_from_slice(b"</");
                out.extend_from_slice(name.as_bytes());
                out.push(b'>');
                Ok(())
            }
        }
    }
}

impl Encoder for XmlEncoder {
    fn write_batch(&mut self, records: &[Record]) -> Result<(), CodecError> {
        for record in records {
            if let Err(problem) = self.write_record(record) {
                let position = Position {
                    record: Some(self.written + 1),
                    field: (!problem.field.is_empty()).then(|| format!("`{}`", problem.field)),
                    ..Position::default()
                };
                return Err(CodecError::malformed(
                    self.output.label.clone(),
                    position,
                    problem.message,
                    problem.hint,
                ));
            }
            self.written += 1;
            self.output.write_if_full(&mut self.buffer)?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<(), CodecError> {
        if self.envelope.is_empty() && self.written == 0 {
            // The record is the root: no record, no document. An empty root stands in.
            self.buffer.push(b'<');
            self.buffer
                .extend_from_slice(self.record_element.as_bytes());
            self.buffer.extend_from_slice(b"/>\n");
        }
        for (level, name) in self.envelope.iter().enumerate().rev() {
            if self.pretty {
                indent(&mut self.buffer, level);
            }
            self.buffer.extend_from_slice(b"</");
            self.buffer.extend_from_slice(name.as_bytes());
            self.buffer.push(b'>');
            if self.pretty || level == 0 {
                self.buffer.push(b'\n');
            }
        }
        self.output.finish(&mut self.buffer)
    }
}

fn indent(out: &mut Vec<u8>, level: usize) {
    out.extend(std::iter::repeat_n(b' ', level * 2));
}

fn problem(field: &str, message: &str) -> FieldProblem {
    FieldProblem {
        field: field.to_string(),
        message: message.to_string(),
        hint: None,
    }
}

fn not_a_name(field: &str, name: &str, kind: &str) -> FieldProblem {
    FieldProblem {
        hint: Some(
            "rename the field (a `rename` transform): XML names start with a letter or `_` and hold letters, digits, `-`, `_` and `.`"
                .into(),
        ),
        ..problem(field, &format!("`{name}` is not a valid XML {kind} name"))
    }
}

fn bad_character(field: &str, c: char) -> FieldProblem {
    problem(
        field,
        &format!(
            "the value holds the control character U+{:04X}, which XML 1.0 cannot represent",
            u32::from(c)
        ),
    )
}

/// Appends `text` escaped for element content or (with `in_attribute`) a double-quoted
/// attribute value. Carriage returns, and in attributes tabs and newlines, are written as
/// character references, since a parser would otherwise normalize them away. The control
/// characters XML 1.0 forbids are an error.
fn escape(out: &mut Vec<u8>, text: &str, in_attribute: bool) -> Result<(), char> {
    let bytes = text.as_bytes();
    let mut clean_from = 0;
    for (index, &byte) in bytes.iter().enumerate() {
        let replacement: &[u8] = match byte {
            b'&' => b"&amp;",
            b'<' => b"&lt;",
            b'>' => b"&gt;",
            b'"' if in_attribute => b"&quot;",
            b'\r' => b"&#13;",
            b'\n' if in_attribute => b"&#10;",
            b'\t' if in_attribute => b"&#9;",
            b'\n' | b'\t' => continue,
            0..=0x1F => return Err(char::from(byte)),
            _ => continue,
        };
        out.extend_from_slice(&bytes[clean_from..index]);
        out.extend_from_slice(replacement);
        clean_from = index + 1;
    }
    out.extend_from_slice(&bytes[clean_from..]);
    Ok(())
}

/// A record with dotted names (`customer.name`) nested into objects, for `flatten`.
fn unflatten(record: &Record) -> Result<Record, FieldProblem> {
    let mut nested = Record::with_capacity(record.len());
    for (name, value) in record.iter() {
        let mut parts = name.split('.');
        let first = parts.next().unwrap_or_default();
        let rest: Vec<&str> = parts.collect();
        insert_nested(&mut nested, first, &rest, value.clone()).map_err(|()| {
            problem(
                name,
                "cannot nest this field: a field with a shorter name is not an object",
            )
        })?;
    }
    Ok(nested)
}

fn insert_nested(record: &mut Record, name: &str, rest: &[&str], value: Value) -> Result<(), ()> {
    let Some((next, rest)) = rest.split_first() else {
        record.push(name.into(), value);
        return Ok(());
    };
    let fields = record.fields_mut();
    let index = match fields.iter().position(|(n, _)| **n == *name) {
        Some(index) => index,
        None => {
            fields.push((name.into(), Value::Object(Record::new())));
            fields.len() - 1
        }
    };
    match &mut fields[index].1 {
        Value::Object(inner) => insert_nested(inner, next, rest, value),
        _ => Err(()),
    }
}
