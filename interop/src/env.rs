//! Where the test peers are, from the variables `scripts/setup-peers` prints.
//!
//! A missing variable skips the test with a loud message, or fails it when
//! `XRAY_REQUIRE_PEERS=1` (as `scripts/test` sets).

/// The Python interpreter of the venv with `aws-xray-sdk`, Flask and `requests`.
pub const PYTHON: &str = "XRAY_TEST_PYTHON";
/// The `node_modules` folder with `aws-xray-sdk-core`, `aws-xray-sdk-express` and express.
pub const NODE_MODULES: &str = "XRAY_TEST_NODE_MODULES";
/// The base URL of a running moto server (`http://127.0.0.1:PORT`).
pub const MOTO_ENDPOINT: &str = "XRAY_TEST_MOTO_ENDPOINT";
/// The Node executable; `node` from `PATH` when unset.
pub const NODE: &str = "XRAY_TEST_NODE";

/// True when missing peers must fail the tests instead of skipping them.
pub fn peers_required() -> bool {
    std::env::var("XRAY_REQUIRE_PEERS").as_deref() == Ok("1")
}

/// The value of `var`, or `None` after announcing that `what` is skipped. Panics instead when
/// [`peers_required`].
pub fn peer_var(var: &str, what: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Some(v),
        _ => {
            assert!(
                !peers_required(),
                "XRAY_REQUIRE_PEERS=1 but {var} is not set: run scripts/setup-peers and \
                 export what it prints (scripts/test does both)"
            );
            eprintln!(
                "\n********************************************************************\n\
                 *** SKIPPED: {what}\n\
                 *** ({var} is not set; run scripts/test, or scripts/setup-peers and\n\
                 ***  export what it prints)\n\
                 ********************************************************************\n"
            );
            None
        }
    }
}

/// The Python interpreter, or `None` (test skipped).
pub fn python(what: &str) -> Option<String> {
    peer_var(PYTHON, what)
}

/// The Node `node_modules` folder, or `None` (test skipped).
pub fn node_modules(what: &str) -> Option<String> {
    peer_var(NODE_MODULES, what)
}

/// The moto endpoint, or `None` (test skipped).
pub fn moto_endpoint(what: &str) -> Option<String> {
    peer_var(MOTO_ENDPOINT, what)
}

/// The Node executable to run.
pub fn node() -> String {
    std::env::var(NODE)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "node".to_string())
}

/// The path of a script in `interop/peers/`.
pub fn peer_script(name: &str) -> String {
    format!("{}/peers/{name}", env!("CARGO_MANIFEST_DIR"))
}
