//! `local-stack ENDPOINT TABLE TOPIC [PARAMETER SECRET]`: creates the table (from the
//! code's own definition) and the events topic on a local stand-in, stores SECRET as the
//! SSM SecureString PARAMETER when given, then prints the topic ARN.

use relance_tests::stack;

#[tokio::main]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (endpoint, table, topic, secret) = match args.as_slice() {
        [endpoint, table, topic] => (endpoint, table, topic, None),
        [endpoint, table, topic, parameter, value] => {
            (endpoint, table, topic, Some((parameter, value)))
        }
        _ => return Err("usage: local-stack ENDPOINT TABLE TOPIC [PARAMETER SECRET]".into()),
    };
    let aws = stack::sdk_config(endpoint).await;
    stack::create_table(&aws_sdk_dynamodb::Client::new(&aws), table).await?;
    let arn = stack::create_topic(&aws_sdk_sns::Client::new(&aws), topic).await?;
    if let Some((parameter, value)) = secret {
        stack::put_secret(&aws, parameter, value).await?;
    }
    println!("{arn}");
    Ok(())
}
