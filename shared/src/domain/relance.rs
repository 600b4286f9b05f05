//! A relance: the follow-up configuration that admins define.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{FieldError, WAITING_STATUS, char_len, is_channel_code, required_text};

/// How the reminders reach the customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SendType {
    /// A message on the thread's marketplace channel, through the HTTP connector.
    Channel,
    /// A direct SMS through Amazon SNS.
    Sms,
}

impl SendType {
    pub fn as_str(self) -> &'static str {
        match self {
            SendType::Channel => "channel",
            SendType::Sms => "sms",
        }
    }
}

pub const NAME_MAX: usize = 100;
pub const FREQUENCY_DAYS: std::ops::RangeInclusive<u32> = 1..=365;
pub const MAX_SENDS: std::ops::RangeInclusive<u32> = 1..=50;
pub const ALLOWED_CHANNELS_MAX: usize = 50;
pub const FINAL_STATUS_MAX: usize = 64;

/// What a client sends to create or replace a relance.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelanceInput {
    pub name: String,
    pub frequency_days: u32,
    pub max_sends: u32,
    pub allowed_channels: Vec<String>,
    pub default_response_id: String,
    #[serde(default)]
    pub end_response_id: Option<String>,
    pub final_status: String,
    pub send_type: SendType,
    /// On replace: the version the client last read; a stale one is refused.
    #[serde(default)]
    pub version: Option<u64>,
}

/// A relance's fields once every rule has been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelanceFields {
    pub name: String,
    pub frequency_days: u32,
    pub max_sends: u32,
    pub allowed_channels: Vec<String>,
    pub default_response_id: String,
    pub end_response_id: Option<String>,
    pub final_status: String,
    pub send_type: SendType,
}

/// A stored relance, as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Relance {
    pub id: String,
    pub name: String,
    pub frequency_days: u32,
    pub max_sends: u32,
    pub allowed_channels: Vec<String>,
    pub default_response_id: String,
    pub end_response_id: Option<String>,
    pub final_status: String,
    pub send_type: SendType,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

impl Relance {
    /// The response ids this relance uses, each once.
    pub fn response_ids(&self) -> Vec<&str> {
        let mut ids = vec![self.default_response_id.as_str()];
        if let Some(end) = self.end_response_id.as_deref()
            && end != self.default_response_id
        {
            ids.push(end);
        }
        ids
    }

    pub fn allows_channel(&self, channel: &str) -> bool {
        self.allowed_channels.iter().any(|c| c == channel)
    }
}

/// The key that makes names unique per tenant, case-insensitively.
pub fn name_key(name: &str) -> String {
    name.trim().to_lowercase()
}

/// Ids the service generates: UUIDs, so anything else cannot name a stored record.
pub fn is_record_id(value: &str) -> bool {
    uuid::Uuid::try_parse(value).is_ok()
}

fn response_ref(field: &str, value: &str) -> Result<String, FieldError> {
    if is_record_id(value) {
        Ok(value.to_owned())
    } else {
        Err(FieldError::new(
            field,
            "unknown_response",
            format!("{field} does not name a response of this account"),
        ))
    }
}

impl RelanceInput {
    /// Checks every field rule that needs no stored data (name uniqueness and the
    /// existence of the responses are checked by the store).
    pub fn validate(self) -> Result<RelanceFields, FieldError> {
        let name = required_text("name", &self.name, NAME_MAX)?;
        if !FREQUENCY_DAYS.contains(&self.frequency_days) {
            return Err(FieldError::new(
                "frequency_days",
                "out_of_range",
                "frequency_days must be an integer from 1 to 365",
            ));
        }
        if !MAX_SENDS.contains(&self.max_sends) {
            return Err(FieldError::new(
                "max_sends",
                "out_of_range",
                "max_sends must be an integer from 1 to 50",
            ));
        }
        if self.allowed_channels.is_empty() {
            return Err(FieldError::new(
                "allowed_channels",
                "empty",
                "allowed_channels must name at least one channel",
            ));
        }
        if self.allowed_channels.len() > ALLOWED_CHANNELS_MAX {
            return Err(FieldError::new(
                "allowed_channels",
                "too_long",
                format!("allowed_channels holds at most {ALLOWED_CHANNELS_MAX} channels"),
            ));
        }
        let mut allowed_channels = Vec::with_capacity(self.allowed_channels.len());
        for (i, channel) in self.allowed_channels.into_iter().enumerate() {
            if !is_channel_code(&channel) {
                return Err(FieldError::new(
                    format!("allowed_channels[{i}]"),
                    "invalid_channel",
                    "channel codes are 1 to 32 of a-z, 0-9, _ and -",
                ));
            }
            if !allowed_channels.contains(&channel) {
                allowed_channels.push(channel);
            }
        }
        let default_response_id = response_ref("default_response_id", &self.default_response_id)?;
        let end_response_id = self
            .end_response_id
            .map(|id| response_ref("end_response_id", &id))
            .transpose()?;
        let final_status = self.final_status.trim().to_owned();
        if final_status.is_empty() || char_len(&final_status) > FINAL_STATUS_MAX {
            return Err(FieldError::new(
                "final_status",
                "invalid_status",
                "final_status must be 1 to 64 characters",
            ));
        }
        if final_status == WAITING_STATUS {
            return Err(FieldError::new(
                "final_status",
                "invalid_status",
                "final_status cannot be attente_client: the cycle must end the wait",
            ));
        }
        Ok(RelanceFields {
            name,
            frequency_days: self.frequency_days,
            max_sends: self.max_sends,
            allowed_channels,
            default_response_id,
            end_response_id,
            final_status,
            send_type: self.send_type,
        })
    }
}

