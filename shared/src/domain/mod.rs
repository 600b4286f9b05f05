//! Pure domain: types and rules, no I/O, no async, no AWS types.

pub mod error;
pub mod event;
pub mod recipient;
pub mod relance;
pub mod response;
pub mod schedule;
pub mod settings;
pub mod template;
pub mod thread;

pub use error::FieldError;

/// The ticket status that a thread relance requires and keeps (*attente client*).
pub const WAITING_STATUS: &str = "attente_client";

/// Number of characters of `value` (Unicode scalar values), the unit every limit in SPEC uses.
pub(crate) fn char_len(value: &str) -> usize {
    value.chars().count()
}

/// Checks a required free-text field: trimmed, 1..=max characters.
pub(crate) fn required_text(field: &str, value: &str, max: usize) -> Result<String, FieldError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(FieldError::new(
            field,
            "empty",
            format!("{field} must not be empty"),
        ));
    }
    if char_len(trimmed) > max {
        return Err(FieldError::new(
            field,
            "too_long",
            format!("{field} must be at most {max} characters"),
        ));
    }
    Ok(trimmed.to_owned())
}

/// Channel codes: `[a-z0-9_-]{1,32}`.
pub fn is_channel_code(value: &str) -> bool {
    (1..=32).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Identifiers that come from the helpdesk (thread and ticket ids): 1..=128 characters of
/// `[A-Za-z0-9._:@-]`, so that they are safe in keys, paths and logs.
pub fn is_external_id(value: &str) -> bool {
    (1..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'@' | b'-'))
}

pub(crate) fn external_id(field: &str, value: &str) -> Result<String, FieldError> {
    if is_external_id(value) {
        Ok(value.to_owned())
    } else {
        Err(FieldError::new(
            field,
            "invalid_id",
            format!("{field} must be 1 to 128 characters of letters, digits and . _ : @ -"),
        ))
    }
}
