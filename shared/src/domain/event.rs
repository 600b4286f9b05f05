//! Domain events published on the events topic for the helpdesk backend.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::relance::SendType;
use super::thread::{State, StepKind};

/// Serialized as published; read back when a refused `relance.sent` is published again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainEvent {
    pub tenant_id: String,
    pub ticket_id: String,
    pub thread_id: String,
    pub relance_id: String,
    pub cycle: u32,
    pub occurred_at: DateTime<Utc>,
    #[serde(flatten)]
    pub detail: EventDetail,
}

/// The event's own fields; `type` names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum EventDetail {
    #[serde(rename = "relance.sent")]
    Sent {
        step: u32,
        kind: StepKind,
        send_type: SendType,
        messages_sent: u32,
    },
    /// The cycle ended: the backend sets the ticket to `final_status`.
    #[serde(rename = "relance.completed")]
    Completed {
        final_status: String,
        messages_sent: u32,
    },
    #[serde(rename = "relance.failed")]
    Failed { step: u32, reason: String },
    /// The cycle ended early: the ticket left `attente_client` (`stopped`) or an agent
    /// removed the relance (`cancelled`).
    #[serde(rename = "relance.stopped")]
    Stopped { state: State, reason: String },
}

impl DomainEvent {
    /// Whether the event announces the end of a cycle (the stored notice tracks those).
    pub fn ends_cycle(&self) -> bool {
        !matches!(self.detail, EventDetail::Sent { .. })
    }

    /// The `type` field, also sent as a message attribute for subscription filters.
    pub fn type_name(&self) -> &'static str {
        match self.detail {
            EventDetail::Sent { .. } => "relance.sent",
            EventDetail::Completed { .. } => "relance.completed",
            EventDetail::Failed { .. } => "relance.failed",
            EventDetail::Stopped { .. } => "relance.stopped",
        }
    }
}
