//! CSV with every dialect option the decoder has: separators, quote and escape characters, with
//! and without a header, given columns, skipped lines, a null token, ragged rows.
#![no_main]

use libfuzzer_sys::fuzz_target;
use longshore::codecs::{CsvOptions, FormatConfig};

fuzz_target!(|data: &[u8]| {
    let Some((delivery, options, file)) = longshore_fuzz::split(data) else {
        return;
    };
    let bit = |n: u16| options >> n & 1 == 1;
    let csv = CsvOptions {
        delimiter: [',', ';', '\t', '|'][usize::from(options & 3)],
        quote: if bit(2) { '\'' } else { '"' },
        escape: bit(3).then_some('\\'),
        header: !bit(4),
        columns: bit(5).then(|| vec!["id".into(), "name".into()]),
        skip_rows: usize::from(options >> 6 & 3),
        flexible: bit(8),
        null: if bit(9) { "NULL".into() } else { String::new() },
        ..CsvOptions::default()
    };
    let format = FormatConfig::Csv(csv);
    assert!(format.problems().is_empty());
    longshore_fuzz::decode(&format, delivery, file);
});
