//! Command-line options shared by `axum-service` and `actix-service`.

use std::path::PathBuf;

use clap::Parser;

/// Shown after the options in `--help`.
const AFTER_HELP: &str = "\
Routes:
  GET /                       200 ok
  GET /status/{code}          answers with that status
  GET /annotated              annotation example_key=example_value, user
  GET /work/N                 N sequential subsegments step-1.. (N <= 1000)
  GET /fanout/N               N concurrent subsegments fanout-1.. (N <= 100)
  GET /call?url=URL           calls URL: 200 + its status; 502 if it fails
  GET /dynamodb/{table}/{key} GetItem id=key: 200 + item, 404, 502
  GET /error                  the handler fails: 500
  GET /panic                  the handler panics: 500, the server keeps serving
  GET /db/N                   N queries (1..100) against DATABASE_URL: 200 + rows; 502

Environment:
  AWS_XRAY_DAEMON_ADDRESS     where segments go (default 127.0.0.1:2000)
  AWS_XRAY_TRACING_NAME       overrides --name
  AWS_XRAY_SDK_ENABLED=false  turns tracing off
  AWS_ENDPOINT_URL            AWS endpoint for /dynamodb (e.g. a local emulator)
  AWS_REGION                  AWS region (default us-east-1)
  DATABASE_URL                database for /db (postgres://, mysql://, sqlite:; default: SQLite in memory)
  RUST_LOG                    log filter (default info)";

/// Options of the example services.
#[derive(Debug, Clone, Parser)]
#[command(version, after_help = AFTER_HELP)]
#[non_exhaustive]
pub struct ServiceArgs {
    /// Address to listen on (port 0: any free one)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: String,

    /// Segment name [default: the binary's name]
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Use the Host as segment name when it matches
    #[arg(long, value_name = "PATTERN")]
    pub dynamic_naming: Option<String>,

    /// Local sampling rules file (JSON, v1 or v2): decides until the daemon's centralized
    /// rules arrive, and whenever the daemon cannot be reached
    #[arg(long, value_name = "FILE")]
    pub sampling_rules: Option<PathBuf>,
}

impl ServiceArgs {
    /// The segment name: `--name`, else `default`.
    pub fn name_or<'a>(&'a self, default: &'a str) -> &'a str {
        self.name.as_deref().unwrap_or(default)
    }
}
