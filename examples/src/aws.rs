//! The AWS SDK client used by `/dynamodb`, with the X-Ray interceptor.

use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::environment::region::EnvironmentVariableRegionProvider;
use aws_config::meta::credentials::CredentialsProviderChain;
use aws_config::meta::region::RegionProviderChain;
use aws_config::profile::ProfileFileRegionProvider;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::config::Credentials;
use xray_aws_sdk::XRayInterceptor;

/// The region used when none is configured.
pub const DEFAULT_REGION: &str = "us-east-1";

/// Builds a DynamoDB client that records each call as an `aws` subsegment.
///
/// Configuration comes from the usual places (`AWS_ENDPOINT_URL`, `AWS_REGION`, profiles,
/// credentials from the environment, profile, container or instance), with two
/// allowances so that a fresh checkout works against a local emulator such as moto or
/// DynamoDB Local:
/// - the region defaults to [`DEFAULT_REGION`] (and the instance metadata service is not
///   asked for it, so start-up never waits on it);
/// - when no credentials are found, static dummy ones are used (emulators accept any).
pub async fn dynamodb_client() -> aws_sdk_dynamodb::Client {
    let region = RegionProviderChain::first_try(EnvironmentVariableRegionProvider::new())
        .or_else(ProfileFileRegionProvider::new())
        .or_else(Region::new(DEFAULT_REGION));
    let credentials = CredentialsProviderChain::first_try(
        "default",
        DefaultCredentialsChain::builder().build().await,
    )
    .or_else(
        "dummy",
        Credentials::new("test", "test", None, None, "examples-dummy"),
    );
    let sdk_config = aws_config::defaults(BehaviorVersion::latest())
        .region(region)
        .credentials_provider(credentials)
        .load()
        .await;
    aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk_config)
            .interceptor(XRayInterceptor::new())
            .build(),
    )
}
