//! Compressed input: any bytes through `unpack` with small limits, every part read to its end.
//! However the gzip stream or zip archive lies about sizes, no more than `max_unpacked_bytes`
//! come out, from no more than `max_members` parts.
#![no_main]

use std::io::{Cursor, Read};

use libfuzzer_sys::fuzz_target;
use longshore::codecs::unpack::{UnpackLimits, unpack};

const LIMITS: UnpackLimits = UnpackLimits {
    max_unpacked_bytes: 64 * 1024,
    max_members: 8,
};

fuzz_target!(|data: &[u8]| {
    let Ok(mut unpacked) = unpack(
        Box::new(Cursor::new(data.to_vec())),
        "in/a.csv.gz",
        LIMITS,
        true,
    ) else {
        return;
    };
    let mut parts = 0;
    let mut bytes_out = 0u64;
    let mut buffer = vec![0; 8192];
    while let Ok(Some(mut part)) = unpacked.next_part() {
        parts += 1;
        assert!(
            parts <= LIMITS.max_members,
            "more parts than members allowed"
        );
        loop {
            match part.reader.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => bytes_out += n as u64,
            }
            assert!(
                bytes_out <= LIMITS.max_unpacked_bytes,
                "{bytes_out} bytes unpacked, over the limit"
            );
        }
    }
});
