use std::time::Duration;

use aws_sdk_sns::Client;
use aws_sdk_sns::config::retry::RetryConfig;
use aws_sdk_sns::config::timeout::TimeoutConfig;
use aws_sdk_sns::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sns::operation::publish::PublishError;
use aws_sdk_sns::types::MessageAttributeValue;
use futures::FutureExt;
use futures::future::BoxFuture;

use super::{RateLimiter, SendError, SmsSender};

/// How long one SMS publish may take before its outcome counts as unknown.
const SMS_TIMEOUT: Duration = Duration::from_secs(10);

/// SMS through SNS `Publish` to a phone number, as transactional messages (delivered
/// ahead of promotional ones, and allowed outside marketing hours).
///
/// SNS accepts a publish to a number that opted out and then drops it, so the number is
/// checked first: an opted-out customer fails the relance at once, with the reason,
/// instead of counting reminders that never arrive.
///
/// SNS has no idempotency key for SMS, so this client never retries by itself: a publish
/// whose answer was lost may have gone out, and resending it could text the customer
/// twice. Such a send is reported as `Unknown`; only failures SNS answered, or
/// connections that never opened, are `Transient` and retried by a later run.
pub struct SnsSms {
    client: Client,
    limiter: Option<RateLimiter>,
}

impl SnsSms {
    pub fn new(client: Client, per_second: u32) -> Self {
        let config = client
            .config()
            .to_builder()
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(SMS_TIMEOUT)
                    .build(),
            )
            .build();
        Self {
            client: Client::from_conf(config),
            limiter: super::rate_limiter(per_second),
        }
    }
}

/// SNS error codes that mean this number will never get the message.
const PERMANENT: [&str; 4] = [
    "InvalidParameter",
    "InvalidParameterValue",
    "OptedOut",
    "EndpointDisabled",
];

impl SmsSender for SnsSms {
    fn send_sms<'a>(
        &'a self,
        phone: &'a str,
        text: &'a str,
    ) -> BoxFuture<'a, Result<(), SendError>> {
        async move {
            if let Some(limiter) = &self.limiter {
                limiter.until_ready().await;
            }
            let opted_out = self
                .client
                .check_if_phone_number_is_opted_out()
                .phone_number(phone)
                .send()
                .await
                .map_err(|err| {
                    // Nothing was sent yet: whatever went wrong, trying later is safe.
                    SendError::Transient(format!("opt-out check failed: {}", chain(&err)))
                })?;
            if opted_out.is_opted_out() {
                return Err(SendError::Permanent(
                    "the customer opted out of SMS from this sender".into(),
                ));
            }
            let sms_type = MessageAttributeValue::builder()
                .data_type("String")
                .string_value("Transactional")
                .build()
                .map_err(|e| SendError::Transient(e.to_string()))?;
            let result = self
                .client
                .publish()
                .phone_number(phone)
                .message(text)
                .message_attributes("AWS.SNS.SMS.SMSType", sms_type)
                .send()
                .await;
            result.map(|_| ()).map_err(classify)
        }
        .boxed()
    }
}

fn classify(err: SdkError<PublishError>) -> SendError {
    match &err {
        SdkError::ServiceError(_) => {
            let code = err.code().unwrap_or("unknown");
            let reason = format!(
                "SMS refused by SNS ({code}): {}",
                err.message().unwrap_or("no detail")
            );
            if PERMANENT.contains(&code) {
                SendError::Permanent(reason)
            } else {
                SendError::Transient(reason)
            }
        }
        // The request never left: safe to try again.
        SdkError::ConstructionFailure(_) => {
            SendError::Transient(format!("SMS not sent: {}", chain(&err)))
        }
        SdkError::DispatchFailure(_) if never_connected(&err) => {
            SendError::Transient(format!("SMS not sent, SNS unreachable: {}", chain(&err)))
        }
        // Timeouts, connections lost mid-request, unreadable answers: SNS may have sent it.
        _ => SendError::Unknown(format!("no answer from SNS: {}", chain(&err))),
    }
}

/// Whether the connection to SNS failed before any byte of the request was written.
fn never_connected(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(err);
    while let Some(err) = source {
        if let Some(client_err) = err.downcast_ref::<hyper_util::client::legacy::Error>() {
            return client_err.is_connect();
        }
        source = err.source();
    }
    false
}

/// The error and its causes on one line; never the request itself.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