impl RelanceFields {
    pub fn into_relance(
        self,
        id: String,
        created_at: DateTime<Utc>,
        now: DateTime<Utc>,
        version: u64,
    ) -> Relance {
        Relance {
            id,
            name: self.name,
            frequency_days: self.frequency_days,
            max_sends: self.max_sends,
            allowed_channels: self.allowed_channels,
            default_response_id: self.default_response_id,
            end_response_id: self.end_response_id,
            final_status: self.final_status,
            send_type: self.send_type,
            created_at,
            updated_at: now,
            version,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESPONSE: &str = "0191d3a0-0000-7000-8000-000000000001";

    fn input() -> RelanceInput {
        RelanceInput {
            name: "  Relance colis  ".into(),
            frequency_days: 2,
            max_sends: 3,
            allowed_channels: vec!["amazon".into(), "sms".into(), "amazon".into()],
            default_response_id: RESPONSE.into(),
            end_response_id: None,
            final_status: "resolu".into(),
            send_type: SendType::Sms,
            version: None,
        }
    }

    fn field_of(input: RelanceInput) -> String {
        input.validate().unwrap_err().field
    }

    #[test]
    fn valid_input_is_trimmed_and_channels_deduplicated() {
        let fields = input().validate().unwrap();
        assert_eq!(fields.name, "Relance colis");
        assert_eq!(fields.allowed_channels, ["amazon", "sms"]);
    }

    #[test]
    fn each_rule_names_its_field() {
        assert_eq!(
            field_of(RelanceInput {
                name: "   ".into(),
                ..input()
            }),
            "name"
        );
        assert_eq!(
            field_of(RelanceInput {
                name: "x".repeat(101),
                ..input()
            }),
            "name"
        );
        assert_eq!(
            field_of(RelanceInput {
                frequency_days: 0,
                ..input()
            }),
            "frequency_days"
        );
        assert_eq!(
            field_of(RelanceInput {
                frequency_days: 366,
                ..input()
            }),
            "frequency_days"
        );
        assert_eq!(
            field_of(RelanceInput {
                max_sends: 51,
                ..input()
            }),
            "max_sends"
        );
        assert_eq!(
            field_of(RelanceInput {
                allowed_channels: vec![],
                ..input()
            }),
            "allowed_channels"
        );
        assert_eq!(
            field_of(RelanceInput {
                allowed_channels: vec!["ok".into(), "Amazon".into()],
                ..input()
            }),
            "allowed_channels[1]"
        );
        assert_eq!(
            field_of(RelanceInput {
                default_response_id: "nope".into(),
                ..input()
            }),
            "default_response_id"
        );
        assert_eq!(
            field_of(RelanceInput {
                end_response_id: Some("".into()),
                ..input()
            }),
            "end_response_id"
        );
        assert_eq!(
            field_of(RelanceInput {
                final_status: "attente_client".into(),
                ..input()
            }),
            "final_status"
        );
        assert_eq!(
            field_of(RelanceInput {
                final_status: "".into(),
                ..input()
            }),
            "final_status"
        );
    }

    #[test]
    fn boundaries_are_inclusive() {
        assert!(
            RelanceInput {
                frequency_days: 365,
                max_sends: 50,
                ..input()
            }
            .validate()
            .is_ok()
        );
        assert!(
            RelanceInput {
                frequency_days: 1,
                max_sends: 1,
                ..input()
            }
            .validate()
            .is_ok()
        );
        assert!(
            RelanceInput {
                name: "é".repeat(100),
                ..input()
            }
            .validate()
            .is_ok()
        );
    }

    #[test]
    fn names_compare_case_insensitively() {
        assert_eq!(name_key(" Relance Colis "), name_key("relance colis"));
    }
}
