#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xray_fuzz::harness::daemon_address(data));
