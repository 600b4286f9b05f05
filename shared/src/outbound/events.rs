use aws_sdk_sns::Client;
use aws_sdk_sns::error::ProvideErrorMetadata;
use aws_sdk_sns::types::MessageAttributeValue;
use futures::FutureExt;
use futures::future::BoxFuture;

use super::{EventPublisher, SendError};
use crate::domain::event::DomainEvent;

/// Domain events on the events topic; `type` is also a message attribute so that
/// subscribers can filter.
pub struct SnsEvents {
    client: Client,
    topic_arn: String,
}

impl SnsEvents {
    pub fn new(client: Client, topic_arn: String) -> Self {
        Self { client, topic_arn }
    }
}

impl EventPublisher for SnsEvents {
    fn publish<'a>(&'a self, event: &'a DomainEvent) -> BoxFuture<'a, Result<(), SendError>> {
        async move {
            let body =
                serde_json::to_string(event).map_err(|e| SendError::Permanent(e.to_string()))?;
            let kind = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(event.type_name())
                .build()
                .map_err(|e| SendError::Transient(e.to_string()))?;
            self.client
                .publish()
                .topic_arn(&self.topic_arn)
                .message(body)
                .message_attributes("type", kind)
                .send()
                .await
                .map(|_| ())
                .map_err(|err| {
                    SendError::Transient(format!(
                        "event not published ({})",
                        err.code().unwrap_or("network")
                    ))
                })
        }
        .boxed()
    }
}
