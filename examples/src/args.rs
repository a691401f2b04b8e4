//! Command-line options shared by `axum-service` and `actix-service`.

use std::path::PathBuf;

use clap::Parser;

/// Shown after the options in `--help`.
const AFTER_HELP: &str = "\
Routes:
  GET /                       200 ok
  GET /status/{code}          answers with that status
  GET /annotated              annotation example_key=example_value, metadata, user
  GET /work/{n}               n sequential subsegments step-1..step-n (n <= 1000)
  GET /fanout/{n}             n concurrent subsegments fanout-1..fanout-n (n <= 100)
  GET /call?url=URL           calls URL (traced); 200 + downstream status, 502 on failure
  GET /dynamodb/{table}/{key} DynamoDB GetItem on key id=<key>: 200 item, 404, 502
  GET /error                  the handler fails: 500
  GET /panic                  the handler panics: 500, the server keeps serving

Environment:
  AWS_XRAY_DAEMON_ADDRESS     where segments go (default 127.0.0.1:2000)
  AWS_XRAY_TRACING_NAME       overrides --name
  AWS_XRAY_SDK_ENABLED=false  turns tracing off
  AWS_ENDPOINT_URL            AWS endpoint for /dynamodb (e.g. a local emulator)
  AWS_REGION                  AWS region (default us-east-1)
  RUST_LOG                    log filter (default info)";

/// Options of the example services.
#[derive(Debug, Clone, Parser)]
#[command(version, after_help = AFTER_HELP)]
#[non_exhaustive]
pub struct ServiceArgs {
    /// Address to listen on (port 0: any free port; the address is printed once bound).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: String,

    /// Segment (service) name [default: the binary's name].
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Name segments after the request's Host (port ignored) when it matches this pattern
    /// (`*` and `?` wildcards), else after --name.
    #[arg(long, value_name = "PATTERN")]
    pub dynamic_naming: Option<String>,

    /// Local sampling rules file (X-Ray JSON format, version 1 or 2) [default: the first
    /// request each second, then 5%].
    #[arg(long, value_name = "FILE")]
    pub sampling_rules: Option<PathBuf>,
}

impl ServiceArgs {
    /// The segment name: `--name`, else `default`.
    pub fn name_or<'a>(&'a self, default: &'a str) -> &'a str {
        self.name.as_deref().unwrap_or(default)
    }
}
