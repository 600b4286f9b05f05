//! Configuration read once at start from the environment. A bad value stops the function
//! at init with a message naming the variable, never later in a request.

use std::str::FromStr;

pub use aws_config::SdkConfig;

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
pub async fn aws() -> SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// Where a secret comes from: its value in `NAME` (local runs), or the name of an SSM
/// SecureString parameter in `NAME_PARAMETER` (deployed), so that the value never sits in
/// the function's configuration, where anyone allowed to read that could see it.
#[derive(PartialEq, Eq)]
enum SecretSource {
    Value(String),
    Parameter(String),
}

impl SecretSource {
    fn choose(
        name: &str,
        value: Option<String>,
        parameter: Option<String>,
    ) -> Result<Self, ConfigError> {
        let set = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
        match (set(value), set(parameter)) {
            (Some(value), None) => Ok(Self::Value(value)),
            (None, Some(parameter)) => Ok(Self::Parameter(parameter.trim().to_owned())),
            (None, None) => Err(ConfigError(format!(
                "{name} or {name}_PARAMETER must be set"
            ))),
            (Some(_), Some(_)) => Err(ConfigError(format!(
                "set {name} or {name}_PARAMETER, not both"
            ))),
        }
    }
}

/// A secret's value and, when it lives in SSM, the parameter to read it again from.
pub struct Secret {
    pub value: String,
    pub parameter: Option<SecretParameter>,
}

/// A secret read at init; see [`SecretSource`]. Errors name the variable and the
/// parameter, never the value.
pub async fn secret(aws: &SdkConfig, name: &str) -> Result<Secret, ConfigError> {
    let source = SecretSource::choose(
        name,
        std::env::var(name).ok(),
        std::env::var(format!("{name}_PARAMETER")).ok(),
    )?;
    match source {
        SecretSource::Value(value) => Ok(Secret {
            value,
            parameter: None,
        }),
        SecretSource::Parameter(parameter) => {
            let parameter = SecretParameter::new(aws, name, parameter);
            Ok(Secret {
                value: parameter.read().await?,
                parameter: Some(parameter),
            })
        }
    }
}

/// An SSM SecureString parameter holding a secret. Kept after init so that a secret
/// rotated in SSM can be read again without a redeploy.
#[derive(Clone, Debug)]
pub struct SecretParameter {
    client: aws_sdk_ssm::Client,
    variable: String,
    name: String,
}

impl SecretParameter {
    /// The parameter `name`, named in the variable `{secret}_PARAMETER`.
    pub fn new(aws: &SdkConfig, secret: &str, name: String) -> Self {
        Self {
            client: aws_sdk_ssm::Client::new(aws),
            variable: format!("{secret}_PARAMETER"),
            name,
        }
    }

    /// The decrypted value.
    pub async fn read(&self) -> Result<String, ConfigError> {
        let (variable, name) = (&self.variable, &self.name);
        let read = self
            .client
            .get_parameter()
            .name(name)
            .with_decryption(true)
            .send()
            .await
            .map_err(|e| {
                use aws_sdk_ssm::error::ProvideErrorMetadata;
                let code = e.code().unwrap_or("no answer").to_owned();
                ConfigError(format!("{variable}: cannot read parameter {name} ({code})"))
            })?;
        read.parameter
            .and_then(|p| p.value)
            .filter(|value| !value.trim().is_empty())
            .ok_or_else(|| ConfigError(format!("{variable}: parameter {name} is empty")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choose(value: Option<&str>, parameter: Option<&str>) -> Result<SecretSource, String> {
        SecretSource::choose("TOKEN", value.map(Into::into), parameter.map(Into::into))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_secret_comes_from_its_value_or_its_parameter_never_both() {
        assert!(choose(Some("s3cr3t"), None) == Ok(SecretSource::Value("s3cr3t".into())));
        assert!(
            choose(Some(" "), Some(" /relances/token "))
                == Ok(SecretSource::Parameter("/relances/token".into()))
        );
        assert_eq!(
            choose(None, Some("")).err().unwrap(),
            "configuration: TOKEN or TOKEN_PARAMETER must be set"
        );
        assert_eq!(
            choose(Some("s3cr3t"), Some("/relances/token"))
                .err()
                .unwrap(),
            "configuration: set TOKEN or TOKEN_PARAMETER, not both"
        );
    }
}
