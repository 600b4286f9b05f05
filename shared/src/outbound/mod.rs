//! Outbound: SMS (SNS), marketplace messages (HTTP connector) and domain events (SNS
//! topic). Each sits behind a small trait so that tests can inject faults in front of the
//! real implementation.

mod events;
mod marketplace;
mod sms;

use futures::future::BoxFuture;

pub use events::SnsEvents;
pub use marketplace::{HttpMarketplace, MarketplaceConfig};
pub use sms::SnsSms;

use crate::domain::event::DomainEvent;

/// Why a send did not go out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth trying again later: throttling, timeouts, provider errors.
    #[error("{0}")]
    Transient(String),
    /// Will never work for this recipient: invalid or opted-out number, refused message.
    #[error("{0}")]
    Permanent(String),
    /// The request may have reached the provider but no answer came back. Without an
    /// idempotency key (SMS), sending again could deliver the message twice.
    #[error("{0}")]
    Unknown(String),
}

/// A marketplace message, as the connector receives it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MarketplaceMessage<'a> {
    pub tenant_id: &'a str,
    pub channel: &'a str,
    pub conversation_id: &'a str,
    pub thread_id: &'a str,
    pub ticket_id: &'a str,
    pub body: &'a str,
}

pub trait SmsSender: Send + Sync {
    fn send_sms<'a>(
        &'a self,
        phone: &'a str,
        text: &'a str,
    ) -> BoxFuture<'a, Result<(), SendError>>;
}

pub trait MarketplaceSender: Send + Sync {
    fn send_message<'a>(
        &'a self,
        message: &'a MarketplaceMessage<'a>,
        idempotency_key: &'a str,
    ) -> BoxFuture<'a, Result<(), SendError>>;
}

pub trait EventPublisher: Send + Sync {
    fn publish<'a>(&'a self, event: &'a DomainEvent) -> BoxFuture<'a, Result<(), SendError>>;
}

/// A limiter that holds senders to a provider's rate, so that a large batch is slowed
/// down by us rather than refused by the provider.
pub type RateLimiter = governor::DefaultDirectRateLimiter;

pub fn rate_limiter(per_second: u32) -> Option<RateLimiter> {
    std::num::NonZeroU32::new(per_second)
        .map(|rate| governor::RateLimiter::direct(governor::Quota::per_second(rate)))
}
