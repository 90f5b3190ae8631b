//! The `config` target: `balancer::fuzzing::config` over libFuzzer's inputs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| balancer::fuzzing::config(data));
