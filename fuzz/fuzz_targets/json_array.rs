//! `json-array`: rows of values under a header row, under given `columns`, or with the names
//! beside the rows (`columns_at`), at the top or inside an envelope.
#![no_main]

use libfuzzer_sys::fuzz_target;
use longshore::codecs::{FormatConfig, JsonArrayOptions};

fuzz_target!(|data: &[u8]| {
    let Some((delivery, options, file)) = longshore_fuzz::split(data) else {
        return;
    };
    let in_envelope = options & 1 == 1;
    let json_array = JsonArrayOptions {
        records: if in_envelope {
            "/rows".into()
        } else {
            String::new()
        },
        columns: (options & 2 != 0).then(|| vec!["id".into(), "name".into()]),
        columns_at: (in_envelope && options & 6 == 4).then(|| "/columns".into()),
    };
    assert!(json_array.problems().is_empty());
    longshore_fuzz::decode(&FormatConfig::JsonArray(json_array), delivery, file);
});
