//! Any bytes as the node's own policy.json (the base): rendering allowed and blocked registries over
//! it must never panic, must give a JSON object or refuse the base, and with neither list the base
//! must come back byte for byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mirrorconf::fuzzing;

fuzz_target!(|data: &[u8]| {
    fuzzing::base_policy_json(data);
});
