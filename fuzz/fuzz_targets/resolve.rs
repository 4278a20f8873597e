//! Any bytes as an image reference and a registries.conf / hosts.toml: `resolve` and `diff`'s
//! disruption classes must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mirrorconf::fuzzing;

fuzz_target!(|data: &[u8]| {
    fuzzing::resolve(data);
});
