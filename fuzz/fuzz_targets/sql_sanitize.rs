#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xray_fuzz::sql_harness::sql_sanitize(data));
