//! A JSON document holding records (an array of them, or one object), at the top or inside an
//! envelope the `records` pointer names.
#![no_main]

use libfuzzer_sys::fuzz_target;
use longshore::codecs::{FormatConfig, JsonOptions};

fuzz_target!(|data: &[u8]| {
    let Some((delivery, options, file)) = longshore_fuzz::split(data) else {
        return;
    };
    let records = ["", "/data", "/a/b", "/a~1b"][usize::from(options & 3)];
    let json = JsonOptions {
        records: records.into(),
        ..JsonOptions::default()
    };
    assert!(json.problems().is_empty());
    longshore_fuzz::decode(&FormatConfig::Json(json), delivery, file);
});
