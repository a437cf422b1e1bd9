#![no_main]
//! Fuzzes `fthub::fuzzing::approval`: it must return for any input without panicking.

libfuzzer_sys::fuzz_target!(|data: &[u8]| fthub::fuzzing::approval(data));
