use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use relance_shared::domain::response::{Response, ResponseInput};
use relance_shared::store::Page;

use crate::auth::Tenant;
use crate::error::ApiError;
use crate::extract::{JsonBody, ListQuery, RecordId};
use crate::{AppState, now};

pub async fn list(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    query: ListQuery,
) -> Result<Json<Page<Response>>, ApiError> {
    Ok(Json(
        state
            .store
            .list_responses(&tenant, query.limit, query.cursor.as_deref())
            .await?,
    ))
}

pub async fn create(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    JsonBody(input): JsonBody<ResponseInput>,
) -> Result<(StatusCode, Json<Response>), ApiError> {
    let fields = input.validate()?;
    Ok((
        StatusCode::CREATED,
        Json(state.store.create_response(&tenant, fields, now()).await?),
    ))
}

pub async fn get(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    RecordId(id): RecordId,
) -> Result<Json<Response>, ApiError> {
    Ok(Json(
        state
            .store
            .get_response(&tenant, &id)
            .await
            .map_err(ApiError::or_missing("response"))?,
    ))
}

pub async fn replace(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    RecordId(id): RecordId,
    JsonBody(input): JsonBody<ResponseInput>,
) -> Result<Json<Response>, ApiError> {
    let version = input.version;
    let fields = input.validate()?;
    Ok(Json(
        state
            .store
            .replace_response(&tenant, &id, fields, version, now())
            .await
            .map_err(ApiError::or_missing("response"))?,
    ))
}

pub async fn delete(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    RecordId(id): RecordId,
) -> Result<StatusCode, ApiError> {
    state
        .store
        .delete_response(&tenant, &id)
        .await
        .map_err(ApiError::or_missing("response"))?;
    Ok(StatusCode::NO_CONTENT)
}
