//! Any bytes as a manifests file: loading, validation and rendering of every target must never
//! panic, and whatever renders must stay inside the root and parse back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mirrorconf::fuzzing;

fuzz_target!(|data: &[u8]| {
    fuzzing::manifests(data);
});
