#![no_main]
//! Fuzzes `fthub::fuzzing::validator`: it must return for any input without panicking.

libfuzzer_sys::fuzz_target!(|data: &[u8]| fthub::fuzzing::validator(data));
