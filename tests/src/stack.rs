//! The local AWS stack: moto serves DynamoDB and SNS on one port.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;

/// Where the tests' stand-in listens: `RELANCE_TEST_ENDPOINT`, set by `make test`.
pub fn test_endpoint() -> String {
    std::env::var("RELANCE_TEST_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:5155".to_owned())
}

/// An SDK configuration for a local stand-in: fixed region, dummy credentials.
pub async fn sdk_config(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("eu-west-3"))
        .credentials_provider(Credentials::new("test", "test", None, None, "local"))
        .endpoint_url(endpoint)
        .load()
        .await
}

/// A name no other test uses, so that parallel tests never share state.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Creates the table exactly as the code defines it (the template is checked against
/// the same definition). An existing table is left as it is.
pub async fn create_table(client: &aws_sdk_dynamodb::Client, name: &str) -> Result<(), String> {
    if let Err(err) = relance_shared::store::table_definition(client, name)
        .send()
        .await
    {
        let text = format!("{err:?}");
        if !text.contains("ResourceInUseException") {
            return Err(text);
        }
    }
    // Some stand-ins create tables asynchronously, however short the delay.
    for _ in 0..100 {
        let described = client.describe_table().table_name(name).send().await;
        let status = described
            .ok()
            .and_then(|t| t.table)
            .and_then(|t| t.table_status);
        if status == Some(aws_sdk_dynamodb::types::TableStatus::Active) {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Err(format!("table {name} did not become active"))
}

/// Creates (or finds) an SNS topic and returns its ARN.
pub async fn create_topic(client: &aws_sdk_sns::Client, name: &str) -> Result<String, String> {
    let out = client
        .create_topic()
        .name(name)
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    out.topic_arn.ok_or_else(|| "no topic ARN".to_owned())
}

/// Stores a secret as an SSM SecureString parameter, as a deployment keeps it.
pub async fn put_secret(aws: &SdkConfig, name: &str, value: &str) -> Result<(), String> {
    aws_sdk_ssm::Client::new(aws)
        .put_parameter()
        .name(name)
        .value(value)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok(())
}
