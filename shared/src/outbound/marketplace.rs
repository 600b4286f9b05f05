use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use reqwest::StatusCode;

use super::{MarketplaceMessage, MarketplaceSender, RateLimiter, SendError};
use crate::config::{ConfigError, SdkConfig, parsed, required, secret};

#[derive(Clone)]
pub struct MarketplaceConfig {
    /// Base URL; messages go to `{url}/messages`.
    pub url: String,
    pub token: String,
    pub timeout: Duration,
    pub per_second: u32,
}

impl std::fmt::Debug for MarketplaceConfig {
    // The token never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MarketplaceConfig")
            .field("url", &self.url)
            .field("token", &"<redacted>")
            .field("timeout", &self.timeout)
            .field("per_second", &self.per_second)
            .finish()
    }
}

impl MarketplaceConfig {
    /// Reads the environment; the token from `MARKETPLACE_API_TOKEN` or, deployed, from the
    /// SSM parameter named in `MARKETPLACE_API_TOKEN_PARAMETER` (see [`secret`]).
    pub async fn from_env(aws: &SdkConfig) -> Result<Self, ConfigError> {
        let url = required("MARKETPLACE_API_URL")?;
        reqwest::Url::parse(&url)
            .map_err(|_| ConfigError("MARKETPLACE_API_URL is not a URL".into()))?;
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            token: secret(aws, "MARKETPLACE_API_TOKEN").await?,
            timeout: Duration::from_millis(parsed("MARKETPLACE_TIMEOUT_MS", 5_000u64)?),
            per_second: parsed("MARKETPLACE_PER_SECOND", 10u32)?,
        })
    }
}

/// The marketplace connector over HTTP: `POST {url}/messages` with a bearer token and an
/// idempotency key, so that a retried request never posts twice.
pub struct HttpMarketplace {
    client: reqwest::Client,
    endpoint: String,
    token: String,
    limiter: Option<RateLimiter>,
}

impl HttpMarketplace {
    pub fn new(config: &MarketplaceConfig) -> Result<Self, ConfigError> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .build()
            .map_err(|e| ConfigError(format!("HTTP client: {e}")))?;
        Ok(Self {
            client,
            endpoint: format!("{}/messages", config.url),
            token: config.token.clone(),
            limiter: super::rate_limiter(config.per_second),
        })
    }

    /// Opens a connection to the connector during init (any answer will do).
    pub async fn warm_up(&self) {
        if let Err(err) = self.client.head(&self.endpoint).send().await {
            tracing::warn!(error = %without_url(&err), "marketplace connector not reachable at start");
        }
    }
}

/// A reqwest error without the URL (which could carry credentials in some deployments).
fn without_url(err: &reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    kind.to_owned()
}

/// 408, 429 and 5xx are worth retrying; any other refusal is final.
fn classify(status: StatusCode) -> Result<(), SendError> {
    if status.is_success() {
        Ok(())
    } else if status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
    {
        Err(SendError::Transient(format!(
            "marketplace answered {status}"
        )))
    } else {
        Err(SendError::Permanent(format!(
            "marketplace refused the message: {status}"
        )))
    }
}

impl MarketplaceSender for HttpMarketplace {
    fn send_message<'a>(
        &'a self,
        message: &'a MarketplaceMessage<'a>,
        idempotency_key: &'a str,
    ) -> BoxFuture<'a, Result<(), SendError>> {
        async move {
            if let Some(limiter) = &self.limiter {
                limiter.until_ready().await;
            }
            let response = self
                .client
                .post(&self.endpoint)
                .bearer_auth(&self.token)
                .header("Idempotency-Key", idempotency_key)
                .json(message)
                .send()
                .await
                .map_err(|e| SendError::Transient(format!("marketplace {}", without_url(&e))))?;
            classify(response.status())
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_per_spec() {
        assert!(classify(StatusCode::OK).is_ok());
        assert!(classify(StatusCode::ACCEPTED).is_ok());
        for transient in [408, 429, 500, 502, 503] {
            assert!(matches!(
                classify(StatusCode::from_u16(transient).unwrap()),
                Err(SendError::Transient(_))
            ));
        }
        for permanent in [400, 401, 403, 404, 409, 422] {
            assert!(matches!(
                classify(StatusCode::from_u16(permanent).unwrap()),
                Err(SendError::Permanent(_))
            ));
        }
    }

    #[test]
    fn debug_never_shows_the_token() {
        let config = MarketplaceConfig {
            url: "http://x".into(),
            token: "s3cr3t-token".into(),
            timeout: Duration::from_secs(1),
            per_second: 1,
        };
        assert!(!format!("{config:?}").contains("s3cr3t"));
    }
}
