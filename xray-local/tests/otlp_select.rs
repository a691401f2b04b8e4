//! `XRAY_EXPORTER` chooses the transport of a recorder built without an emitter. One test in
//! its own binary: it changes the process's environment.
#![cfg(feature = "otlp")]

use std::time::Duration;

use xray_core::sampling::AlwaysSample;
use xray_core::Recorder;
use xray_local::Collector;

fn traced(name: &str) {
    let recorder = Recorder::builder()
        .service_name(name)
        .sampler(AlwaysSample)
        .build()
        .unwrap();
    recorder.begin_segment(name, None).end();
    assert!(recorder.shutdown(Duration::from_secs(5)));
}

fn names(c: &Collector) -> Vec<String> {
    c.documents()
        .into_iter()
        .map(|d| d.name.to_string())
        .collect()
}

#[test]
fn the_variable_moves_a_service_between_the_daemon_and_otlp() {
    let daemon = Collector::start().unwrap();
    let otlp = Collector::builder()
        .otlp_listen("127.0.0.1:0".parse().unwrap())
        .start()
        .unwrap();
    std::env::set_var("AWS_XRAY_DAEMON_ADDRESS", daemon.daemon_address());
    std::env::set_var(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        format!("http://{}", otlp.otlp().unwrap().addr()),
    );

    std::env::set_var("XRAY_EXPORTER", "otlp");
    traced("over-otlp");
    otlp.wait_for_documents(1, Duration::from_secs(5));
    assert_eq!(names(&otlp), ["over-otlp"]);

    std::env::remove_var("XRAY_EXPORTER");
    traced("by-default");
    std::env::set_var("XRAY_EXPORTER", "daemon");
    traced("named-daemon");
    // Unknown, or a transport that cannot be set up: a warning, and the daemon.
    std::env::set_var("XRAY_EXPORTER", "zipkin");
    traced("unknown");
    std::env::set_var("XRAY_EXPORTER", "OTLP");
    std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://nowhere");
    traced("unusable-endpoint");
    daemon.wait_for_documents(4, Duration::from_secs(5));
    assert_eq!(
        names(&daemon),
        ["by-default", "named-daemon", "unknown", "unusable-endpoint"]
    );
    assert_eq!(names(&otlp), ["over-otlp"], "nothing else over OTLP");
}
