//! `local-stack ENDPOINT TABLE TOPIC`: creates the table (from the code's own definition)
//! and the events topic on a local stand-in, then prints the topic ARN.

use relance_tests::stack;

#[tokio::main]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [endpoint, table, topic] = args.as_slice() else {
        return Err("usage: local-stack ENDPOINT TABLE TOPIC".into());
    };
    let aws = stack::sdk_config(endpoint).await;
    stack::create_table(&aws_sdk_dynamodb::Client::new(&aws), table).await?;
    let arn = stack::create_topic(&aws_sdk_sns::Client::new(&aws), topic).await?;
    println!("{arn}");
    Ok(())
}
