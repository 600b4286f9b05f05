//! Configuration read once at start from the environment. A bad value stops the function
//! at init with a message naming the variable, never later in a request.

use std::str::FromStr;

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

/// A required variable.
pub fn required(name: &str) -> Result<String, ConfigError> {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => Ok(value),
        _ => Err(ConfigError(format!("{name} must be set"))),
    }
}

/// An optional variable parsed as `T`, `default` when unset.
pub fn parsed<T: FromStr>(name: &str, default: T) -> Result<T, ConfigError> {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => value
            .trim()
            .parse()
            .map_err(|_| ConfigError(format!("{name} has an invalid value"))),
        _ => Ok(default),
    }
}

/// A flag that is on when set to `1` or `true`.
pub fn flag(name: &str) -> bool {
    matches!(std::env::var(name).as_deref(), Ok("1") | Ok("true"))
}

/// What both functions need to reach the table.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub table_name: String,
    /// Partitions of the due index; see [`crate::store`]. Only ever increase it.
    pub due_shards: u32,
}

impl StoreConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let due_shards = parsed("DUE_SHARDS", 8u32)?;
        if !(1..=256).contains(&due_shards) {
            return Err(ConfigError("DUE_SHARDS must be from 1 to 256".into()));
        }
        Ok(Self {
            table_name: required("TABLE_NAME")?,
            due_shards,
        })
    }
}

/// Loads the AWS configuration from the standard environment (`AWS_REGION`,
/// `AWS_ENDPOINT_URL`, credentials chain), so local stand-ins need no code path of their own.
pub async fn aws() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}
