//! The `http` adapter kind, shared by SMS and biometrics: a JSON request POSTed to the vendor over HTTPS, signed
//! with an HMAC-SHA256 key both sides hold (`X-Kopir-Signature: t=<unix time>,v1=<hex of HMAC(key, "t.body")>`, so
//! the vendor can refuse forged or replayed calls), with a time-out and no redirects; the vendor answers JSON.

use std::time::Duration;

use aws_lc_rs::hmac;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::command::CommandError;

pub const SIGNATURE_HEADER: &str = "x-kopir-signature";

/// Computes the signature header value for `body` at `unix_time`.
pub fn signature(key: &[u8], unix_time: i64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut message = format!("{unix_time}.").into_bytes();
    message.extend_from_slice(body);
    format!("t={unix_time},v1={}", hex::encode(hmac::sign(&key, &message).as_ref()))
}

#[derive(Clone)]
pub struct Webhook {
    client: reqwest::Client,
    url: String,
    key: Vec<u8>,
    timeout: Duration,
}

impl Webhook {
    /// `extra_ca_pem`: CA certificates to trust for this vendor besides the system's.
    pub fn new(
        url: &str,
        key: Vec<u8>,
        timeout: Duration,
        extra_ca_pem: Option<&str>,
    ) -> Result<Webhook, crate::egress::OutboundError> {
        let client = crate::egress::Outbound::new()
            .timeout(timeout)
            .trust_pem(extra_ca_pem.unwrap_or_default())
            .build_for_configured_url()?;
        Ok(Webhook { client, url: url.to_string(), key, timeout })
    }

    pub async fn call<Req: Serialize, Ans: DeserializeOwned>(&self, request: &Req) -> Result<Ans, CommandError> {
        let body = serde_json::to_vec(request).map_err(|e| CommandError::Failed(e.to_string()))?;
        let now = crate::clock::now().unix_timestamp();
        let response = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature(&self.key, now, &body))
            .body(body)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    CommandError::Timeout(self.timeout.as_secs())
                } else {
                    CommandError::Failed(format!("{}: {}", self.url, e.without_url()))
                }
            })?;
        if !response.status().is_success() {
            return Err(CommandError::Failed(format!("{} answered {}", self.url, response.status())));
        }
        response.json::<Ans>().await.map_err(|_| CommandError::Failed(format!("{} did not answer JSON", self.url)))
    }
}
