//! Pre-saved responses (*réponses pré-enregistrées*).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::template::{self, TemplateError};
use super::{FieldError, char_len, required_text};

pub const TITLE_MAX: usize = 100;
pub const BODY_MAX: usize = 5_000;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseInput {
    pub title: String,
    pub body: String,
    #[serde(default)]
    pub version: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseFields {
    pub title: String,
    pub body: String,
    pub placeholders: Vec<String>,
}

/// A stored response; `placeholders` tells the frontend which `context` keys it needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub id: String,
    pub title: String,
    pub body: String,
    pub placeholders: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

impl ResponseInput {
    pub fn validate(self) -> Result<ResponseFields, FieldError> {
        let title = required_text("title", &self.title, TITLE_MAX)?;
        if self.body.trim().is_empty() {
            return Err(FieldError::new("body", "empty", "body must not be empty"));
        }
        if char_len(&self.body) > BODY_MAX {
            return Err(FieldError::new(
                "body",
                "too_long",
                format!("body must be at most {BODY_MAX} characters"),
            ));
        }
        let placeholders = template::placeholders(&self.body).map_err(|e: TemplateError| {
            FieldError::new("body", "invalid_placeholder", e.to_string())
        })?;
        Ok(ResponseFields {
            title,
            body: self.body,
            placeholders: placeholders.into_iter().collect(),
        })
    }
}

impl ResponseFields {
    pub fn into_response(
        self,
        id: String,
        created_at: DateTime<Utc>,
        now: DateTime<Utc>,
        version: u64,
    ) -> Response {
        Response {
            id,
            title: self.title,
            body: self.body,
            placeholders: self.placeholders,
            created_at,
            updated_at: now,
            version,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(title: &str, body: &str) -> ResponseInput {
        ResponseInput {
            title: title.into(),
            body: body.into(),
            version: None,
        }
    }

    #[test]
    fn keeps_body_verbatim_and_lists_placeholders() {
        let fields = input(" Rappel ", "Bonjour {{customer_name}},\n")
            .validate()
            .unwrap();
        assert_eq!(fields.title, "Rappel");
        assert_eq!(fields.body, "Bonjour {{customer_name}},\n");
        assert_eq!(fields.placeholders, ["customer_name"]);
    }

    #[test]
    fn rejects_bad_fields() {
        assert_eq!(input("", "x").validate().unwrap_err().field, "title");
        assert_eq!(input("t", " ").validate().unwrap_err().field, "body");
        assert_eq!(
            input("t", &"x".repeat(5_001)).validate().unwrap_err().field,
            "body"
        );
        let err = input("t", "Bonjour {{nom").validate().unwrap_err();
        assert_eq!(
            (err.field.as_str(), err.code),
            ("body", "invalid_placeholder")
        );
    }
}
