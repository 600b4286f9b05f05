use aws_sdk_sns::Client;
use aws_sdk_sns::error::ProvideErrorMetadata;
use aws_sdk_sns::types::MessageAttributeValue;
use futures::FutureExt;
use futures::future::BoxFuture;

use super::{RateLimiter, SendError, SmsSender};

/// SMS through SNS `Publish` to a phone number, as transactional messages (delivered
/// ahead of promotional ones, and allowed outside marketing hours).
pub struct SnsSms {
    client: Client,
    limiter: Option<RateLimiter>,
}

impl SnsSms {
    pub fn new(client: Client, per_second: u32) -> Self {
        Self {
            client,
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
            match result {
                Ok(_) => Ok(()),
                Err(err) => {
                    let code = err.code().unwrap_or("network").to_owned();
                    let reason = format!(
                        "SMS refused by SNS ({code}): {}",
                        err.message().unwrap_or("no detail")
                    );
                    if PERMANENT.contains(&code.as_str()) {
                        Err(SendError::Permanent(reason))
                    } else {
                        Err(SendError::Transient(reason))
                    }
                }
            }
        }
        .boxed()
    }
}
