#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| octoup::fuzzing::journal(data));
