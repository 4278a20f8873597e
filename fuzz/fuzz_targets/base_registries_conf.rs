//! Any bytes as the node's own registries.conf (the base): rendering a fixed policy over it must
//! never panic, and an accepted base with no policy must come back byte for byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mirrorconf::fuzzing;

fuzz_target!(|data: &[u8]| {
    fuzzing::base_registries_conf(data);
});
