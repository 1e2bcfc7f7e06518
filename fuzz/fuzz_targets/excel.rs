//! Workbooks (`.xlsx`, `.xls`, `.ods`, told apart by content): the decoder spools its input to a
//! file, as calamine needs, so the bytes are the whole file. A sheet by position or name, a
//! header row, a range. Compressed sheets may hold more rows than the file has bytes: the
//! records are bounded by what deflate can expand to instead.
#![no_main]

use libfuzzer_sys::fuzz_target;
use longshore::codecs::excel::SheetChoice;
use longshore::codecs::{ExcelOptions, FormatConfig};

/// Deflate expands at most about 1032 to 1.
const RECORDS_PER_BYTE: usize = 1032;

fuzz_target!(
    init: {
        // calamine panics on some corrupt workbooks; the decoder turns such a panic into an error,
        // but libFuzzer's panic hook would abort on it first. Any other panic still aborts.
        let abort = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |panic| {
            let in_calamine = panic
                .location()
                .is_some_and(|location| location.file().contains("/calamine-"));
            if !in_calamine {
                abort(panic);
            }
        }));
    },
    |data: &[u8]| {
    let Some((delivery, options, file)) = longshore_fuzz::split(data) else {
        return;
    };
    let excel = ExcelOptions {
        sheet: [
            None,
            Some(SheetChoice::Position(2)),
            Some(SheetChoice::Name("Orders".into())),
        ]
        .into_iter()
        .nth(usize::from(options & 3))
        .flatten(),
        header_row: (options & 4 != 0).then_some(3),
        range: [None, Some("B3:F200"), Some("B:D"), Some("A2:C")][usize::from(options >> 3 & 3)]
            .map(str::to_string),
        ..ExcelOptions::default()
    };
    let format = FormatConfig::Excel(excel);
    assert!(format.problems().is_empty());
    let limit = file.len().saturating_mul(RECORDS_PER_BYTE);
    longshore_fuzz::decode_as(&format, None, delivery, file, limit);
});
