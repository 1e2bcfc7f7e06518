//! The peer `scripts/bench-peers` measures longshore's XLSX writing against: a CSV file
//! written to a workbook by `rust_xlsxwriter` alone, in its constant-memory mode, as its own
//! `app_perf_memory` example does (one worksheet, every cell a string, as `longshore convert`
//! writes CSV text), with the `csv` crate reading.
//!
//! usage: xlsx_constant_memory IN.csv OUT.xlsx

use rust_xlsxwriter::Workbook;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(input), Some(output)) = (args.next(), args.next()) else {
        return Err("usage: xlsx_constant_memory IN.csv OUT.xlsx".into());
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_path(input)?;
    let mut workbook = Workbook::new();
    let worksheet = workbook.add_worksheet_with_constant_memory()?;
    let mut record = csv::StringRecord::new();
    let mut row = 0;
    while reader.read_record(&mut record)? {
        for (column, field) in record.iter().enumerate() {
            if !field.is_empty() {
                worksheet.write_string(row, column as u16, field)?;
            }
        }
        row += 1;
    }
    workbook.save(output)?;
    Ok(())
}
