//! The AWS SDK client and the small Tokio runtime it runs on, shared by the emitter's worker
//! and the sampling poller.

use std::future::Future;
use std::time::Duration;

use aws_sdk_xray::config::retry::RetryConfig;
use aws_sdk_xray::Client;
use tokio::sync::OnceCell;

/// Where the client comes from.
#[derive(Debug)]
pub(super) enum Source {
    /// Given ready.
    Client(Client),
    /// Built from the default chain (region, credentials, `AWS_ENDPOINT_URL_XRAY` /
    /// `AWS_ENDPOINT_URL`, profile files, IMDS) on the runtime's thread, at first use, so that
    /// building the emitter never waits for the network.
    Environment,
}

/// One client and the runtime driving it: a current-thread runtime run by the emitter's
/// thread. Other threads hand it work through [`run`](Self::run).
#[derive(Debug)]
pub(super) struct Sdk {
    handle: tokio::runtime::Handle,
    client: OnceCell<Client>,
}

impl Sdk {
    pub(super) fn new(handle: tokio::runtime::Handle, source: Source) -> Self {
        let client = match source {
            Source::Client(c) => OnceCell::new_with(Some(c)),
            Source::Environment => OnceCell::new(),
        };
        Self { handle, client }
    }

    /// The client; the first call on an emitter built from the environment loads the AWS
    /// configuration.
    pub(super) async fn client(&self) -> &Client {
        self.client
            .get_or_init(|| async {
                let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
                    .load()
                    .await;
                if config.region().is_none() {
                    tracing::warn!(
                        "no AWS region found (AWS_REGION, profile or instance metadata): the \
                         X-Ray API emitter cannot send"
                    );
                }
                Client::new(&config)
            })
            .await
    }

    /// Runs `work` on the runtime and waits for its result on the calling thread (which must
    /// not be the runtime's), at most `timeout`.
    pub(super) fn run<T, F>(&self, timeout: Duration, work: F) -> Result<T, String>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, String>> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let result = match tokio::time::timeout(timeout, work).await {
                Ok(r) => r,
                Err(_) => Err(format!("no answer within {timeout:?}")),
            };
            let _ = tx.send(result);
        });
        match rx.recv_timeout(timeout + Duration::from_millis(200)) {
            Ok(r) => r,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                Err(format!("no answer within {timeout:?}"))
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                Err("the X-Ray API emitter has stopped".into())
            }
        }
    }
}

/// Turns the SDK's own retries off for one call: the emitter and the poller retry by
/// themselves, within their own deadlines and counters.
pub(super) fn no_sdk_retries() -> aws_sdk_xray::config::Builder {
    aws_sdk_xray::config::Builder::new().retry_config(RetryConfig::disabled())
}
