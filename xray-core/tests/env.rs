//! Environment variables (SPEC §6). One test, because the environment is process-wide.

use xray_core::emitter::MemoryEmitter;
use xray_core::sampling::AlwaysSample;
use xray_core::{ContextMissing, Recorder};

#[test]
fn environment_overrides_code_and_invalid_values_are_ignored() {
    std::env::set_var("AWS_XRAY_TRACING_NAME", "from-env");
    std::env::set_var(
        "AWS_XRAY_DAEMON_ADDRESS",
        "tcp:127.0.0.1:3000 udp:127.0.0.1:3001",
    );
    std::env::set_var("AWS_XRAY_CONTEXT_MISSING", "IGNORE_ERROR");
    let r = Recorder::builder()
        .service_name("from-code")
        .daemon_address("127.0.0.1:2000")
        .build()
        .unwrap();
    assert_eq!(r.service_name(), "from-env");
    assert_eq!(r.daemon_address().udp.port, 3001);
    assert_eq!(r.daemon_address().tcp.port, 3000);
    assert_eq!(r.context_missing(), ContextMissing::IgnoreError);

    std::env::set_var("AWS_XRAY_DAEMON_ADDRESS", "not an address");
    std::env::set_var("AWS_XRAY_CONTEXT_MISSING", "SOMETIMES");
    let r = Recorder::builder()
        .daemon_address("127.0.0.1:2999")
        .build()
        .unwrap();
    assert_eq!(
        r.daemon_address().udp.port,
        2999,
        "invalid env value is ignored"
    );
    assert_eq!(r.context_missing(), ContextMissing::LogError);

    assert!(Recorder::builder().daemon_address("nope").build().is_err());

    std::env::set_var("AWS_XRAY_SDK_ENABLED", "false");
    let e = MemoryEmitter::new();
    let r = Recorder::builder()
        .sampler(AlwaysSample)
        .emitter(e.clone())
        .build()
        .unwrap();
    assert!(!r.is_enabled());
    r.begin_segment("x", None).end();
    assert!(e.documents().is_empty());
    for v in [
        "AWS_XRAY_TRACING_NAME",
        "AWS_XRAY_DAEMON_ADDRESS",
        "AWS_XRAY_CONTEXT_MISSING",
        "AWS_XRAY_SDK_ENABLED",
    ] {
        std::env::remove_var(v);
    }
}
