//! The relances domain library, shared by the API and the scheduler.
//!
//! - [`domain`]: pure types and rules (validation, placeholders, sending window, schedule,
//!   the thread relance state machine). No I/O.
//! - [`store`]: the DynamoDB single-table mapping.
//! - [`outbound`]: SMS, marketplace messages and domain events.
//! - [`config`]: configuration read once from the environment at start.

pub mod config;
pub mod domain;
pub mod outbound;
pub mod store;
