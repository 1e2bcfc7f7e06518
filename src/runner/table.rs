//! The aligned text table `longshore preview` prints.

use std::io::{self, Write};

use crate::record::{FieldName, Record};

/// Cells longer than this many characters are cut, so one long note does not hide the rest.
const MAX_CELL_CHARS: usize = 40;

/// Writes `records` as a table: one column per field name, in order of first appearance; null
/// is shown as an empty cell.
pub fn write_table(out: &mut dyn Write, records: &[Record]) -> io::Result<()> {
    if records.is_empty() {
        return writeln!(out, "(0 records)");
    }
    let mut columns: Vec<&FieldName> = Vec::new();
    for record in records {
        for name in record.names() {
            if !columns.contains(&name) {
                columns.push(name);
            }
        }
    }
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|record| {
            columns
                .iter()
                .map(|c| {
                    record
                        .get(c)
                        .map(|v| cell(&v.to_string()))
                        .unwrap_or_default()
                })
                .collect()
        })
        .collect();
    let header: Vec<String> = columns.iter().map(|c| cell(c)).collect();
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| {
            rows.iter()
                .map(|row| row[i].chars().count())
                .chain([header[i].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |out: &mut dyn Write, cells: &[String]| -> io::Result<()> {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell}{}", " ".repeat(width - cell.chars().count())))
            .collect();
        writeln!(out, "{}", padded.join("  ").trim_end())
    };
    line(out, &header)?;
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    line(out, &rule)?;
    for row in &rows {
        line(out, row)?;
    }
    writeln!(
        out,
        "({} record{})",
        records.len(),
        if records.len() == 1 { "" } else { "s" }
    )
}

/// A value as one table cell: line breaks shown as `⏎`, long text cut with `…`.
fn cell(text: &str) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c == '\n' || c == '\r' { '⏎' } else { c })
        .collect();
    if flat.chars().count() > MAX_CELL_CHARS {
        let cut: String = flat.chars().take(MAX_CELL_CHARS - 1).collect();
        format!("{cut}…")
    } else {
        flat
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Value;

    #[test]
    fn aligns_columns_and_shows_nulls_as_empty() {
        let a: Record = [
            (FieldName::from("id"), Value::Integer(1)),
            (FieldName::from("name"), Value::String("Zoë\nSmith".into())),
        ]
        .into_iter()
        .collect();
        let b: Record = [
            (FieldName::from("id"), Value::Integer(22)),
            (FieldName::from("name"), Value::Null),
            (FieldName::from("x"), Value::Bool(true)),
        ]
        .into_iter()
        .collect();
        let mut out = Vec::new();
        write_table(&mut out, &[a, b]).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "id  name       x\n--  ---------  ----\n1   Zoë⏎Smith\n22             true\n(2 records)\n"
        );
    }
}
