//! The `client_hello` target: `balancer::fuzzing::client_hello` over libFuzzer's inputs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| balancer::fuzzing::client_hello(data));
