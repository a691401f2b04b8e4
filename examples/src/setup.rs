//! Start-up: logging and the recorder.

use std::path::PathBuf;

use xray_core::sampling::{LocalSampler, RulesError};
use xray_core::{ConfigError, Recorder};

use crate::args::ServiceArgs;

/// Why a service could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// The `--sampling-rules` file could not be read or is not a valid rules document.
    #[error("sampling rules file {path}: {source}")]
    SamplingRules {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: RulesError,
    },
    /// The recorder's configuration is invalid.
    #[error(transparent)]
    Recorder(#[from] ConfigError),
    /// The listening address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// The error.
        source: std::io::Error,
    },
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Builds the recorder from the options and the environment (`AWS_XRAY_DAEMON_ADDRESS` and
/// the other `AWS_XRAY_*` variables), and installs it as the process-wide one.
pub fn recorder(args: &ServiceArgs, service_name: &str) -> Result<Recorder, SetupError> {
    let mut builder = Recorder::builder()
        .service_name(service_name)
        .service_version(env!("CARGO_PKG_VERSION"));
    if let Some(path) = &args.sampling_rules {
        let sampler =
            LocalSampler::from_file(path).map_err(|source| SetupError::SamplingRules {
                path: path.clone(),
                source,
            })?;
        // The file's rules are the local fallback of centralized sampling: they decide until
        // the daemon's sampling API answers, and whenever it cannot be reached.
        builder = builder.fallback_rules(sampler);
    }
    let recorder = builder.build()?;
    if Recorder::set_global(recorder.clone()).is_err() {
        tracing::warn!("a global X-Ray recorder was already installed; this one is used by the middleware only");
    }
    tracing::info!(
        service = recorder.service_name(),
        daemon = %recorder.daemon_address(),
        enabled = recorder.is_enabled(),
        "X-Ray recorder ready"
    );
    Ok(recorder)
}

/// Stops the sampling poller and sends the segments not yet sent, within two seconds in all,
/// then logs what the emitter did.
pub fn flush(recorder: &Recorder) {
    let flushed = recorder.shutdown(std::time::Duration::from_secs(2));
    let s = recorder.emitter_stats();
    if flushed {
        tracing::info!(
            sent = s.sent,
            dropped = s.dropped,
            errors = s.errors,
            refused = s.refused,
            "segments flushed"
        );
    } else {
        tracing::warn!(
            sent = s.sent,
            dropped = s.dropped,
            errors = s.errors,
            accepted = s.accepted,
            "some segments could not be sent before the timeout"
        );
    }
}
