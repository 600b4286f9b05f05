//! Extractors that turn every malformed request into a clear 4xx naming the field.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use relance_shared::domain::FieldError;
use relance_shared::domain::relance::is_record_id;
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::error::ApiError;

pub const BODY_LIMIT: usize = 64 * 1024;

/// A JSON body of at most 64 KiB, decoded into `T`; errors name the offending field.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(content_type) = req.headers().get(CONTENT_TYPE) {
            let is_json = content_type
                .to_str()
                .ok()
                .and_then(|v| v.split(';').next())
                .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
            if !is_json {
                return Err(ApiError::UnsupportedMediaType);
            }
        }
        let bytes = axum::body::to_bytes(req.into_body(), BODY_LIMIT)
            .await
            .map_err(|_| ApiError::PayloadTooLarge)?;
        decode(&bytes).map(JsonBody)
    }
}

/// Decodes JSON, telling a syntax error (400) from a value that does not fit (422).
pub fn decode<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::MalformedJson(format!("the body is not valid JSON ({e})")))?;
    // Derived structs would also accept an array of their fields; only objects are ours.
    if !value.is_object() {
        return Err(ApiError::Invalid(FieldError::new(
            "",
            "invalid_type",
            "the body must be a JSON object",
        )));
    }
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let message = err.inner().to_string();
        // serde names missing and unknown fields in the message; an unknown field's path
        // already ends with it, a missing one's is its parent.
        let named = message
            .strip_prefix("missing field `")
            .or_else(|| message.strip_prefix("unknown field `"))
            .and_then(|rest| rest.split('`').next());
        let field = match (named, path.as_str()) {
            (Some(name), ".") => name.to_owned(),
            (Some(name), path) if !path.ends_with(name) => format!("{path}.{name}"),
            (None, ".") => String::new(),
            (_, path) => path.to_owned(),
        };
        let code = if message.starts_with("missing field") {
            "missing_field"
        } else if message.starts_with("unknown field") {
            "unknown_field"
        } else {
            "invalid_type"
        };
        ApiError::Invalid(FieldError::new(field, code, message))
    })
}

/// The id in `/relances/{id}` or `/responses/{id}`: anything that is not one of our ids
/// cannot name a record.
pub struct RecordId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for RecordId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(id)) if is_record_id(&id) => Ok(RecordId(id)),
            _ => Err(ApiError::NotFound("record")),
        }
    }
}

/// The helpdesk's thread id in `/threads/{thread_id}/...`.
pub struct ThreadId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ThreadId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(id)) if relance_shared::domain::is_external_id(&id) => Ok(ThreadId(id)),
            _ => Err(ApiError::Invalid(FieldError::new(
                "thread_id",
                "invalid_id",
                "thread_id must be 1 to 128 characters of letters, digits and . _ : @ -",
            ))),
        }
    }
}

/// `limit` and `cursor` of a list, plus the other query parameters for the handler.
pub struct ListQuery {
    pub limit: usize,
    pub cursor: Option<String>,
    pub channel: Option<String>,
}

pub const LIST_LIMIT_DEFAULT: usize = 50;
pub const LIST_LIMIT_MAX: usize = 100;

impl<S: Send + Sync> FromRequestParts<S> for ListQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let raw = parts.uri.query().unwrap_or("");
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw).map_err(|_| {
            ApiError::Invalid(FieldError::new(
                "query",
                "invalid_query",
                "the query string is not URL-encoded",
            ))
        })?;
        let mut query = ListQuery {
            limit: LIST_LIMIT_DEFAULT,
            cursor: None,
            channel: None,
        };
        for (key, value) in pairs {
            match key.as_str() {
                "limit" => {
                    query.limit = value
                        .parse()
                        .ok()
                        .filter(|l| (1..=LIST_LIMIT_MAX).contains(l))
                        .ok_or_else(|| {
                            ApiError::Invalid(FieldError::new(
                                "limit",
                                "out_of_range",
                                "limit must be an integer from 1 to 100",
                            ))
                        })?;
                }
                "cursor" => query.cursor = Some(value),
                "channel" => query.channel = Some(value),
                // Other parameters (cache busters and the like) are ignored.
                _ => {}
            }
        }
        Ok(query)
    }
}
