//! Outbound senders.
