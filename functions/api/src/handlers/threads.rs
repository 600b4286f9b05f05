use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use relance_shared::domain::relance::is_record_id;
use relance_shared::domain::thread::{
    Attach, AttachInput, State as ThreadState, ThreadRelance, ThreadView,
};
use relance_shared::domain::{FieldError, WAITING_STATUS};
use relance_shared::store::{Store, StoreError};
use serde::Deserialize;

use crate::auth::Tenant;
use crate::error::ApiError;
use crate::extract::{JsonBody, ThreadId};
use crate::{AppState, now};

/// Attempts of a read-check-write that a concurrent change of the same thread can void.
const ATTEMPTS: usize = 3;

/// Every attempt lost to a concurrent change of the same thread.
fn keeps_changing() -> ApiError {
    ApiError::Conflict(FieldError::new(
        "",
        "conflict",
        "the thread's relance keeps changing; try again",
    ))
}

fn unknown_relance() -> ApiError {
    ApiError::Invalid(FieldError::new(
        "relance_id",
        "unknown_relance",
        "relance_id does not name a relance of this account",
    ))
}

async fn view(store: &Store, tenant: &str, thread: &ThreadRelance) -> Result<ThreadView, ApiError> {
    let window = store.get_settings(tenant).await?;
    Ok(thread.view(window.timezone))
}

pub async fn attach(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ThreadId(thread_id): ThreadId,
    JsonBody(input): JsonBody<AttachInput>,
) -> Result<(StatusCode, Json<ThreadView>), ApiError> {
    if !is_record_id(&input.relance_id) {
        return Err(unknown_relance());
    }
    let store = &state.store;
    let (relance, window) = tokio::try_join!(
        async {
            store
                .get_relance(&tenant, &input.relance_id)
                .await
                .map_err(|e| match e {
                    StoreError::NotFound => unknown_relance(),
                    other => other.into(),
                })
        },
        async { store.get_settings(&tenant).await.map_err(ApiError::from) },
    )?;
    let (default_response, end_response) = tokio::try_join!(
        store.get_response(&tenant, &relance.default_response_id),
        async {
            match &relance.end_response_id {
                Some(id) => store.get_response(&tenant, id).await.map(Some),
                None => Ok(None),
            }
        },
    )?;
    for _ in 0..ATTEMPTS {
        let existing = store.get_thread(&tenant, &thread_id).await?;
        let at = now();
        let outcome = input.clone().attach(
            &tenant,
            &thread_id,
            &relance,
            &default_response,
            end_response.as_ref(),
            &window,
            existing.as_ref(),
            at,
        )?;
        match outcome {
            Attach::Unchanged => {
                let current = existing.expect("unchanged implies an active thread relance");
                return Ok((StatusCode::OK, Json(current.view(window.timezone))));
            }
            Attach::Started(thread) => {
                // The replaced cycle's end is announced, like any other end.
                let ended = existing
                    .as_ref()
                    .and_then(|e| e.superseded(&relance.name, at));
                let replaces = existing.map(|e| e.cycle);
                match store.put_thread(&thread, replaces, ended.as_ref()).await {
                    Ok(()) => return Ok((StatusCode::CREATED, Json(thread.view(window.timezone)))),
                    Err(StoreError::Conflict(_)) => continue,
                    Err(other) => return Err(other.into()),
                }
            }
        }
    }
    Err(keeps_changing())
}

pub async fn get(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ThreadId(thread_id): ThreadId,
) -> Result<Json<ThreadView>, ApiError> {
    // Both reads at once: the panel is on the agent's critical path.
    let (thread, window) = tokio::try_join!(
        state.store.get_thread(&tenant, &thread_id),
        state.store.get_settings(&tenant)
    )?;
    let thread = thread.ok_or(ApiError::NotFound("thread relance"))?;
    Ok(Json(thread.view(window.timezone)))
}

/// Ends the active cycle early with `state`; a thread whose cycle is already over is
/// returned as it is.
async fn end_early(
    state: &AppState,
    tenant: &str,
    thread_id: &str,
    end: ThreadState,
    reason: String,
) -> Result<ThreadView, ApiError> {
    for _ in 0..ATTEMPTS {
        let mut thread = state
            .store
            .get_thread(tenant, thread_id)
            .await?
            .ok_or(ApiError::NotFound("thread relance"))?;
        if !thread.end_early(end, reason.clone(), now())
            || state.store.end_thread_early(&thread).await?
        {
            return view(&state.store, tenant, &thread).await;
        }
    }
    Err(keeps_changing())
}

pub async fn cancel(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ThreadId(thread_id): ThreadId,
) -> Result<Json<ThreadView>, ApiError> {
    let view = end_early(
        &state,
        &tenant,
        &thread_id,
        ThreadState::Cancelled,
        "cancelled by an agent".into(),
    )
    .await?;
    Ok(Json(view))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketStatusInput {
    ticket_status: String,
}

pub async fn ticket_status(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ThreadId(thread_id): ThreadId,
    JsonBody(input): JsonBody<TicketStatusInput>,
) -> Result<Json<ThreadView>, ApiError> {
    let status = input.ticket_status.trim();
    if status.is_empty() || status.chars().count() > 64 {
        return Err(FieldError::new(
            "ticket_status",
            "invalid_status",
            "ticket_status must be 1 to 64 characters",
        )
        .into());
    }
    if status == WAITING_STATUS {
        let thread = state
            .store
            .get_thread(&tenant, &thread_id)
            .await?
            .ok_or(ApiError::NotFound("thread relance"))?;
        return Ok(Json(view(&state.store, &tenant, &thread).await?));
    }
    let reason = format!("ticket status changed to {status}");
    Ok(Json(
        end_early(&state, &tenant, &thread_id, ThreadState::Stopped, reason).await?,
    ))
}
