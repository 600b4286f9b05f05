use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::BoxFuture;
use reqwest::StatusCode;

use super::{MarketplaceMessage, MarketplaceSender, RateLimiter, SendError};
use crate::config::{ConfigError, SdkConfig, SecretParameter, parsed, required, secret};

#[derive(Clone)]
pub struct MarketplaceConfig {
    /// Base URL; messages go to `{url}/messages`.
    pub url: String,
    pub token: String,
    /// Where the token lives when it is in SSM: read again after a 401, so that a token
    /// rotated there is picked up without a redeploy.
    pub token_parameter: Option<SecretParameter>,
    pub timeout: Duration,
    pub per_second: u32,
}

impl std::fmt::Debug for MarketplaceConfig {
    // The token never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MarketplaceConfig")
            .field("url", &self.url)
            .field("token", &"<redacted>")
            .field("token_parameter", &self.token_parameter)
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
        let token = secret(aws, "MARKETPLACE_API_TOKEN").await?;
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            token: token.value,
            token_parameter: token.parameter,
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
    token: RwLock<Arc<str>>,
    token_parameter: Option<SecretParameter>,
    /// One re-read of the token at a time, so that the sends refused together share it;
    /// holds when SSM last gave back the refused token.
    refresh: tokio::sync::Mutex<Option<Instant>>,
    limiter: Option<RateLimiter>,
}

/// After SSM gave back the token the connector refuses, 401s count as refusals without
/// asking SSM again for this long.
const REREAD_AT_MOST_EVERY: Duration = Duration::from_secs(60);

/// What a re-read of the token after a 401 found.
enum Reread {
    Rotated(Arc<str>),
    Unchanged,
    Unreadable,
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
            token: RwLock::new(config.token.as_str().into()),
            token_parameter: config.token_parameter.clone(),
            refresh: tokio::sync::Mutex::new(None),
            limiter: super::rate_limiter(config.per_second),
        })
    }

    /// Opens a connection to the connector during init (any answer will do).
    pub async fn warm_up(&self) {
        if let Err(err) = self.client.head(&self.endpoint).send().await {
            tracing::warn!(error = %without_url(&err), "marketplace connector not reachable at start");
        }
    }

    fn token(&self) -> Arc<str> {
        self.token.read().expect("token lock").clone()
    }

    async fn post(
        &self,
        message: &MarketplaceMessage<'_>,
        idempotency_key: &str,
        token: &str,
    ) -> Result<StatusCode, SendError> {
        if let Some(limiter) = &self.limiter {
            limiter.until_ready().await;
        }
        let response = self
            .client
            .post(&self.endpoint)
            .bearer_auth(token)
            .header("Idempotency-Key", idempotency_key)
            .json(message)
            .send()
            .await
            .map_err(|e| SendError::Transient(format!("marketplace {}", without_url(&e))))?;
        Ok(response.status())
    }

    /// After a 401 with `refused`: the token now in SSM, if it differs.
    async fn reread_token(&self, refused: &Arc<str>) -> Reread {
        let Some(parameter) = &self.token_parameter else {
            return Reread::Unchanged;
        };
        let mut unchanged_at = self.refresh.lock().await;
        let current = self.token();
        if current != *refused {
            // Another send re-read it meanwhile.
            return Reread::Rotated(current);
        }
        // A token refused for good would otherwise cost one SSM read per message.
        if unchanged_at.is_some_and(|at| at.elapsed() < REREAD_AT_MOST_EVERY) {
            return Reread::Unchanged;
        }
        match parameter.read().await {
            Ok(value) if *value != **refused => {
                let value: Arc<str> = value.into();
                *self.token.write().expect("token lock") = value.clone();
                tracing::info!("marketplace token re-read from SSM after a 401");
                Reread::Rotated(value)
            }
            Ok(_) => {
                *unchanged_at = Some(Instant::now());
                Reread::Unchanged
            }
            Err(err) => {
                tracing::warn!(error = %err, "marketplace token could not be re-read");
                Reread::Unreadable
            }
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
            let token = self.token();
            let status = self.post(message, idempotency_key, &token).await?;
            if status != StatusCode::UNAUTHORIZED {
                return classify(status);
            }
            // A 401 may mean the token was rotated in SSM since it was read.
            match self.reread_token(&token).await {
                Reread::Rotated(newer) => {
                    classify(self.post(message, idempotency_key, &newer).await?)
                }
                Reread::Unchanged => classify(status),
                Reread::Unreadable => Err(SendError::Transient(
                    "marketplace answered 401 Unauthorized and the token could not be re-read"
                        .into(),
                )),
            }
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
            token_parameter: None,
            timeout: Duration::from_secs(1),
            per_second: 1,
        };
        assert!(!format!("{config:?}").contains("s3cr3t"));
    }
}
