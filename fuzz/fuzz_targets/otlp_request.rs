#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xray_fuzz::otlp_harness::otlp_request(data));
