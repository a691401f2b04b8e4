//! SigV4 signing of OTLP requests, for X-Ray's own OTLP endpoint
//! (`https://xray.<region>.amazonaws.com/v1/traces`, service name `xray`).

use std::fmt;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;

/// Signs each OTLP request with AWS Signature Version 4.
///
/// Credentials are static: give them in code, or take them from the standard variables
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`) with
/// [`from_env`](Self::from_env). Temporary credentials that expire are not renewed.
#[derive(Clone)]
pub struct SigV4 {
    region: String,
    service: String,
    credentials: Credentials,
    clock: Option<SystemTime>,
}

impl fmt::Debug for SigV4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigV4")
            .field("region", &self.region)
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl SigV4 {
    /// Signs for `region` (service `xray`) with these credentials.
    pub fn new(
        region: impl Into<String>,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: Option<String>,
    ) -> Self {
        Self {
            region: region.into(),
            service: "xray".into(),
            credentials: Credentials::new(
                access_key_id,
                secret_access_key,
                session_token,
                None,
                "xray-core",
            ),
            clock: None,
        }
    }

    /// Signs for `region` (or `AWS_REGION`, then `AWS_DEFAULT_REGION`, when `None`) with the
    /// credentials of `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`.
    pub fn from_env(region: Option<&str>) -> Result<Self, String> {
        let var = |n: &str| std::env::var(n).ok().filter(|v| !v.trim().is_empty());
        let region = region
            .map(str::to_string)
            .or_else(|| var("AWS_REGION"))
            .or_else(|| var("AWS_DEFAULT_REGION"))
            .ok_or("no AWS region: set AWS_REGION")?;
        let key = var("AWS_ACCESS_KEY_ID").ok_or("AWS_ACCESS_KEY_ID is not set")?;
        let secret = var("AWS_SECRET_ACCESS_KEY").ok_or("AWS_SECRET_ACCESS_KEY is not set")?;
        Ok(Self::new(region, key, secret, var("AWS_SESSION_TOKEN")))
    }

    /// The service name signed for (default `xray`).
    pub fn service(mut self, name: impl Into<String>) -> Self {
        self.service = name.into();
        self
    }

    /// The region signed for.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Signs with this time instead of the clock's (for tests).
    #[cfg(test)]
    fn at(mut self, time: SystemTime) -> Self {
        self.clock = Some(time);
        self
    }

    /// Adds the signature headers (`authorization`, `x-amz-date`, and
    /// `x-amz-security-token` for temporary credentials) to `request`.
    pub(crate) fn sign(&self, request: &mut http::Request<Vec<u8>>) -> Result<(), String> {
        let identity = self.credentials.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(&self.service)
            .time(self.clock.unwrap_or_else(SystemTime::now))
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| e.to_string())?
            .into();
        let headers: Vec<(&str, &str)> = request
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
            .collect();
        let uri = request.uri().to_string();
        let signable = SignableRequest::new(
            request.method().as_str(),
            uri,
            headers.into_iter(),
            SignableBody::Bytes(request.body()),
        )
        .map_err(|e| e.to_string())?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| e.to_string())?
            .into_parts();
        instructions.apply_to_request_http1x(request);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn requests_carry_a_signature_for_xray_in_the_region() {
        let signer = SigV4::new(
            "us-west-2",
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            Some("session-token".into()),
        )
        .at(SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600)); // 2026-01-01
        let mut request = http::Request::builder()
            .method("POST")
            .uri("https://xray.us-west-2.amazonaws.com/v1/traces")
            .header("content-type", "application/x-protobuf")
            .body(b"\x0a\x00".to_vec())
            .unwrap();
        signer.sign(&mut request).unwrap();
        let h = request.headers();
        assert_eq!(h["x-amz-date"], "20260101T000000Z");
        assert_eq!(h["x-amz-security-token"], "session-token");
        let auth = h["authorization"].to_str().unwrap();
        assert!(
            auth.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-west-2/xray/aws4_request, \
                 SignedHeaders="
            ),
            "{auth}"
        );
        assert!(auth.contains("content-type"), "{auth}");
        let sig = auth.rsplit_once("Signature=").unwrap().1;
        assert_eq!(sig.len(), 64);
        assert!(sig.bytes().all(|b| b.is_ascii_hexdigit()));
        // The same request signed again at the same time gives the same signature; another
        // body gives another one.
        let mut again = request.clone();
        again.headers_mut().remove("authorization");
        signer.sign(&mut again).unwrap();
        assert_eq!(again.headers()["authorization"], h["authorization"]);
        let mut other = http::Request::builder()
            .method("POST")
            .uri("https://xray.us-west-2.amazonaws.com/v1/traces")
            .header("content-type", "application/x-protobuf")
            .body(b"\x0a\x01".to_vec())
            .unwrap();
        signer.sign(&mut other).unwrap();
        assert_ne!(other.headers()["authorization"], h["authorization"]);
    }
}
