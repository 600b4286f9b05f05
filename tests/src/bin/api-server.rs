//! `api-server ADDR`: the API's router served over plain HTTP, configured from the same
//! environment as the Lambda. The fuzzer and the benchmarks talk to it, so that what they
//! exercise is the router and its handlers, not a Lambda emulator's request conversion.
//! Requests carry no API Gateway context, so `RELANCE_DEV_AUTH=1` is needed.

use relance_api::{ApiConfig, AppState, app};
use relance_shared::store::Store;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9300".to_owned());
    let config = ApiConfig::from_env()?;
    let aws = relance_shared::config::aws().await;
    let store = Store::from_sdk_config(&aws, &config.store);
    store.warm_up().await?;
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("API on http://{}", listener.local_addr()?);
    axum::serve(listener, app(AppState::new(store, config))).await?;
    Ok(())
}
