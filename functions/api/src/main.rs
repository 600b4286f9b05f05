//! `relance-api` Lambda entry point: configuration and clients are built once, the table
//! connection is opened during init, then the router serves every request.

use relance_api::{ApiConfig, AppState, app};
use relance_shared::store::Store;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let config = ApiConfig::from_env()?;
    if config.dev_auth {
        tracing::warn!(
            "RELANCE_DEV_AUTH is on: requests without claims may name their tenant in X-Tenant-Id. Never use this in a deployment."
        );
    }
    let aws = relance_shared::config::aws().await;
    let store = Store::from_sdk_config(&aws, &config.store);
    store.warm_up().await?;
    lambda_http::run(app(AppState::new(store, config))).await
}
