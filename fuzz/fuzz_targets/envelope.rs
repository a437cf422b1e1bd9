#![no_main]
//! Fuzzes `fthub::fuzzing::envelope`: it must return for any input without panicking.

libfuzzer_sys::fuzz_target!(|data: &[u8]| fthub::fuzzing::envelope(data));
