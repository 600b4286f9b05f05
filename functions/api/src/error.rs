//! The one mapping from errors to HTTP: `{"error": {"code", "message", "field"}}` with a
//! 4xx status for anything a client can fix; a 5xx never shows internals.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use relance_shared::domain::FieldError;
use relance_shared::store::StoreError;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("unauthenticated")]
    Unauthenticated,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("no route")]
    NoRoute,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    #[error("body too large")]
    PayloadTooLarge,
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// A field breaks a rule (422).
    #[error("{0}")]
    Invalid(FieldError),
    /// The request conflicts with stored data (409).
    #[error("{0}")]
    Conflict(FieldError),
    #[error("store busy")]
    Busy,
    #[error("internal: {0}")]
    Internal(String),
}

#[derive(Serialize)]
struct Body<'a> {
    error: Detail<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    /// Maps a store error in which "not found" means no such `what` in this account.
    pub fn or_missing(what: &'static str) -> impl Fn(StoreError) -> ApiError {
        move |err| match err {
            StoreError::NotFound => ApiError::NotFound(what),
            other => other.into(),
        }
    }
}

impl From<FieldError> for ApiError {
    fn from(err: FieldError) -> Self {
        ApiError::Invalid(err)
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => ApiError::NotFound("record"),
            StoreError::Conflict(e) => ApiError::Conflict(e),
            StoreError::Invalid(e) => ApiError::Invalid(e),
            StoreError::Busy => ApiError::Busy,
            StoreError::Dynamo(e) | StoreError::Corrupt(e) => ApiError::Internal(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let not_found;
        let (status, code, message, field): (StatusCode, &str, &str, Option<&str>) = match &self {
            ApiError::Unauthenticated => (
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "the request carries no verified tenant claim",
                None,
            ),
            ApiError::NotFound(what) => {
                not_found = format!("no such {what} in this account");
                (StatusCode::NOT_FOUND, "not_found", not_found.as_str(), None)
            }
            ApiError::NoRoute => (StatusCode::NOT_FOUND, "no_route", "no such endpoint", None),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not accept this method",
                None,
            ),
            ApiError::MalformedJson(detail) => (
                StatusCode::BAD_REQUEST,
                "malformed_json",
                detail.as_str(),
                None,
            ),
            ApiError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the body is larger than 64 KiB",
                None,
            ),
            ApiError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send JSON with Content-Type: application/json",
                None,
            ),
            ApiError::Invalid(e) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                e.code,
                e.message.as_str(),
                Some(e.field.as_str()),
            ),
            ApiError::Conflict(e) => (
                StatusCode::CONFLICT,
                e.code,
                e.message.as_str(),
                Some(e.field.as_str()),
            ),
            ApiError::Busy => (
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "the service is busy; retry in a moment",
                None,
            ),
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error",
                    None,
                )
            }
        };
        let field = field.filter(|f| !f.is_empty());
        (
            status,
            Json(Body {
                error: Detail {
                    code,
                    message,
                    field,
                },
            }),
        )
            .into_response()
    }
}
