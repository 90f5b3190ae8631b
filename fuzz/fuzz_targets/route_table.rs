//! The `route_table` target: `balancer::fuzzing::route_table` over libFuzzer's inputs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| balancer::fuzzing::route_table(data));
