//! NDJSON: one object per line; the parsing threads start after a few chunks, so long inputs with
//! small batches go through them too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use longshore::codecs::{FormatConfig, NdjsonOptions};

fuzz_target!(|data: &[u8]| {
    let Some((delivery, _, file)) = longshore_fuzz::split(data) else {
        return;
    };
    longshore_fuzz::decode(&FormatConfig::Ndjson(NdjsonOptions {}), delivery, file);
});
