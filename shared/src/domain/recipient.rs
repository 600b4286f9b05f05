//! Who receives the reminders: a phone number for SMS, a marketplace conversation for
//! channel messages.

use phonenumber::{Mode, PhoneNumber, Type, country};
use serde::{Deserialize, Serialize};

use super::FieldError;
use super::relance::SendType;

pub const CONVERSATION_ID_MAX: usize = 256;

/// The recipient as the attach request gives it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipientInput {
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub conversation_id: Option<String>,
}

/// A recipient that fits its send type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recipient {
    /// E.164, e.g. `+33612345678`.
    Phone(String),
    ConversationId(String),
}

/// Parses a phone number (French national format accepted) into E.164, refusing numbers
/// that cannot receive an SMS.
pub fn normalise_phone(raw: &str) -> Result<String, &'static str> {
    if raw.len() > 40 {
        return Err("is too long to be a phone number");
    }
    let number: PhoneNumber =
        phonenumber::parse(Some(country::Id::FR), raw).map_err(|_| "is not a phone number")?;
    if !number.is_valid() {
        return Err("is not a valid phone number");
    }
    match number.number_type(&phonenumber::metadata::DATABASE) {
        Type::Mobile | Type::FixedLineOrMobile | Type::PersonalNumber | Type::Voip => {
            Ok(number.format().mode(Mode::E164).to_string())
        }
        _ => Err("cannot receive SMS (not a mobile number)"),
    }
}

impl RecipientInput {
    pub fn validate(self, send_type: SendType) -> Result<Recipient, FieldError> {
        match (send_type, self.phone, self.conversation_id) {
            (SendType::Sms, Some(phone), None) => normalise_phone(&phone)
                .map(Recipient::Phone)
                .map_err(|why| {
                    FieldError::new(
                        "recipient.phone",
                        "invalid_phone",
                        format!("recipient.phone {why}"),
                    )
                }),
            (SendType::Channel, None, Some(id)) => {
                let id = id.trim();
                if id.is_empty()
                    || id.chars().count() > CONVERSATION_ID_MAX
                    || id.chars().any(char::is_control)
                {
                    Err(FieldError::new(
                        "recipient.conversation_id",
                        "invalid_conversation",
                        "recipient.conversation_id must be 1 to 256 printable characters",
                    ))
                } else {
                    Ok(Recipient::ConversationId(id.to_owned()))
                }
            }
            (SendType::Sms, ..) => Err(FieldError::new(
                "recipient",
                "recipient_mismatch",
                "this relance sends SMS: recipient must be {\"phone\": \"...\"}",
            )),
            (SendType::Channel, ..) => Err(FieldError::new(
                "recipient",
                "recipient_mismatch",
                "this relance sends on the marketplace channel: recipient must be {\"conversation_id\": \"...\"}",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn french_national_numbers_become_e164() {
        assert_eq!(normalise_phone("06 12 34 56 78").unwrap(), "+33612345678");
        assert_eq!(normalise_phone("07.81.23.45.67").unwrap(), "+33781234567");
        assert_eq!(
            normalise_phone("+33 6 12 34 56 78").unwrap(),
            "+33612345678"
        );
        assert_eq!(normalise_phone("+44 7400 123456").unwrap(), "+447400123456");
    }

    #[test]
    fn rejects_what_cannot_receive_an_sms() {
        assert!(normalise_phone("hello").is_err());
        assert!(normalise_phone("06 12").is_err());
        assert!(normalise_phone("01 23 45 67 89").is_err()); // Paris landline
        assert!(normalise_phone("").is_err());
    }

    #[test]
    fn recipient_must_fit_the_send_type() {
        let phone = RecipientInput {
            phone: Some("0612345678".into()),
            conversation_id: None,
        };
        assert_eq!(
            phone.clone().validate(SendType::Sms).unwrap(),
            Recipient::Phone("+33612345678".into())
        );
        assert_eq!(
            phone.validate(SendType::Channel).unwrap_err().field,
            "recipient"
        );
        let conv = RecipientInput {
            phone: None,
            conversation_id: Some(" amz-123 ".into()),
        };
        assert_eq!(
            conv.clone().validate(SendType::Channel).unwrap(),
            Recipient::ConversationId("amz-123".into())
        );
        assert_eq!(conv.validate(SendType::Sms).unwrap_err().field, "recipient");
        let blank = RecipientInput {
            phone: None,
            conversation_id: Some("  ".into()),
        };
        assert_eq!(
            blank.validate(SendType::Channel).unwrap_err().field,
            "recipient.conversation_id"
        );
    }
}
