use axum::Json;
use axum::extract::State;
use relance_shared::domain::settings::SettingsInput;

use crate::AppState;
use crate::auth::Tenant;
use crate::error::ApiError;
use crate::extract::JsonBody;

pub async fn get(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
) -> Result<Json<SettingsInput>, ApiError> {
    let window = state.store.get_settings(&tenant).await?;
    Ok(Json(SettingsInput::from(&window)))
}

pub async fn replace(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    JsonBody(input): JsonBody<SettingsInput>,
) -> Result<Json<SettingsInput>, ApiError> {
    let window = input.validate()?;
    state.store.put_settings(&tenant, &window).await?;
    Ok(Json(SettingsInput::from(&window)))
}
