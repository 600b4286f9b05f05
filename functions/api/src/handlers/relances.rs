use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use relance_shared::domain::relance::{Relance, RelanceInput};
use relance_shared::domain::{FieldError, is_channel_code};
use relance_shared::store::Page;

use crate::auth::Tenant;
use crate::error::ApiError;
use crate::extract::{JsonBody, ListQuery, RecordId};
use crate::{AppState, now};

pub async fn list(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    query: ListQuery,
) -> Result<Json<Page<Relance>>, ApiError> {
    if let Some(channel) = query.channel.as_deref()
        && !is_channel_code(channel)
    {
        return Err(FieldError::new(
            "channel",
            "invalid_channel",
            "channel codes are 1 to 32 of a-z, 0-9, _ and -",
        )
        .into());
    }
    let page = state
        .store
        .list_relances(
            &tenant,
            query.channel.as_deref(),
            query.limit,
            query.cursor.as_deref(),
        )
        .await?;
    Ok(Json(page))
}

pub async fn create(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    JsonBody(input): JsonBody<RelanceInput>,
) -> Result<(StatusCode, Json<Relance>), ApiError> {
    let fields = input.validate()?;
    let relance = state.store.create_relance(&tenant, fields, now()).await?;
    Ok((StatusCode::CREATED, Json(relance)))
}

pub async fn get(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    RecordId(id): RecordId,
) -> Result<Json<Relance>, ApiError> {
    Ok(Json(
        state
            .store
            .get_relance(&tenant, &id)
            .await
            .map_err(ApiError::or_missing("relance"))?,
    ))
}

pub async fn replace(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    RecordId(id): RecordId,
    JsonBody(input): JsonBody<RelanceInput>,
) -> Result<Json<Relance>, ApiError> {
    let version = input.version;
    let fields = input.validate()?;
    let relance = state
        .store
        .replace_relance(&tenant, &id, fields, version, now())
        .await
        .map_err(ApiError::or_missing("relance"))?;
    Ok(Json(relance))
}

pub async fn delete(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    RecordId(id): RecordId,
) -> Result<StatusCode, ApiError> {
    state
        .store
        .delete_relance(&tenant, &id)
        .await
        .map_err(ApiError::or_missing("relance"))?;
    Ok(StatusCode::NO_CONTENT)
}
