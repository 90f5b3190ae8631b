//! The `proxy_header` target: `balancer::fuzzing::proxy_header` over libFuzzer's inputs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| balancer::fuzzing::proxy_header(data));
