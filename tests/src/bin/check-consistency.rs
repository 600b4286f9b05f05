//! `check-consistency ENDPOINT TABLE`: exits non-zero when the table breaks an invariant.

use relance_tests::{consistency, stack};

#[tokio::main]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [endpoint, table] = args.as_slice() else {
        return Err("usage: check-consistency ENDPOINT TABLE".into());
    };
    let aws = stack::sdk_config(endpoint).await;
    let (problems, checked) =
        consistency::check(&aws_sdk_dynamodb::Client::new(&aws), table).await?;
    for problem in &problems {
        eprintln!("inconsistent: {problem}");
    }
    if problems.is_empty() {
        println!("{checked} items consistent");
        Ok(())
    } else {
        Err(format!(
            "{} inconsistencies in {checked} items",
            problems.len()
        ))
    }
}
