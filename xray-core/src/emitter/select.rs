//! Choosing the transport by configuration: `XRAY_EXPORTER`.
//!
//! The recorder builds its default emitter here when the code gives none
//! ([`RecorderBuilder::emitter`](crate::RecorderBuilder::emitter) always wins). An operator
//! can then move a deployed service from the daemon to an OTLP receiver or to the X-Ray API
//! without rebuilding it, as long as the transport's cargo feature was compiled in:
//!
//! | `XRAY_EXPORTER` | Transport | Cargo feature |
//! |---|---|---|
//! | `daemon` (default) | UDP datagrams to the X-Ray daemon | always there |
//! | `otlp` | OTLP/HTTP (protobuf) to a collector, the CloudWatch agent or X-Ray's OTLP endpoint | `otlp` |
//! | `xray-api` | `PutTraceSegments` through the AWS SDK | `xray-api` |
//!
//! A value that names a transport that was not compiled in, an unknown value, or a transport
//! that cannot be set up from its own variables is reported with a `tracing` warning and the
//! daemon is used instead: a bad setting never stops a service.

use std::sync::Arc;

use super::{Emitter, UdpEmitter};
use crate::daemon::DaemonAddress;

/// The environment variable that chooses the default transport.
pub const EXPORTER_ENV: &str = "XRAY_EXPORTER";

/// A transport that `XRAY_EXPORTER` can name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Exporter {
    /// UDP datagrams to the X-Ray daemon (`daemon`, the default).
    #[default]
    Daemon,
    /// OTLP/HTTP with protobuf (`otlp`; cargo feature `otlp`).
    Otlp,
    /// The X-Ray API's `PutTraceSegments` (`xray-api`; cargo feature `xray-api`).
    XRayApi,
}

impl Exporter {
    /// Parses a value of `XRAY_EXPORTER` (ASCII case and surrounding blanks ignored; `_` is
    /// taken for `-`).
    pub fn parse(value: &str) -> Option<Self> {
        let v = value.trim().to_ascii_lowercase().replace('_', "-");
        match v.as_str() {
            "daemon" | "udp" => Some(Self::Daemon),
            "otlp" => Some(Self::Otlp),
            "xray-api" => Some(Self::XRayApi),
            _ => None,
        }
    }

    /// The value naming this transport in `XRAY_EXPORTER`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Daemon => "daemon",
            Self::Otlp => "otlp",
            Self::XRayApi => "xray-api",
        }
    }

    /// The cargo feature of `xray-core` that compiles this transport in (none for the daemon).
    pub fn cargo_feature(self) -> Option<&'static str> {
        match self {
            Self::Daemon => None,
            Self::Otlp => Some("otlp"),
            Self::XRayApi => Some("xray-api"),
        }
    }

    /// Whether this build holds the transport.
    pub fn is_compiled_in(self) -> bool {
        match self {
            Self::Daemon => true,
            Self::Otlp => cfg!(feature = "otlp"),
            Self::XRayApi => cfg!(feature = "xray-api"),
        }
    }

    /// The transport `XRAY_EXPORTER` names; the daemon when it is unset, empty or invalid (an
    /// invalid value is reported with a warning).
    pub fn from_env() -> Self {
        match std::env::var(EXPORTER_ENV) {
            Ok(v) if !v.trim().is_empty() => Self::parse(&v).unwrap_or_else(|| {
                let shown: String = v.chars().take(100).collect();
                tracing::warn!(
                    "ignoring invalid {EXPORTER_ENV}={shown:?}: expected daemon, otlp or \
                     xray-api; sending to the X-Ray daemon"
                );
                Self::Daemon
            }),
            _ => Self::Daemon,
        }
    }
}

/// The emitter the recorder uses when the code gives none: the transport `XRAY_EXPORTER`
/// names (read only when `from_env`), falling back to the daemon at `daemon`.
pub(crate) fn default_emitter(daemon: &DaemonAddress, from_env: bool) -> Arc<dyn Emitter> {
    let chosen = if from_env {
        Exporter::from_env()
    } else {
        Exporter::Daemon
    };
    match build(chosen) {
        Ok(Some(emitter)) => emitter,
        Ok(None) => Arc::new(UdpEmitter::new(daemon)),
        Err(reason) => {
            tracing::warn!(
                exporter = chosen.name(),
                "{EXPORTER_ENV}={}: {reason}; sending to the X-Ray daemon at {} instead",
                chosen.name(),
                daemon.udp
            );
            Arc::new(UdpEmitter::new(daemon))
        }
    }
}

/// Builds the emitter of `chosen`; `Ok(None)` stands for the daemon.
fn build(chosen: Exporter) -> Result<Option<Arc<dyn Emitter>>, String> {
    match chosen {
        Exporter::Daemon => Ok(None),
        Exporter::Otlp => build_otlp(),
        Exporter::XRayApi => build_xray_api(),
    }
}

#[cfg(feature = "otlp")]
fn build_otlp() -> Result<Option<Arc<dyn Emitter>>, String> {
    let emitter = super::otlp::OtlpEmitter::from_env()?;
    Ok(Some(Arc::new(emitter)))
}

#[cfg(not(feature = "otlp"))]
fn build_otlp() -> Result<Option<Arc<dyn Emitter>>, String> {
    Err(not_compiled_in(Exporter::Otlp))
}

#[cfg(feature = "xray-api")]
fn build_xray_api() -> Result<Option<Arc<dyn Emitter>>, String> {
    let emitter = super::xray_api::XRayApiEmitter::from_env()?;
    Ok(Some(Arc::new(emitter)))
}

#[cfg(not(feature = "xray-api"))]
fn build_xray_api() -> Result<Option<Arc<dyn Emitter>>, String> {
    Err(not_compiled_in(Exporter::XRayApi))
}

#[allow(dead_code)] // unused when every transport is compiled in
fn not_compiled_in(chosen: Exporter) -> String {
    format!(
        "this build of xray-core lacks the transport: enable the cargo feature \"{}\" of \
         xray-core",
        chosen.cargo_feature().unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_values() {
        assert_eq!(Exporter::parse("daemon"), Some(Exporter::Daemon));
        assert_eq!(Exporter::parse(" OTLP "), Some(Exporter::Otlp));
        assert_eq!(Exporter::parse("xray-api"), Some(Exporter::XRayApi));
        assert_eq!(Exporter::parse("XRAY_API"), Some(Exporter::XRayApi));
        assert_eq!(Exporter::parse("zipkin"), None);
        assert_eq!(Exporter::parse(""), None);
        for e in [Exporter::Daemon, Exporter::Otlp, Exporter::XRayApi] {
            assert_eq!(Exporter::parse(e.name()), Some(e));
        }
    }

    #[test]
    fn the_daemon_is_always_there() {
        assert!(Exporter::Daemon.is_compiled_in());
        assert!(matches!(build(Exporter::Daemon), Ok(None)));
    }

    #[cfg(not(feature = "otlp"))]
    #[test]
    fn a_missing_transport_names_its_feature() {
        let err = build(Exporter::Otlp).err().unwrap();
        assert!(err.contains("\"otlp\""), "{err}");
        assert!(!Exporter::Otlp.is_compiled_in());
    }
}
